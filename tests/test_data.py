import gzip
import shutil
import struct

import numpy as np
import pytest
import torch

from ganablate import catalog
from ganablate import data as data_module
from ganablate.data import (
    DATA_CACHE_ENV,
    DATASETS,
    SYSTEM_DATA_ENV,
    ImageData,
    load_dataset,
    read_idx,
    to_model_range,
    to_uint8,
)
from ganablate.errors import ConfigError, DataError
from ganablate.study.config import schema, validate_config
from tests.synthetic_idx import write_fashion_mnist


def _idx_bytes(array: np.ndarray) -> bytes:
    magic = 0x0800 + array.ndim
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape) + array.tobytes()


@pytest.fixture
def images() -> np.ndarray:
    return np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)


def test_idx_reader_reads_raw_and_gzip_files(tmp_path, images):
    raw, gz = tmp_path / "x-idx3-ubyte", tmp_path / "x-idx3-ubyte.gz"
    raw.write_bytes(_idx_bytes(images))
    gz.write_bytes(gzip.compress(_idx_bytes(images)))
    assert np.array_equal(read_idx(raw, 3, 3), images)
    assert np.array_equal(read_idx(gz, 3, 3), images)


def test_idx_reader_rejects_a_truncated_file_naming_it(tmp_path, images):
    path = tmp_path / "cut-idx3-ubyte"
    path.write_bytes(_idx_bytes(images)[:-7])
    with pytest.raises(DataError, match="cut-idx3-ubyte.*truncated"):
        read_idx(path, 3)


def test_idx_reader_rejects_a_wrong_magic_number(tmp_path, images):
    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(_idx_bytes(images[0, 0]))  # a 1-d file where images (3-d) are expected
    with pytest.raises(DataError, match="wrong IDX magic number 0x00000801"):
        read_idx(path, 3)


def test_idx_reader_rejects_a_wrong_item_count(tmp_path, images):
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(_idx_bytes(images))
    with pytest.raises(DataError, match="says 3 items, expected 60000"):
        read_idx(path, 3, 60000)


@pytest.mark.realdata
def test_fashion_mnist_loads_from_the_debian_location_with_both_splits(real_fashion_mnist, monkeypatch, capsys):
    monkeypatch.setenv(SYSTEM_DATA_ENV, str(real_fashion_mnist.parent))
    data = load_dataset(validate_config({})["dataset"])
    assert data.train_images.shape == (60000, 1, 28, 28) and data.train_images.dtype == torch.uint8
    assert data.test_images.shape == (10000, 1, 28, 28)
    assert sorted(data.train_labels.unique().tolist()) == list(range(10))
    assert f"from the system copy {real_fashion_mnist}" in capsys.readouterr().out


def test_fashion_mnist_format_loads_from_dataset_root_with_both_splits(synthetic_fashion_mnist, capsys):
    data = load_dataset({"name": "fashion-mnist", "root": str(synthetic_fashion_mnist)})
    assert data.train_images.shape == (60000, 1, 28, 28) and data.train_images.dtype == torch.uint8
    assert data.test_images.shape == (10000, 1, 28, 28)
    assert sorted(data.train_labels.unique().tolist()) == list(range(10))
    assert capsys.readouterr().out == f"dataset fashion-mnist: from dataset.root {synthetic_fashion_mnist}\n"


def test_idx_reader_rejects_items_of_the_wrong_shape(tmp_path, images):
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(_idx_bytes(images))
    with pytest.raises(DataError, match=r"items are \(4, 5\), expected \(28, 28\)"):
        read_idx(path, 3, 3, (28, 28))


def test_a_corrupt_file_in_dataset_root_is_reported_not_skipped(tmp_path):
    for stem in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
        (tmp_path / stem).write_bytes(b"\x00\x00\x08\x03junk")
    with pytest.raises(DataError, match="train-images-idx3-ubyte"):
        load_dataset({"name": "fashion-mnist", "root": str(tmp_path), "download": False})


def test_missing_data_names_the_three_ways_to_provide_it(monkeypatch):
    monkeypatch.setattr(data_module, "_download", lambda spec, target: pytest.fail("download: false downloaded"))
    with pytest.raises(DataError) as err:
        load_dataset({"name": "fashion-mnist", "root": None, "download": False})
    message = str(err.value)
    assert "\n" not in message and "dataset.download is false" in message
    assert "3 ways: set dataset.root to a folder with the four Fashion-MNIST IDX files" in message
    assert "install the Debian package dataset-fashion-mnist" in message
    assert "allow the download with dataset.download: auto or true" in message


def test_a_failed_download_is_one_error_naming_the_three_ways_and_why(monkeypatch):
    def offline(spec, target):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried https://example/, got:\nrefused")

    monkeypatch.setattr(data_module, "_download", offline)
    with pytest.raises(DataError) as err:
        load_dataset({"name": "fashion-mnist", "root": None, "download": "auto"})
    message = str(err.value)
    assert "\n" not in message and "the download failed: RuntimeError: Error downloading" in message
    assert "dataset.root" in message and "dataset-fashion-mnist" in message and "dataset.download" in message


def _fake_torchvision_download(calls):
    def download(spec, target):  # torchvision's layout: <target>/FashionMNIST/raw/<files>
        calls.append(target)
        write_fashion_mnist(target / "FashionMNIST" / "raw", seed=3)

    return download


def test_auto_downloads_into_the_cache_once_and_says_so(tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setenv(DATA_CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(data_module, "_download", _fake_torchvision_download(calls))
    first = load_dataset(validate_config({})["dataset"])  # the default: download: auto
    second = load_dataset(validate_config({})["dataset"])
    assert calls == [tmp_path / "cache"] and torch.equal(first.train_images, second.train_images)
    folder = tmp_path / "cache" / "FashionMNIST" / "raw"
    assert capsys.readouterr().out.splitlines() == [
        f"dataset fashion-mnist: from a torchvision download into {folder}",
        f"dataset fashion-mnist: from the download cache {folder}",
    ]


def test_the_system_copy_comes_before_the_cache_and_a_download(synthetic_fashion_mnist, tmp_path, monkeypatch, capsys):
    (tmp_path / "system").mkdir()
    (tmp_path / "system" / "fashion-mnist").symlink_to(synthetic_fashion_mnist)
    monkeypatch.setenv(SYSTEM_DATA_ENV, str(tmp_path / "system"))
    monkeypatch.setattr(data_module, "_download", lambda spec, target: pytest.fail("downloaded"))
    load_dataset({"name": "fashion-mnist", "root": None, "download": True})
    assert "from the system copy" in capsys.readouterr().out


@pytest.mark.parametrize("download", ["auto", True, False])
def test_a_root_without_the_files_is_an_error_never_a_fallback(
    synthetic_fashion_mnist, tmp_path, monkeypatch, download
):
    # A system copy and a download cache that would both load: a root that is set must still be the only place.
    (tmp_path / "system").mkdir()
    (tmp_path / "system" / "fashion-mnist").symlink_to(synthetic_fashion_mnist)
    monkeypatch.setenv(SYSTEM_DATA_ENV, str(tmp_path / "system"))
    monkeypatch.setenv(DATA_CACHE_ENV, str(tmp_path / "cache"))
    shutil.copytree(synthetic_fashion_mnist, tmp_path / "cache" / "FashionMNIST" / "raw", symlinks=True)
    monkeypatch.setattr(data_module, "_download", lambda spec, target: (_ for _ in ()).throw(RuntimeError("offline")))
    with pytest.raises(DataError) as err:
        load_dataset({"name": "fashion-mnist", "root": "/nonexistent", "download": download})
    message = str(err.value)
    assert "\n" not in message and message.startswith("dataset.root=/nonexistent: ")
    assert "train-images-idx3-ubyte" in message and "t10k-labels-idx1-ubyte" in message


def test_a_root_missing_some_files_names_them(synthetic_fashion_mnist, tmp_path):
    shutil.copytree(synthetic_fashion_mnist, tmp_path / "root")
    (tmp_path / "root" / "t10k-images-idx3-ubyte").unlink()
    with pytest.raises(DataError, match=r"dataset.root=.*root: missing t10k-images-idx3-ubyte\[\.gz\] in "):
        load_dataset({"name": "fashion-mnist", "root": str(tmp_path / "root"), "download": "auto"})


def test_download_true_fills_an_empty_root_in_torchvisions_layout(tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(data_module, "_download", _fake_torchvision_download(calls))
    data = load_dataset({"name": "fashion-mnist", "root": str(tmp_path), "download": True})
    assert calls == [tmp_path] and data.train_images.shape == (60000, 1, 28, 28)
    assert f"from dataset.root {tmp_path / 'FashionMNIST' / 'raw'}" in capsys.readouterr().out


def test_download_setting_accepts_auto_true_and_false_and_defaults_to_auto():
    assert validate_config({})["dataset"]["download"] == "auto"
    for value in ("auto", True, False):
        assert validate_config({"dataset": {"download": value}})["dataset"]["download"] == value
    with pytest.raises(ConfigError, match="dataset.download: 'yes' is not one of"):
        validate_config({"dataset": {"download": "yes"}})


def test_the_schemas_datasets_are_the_registrys_read_torch_free_and_an_unknown_one_is_one_line():
    assert catalog.names("datasets") == tuple(DATASETS) == ("fashion-mnist", "mnist", "cifar10", "imagefolder")
    assert schema()["properties"]["dataset"]["properties"]["name"]["enum"] == list(DATASETS)
    with pytest.raises(ConfigError, match=r"^config: dataset.name: 'svhn' is not one of \['fashion-mnist', 'mnist', "):
        validate_config({"dataset": {"name": "svhn"}})


def test_prepared_dataset_round_trips_through_a_weights_only_file(tmp_path):
    data = ImageData(
        "toy",
        torch.zeros(4, 1, 28, 28, dtype=torch.uint8),
        torch.arange(4),
        torch.ones(2, 1, 28, 28, dtype=torch.uint8),
        torch.arange(2),
    )
    data.save(tmp_path / "toy.pt")
    loaded = ImageData.load(tmp_path / "toy.pt")
    assert loaded.name == "toy" and torch.equal(loaded.test_images, data.test_images)


def test_pixel_range_conversion_round_trips_exactly():
    pixels = torch.arange(256, dtype=torch.uint8)
    assert torch.equal(to_uint8(to_model_range(pixels)), pixels)


def test_imagefolder_is_resized_to_the_model_size_with_a_held_out_test_split(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for label in ("cats", "dogs"):
        (tmp_path / label).mkdir()
        for i in range(6):
            Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(tmp_path / label / f"{i}.png")
    data = load_dataset({"name": "imagefolder", "root": str(tmp_path), "image_size": 32, "channels": 3})
    assert data.train_images.shape == (10, 3, 32, 32) and data.test_images.shape == (2, 3, 32, 32)
    assert data.train_images.dtype == torch.uint8


def test_imagefolder_without_a_root_names_the_key():
    with pytest.raises(DataError, match="dataset.root: imagefolder needs"):
        load_dataset({"name": "imagefolder", "root": None, "image_size": 32, "channels": 3})


def test_cifar10_without_local_data_or_download_names_the_ways_to_provide_it():
    with pytest.raises(DataError, match="dataset.name=cifar10: no data found.*2 ways.*dataset.download: auto or true"):
        load_dataset({"name": "cifar10", "root": None, "download": False})


def test_cifar10_root_without_its_batches_names_them(tmp_path):
    with pytest.raises(DataError, match=r"dataset.root=.*: missing data_batch_1, .*test_batch, batches.meta in "):
        load_dataset({"name": "cifar10", "root": str(tmp_path), "download": False})
