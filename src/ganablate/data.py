"""Datasets as in-memory uint8 tensors (N, C, H, W), so that training draws batches by index."""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ganablate.catalog import check_new
from ganablate.errors import DataError
from ganablate.files import atomic_save, load_tensors

# Debian's dataset-* packages install under here: dataset-fashion-mnist as /usr/share/datasets/fashion-mnist.
SYSTEM_DATA = Path("/usr/share/datasets")
# Replaces SYSTEM_DATA when set; the tests point it at an empty folder, as on a machine without the package.
SYSTEM_DATA_ENV = "GANABLATE_SYSTEM_DATA"
# Where torchvision downloads go when dataset.root is not set; default $XDG_CACHE_HOME/ganablate/datasets.
DATA_CACHE_ENV = "GANABLATE_DATA_CACHE"

# IDX magic numbers: two zero bytes, a type code (0x08 = unsigned byte), and the number of dimensions.
_IDX_MAGIC = {1: 0x00000801, 3: 0x00000803}
_IDX_FILES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}
_IDX_COUNTS = {"train": 60000, "test": 10000}


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
            {
                "name": self.name,
                "train_images": self.train_images,
                "train_labels": self.train_labels,
                "test_images": self.test_images,
                "test_labels": self.test_labels,
            },
            path,
        )

    @classmethod
    def load(cls, path: str | Path) -> ImageData:
        """The file `ganablate prepare-data` wrote, checked and read as plain tensor data (files.load_tensors); any
        other file is one line of error naming it."""
        remedy = "remove it, and `ganablate prepare-data` writes it again"
        blob = load_tensors(path, remedy)
        try:
            return cls(
                blob["name"], blob["train_images"], blob["train_labels"], blob["test_images"], blob["test_labels"]
            )
        except (KeyError, TypeError) as exc:
            raise DataError(
                f"{path}: not a prepared ganablate dataset ({type(exc).__name__}: {exc}); {remedy}"
            ) from None


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


def _read_idx(name: str, folder: Path, dataset_cfg: dict) -> ImageData:
    return _load_idx_folder(name, folder)


def _read_cifar10(name: str, folder: Path, dataset_cfg: dict) -> ImageData:
    import torchvision

    try:  # torchvision reads the folder `cifar-10-batches-py` under the root it is given, checking every file's md5
        splits = [torchvision.datasets.CIFAR10(str(folder.parent), train=t, download=False) for t in (True, False)]
    except RuntimeError as exc:
        raise DataError(f"{folder}: damaged CIFAR-10 files ({_one_line(exc)})") from None
    (tr_x, tr_y), (te_x, te_y) = [
        (torch.from_numpy(s.data).permute(0, 3, 1, 2).contiguous(), torch.tensor(s.targets)) for s in splits
    ]
    return ImageData(name, tr_x, tr_y, te_x, te_y)


def _read_imagefolder(name: str, root: Path, dataset_cfg: dict) -> ImageData:
    """A folder of class subfolders of images; a fixed sixth of it (seeded) is held out as the test split."""
    import torchvision
    from torchvision.transforms import v2

    image_size, channels = dataset_cfg["image_size"], dataset_cfg["channels"]
    transform = v2.Compose(
        [
            v2.PILToTensor(),
            v2.Resize((image_size, image_size), antialias=True),
            v2.Grayscale(1) if channels == 1 else v2.RGB(),
        ]
    )
    folder = torchvision.datasets.ImageFolder(str(root), transform=transform)
    if len(folder) < 6:
        raise DataError(f"dataset.root={root}: imagefolder needs at least 6 images, found {len(folder)}")
    images = torch.stack([folder[i][0] for i in range(len(folder))])
    labels = torch.tensor(folder.targets)
    order = torch.randperm(len(folder), generator=torch.Generator().manual_seed(0))
    n_test = len(folder) // 6
    test, train = order[:n_test], order[n_test:]
    return ImageData(name, images[train], labels[train], images[test], labels[test])


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset of the study: where its files are looked for, how they are read and downloaded, what it needs."""

    read: Callable[[str, Path, dict], ImageData]  # (name, folder holding the files, dataset config) -> the data
    what: str  # the files in words, for the messages that ask for them
    files: tuple[str, ...] = ()  # what a folder must hold (an IDX file may be gzipped: <name>.gz); () = any folder
    folders: tuple[str, ...] = (".",)  # searched in this order under dataset.root and under the download cache
    torchvision_class: str | None = None  # the torchvision.datasets class that downloads it; None: no download
    debian_package: str | None = None  # the Debian package that installs it offline ...
    system_folder: str | None = None  # ... as this folder under SYSTEM_DATA
    image_shape: tuple[int, int, int] | None = None  # (C, H, W); None: dataset.channels and dataset.image_size
    accuracy_bar: float | None = None  # test accuracy the domain extractor must reach on it; None: no bar

    def missing(self, folder: Path) -> list[str]:
        return [f for f in self.files if not (folder / f).is_file() and not (folder / f"{f}.gz").is_file()]

    def locate(self, root: Path) -> Path | None:
        """The first of `folders` under root that holds every file, else None."""
        return next(
            (root / sub for sub in self.folders if (root / sub).is_dir() and not self.missing(root / sub)), None
        )


_CIFAR10_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch", "batches.meta")

DATASETS: dict[str, DatasetSpec] = {}


def register_dataset(name: str, **settings) -> DatasetSpec:
    """Add a dataset under `name` (DatasetSpec's fields as keywords); a name already taken is an error, not a
    replacement."""
    check_new("register_dataset", name, DATASETS)
    DATASETS[name] = DatasetSpec(**settings)
    return DATASETS[name]


# A new dataset of the study is one register_dataset call here: the schema's dataset.name takes its names from these
# calls (catalog.py).
register_dataset(
    "fashion-mnist",
    read=_read_idx,
    what="the four Fashion-MNIST IDX files",
    files=tuple(_IDX_FILES.values()),
    folders=(".", "FashionMNIST/raw"),
    torchvision_class="FashionMNIST",
    debian_package="dataset-fashion-mnist",
    system_folder="fashion-mnist",
    image_shape=(1, 28, 28),
    accuracy_bar=0.90,
)
register_dataset(
    "mnist",
    read=_read_idx,
    what="the four MNIST IDX files",
    files=tuple(_IDX_FILES.values()),
    folders=(".", "MNIST/raw"),
    torchvision_class="MNIST",
    image_shape=(1, 28, 28),
)
register_dataset(
    "cifar10",
    read=_read_cifar10,
    what="CIFAR-10's python batches (cifar-10-batches-py/)",
    files=_CIFAR10_FILES,
    folders=("cifar-10-batches-py",),
    torchvision_class="CIFAR10",
    image_shape=(3, 32, 32),
)
register_dataset("imagefolder", read=_read_imagefolder, what="a folder of class subfolders of images")


def system_data() -> Path:
    return Path(os.environ.get(SYSTEM_DATA_ENV) or SYSTEM_DATA)


def download_cache() -> Path:
    """Where torchvision downloads go when dataset.root is not set; kept across studies."""
    if os.environ.get(DATA_CACHE_ENV):
        return Path(os.environ[DATA_CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ganablate" / "datasets"


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"


def _download(spec: DatasetSpec, target: Path) -> None:
    import torchvision

    target.mkdir(parents=True, exist_ok=True)
    cls = getattr(torchvision.datasets, spec.torchvision_class)
    for train in (True, False):
        cls(str(target), train=train, download=True)


def _missing_in_root(name: str, spec: DatasetSpec, root: Path, download_failed: str = "") -> DataError:
    if not spec.files:
        return DataError(f"dataset.root={root}: not a folder; {name} needs {spec.what} there")
    first = root / spec.folders[0]
    suffix = "[.gz]" if spec.read is _read_idx else ""
    missing = ", ".join(f + suffix for f in spec.missing(first))
    where = f"no such folder (missing {missing})" if not root.is_dir() else f"missing {missing} in {first}"
    others = ", ".join(str(root / sub) for sub in spec.folders[1:])
    also = f" and no complete copy in {others}" if others and root.is_dir() else ""
    if download_failed:
        also += f"; downloading {name} there failed ({download_failed})"
    return DataError(
        f"dataset.root={root}: {where}{also}; put {spec.what} there, or unset dataset.root to use the system "
        f"copy or a download (a dataset.root that is set is the only place looked at)"
    )


def _not_found(name: str, spec: DatasetSpec, cache: Path, why: str) -> DataError:
    ways = [f"set dataset.root to a folder with {spec.what}"]
    looked = ["dataset.root is not set"]
    if spec.debian_package:
        system = system_data() / spec.system_folder
        ways.append(
            f"install the Debian package {spec.debian_package} (apt-get install {spec.debian_package}; "
            f"it provides {system})"
        )
        looked.append(f"no copy in {system}")
    ways.append(
        f"allow the download with dataset.download: auto or true (torchvision, needs the network; into {cache})"
    )
    looked.append(f"none in the download cache {cache}")
    return DataError(
        f"dataset.name={name}: no data found ({', '.join(looked)}; {why}); provide it in one of these "
        f"{len(ways)} ways: " + "; or ".join(ways)
    )


def _read(name: str, spec: DatasetSpec, folder: Path, dataset_cfg: dict, source: str) -> ImageData:
    print(f"dataset {name}: from {source}", flush=True)
    data = spec.read(name, folder, dataset_cfg)
    if spec.image_shape is not None and data.image_shape != spec.image_shape:
        raise DataError(f"{folder}: {name} images are {data.image_shape}, expected {spec.image_shape}")
    return data


def load_dataset(dataset_cfg: dict) -> ImageData:
    """Load the configured dataset from the first of: dataset.root (when set, the only place looked at), the
    system copy (Debian's package), the download cache, a torchvision download into the cache (unless
    dataset.download is false). Prints one line saying which source it used."""
    name = dataset_cfg["name"]
    if name not in DATASETS:
        raise DataError(f"dataset.name: unknown dataset {name!r}; allowed: {', '.join(DATASETS)}")
    spec, download = DATASETS[name], dataset_cfg.get("download", "auto")
    if dataset_cfg.get("root"):
        root = Path(dataset_cfg["root"])
        folder = spec.locate(root)
        if folder is None and download is True and spec.torchvision_class:  # asked for: download into the root
            try:
                _download(spec, root)
            except (OSError, RuntimeError, ValueError) as exc:
                raise _missing_in_root(name, spec, root, _one_line(exc)) from None
            folder = spec.locate(root)
        if folder is None:
            raise _missing_in_root(name, spec, root)
        return _read(name, spec, folder, dataset_cfg, f"dataset.root {folder}")
    if spec.system_folder and (folder := spec.locate(system_data() / spec.system_folder)) is not None:
        return _read(
            name, spec, folder, dataset_cfg, f"the system copy {folder} (Debian package {spec.debian_package})"
        )
    if spec.torchvision_class is None:
        raise DataError(f"dataset.root: {name} needs dataset.root set to {spec.what}; it is not set")
    cache = download_cache()
    if (folder := spec.locate(cache)) is not None:
        return _read(name, spec, folder, dataset_cfg, f"the download cache {folder}")
    if download is False:
        raise _not_found(name, spec, cache, "dataset.download is false")
    try:
        _download(spec, cache)
    except (OSError, RuntimeError, ValueError) as exc:
        raise _not_found(name, spec, cache, f"the download failed: {_one_line(exc)}") from None
    if (folder := spec.locate(cache)) is None:
        raise _not_found(name, spec, cache, "the download left no files")
    return _read(name, spec, folder, dataset_cfg, f"a torchvision download into {folder}")


def image_shape_of(dataset_cfg: dict) -> tuple[int, int, int]:
    """(C, H, W) of the config's dataset, without reading it."""
    shape = DATASETS[dataset_cfg["name"]].image_shape
    return shape or (dataset_cfg["channels"], dataset_cfg["image_size"], dataset_cfg["image_size"])


def load_study_data(dataset_cfg: dict, data_path: str | None = None) -> ImageData:
    """The prepared file from `ganablate prepare-data` when given (the workflow's case), else the configured dataset."""
    return ImageData.load(data_path) if data_path else load_dataset(dataset_cfg)


def to_model_range(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1], the range of G's tanh output."""
    return images_uint8.float().mul_(2.0 / 255.0).sub_(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 [0, 255]."""
    return images.add(1.0).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)
