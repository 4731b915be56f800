"""torch-fidelity unpickles the Inception weights it is given (torch.load(weights_only=False)): it is handed a private
copy of bytes that ganablate read once and loaded as plain tensor data, never the user's path, so that a file
swapped between ganablate's check and torch-fidelity's load cannot run code (scoring/evaluate.py)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import torch

from ganablate.errors import DataError
from ganablate.scoring import evaluate
from tests.eval_fakes import small_config, synthetic_data

CPU = torch.device("cpu")
INCEPTION = "inception-v3-compat"


class _RunsCode:
    """Unpickling this creates the file `marker`: what a malicious weights file could do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture
def inception(tmp_path, monkeypatch):
    """Randomly initialised Inception weights in torch-fidelity's format, a config that scores with them, and a
    private temporary folder (tempfile's) to see what is left in it."""
    from torch_fidelity import feature_extractor_inceptionv3 as module

    weights = tmp_path / "pt_inception.pth"
    with monkeypatch.context() as patch:  # the constructor insists on loading weights: give it none
        patch.setattr(module, "load_state_dict_from_url", lambda *args, **kwargs: None)
        patch.setattr(module.FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None)
        torch.manual_seed(0)
        torch.save(module.FeatureExtractorInceptionV3(INCEPTION, ["2048"]).state_dict(), weights)
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    config = small_config(n_samples=12, extractors=[INCEPTION], inception_weights=str(weights))
    return weights, config, synthetic_data(n_train=20, n_test=12)


def test_torch_fidelity_loads_a_private_copy_of_the_checked_bytes_when_the_users_file_is_swapped(
    inception, tmp_path, monkeypatch
):
    weights, config, data = inception
    eval_cfg = config["eval"]
    checked = weights.read_bytes()
    extractor = evaluate.resolve_extractor(INCEPTION, data, config, None)
    given, build = {}, evaluate.create_feature_extractor

    def swapped_after_the_check(name, layers, **kwargs):
        # Between ganablate's check and torch-fidelity's load, someone replaces the user's file with code.
        torch.save({"weight": _RunsCode(tmp_path / "pwned")}, weights)
        path = Path(kwargs["feature_extractor_weights_path"])
        given.update(path=path, bytes=path.read_bytes(), mode=path.stat().st_mode & 0o777)
        return build(name, layers, **kwargs)

    monkeypatch.setattr(evaluate, "create_feature_extractor", swapped_after_the_check)
    evaluate.Scorer(data, extractor, eval_cfg, tmp_path / "cache", CPU)
    assert not (tmp_path / "pwned").exists()
    assert given["path"] != weights and given["bytes"] == checked and given["mode"] == 0o600
    assert list((tmp_path / "tmp").iterdir()) == []  # the copy is removed once the extractor is built


def test_inception_weights_that_unpickle_code_are_refused_in_one_line_naming_the_file(inception, tmp_path):
    weights, config, data = inception
    eval_cfg = config["eval"]
    torch.save({"weight": _RunsCode(tmp_path / "pwned")}, weights)
    extractor = evaluate.resolve_extractor(INCEPTION, data, config, None)
    with pytest.raises(DataError, match=f"{weights}: not plain tensor data; refusing") as error:
        evaluate.Scorer(data, extractor, eval_cfg, tmp_path / "cache", CPU)
    assert "\n" not in str(error.value) and not (tmp_path / "pwned").exists()
    assert list((tmp_path / "tmp").iterdir()) == []
