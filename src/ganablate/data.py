"""Datasets as in-memory uint8 tensors (N, C, H, W), so that training draws batches by index."""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ganablate.files import atomic_save

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

# IDX magic numbers: two zero bytes, a type code (0x08 = unsigned byte), and the number of dimensions.
_IDX_MAGIC = {1: 0x00000801, 3: 0x00000803}
_IDX_FILES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}
_IDX_COUNTS = {"train": 60000, "test": 10000}


class DataError(ValueError):
    """Data that cannot be found or read; the message names the file or the ways to provide it."""


@dataclass(frozen=True)
class ImageData:
    name: str
    train_images: torch.Tensor  # uint8 (N, C, H, W)
    train_labels: torch.Tensor  # int64 (N,)
    test_images: torch.Tensor
    test_labels: torch.Tensor

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_images.shape[1:])

    def save(self, path: str | Path) -> None:
        atomic_save(
            {"name": self.name, "train_images": self.train_images, "train_labels": self.train_labels,
             "test_images": self.test_images, "test_labels": self.test_labels},
            path,
        )

    @classmethod
    def load(cls, path: str | Path) -> ImageData:
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
            return cls(blob["name"], blob["train_images"], blob["train_labels"], blob["test_images"], blob["test_labels"])
        except (OSError, RuntimeError, KeyError, TypeError) as exc:
            raise DataError(f"{path}: not a prepared ganablate dataset ({type(exc).__name__}: {exc})") from None


def read_idx(
    path: str | Path, expected_ndim: int, expected_count: int | None = None, expected_item_shape: tuple = ()
) -> np.ndarray:
    """Read an IDX file (raw or .gz), validating magic number, dimensions, count and length."""
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: cannot read IDX file ({exc})") from None
    if len(raw) < 4:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} bytes)")
    magic = int.from_bytes(raw[:4], "big")
    if magic != _IDX_MAGIC[expected_ndim]:
        raise DataError(f"{path}: wrong IDX magic number {magic:#010x}, expected {_IDX_MAGIC[expected_ndim]:#010x}")
    header_len = 4 + 4 * expected_ndim
    if len(raw) < header_len:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} bytes)")
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(expected_ndim)]
    if expected_count is not None and dims[0] != expected_count:
        raise DataError(f"{path}: IDX header says {dims[0]} items, expected {expected_count}")
    if expected_item_shape and tuple(dims[1:]) != expected_item_shape:
        raise DataError(f"{path}: IDX items are {tuple(dims[1:])}, expected {expected_item_shape}")
    expected_len = header_len + int(np.prod(dims))
    if len(raw) != expected_len:
        raise DataError(f"{path}: truncated or corrupt IDX file: {len(raw)} bytes, header implies {expected_len}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header_len).reshape(dims)


def _find_idx(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _load_idx_folder(name: str, folder: Path) -> ImageData:
    arrays = {}
    for (split, kind), stem in _IDX_FILES.items():
        path = _find_idx(folder, stem)
        ndim = 3 if kind == "images" else 1
        arrays[split, kind] = read_idx(path, ndim, _IDX_COUNTS[split], (28, 28) if kind == "images" else ())
    for split in ("train", "test"):
        if len(arrays[split, "images"]) != len(arrays[split, "labels"]):
            raise DataError(f"{folder}: {split} images and labels differ in count")
    return ImageData(
        name,
        torch.from_numpy(arrays["train", "images"].copy()).unsqueeze(1),
        torch.from_numpy(arrays["train", "labels"].astype(np.int64)),
        torch.from_numpy(arrays["test", "images"].copy()).unsqueeze(1),
        torch.from_numpy(arrays["test", "labels"].astype(np.int64)),
    )


def _has_idx(folder: Path) -> bool:
    return all(_find_idx(folder, stem) is not None for stem in _IDX_FILES.values())


def _idx_candidates(name: str, root: Path | None) -> list[Path]:
    folders = []
    if root is not None:
        tv_folder = {"fashion-mnist": "FashionMNIST", "mnist": "MNIST"}[name]
        folders += [root, root / tv_folder / "raw"]  # the latter is where torchvision downloads to
    if name == "fashion-mnist":
        folders.append(DEBIAN_FASHION_MNIST)
    return folders


def _not_found(name: str, root: Path | None) -> DataError:
    looked = f"dataset.root={root}" if root else "dataset.root is not set"
    debian = " or `apt-get install dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist)" if name == "fashion-mnist" else ""
    return DataError(
        f"dataset.name={name}: no data found ({looked}); provide it by setting dataset.root to a folder with the files"
        f"{debian}, or set dataset.download: true to let torchvision download it"
    )


def _load_idx_dataset(name: str, root: Path | None, download: bool) -> ImageData:
    for folder in _idx_candidates(name, root):
        if _has_idx(folder):
            return _load_idx_folder(name, folder)
    if not download:
        raise _not_found(name, root)
    import torchvision

    cls = {"fashion-mnist": torchvision.datasets.FashionMNIST, "mnist": torchvision.datasets.MNIST}[name]
    target = root or Path("data")
    cls(str(target), train=True, download=True)
    cls(str(target), train=False, download=True)
    return _load_idx_folder(name, target / cls.__name__ / "raw")


def _load_cifar10(root: Path | None, download: bool) -> ImageData:
    import torchvision

    target = root or Path("data")
    try:
        splits = [torchvision.datasets.CIFAR10(str(target), train=t, download=download) for t in (True, False)]
    except RuntimeError:
        raise _not_found("cifar10", root) from None
    (tr_x, tr_y), (te_x, te_y) = [
        (torch.from_numpy(s.data).permute(0, 3, 1, 2).contiguous(), torch.tensor(s.targets)) for s in splits
    ]
    return ImageData("cifar10", tr_x, tr_y, te_x, te_y)


def _load_imagefolder(root: Path | None, image_size: int, channels: int) -> ImageData:
    """A folder of class subfolders of images; a fixed sixth of it (seeded) is held out as the test split."""
    import torchvision
    from torchvision.transforms import v2

    if root is None or not root.is_dir():
        raise DataError(f"dataset.root: imagefolder needs dataset.root set to a folder of class subfolders, got {root}")
    transform = v2.Compose([
        v2.PILToTensor(),
        v2.Resize((image_size, image_size), antialias=True),
        v2.Grayscale(1) if channels == 1 else v2.RGB(),
    ])
    folder = torchvision.datasets.ImageFolder(str(root), transform=transform)
    if len(folder) < 6:
        raise DataError(f"dataset.root={root}: imagefolder needs at least 6 images, found {len(folder)}")
    images = torch.stack([folder[i][0] for i in range(len(folder))])
    labels = torch.tensor(folder.targets)
    order = torch.randperm(len(folder), generator=torch.Generator().manual_seed(0))
    n_test = len(folder) // 6
    test, train = order[:n_test], order[n_test:]
    return ImageData("imagefolder", images[train], labels[train], images[test], labels[test])


def load_dataset(dataset_cfg: dict) -> ImageData:
    """Load the configured dataset from, in order: dataset.root, the system location, a torchvision download."""
    name = dataset_cfg["name"]
    root = Path(dataset_cfg["root"]) if dataset_cfg.get("root") else None
    if name in ("fashion-mnist", "mnist"):
        return _load_idx_dataset(name, root, dataset_cfg.get("download", False))
    if name == "cifar10":
        return _load_cifar10(root, dataset_cfg.get("download", False))
    if name == "imagefolder":
        return _load_imagefolder(root, dataset_cfg["image_size"], dataset_cfg["channels"])
    raise DataError(f"dataset.name: unknown dataset {name!r}; allowed: fashion-mnist, mnist, cifar10, imagefolder")


def load_study_data(dataset_cfg: dict, data_path: str | None = None) -> ImageData:
    """The prepared file from `ganablate prepare-data` when given (the workflow's case), else the configured dataset."""
    return ImageData.load(data_path) if data_path else load_dataset(dataset_cfg)


def to_model_range(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1], the range of G's tanh output."""
    return images_uint8.float().mul_(2.0 / 255.0).sub_(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 [0, 255]."""
    return images.add(1.0).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)
