"""The domain feature extractor: its accuracy bar, its saved file, its torch-fidelity registration."""

from __future__ import annotations

import pytest
import torch
from torch_fidelity.utils import create_feature_extractor

from ganablate.data import ImageData, load_dataset, to_model_range
from ganablate.errors import ConfigError, UsageError
from ganablate.scoring.evaluate import floor, resolve_extractor, score
from ganablate.scoring.extractor import (
    ACCURACY_BARS,
    FEATURE_DIM,
    load_extractor_file,
    register,
    train_extractor,
)
from ganablate.study.config import validate_config
from tests.eval_fakes import small_config, synthetic_data


@pytest.fixture(scope="module")
def saved_extractor(tmp_path_factory):
    folder = tmp_path_factory.mktemp("extractor")
    synthetic_data(name="mnist").save(folder / "data.pt")
    record = train_extractor(small_config(extractor_epochs=1), folder / "domain.pt", data_path=str(folder / "data.pt"))
    return folder / "domain.pt", record


def test_saved_extractor_records_its_test_accuracy_and_loads_with_weights_only(saved_extractor):
    path, record = saved_extractor
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    assert loaded["dataset"] == "mnist"
    assert loaded["test_accuracy"] == record["test_accuracy"] > 0.95
    assert set(loaded["state_dict"]) and "train_seconds" not in loaded and record["train_seconds"] > 0


def test_extractor_below_the_datasets_accuracy_bar_is_refused_and_not_saved(tmp_path):
    data = synthetic_data(name="fashion-mnist")
    shuffled = data.train_labels[torch.randperm(len(data.train_labels), generator=torch.Generator().manual_seed(0))]
    type(data)(data.name, data.train_images, shuffled, data.test_images, data.test_labels).save(tmp_path / "data.pt")
    with pytest.raises(ConfigError, match="eval.extractor_epochs"):
        train_extractor(small_config(extractor_epochs=1), tmp_path / "domain.pt", data_path=str(tmp_path / "data.pt"))
    assert not (tmp_path / "domain.pt").exists()


def test_registered_extractor_is_named_after_the_dataset_and_reads_replicated_grayscale(saved_extractor):
    path, _ = saved_extractor
    name = register("mnist")
    assert name == "ganablate-domain-mnist" and register("mnist") == name  # registering twice is harmless
    extractor = create_feature_extractor(
        name, ["penultimate", "logits"], cuda=False, feature_extractor_weights_path=str(path), verbose=False
    )
    images = synthetic_data(n_train=10, n_test=10, name="mnist", seed=1).test_images
    with torch.inference_mode():
        features, logits = extractor(images.expand(-1, 3, -1, -1))
        _, direct_logits = extractor.classifier(to_model_range(images))
    assert features.shape == (10, FEATURE_DIM) and logits.shape == (10, 10)
    torch.testing.assert_close(logits, direct_logits)
    assert (logits.argmax(1) == torch.arange(10)).float().mean() >= 0.9


def test_corrupt_extractor_file_is_a_one_line_error_naming_it(tmp_path):
    path = tmp_path / "domain.pt"
    path.write_bytes(b"not a torch file")
    with pytest.raises(UsageError, match="domain.pt") as error:
        load_extractor_file(path)
    assert "\n" not in str(error.value) and "ganablate train-extractor" in str(error.value)


def test_a_torch_file_that_is_not_an_extractor_is_refused_naming_it(tmp_path):
    torch.save({"format": "something else"}, tmp_path / "domain.pt")
    with pytest.raises(UsageError, match=r"domain.pt: not a domain extractor .*remove it and build it again"):
        load_extractor_file(tmp_path / "domain.pt")


@pytest.fixture(scope="module")
def real_extractor(tmp_path_factory, real_fashion_mnist):
    """The default domain extractor trained on the real Fashion-MNIST, as the workflow builds it."""
    folder = tmp_path_factory.mktemp("real-extractor")
    config = validate_config({"dataset": {"root": str(real_fashion_mnist)}})
    load_dataset(config["dataset"]).save(folder / "data.pt")
    record = train_extractor(config, folder / "domain.pt", data_path=str(folder / "data.pt"))
    return config, folder, record


@pytest.mark.realdata
def test_default_domain_extractor_reaches_the_accuracy_bar_on_real_fashion_mnist(real_extractor):
    _, folder, record = real_extractor
    saved = load_extractor_file(folder / "domain.pt")
    assert saved["test_accuracy"] == record["test_accuracy"] >= ACCURACY_BARS["fashion-mnist"]


@pytest.mark.realdata
def test_real_fashion_mnist_scores_near_its_floor_and_far_from_noise(real_extractor):
    config, folder, _ = real_extractor
    config["eval"]["n_samples"] = 5000
    data = ImageData.load(folder / "data.pt")
    floor_fid = floor(
        config, "domain", folder / "floor.json", folder / "domain.pt", folder / "cache", str(folder / "data.pt")
    )["fid"]
    extractor = resolve_extractor("domain", data, config, folder / "domain.pt")
    other_real = data.train_images[-5000:]  # the floor uses its own draw of 5000 train images
    noise = torch.randint(0, 256, (5000, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    real = score(other_real, data, extractor, config["eval"], folder / "cache", torch.device("cpu"))
    noisy = score(noise, data, extractor, config["eval"], folder / "cache", torch.device("cpu"))
    test_is = score(data.test_images[:5000], data, extractor, config["eval"], folder / "cache", torch.device("cpu"))[
        "is"
    ]
    assert real["fid"] < floor_fid + 1.0  # another draw of as many images: the same FID bias
    assert noisy["fid"] > 100 * real["fid"]
    assert test_is > 3 * noisy["is"]
