"""Stacked seeds (training/stack.py, issue 13): several seeds of one (feed, norm) trained in one process with torch.func
compute what their solo runs compute (up to float rounding), never disturb one another, and repeat and resume
bitwise. CPU only, tiny networks on synthetic images made here."""

import copy
import itertools
import json
import math
from unittest.mock import ANY

import pandas as pd
import pytest
import torch

from ganablate.cli import main
from ganablate.components.feeds import FEEDS
from ganablate.components.networks import build_generator
from ganablate.components.norms import NORMS
from ganablate.data import ImageData
from ganablate.errors import ConfigError
from ganablate.files import JSON_DIGEST, read_json_digested
from ganablate.study.config import validate_config
from ganablate.study.execution import stack_groups, stack_size
from ganablate.study.identity import run_hash
from ganablate.training import train
from ganablate.training.record import LOG_COLUMNS
from ganablate.training.seeds import build_networks
from ganablate.training.stack import Stack
from ganablate.training.step import Solo, train_step
from ganablate.training.train import train_run, train_stack
from tests.cells import at, tag

SHAPE = (1, 28, 28)
MODEL = {"z_dim": 8, "g_width": 8, "d_width": 8}
BATCH = 8
TINY = {
    "model": MODEL,
    "train": {"steps": 12, "batch_size": BATCH, "checkpoints": [6], "state_every": 4, "log_every": 3, "threads": 1},
}


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> str:
    """A prepared dataset file of random images (what `ganablate prepare-data` writes)."""
    g = torch.Generator().manual_seed(0)
    images = [torch.randint(0, 256, (n, *SHAPE), dtype=torch.uint8, generator=g) for n in (256, 32)]
    path = tmp_path_factory.mktemp("synthetic") / "synthetic.pt"
    ImageData(
        "synthetic", images[0], torch.zeros(256, dtype=torch.long), images[1], torch.zeros(32, dtype=torch.long)
    ).save(path)
    return str(path)


@pytest.fixture
def config() -> dict:
    return validate_config(copy.deepcopy(TINY))


# --- one step: a stack against its seeds' solo steps -------------------------------------------


# The reference and virtual norms draw their reference batch from the training images.
IMAGES = torch.randint(0, 256, (64, *SHAPE), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)


def _model(norm: str) -> dict:
    """MODEL under D's norm `norm`; ghost_mixed's chunks have no default size: half a batch here."""
    return MODEL | {"d_norm": norm} | ({"ghost_chunk": BATCH // 2} if norm == "ghost_mixed" else {})


def _networks(norm, seeds, dtype, device="cpu"):
    return [tuple(net.to(device, dtype) for net in build_networks(SHAPE, _model(norm), seed, IMAGES)) for seed in seeds]


def _adams(nets):
    return [torch.optim.Adam(params, lr=1e-3, betas=(0.5, 0.999)) for params in (nets.g_parameters, nets.d_parameters)]


def _batch(n_seeds, dtype, seed=0, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    real = torch.rand(n_seeds, BATCH, *SHAPE, generator=g, dtype=dtype) * 2 - 1
    return real.to(device), torch.randn(n_seeds, BATCH, MODEL["z_dim"], generator=g, dtype=dtype).to(device)


def _seed_state(nets, opts, j) -> dict[str, torch.Tensor]:
    """All that a step changes of seed j: G's and D's parameters and buffers (BN running statistics, spectral
    norm's u and v), and the Adam moments of both."""
    if isinstance(nets, Solo):
        nets_state, pick = {"G": nets.G.state_dict(), "D": nets.D.state_dict()}, (lambda t: t)
    else:
        nets_state, pick = nets.seed_state_dict(j), (lambda t: t[j])
    state = {f"{net}.{key}": value for net, sd in nets_state.items() for key, value in sd.items()}
    for name, opt in zip("GD", opts):
        for i, p in enumerate(opt.param_groups[0]["params"]):
            state |= {f"adam_{name}.{i}.{key}": pick(opt.state[p][key]) for key in ("exp_avg", "exp_avg_sq")}
    return state


def _solo_and_stack_steps(feed, norm, seeds, dtype, steps=1, device="cpu"):
    nets = _networks(norm, seeds, dtype, device)
    solos = [Solo(*copy.deepcopy(pair)) for pair in nets]
    stack = Stack([copy.deepcopy(pair) for pair in nets])
    solo_opts, stack_opts = [_adams(solo) for solo in solos], _adams(stack)
    for step in range(steps):
        real, z = _batch(len(seeds), dtype, seed=step, device=device)
        solo_out = [
            train_step(solo, *opts, FEEDS[feed], real[j : j + 1], z[j : j + 1])
            for j, (solo, opts) in enumerate(zip(solos, solo_opts))
        ]
        stack_out = train_step(stack, *stack_opts, FEEDS[feed], real, z)
    return (solos, solo_opts, solo_out), (stack, stack_opts, stack_out)


def _assert_stack_equals_solo(solo_side, stack_side, atol=1e-10):
    (solos, solo_opts, solo_out), (stack, stack_opts, stack_out) = solo_side, stack_side
    for j, solo in enumerate(solos):
        expected, got = _seed_state(solo, solo_opts[j], 0), _seed_state(stack, stack_opts, j)
        assert got.keys() == expected.keys()
        for key in expected:
            torch.testing.assert_close(got[key], expected[key], rtol=0, atol=atol, msg=f"seed {j}: {key}")
        for field in ("loss_d", "loss_g", "d_real", "d_fake", "fake"):
            torch.testing.assert_close(
                getattr(stack_out, field)[j],
                getattr(solo_out[j], field)[0],
                rtol=0,
                atol=atol,
                msg=f"seed {j}: {field}",
            )


@pytest.mark.parametrize(("feed", "norm"), list(itertools.product(FEEDS, NORMS)))
def test_one_step_of_a_stack_equals_its_seeds_solo_steps_in_float64(feed, norm):
    solo_side, stack_side = _solo_and_stack_steps(feed, norm, [0, 1, 2], torch.float64)
    _assert_stack_equals_solo(solo_side, stack_side)
    keys = _seed_state(*stack_side[:2], 0).keys()
    if norm == "batch":  # the buffers that vmap could lose are among those compared
        assert any(k.startswith("D.") and k.endswith("running_var") for k in keys)
    if norm == "spectral":
        assert any(k.endswith("._u") for k in keys) and any(k.endswith("._v") for k in keys)


@pytest.mark.parametrize("norm", ["batch", "spectral"])
def test_a_stack_of_one_seed_equals_its_solo_steps_in_float64(norm):
    _assert_stack_equals_solo(*_solo_and_stack_steps("joint", norm, [3], torch.float64, steps=3))


@pytest.mark.parametrize("norm", ["batch", "spectral"])
def test_every_seeds_buffers_change_in_a_stacked_step_as_in_its_solo_step(norm):
    """BN running statistics (G's and D's) and spectral norm's u and v are updated in place through vmap:
    no seed's update may be lost on a copy."""
    stack = Stack(_networks(norm, [0, 1, 2], torch.float64))
    before = [stack.seed_state_dict(j) for j in range(3)]
    train_step(stack, *_adams(stack), FEEDS["split"], *_batch(3, torch.float64))
    suffixes = ("running_mean", "running_var", "num_batches_tracked", "._u", "._v")
    for j in range(3):
        after = stack.seed_state_dict(j)
        buffers = [(net, key) for net in "GD" for key in after[net] if key.endswith(suffixes)]
        assert {net for net, _ in buffers} == {"G", "D"}  # G has BatchNorm whatever D's norm
        for net, key in buffers:
            if after[net][key].numel() == 1 and key.endswith("._u"):
                continue  # D's last layer has one output: its u is +-1 for good
            assert not torch.equal(after[net][key], before[j][net][key]), f"seed {j}: {net}.{key} did not change"
    _assert_stack_equals_solo(*_solo_and_stack_steps("split", norm, [0, 1, 2], torch.float64))


# --- isolation: nothing of one seed reaches another ---------------------------------------------


@pytest.mark.parametrize("norm", list(NORMS))
@pytest.mark.parametrize("change", ["its data", "a NaN in its weights"])
def test_what_happens_to_one_seed_leaves_the_others_bitwise_unchanged(norm, change):
    nets = _networks(norm, [0, 1, 2], torch.float32)
    real, z = _batch(3, torch.float32)

    def step(real, poison):
        stack = Stack(copy.deepcopy(nets))
        opts = _adams(stack)
        if poison:
            with torch.no_grad():
                for t in stack.g_parameters + stack.d_parameters:
                    t[2] = math.nan
        out = train_step(stack, *opts, FEEDS["joint"], real, z)
        return stack, opts, out

    base = step(real, poison=False)
    if change == "its data":
        other_real = real.clone()
        other_real[2] = -other_real[2]
        other = step(other_real, poison=False)
    else:
        other = step(real, poison=True)
    for j in (0, 1):
        a, b = _seed_state(*base[:2], j), _seed_state(*other[:2], j)
        assert all(torch.equal(a[key], b[key]) for key in a), f"seed {j} changed"
        for field in ("loss_d", "loss_g", "d_real", "d_fake", "fake"):
            assert torch.equal(getattr(base[2], field)[j], getattr(other[2], field)[j]), f"seed {j}: {field}"
    changed = _seed_state(*other[:2], 2)
    if change == "its data":
        assert not all(torch.equal(_seed_state(*base[:2], 2)[key], changed[key]) for key in changed)
    else:
        assert not math.isfinite(other[2].loss_d[2].item())


# --- whole stacked runs ------------------------------------------------------------------------


def _load(path):
    return torch.load(path, weights_only=True)


def _same_run_outputs(a, b) -> bool:
    """Bitwise equal checkpoints and train_log.csv."""
    names = sorted(p.name for p in (a / "checkpoints").iterdir())
    return (
        names == sorted(p.name for p in (b / "checkpoints").iterdir())
        and all(_load(a / "checkpoints" / n).keys() == _load(b / "checkpoints" / n).keys() for n in names)
        and all(
            torch.equal(x, y)
            for n in names
            for x, y in zip(_load(a / "checkpoints" / n).values(), _load(b / "checkpoints" / n).values())
        )
        and (a / "train_log.csv").read_bytes() == (b / "train_log.csv").read_bytes()
    )


def _variant(root, feed, norm):
    return root / "fashion-mnist" / f"feed~{feed}" / f"norm~{norm}"


def test_a_stack_writes_each_seed_a_solo_runs_folder(config, data_file, tmp_path):
    seeds = [0, 2, 5]
    summaries = train_stack(
        at(config, "split", "batch"), seeds, tmp_path / "stack", data_file, tag=tag("split", "batch")
    )
    solo = train_run(at(config, "split", "batch"), 2, tmp_path / "solo", data_file)
    assert [s["seed"] for s in summaries] == seeds
    for seed, summary in zip(seeds, summaries):
        out = _variant(tmp_path / "stack", "split", "batch") / f"seed{seed}"
        assert summary["status"] == "completed" and summary["steps_done"] == 12 and summary["stack"] == seeds
        assert read_json_digested(out / "summary.json", "") == {**summary, JSON_DIGEST: ANY}
        assert summary["config_hash"] == run_hash(at(config, "split", "batch"), seed, seeds)
        assert summary["config_hash"] != run_hash(at(config, "split", "batch"), seed)
        assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_12.pt", "step_6.pt"]
        log = pd.read_csv(out / "train_log.csv")
        assert list(log.columns) == LOG_COLUMNS and log.step.tolist() == [3, 6, 9, 12]
        checkpoint = _load(out / "checkpoints/step_12.pt")
        assert list(checkpoint) == list(build_generator(SHAPE, MODEL).state_dict())
        build_generator(SHAPE, MODEL).load_state_dict(checkpoint)
    assert (_variant(tmp_path / "stack", "split", "batch") / "stack-0-2-5/state.pt").is_file()
    assert summaries[1].keys() == solo.keys() | {"stack"}
    # The same run as its solo one, up to float rounding.
    stacked = pd.read_csv(_variant(tmp_path / "stack", "split", "batch") / "seed2/train_log.csv")
    pd.testing.assert_frame_equal(stacked, pd.read_csv(tmp_path / "solo/train_log.csv"), rtol=0, atol=1e-4)


def test_a_stack_of_one_seed_is_its_solo_run_bitwise(config, data_file, tmp_path):
    [summary] = train_stack(
        at(config, "joint", "spectral"), [4], tmp_path / "stack", data_file, tag=tag("joint", "spectral")
    )
    solo = train_run(at(config, "joint", "spectral"), 4, tmp_path / "solo", data_file)
    assert "stack" not in summary and summary["config_hash"] == solo["config_hash"]
    assert _same_run_outputs(_variant(tmp_path / "stack", "joint", "spectral") / "seed4", tmp_path / "solo")


def test_a_stack_repeats_bitwise(config, data_file, tmp_path):
    for root in ("a", "b"):
        train_stack(at(config, "joint", "batch"), [1, 3], tmp_path / root, data_file, tag=tag("joint", "batch"))
    for seed in (1, 3):
        a, b = (_variant(tmp_path / root, "joint", "batch") / f"seed{seed}" for root in ("a", "b"))
        assert _same_run_outputs(a, b)


def test_a_killed_stack_resumes_to_the_same_bits_as_an_uninterrupted_one(config, data_file, tmp_path, monkeypatch):
    train_stack(
        at(config, "joint_consistent", "batch"),
        [0, 1],
        tmp_path / "whole",
        data_file,
        tag=tag("joint_consistent", "batch"),
    )

    steps, original = 0, train.train_step

    def killed_in_step_10(*args):  # after the state of step 8 was saved
        nonlocal steps
        steps += 1
        if steps == 10:
            raise KeyboardInterrupt
        return original(*args)

    monkeypatch.setattr(train, "train_step", killed_in_step_10)
    with pytest.raises(KeyboardInterrupt):
        train_stack(
            at(config, "joint_consistent", "batch"),
            [0, 1],
            tmp_path / "killed",
            data_file,
            tag=tag("joint_consistent", "batch"),
        )
    monkeypatch.undo()
    variant = _variant(tmp_path / "killed", "joint_consistent", "batch")
    assert not list(variant.glob("seed*/summary.json"))
    for checkpoint in variant.glob("seed*/checkpoints/*.pt"):  # a workflow manager removes an incomplete job's outputs
        checkpoint.unlink()

    summaries = train_stack(
        at(config, "joint_consistent", "batch"),
        [0, 1],
        tmp_path / "killed",
        data_file,
        tag=tag("joint_consistent", "batch"),
    )
    assert [s["resumed_from"] for s in summaries] == [8, 8]
    for seed in (0, 1):
        assert _same_run_outputs(
            _variant(tmp_path / "whole", "joint_consistent", "batch") / f"seed{seed}", variant / f"seed{seed}"
        )


# state.pt as jobs killed under an earlier release left it: they resume only while its layout stays.
SOLO_STATE = ["run_hash", "step", "G", "D", "opt_g", "opt_d", "torch_rng", "z_rng", "batch_rng", "log", "checkpoints"]


def test_a_saved_state_keeps_its_layout_so_that_a_job_killed_before_an_upgrade_resumes(config, data_file, tmp_path):
    train_run(at(config, "split", "batch"), 0, tmp_path / "solo", data_file)
    train_stack(at(config, "split", "batch"), [0, 1], tmp_path / "stack", data_file, tag=tag("split", "batch"))
    solo = _load(tmp_path / "solo/state/state.pt")
    stack = _load(_variant(tmp_path / "stack", "split", "batch") / "stack-0-1/state.pt")
    assert list(solo) == [*SOLO_STATE, "wall_seconds"]
    assert list(stack) == [*SOLO_STATE[:4], "alive", *SOLO_STATE[4:], "status", "steps_done", "wall_seconds"]
    assert torch.is_tensor(solo["z_rng"]) and [r["step"] for r in solo["log"]] == [3, 6]
    assert len(stack["z_rng"]) == 2 and stack["status"] == ["running"] * 2 and stack["steps_done"] == [8, 8]


def test_a_diverged_seed_is_recorded_and_retired_and_the_others_go_on_bitwise(config, data_file, tmp_path, monkeypatch):
    seeds = [0, 1, 2]
    train_stack(at(config, "split", "batch"), seeds, tmp_path / "clean", data_file, tag=tag("split", "batch"))

    draws, original = 0, train.draw

    def nan_in_seed_1s_fifth_batch(*args):
        nonlocal draws
        draws += 1
        real, z = original(*args)
        if draws == 5:
            real[1] = math.nan
        return real, z

    monkeypatch.setattr(train, "draw", nan_in_seed_1s_fifth_batch)
    summaries = train_stack(at(config, "split", "batch"), seeds, tmp_path / "nan", data_file, tag=tag("split", "batch"))
    variant = _variant(tmp_path / "nan", "split", "batch")

    assert [(s["status"], s["steps_done"]) for s in summaries] == [
        ("completed", 12),
        ("diverged", 5),
        ("completed", 12),
    ]
    log = pd.read_csv(variant / "seed1/train_log.csv")
    assert log.step.tolist() == [3, 5] and not math.isfinite(log.loss_d.iloc[-1])
    assert not list((variant / "seed1/checkpoints").iterdir())
    for seed in (0, 2):
        assert _same_run_outputs(
            _variant(tmp_path / "clean", "split", "batch") / f"seed{seed}", variant / f"seed{seed}"
        )
    # The state saved after the divergence holds no NaN: seed 1 sits parked at its initial weights.
    state = _load(variant / "stack-0-1-2/state.pt")
    assert state["step"] == 8 and state["status"] == ["running", "diverged", "running"]
    tensors = [*state["G"].values(), *state["D"].values()]
    tensors += [v for opt in ("opt_g", "opt_d") for s in state[opt]["state"].values() for v in s.values()]
    assert all(torch.isfinite(t).all() for t in tensors if t.is_floating_point())
    initial_g = build_networks(SHAPE, MODEL | {"d_norm": "batch"}, 1)[0].state_dict()
    assert all(
        torch.equal(state["G"][key][1], initial_g[key]) for key, p in build_generator(SHAPE, MODEL).named_parameters()
    )


# --- configuration and command line ------------------------------------------------------------


def test_train_stack_is_an_execution_setting_but_a_stacks_seeds_are_identity(config):
    for good in (1, 3, "auto"):
        assert validate_config({"train": {"stack": good}})["train"]["stack"] == good
    for bad, message in ((0, "less than the minimum of 1"), ("all", "does not match"), (1.5, "is not of type")):
        with pytest.raises(ConfigError, match=f"train.stack: .*{message}"):
            validate_config({"train": {"stack": bad}})
    sizes = [stack_size("auto", 6, "cpu"), stack_size("auto", 6, "cuda"), stack_size("auto", 6, "auto")]
    assert sizes + [stack_size(4, 6, "cpu"), stack_size(8, 3, "cuda")] == [1, 6, 1, 4, 3]
    assert stack_groups([5, 0, 1, 2, 3], 2) == [[5, 0], [1, 2], [3]]

    other = copy.deepcopy(config)
    other["train"]["stack"] = 4
    assert (
        run_hash(at(other, "split", "batch"), 0)
        == run_hash(at(config, "split", "batch"), 0)
        == run_hash(at(config, "split", "batch"), 0, [0])
    )
    hashes = {run_hash(at(config, "split", "batch"), 0, stack) for stack in (None, [0, 1], [0, 2], [0, 1, 2])}
    assert len(hashes) == 4


def test_the_command_line_trains_seeds_stack_by_stack(config, data_file, tmp_path, capsys):
    args = ["train", "--config-json", json.dumps(config), "--data", data_file, "--cell", "feed=joint,norm=layer"]
    assert main([*args, "--seeds", "3,1,4", "--stack", "2", "--out-root", str(tmp_path / "root")]) == 0
    variant = _variant(tmp_path / "root", "joint", "layer")
    summaries = {s: json.loads((variant / f"seed{s}/summary.json").read_text()) for s in (3, 1, 4)}
    assert summaries[3]["stack"] == summaries[1]["stack"] == [3, 1] and "stack" not in summaries[4]
    finals = [line for line in capsys.readouterr().out.splitlines() if "completed after" in line]
    assert [line.endswith("(stack of seeds 3,1)") for line in finals] == [True, True, False]
    train_run(at(config, "joint", "layer"), 4, tmp_path / "solo", data_file)
    assert _same_run_outputs(variant / "seed4", tmp_path / "solo")

    assert main([*args, "--seeds", "0", "--out", str(tmp_path / "x")]) == 2
    assert "--out-root" in capsys.readouterr().err
    for bad in (
        ["--seeds", "1,1"],
        ["--seeds", "a"],
        ["--seeds", "0,1", "--stack", "0"],
        ["--seed", "0", "--seeds", "1"],
    ):
        with pytest.raises(SystemExit) as exit_:
            main([*args, *bad, "--out-root", str(tmp_path)])
        assert exit_.value.code == 2


# --- on a GPU (skipped without CUDA; benchmarks/gpu_check.sh runs them on one) --------------------------------

CUDA = pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"))


@pytest.fixture
def exact_float32(monkeypatch):
    """float32 convolutions and matmuls without TF32 (which cuDNN uses for convolutions by default on Ampere and
    later): a grouped convolution then differs from its seeds' separate ones by float32 rounding alone."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)


@pytest.mark.parametrize("device", [CUDA])
@pytest.mark.parametrize(("feed", "norm"), list(itertools.product(FEEDS, NORMS)))
def test_on_cuda_a_float32_stack_steps_as_its_seeds_solo_steps(device, feed, norm, exact_float32):
    solo_side, stack_side = _solo_and_stack_steps(feed, norm, [0, 1, 2], torch.float32, steps=2, device=device)
    assert stack_side[2].loss_d.device.type == device
    _assert_stack_equals_solo(solo_side, stack_side, atol=1e-4)


@pytest.mark.parametrize("device", [CUDA])
def test_on_cuda_a_stacked_run_writes_each_seed_a_finished_solo_runs_folder(device, config, data_file, tmp_path):
    config["train"]["device"] = device
    seeds = [0, 1, 2, 3]
    summaries = train_stack(
        at(config, "joint", "batch"), seeds, tmp_path / "stack", data_file, tag=tag("joint", "batch")
    )
    solo = train_run(at(config, "joint", "batch"), 1, tmp_path / "solo", data_file)
    assert solo["device"].startswith(device)
    for seed, summary in zip(seeds, summaries):
        out = _variant(tmp_path / "stack", "joint", "batch") / f"seed{seed}"
        assert (summary["status"], summary["steps_done"], summary["stack"]) == ("completed", 12, seeds)
        assert summary["device"].startswith(device)
        log = pd.read_csv(out / "train_log.csv")
        assert log.step.tolist() == [3, 6, 9, 12] and log.notna().all().all()
        for step in (6, 12):
            build_generator(SHAPE, MODEL).load_state_dict(_load(out / f"checkpoints/step_{step}.pt"))
    # The same run as its solo one on the GPU, up to float rounding (TF32 convolutions included).
    columns = ["step", "loss_d", "loss_g", "d_real", "d_fake"]
    stacked = pd.read_csv(_variant(tmp_path / "stack", "joint", "batch") / "seed1/train_log.csv")[columns]
    pd.testing.assert_frame_equal(stacked, pd.read_csv(tmp_path / "solo/train_log.csv")[columns], rtol=0, atol=0.02)
