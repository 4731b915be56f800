import gzip
import struct

import numpy as np
import pytest
import torch

from ganablate.data import DataError, ImageData, load_dataset, read_idx, to_model_range, to_uint8


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


def test_fashion_mnist_loads_from_the_debian_location_with_both_splits(tiny_config):
    data = load_dataset(tiny_config["dataset"])
    assert data.train_images.shape == (60000, 1, 28, 28) and data.train_images.dtype == torch.uint8
    assert data.test_images.shape == (10000, 1, 28, 28)
    assert sorted(data.train_labels.unique().tolist()) == list(range(10))


def test_idx_reader_rejects_items_of_the_wrong_shape(tmp_path, images):
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(_idx_bytes(images))
    with pytest.raises(DataError, match=r"items are \(4, 5\), expected \(28, 28\)"):
        read_idx(path, 3, 3, (28, 28))


def test_a_corrupt_file_in_dataset_root_is_reported_not_skipped(tmp_path):
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (tmp_path / stem).write_bytes(b"\x00\x00\x08\x03junk")
    with pytest.raises(DataError, match="train-images-idx3-ubyte"):
        load_dataset({"name": "fashion-mnist", "root": str(tmp_path), "download": False})


def test_missing_data_names_the_three_ways_to_provide_it(tmp_path):
    with pytest.raises(DataError) as err:
        load_dataset({"name": "mnist", "root": str(tmp_path), "download": False})
    message = str(err.value)
    assert "dataset.root" in message and "dataset.download: true" in message and "\n" not in message


def test_prepared_dataset_round_trips_through_a_weights_only_file(tmp_path):
    data = ImageData("toy", torch.zeros(4, 1, 28, 28, dtype=torch.uint8), torch.arange(4),
                     torch.ones(2, 1, 28, 28, dtype=torch.uint8), torch.arange(2))
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


def test_cifar10_without_local_data_or_download_names_the_ways_to_provide_it(tmp_path):
    with pytest.raises(DataError, match="dataset.name=cifar10: no data found.*dataset.download: true"):
        load_dataset({"name": "cifar10", "root": str(tmp_path), "download": False})
