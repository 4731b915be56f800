"""Scoring checkpoints: metric sanity, the reference cache, determinism, metrics.csv, bad input, Inception offline."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
import torch_fidelity
import yaml
from PIL import Image
from torch_fidelity.metric_prc import calculate_precision_recall_part

from ganablate.cli import main
from ganablate.components.networks import build_generator
from ganablate.errors import DataError, UsageError
from ganablate.scoring import evaluate, metrics
from ganablate.scoring.evaluate import (
    COLUMNS,
    evaluate_run,
    floor,
    generate,
    load_generator,
    resolve_extractor,
    score,
)
from ganablate.scoring.extractor import DomainFeatureExtractor, train_extractor
from ganablate.scoring.metrics import METRICS
from tests.eval_fakes import fake_run, small_config, synthetic_data

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def domain(tmp_path_factory):
    """Synthetic data on disk and a domain extractor trained on it."""
    folder = tmp_path_factory.mktemp("domain")
    data = synthetic_data()
    data.save(folder / "data.pt")
    train_extractor(small_config(), folder / "domain.pt", data_path=str(folder / "data.pt"))
    return SimpleNamespace(data=data, data_path=str(folder / "data.pt"), extractor=folder / "domain.pt")


def _evaluate(domain, config, run_dir, cache_root):
    return evaluate_run(config, run_dir, domain.extractor, cache_root, domain.data_path)


def test_fid_of_real_images_is_near_the_floor_and_far_below_uniform_noise(domain, tmp_path):
    config = small_config(n_samples=500)
    floor_result = floor(
        config, "domain", tmp_path / "floor.json", domain.extractor, tmp_path / "cache", domain.data_path
    )
    assert json.loads((tmp_path / "floor.json").read_text()) == floor_result
    extractor = resolve_extractor("domain", domain.data, config, domain.extractor)
    other_real = synthetic_data(seed=1).train_images  # another draw, as many images as the floor's
    noise = torch.randint(0, 256, (500, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    real_fid = score(other_real, domain.data, extractor, config["eval"], tmp_path / "cache", CPU)["fid"]
    noise_fid = score(noise, domain.data, extractor, config["eval"], tmp_path / "cache", CPU)["fid"]
    assert 0 < floor_result["fid"] and abs(real_fid - floor_result["fid"]) < max(1.0, floor_result["fid"])
    assert noise_fid > 50 * max(real_fid, floor_result["fid"])


def test_is_of_real_test_images_beats_is_of_noise(domain, tmp_path):
    config = small_config(n_samples=500)
    extractor = resolve_extractor("domain", domain.data, config, domain.extractor)
    noise = torch.randint(0, 256, (500, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    real_is = score(domain.data.test_images, domain.data, extractor, config["eval"], tmp_path, CPU)["is"]
    noise_is = score(noise, domain.data, extractor, config["eval"], tmp_path, CPU)["is"]
    assert real_is > 5 and real_is > 3 * noise_is


def test_floor_warms_the_reference_cache_so_evaluation_extracts_only_generated_images(domain, tmp_path, monkeypatch):
    extracted = []
    forward = DomainFeatureExtractor.forward
    monkeypatch.setattr(DomainFeatureExtractor, "forward", lambda self, x: extracted.append(len(x)) or forward(self, x))
    config = small_config()
    floor(config, "domain", tmp_path / "floor.json", domain.extractor, tmp_path / "cache", domain.data_path)
    # The floor scores as many train images as a run is scored on (eval.n_samples), so the two share FID's bias.
    n = min(config["eval"]["n_samples"], len(domain.data.train_images))
    assert sum(extracted) == n + len(domain.data.test_images)
    assert json.loads((tmp_path / "floor.json").read_text())["n_samples"] == n
    extracted.clear()
    _evaluate(domain, config, fake_run(tmp_path / "run", config), tmp_path / "cache")
    assert sum(extracted) == 3 * 200  # three checkpoints, no reference images
    assert any(p.name.startswith("ganablate-fashion-mnist-test-") for p in (tmp_path / "cache").iterdir())


def test_same_checkpoint_gives_the_same_numbers(domain, tmp_path):
    config = small_config()
    run = fake_run(tmp_path / "run", config)
    first = _evaluate(domain, config, run, tmp_path / "cache")
    second = _evaluate(domain, config, run, tmp_path / "cache")
    assert first["value"].notna().all()
    pd.testing.assert_frame_equal(first, second)


def test_eval_z_stream_does_not_depend_on_the_batch_size():
    G = build_generator((1, 28, 28), small_config()["model"])
    whole = generate(G, 50, 50, "eval", CPU)
    in_pieces = generate(G, 50, 7, "eval", CPU)
    assert (whole.int() - in_pieces.int()).abs().max() <= 1  # equal up to float rounding across batch shapes
    assert whole.float().std() > 0


def test_g_mode_train_is_recorded_and_uses_batch_statistics(domain, tmp_path):
    config_eval, config_train = small_config(), small_config(g_mode="train")
    run = fake_run(tmp_path / "run", config_eval, steps_saved=(1, 2, 3))
    eval_table = _evaluate(domain, config_eval, run, tmp_path / "cache")
    train_table = _evaluate(domain, config_train, run, tmp_path / "cache")
    assert set(train_table["g_mode"]) == {"train"} and set(eval_table["g_mode"]) == {"eval"}
    assert not train_table["value"].equals(eval_table["value"])


def test_cli_evaluate_writes_tidy_metrics_csv_and_sample_grids(domain, tmp_path):
    config = small_config()
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    run = fake_run(tmp_path / "run", config)
    code = main(
        [
            "evaluate",
            "--config",
            str(tmp_path / "config.yaml"),
            "--run",
            str(run),
            "--domain-extractor",
            str(domain.extractor),
            "--cache-root",
            str(tmp_path / "cache"),
            "--data",
            domain.data_path,
        ]
    )
    assert code == 0
    table = pd.read_csv(run / "metrics.csv", comment="#")  # its last line: "# sha256 <digest of the lines above>"
    assert list(table.columns) == COLUMNS
    assert len(table) == 3 * len(METRICS)
    assert set(table["metric"]) == {"fid", "is", "is_std", "kid", "kid_std", "precision", "recall"}
    assert set(table["step"]) == {1, 2, 3} and set(table["extractor"]) == {"domain"}
    assert set(table["n_samples"]) == {200} and set(table["status"]) == {"completed"}
    assert table["value"].notna().all()
    for step in (1, 2, 3):
        with Image.open(run / "samples" / f"step_{step}.png") as grid:
            assert grid.size == (8 * 30 + 2, 8 * 30 + 2)  # 8x8 images of 28 pixels, 2-pixel padding


def test_kid_subset_larger_than_the_samples_is_reduced_with_a_warning(domain, tmp_path):
    config = small_config(kid_subset_size=1000)
    with pytest.warns(UserWarning, match="KID uses subsets of 200"):
        table = _evaluate(domain, config, fake_run(tmp_path / "run", config, steps_saved=(1, 2, 3)), tmp_path)
    assert table.loc[table["metric"] == "kid", "value"].notna().all()


def test_missing_checkpoint_of_a_completed_run_is_an_error_naming_the_file(domain, tmp_path):
    config = small_config()
    run = fake_run(tmp_path / "run", config, steps_saved=(1, 3))
    with pytest.raises(DataError, match="step_2.pt"):
        _evaluate(domain, config, run, tmp_path / "cache")
    assert not (run / "metrics.csv").exists()


class _RunsCode:
    """Unpickling this would create the file `marker`: what a malicious checkpoint could do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("damage", ["garbage", "truncated", "other_model", "pickled_code"])
def test_corrupt_checkpoint_is_an_error_naming_the_file(domain, tmp_path, damage):
    config = small_config()
    run = fake_run(tmp_path / "run", config)
    path = run / "checkpoints" / "step_2.pt"
    if damage == "garbage":
        path.write_bytes(b"\x00not a checkpoint")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:500])
    elif damage == "pickled_code":
        torch.save({"weight": _RunsCode(tmp_path / "pwned")}, path)
    else:
        torch.save(build_generator((1, 28, 28), {"z_dim": 16, "g_width": 8}).state_dict(), path)
    remedy = rf"remove {re.escape(str(run))}/ and train the run again"
    with pytest.raises(UsageError, match=rf"step_2\.pt: .*; .*{remedy}") as error:
        _evaluate(domain, config, run, tmp_path / "cache")
    assert "\n" not in str(error.value)
    assert not (run / "metrics.csv").exists() and not (tmp_path / "pwned").exists()


def test_cli_reports_a_corrupt_checkpoint_in_one_line_with_exit_code_2(domain, tmp_path, capsys):
    config = small_config()
    run = fake_run(tmp_path / "run", config)
    (run / "checkpoints" / "step_3.pt").write_bytes(b"junk")
    code = main(
        [
            "evaluate",
            "--config-json",
            json.dumps(config),
            "--run",
            str(run),
            "--domain-extractor",
            str(domain.extractor),
            "--cache-root",
            str(tmp_path / "cache"),
            "--data",
            domain.data_path,
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "step_3.pt" in err


def test_diverged_run_scores_the_checkpoints_it_has_and_writes_nan_rows_for_the_rest(domain, tmp_path):
    config = small_config()
    run = fake_run(tmp_path / "run", config, status="diverged", steps_saved=(1,))
    table = _evaluate(domain, config, run, tmp_path / "cache")
    assert set(table["status"]) == {"diverged"} and set(table["step"]) == {1, 2, 3}
    scored, missing = table[table["step"] == 1], table[table["step"] > 1]
    assert scored["value"].notna().all() and len(scored) == len(METRICS)
    assert missing["value"].isna().all() and len(missing) == 2 * len(METRICS)
    assert [p.name for p in (run / "samples").iterdir()] == ["step_1.png"]


def _random_inception_weights(path, monkeypatch) -> None:
    from torch_fidelity import feature_extractor_inceptionv3 as inception

    # The constructor insists on loading weights: give it none, keep the random initialisation.
    with monkeypatch.context() as patch:
        patch.setattr(inception, "load_state_dict_from_url", lambda *args, **kwargs: None)
        patch.setattr(inception.FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None)
        torch.manual_seed(0)
        model = inception.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    torch.save(model.state_dict(), path)


def test_inception_extractor_scores_offline_with_weights_from_the_config(tmp_path, monkeypatch):
    _random_inception_weights(tmp_path / "inception.pth", monkeypatch)
    data = synthetic_data(n_train=20, n_test=12)
    data.save(tmp_path / "data.pt")
    config = small_config(
        n_samples=12, extractors=["inception-v3-compat"], inception_weights=str(tmp_path / "inception.pth")
    )
    config["train"] = {**config["train"], "steps": 1, "checkpoints": []}
    run = fake_run(tmp_path / "run", config, steps_saved=(1,))
    with pytest.warns(UserWarning, match="KID uses subsets of 12"):
        table = evaluate_run(config, run, None, tmp_path / "cache", str(tmp_path / "data.pt"))
    assert set(table["extractor"]) == {"inception-v3-compat"} and len(table) == len(METRICS)
    assert all(math.isfinite(v) for v in table["value"])


def test_missing_inception_weights_without_network_is_one_clear_error(tmp_path, monkeypatch):
    expected_file = evaluate.INCEPTION_URL.rsplit("/", 1)[1]
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    # Nothing listens on port 9 here: the download fails as it does with no network at all.
    monkeypatch.setattr(evaluate, "INCEPTION_URL", f"http://127.0.0.1:9/{expected_file}")
    config = small_config(extractors=["inception-v3-compat"])
    with pytest.raises(DataError) as error:
        evaluate.inception_weights(config["eval"])
    message = str(error.value)
    assert "\n" not in message
    assert expected_file in message and str(tmp_path / "torch" / "hub" / "checkpoints") in message
    assert "eval.inception_weights" in message


def test_inception_weights_path_that_does_not_exist_is_an_error_naming_it(tmp_path):
    config = small_config(extractors=["inception-v3-compat"])
    # Config validation refuses a missing file up front; the file can still vanish before the job runs.
    config["eval"]["inception_weights"] = str(tmp_path / "nope.pth")
    with pytest.raises(DataError, match="nope.pth"):
        evaluate.inception_weights(config["eval"])


def _calculate_metrics_as_before(images, data, extractor, eval_cfg, cache_root):
    """evaluate.score as of a664a1f: one torch_fidelity.calculate_metrics call, which caches the test split's
    features and FID statistics in cache_root and recomputes everything else (its k-NN radii too) per call."""
    result = torch_fidelity.calculate_metrics(
        input1=evaluate._RGBImages(images),
        input2=evaluate._RGBImages(data.test_images),
        input2_cache_name=extractor.reference_cache_name,
        cache_root=str(cache_root),
        feature_extractor=extractor.fidelity_name,
        feature_extractor_weights_path=str(extractor.weights),
        isc=True,
        fid=True,
        kid=True,
        prc=True,
        kid_subset_size=min(eval_cfg["kid_subset_size"], len(images), len(data.test_images)),
        batch_size=eval_cfg["batch_size"],
        cuda=False,
        save_cpu_ram=True,
        verbose=False,
    )
    return {name: float(result[metric.key]).hex() for name, metric in METRICS.items()}


def _checkpoint_images(run, step, config):
    """The samples evaluate_run scores for `step`, made the way it makes them."""
    G = load_generator(run / "checkpoints" / f"step_{step}.pt", (1, 28, 28), config["model"])
    G = G.to(CPU, memory_format=torch.channels_last)
    return generate(G, config["eval"]["n_samples"], config["eval"]["batch_size"], config["eval"]["g_mode"], CPU)


def test_every_metric_is_bitwise_what_one_calculate_metrics_call_gave(domain, tmp_path):
    config = small_config()
    run = fake_run(tmp_path / "run", config)
    # As the workflow runs them: the floor computes the test split's side into the cache, evaluate reads it.
    floor(config, "domain", tmp_path / "floor.json", domain.extractor, tmp_path / "cache", domain.data_path)
    warm = _evaluate(domain, config, run, tmp_path / "cache")
    cold = _evaluate(domain, config, run, tmp_path / "cold-cache")  # no floor first: evaluate computes it
    extractor = resolve_extractor("domain", domain.data, config, domain.extractor)
    for step in (1, 2, 3):
        images = _checkpoint_images(run, step, config)
        # Step 1 fills torch-fidelity's own cache, as the floor did; steps 2 and 3 read it, as evaluate did.
        before = _calculate_metrics_as_before(images, domain.data, extractor, config["eval"], tmp_path / "old-cache")
        for table in (warm, cold):
            now = table[table["step"] == step].set_index("metric")["value"]
            assert {metric: value.hex() for metric, value in now.items()} == before, f"step {step}"
    # Untrained generators' samples are nowhere near the test split (precision 0): real images put the radii to use.
    real = synthetic_data(seed=1).train_images[:200]
    now = score(real, domain.data, extractor, config["eval"], tmp_path / "cache", CPU)
    assert 0 < now["precision"] < 1 and 0 < now["recall"] < 1
    before = _calculate_metrics_as_before(real, domain.data, extractor, config["eval"], tmp_path / "old-cache")
    assert {metric: value.hex() for metric, value in now.items()} == before


def test_precision_recall_from_cached_radii_is_bitwise_torch_fidelitys_over_several_batches():
    rng = torch.Generator().manual_seed(0)
    generated, real = torch.randn(300, 16, generator=rng), torch.randn(500, 16, generator=rng) + 0.3
    kwargs = {"prc_batch_size": 128}  # several batches each way, as more samples than its default 10000 would be
    reference = evaluate.Reference({"layer": real}, {}, metrics.knn_radii(real, kwargs))
    ours = metrics.precision_recall(generated, reference, "layer", kwargs)
    assert (ours["precision"], ours["recall"]) == calculate_precision_recall_part(generated, real, 3, 128)
    assert 0 < ours["precision"] < 1 and 0 < ours["recall"] < 1


@pytest.mark.parametrize("damage", ["garbage", "truncated", "pickled_code", "other_content"])
def test_damaged_reference_cache_is_one_line_naming_the_file_and_the_remedy(domain, tmp_path, damage):
    config = small_config()
    floor(config, "domain", tmp_path / "floor.json", domain.extractor, tmp_path / "cache", domain.data_path)
    [path] = (tmp_path / "cache").glob("*-reference.pt")
    if damage == "garbage":
        path.write_bytes(b"\x00not a cache file")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:500])
    elif damage == "pickled_code":
        torch.save({"format": _RunsCode(tmp_path / "pwned")}, path)
    else:
        torch.save({"format": evaluate.REFERENCE_FORMAT, "features": {}}, path)
    run = fake_run(tmp_path / "run", config)
    with pytest.raises(UsageError, match=rf"{re.escape(path.name)}: .*; remove it, and the next") as error:
        _evaluate(domain, config, run, tmp_path / "cache")
    assert "\n" not in str(error.value)
    assert not (run / "metrics.csv").exists() and not (tmp_path / "pwned").exists()


def test_kid_with_its_real_sums_computed_once_is_bitwise_torch_fidelitys_kid():
    """metrics.KID keeps each real subset's kernel sum across calls: every call, at another subset size or on
    other samples, still gives kid_features_to_metric's mean and SD to the bit."""
    from torch_fidelity.metric_kid import kid_features_to_metric

    generator = torch.Generator().manual_seed(0)
    real = torch.randn(300, 16, generator=generator)
    kid = metrics.KID(real)
    cases = ((200, 50, 0.5, 2), (200, 50, 0.0, 2), (250, 50, 1.0, 2), (200, 30, 0.5, 2), (200, 50, 0.5, 3))
    for n, size, shift, degree in cases:
        generated = torch.randn(n, 16, generator=generator) + shift
        kwargs = {"kid_subset_size": size, "kid_subsets": 20, "kid_kernel_poly_degree": degree, "verbose": False}
        assert kid(generated, kwargs) == kid_features_to_metric(generated, real, **kwargs), (n, size, shift, degree)
    assert len(kid._real_sums) == 4  # the second case reused the first's
