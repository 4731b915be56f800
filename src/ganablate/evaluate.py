"""Scoring G checkpoints against the test split: samples from one fixed z stream, metrics by torch-fidelity."""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch_fidelity
import torchvision
from PIL import Image
from threadpoolctl import threadpool_limits
from torch.utils.data import Dataset
from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

from ganablate import vocab
from ganablate.config import ConfigError, UsageError, checkpoint_steps
from ganablate.data import DataError, ImageData, load_study_data, to_uint8
from ganablate.extractor import eval_device, load_extractor_file, register
from ganablate.files import atomic_write_bytes, atomic_write_text, load_tensors
from ganablate.models import Generator, build_generator

DEFAULT_CACHE_ROOT = Path("results/cache/fidelity")
INCEPTION_URL = URL_INCEPTION_V3
# Fixed streams: every run and checkpoint is scored on the same z, every floor on the same real images.
EVAL_Z_SEED = 20_241_127
FLOOR_SEED = 20_241_128
GRID_SIZE = 64
COLUMNS = ["step", "extractor", "metric", "value", "n_samples", "g_mode", "status"]
# torch-fidelity's result key per metric, from the one vocabulary of the study.
METRICS = {name: metric.fidelity_key for name, metric in vocab.METRICS.items()}


class _RGBImages(Dataset):
    """uint8 (N, C, H, W) as torch-fidelity reads samples: uint8 3xHxW each, grayscale replicated."""

    def __init__(self, images: torch.Tensor):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.images[index].expand(3, -1, -1)


@dataclass(frozen=True)
class Extractor:
    """One entry of eval.extractors resolved: torch-fidelity's name, the weights, the reference's cache entry."""

    label: str
    fidelity_name: str
    weights: Path
    reference_cache_name: str


def inception_weights(eval_cfg: dict) -> Path:
    """eval.inception_weights, else the torch hub cache, else a download into it; never another extractor."""
    filename = INCEPTION_URL.rsplit("/", 1)[1]
    if eval_cfg["inception_weights"]:
        path = Path(eval_cfg["inception_weights"])
        if not path.is_file():
            raise DataError(f"eval.inception_weights={path}: no such file (expected torch-fidelity's {filename})")
        refuse_unless_plain_data(path)
        return path
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    path = hub / filename
    if not path.is_file():
        try:
            hub.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(INCEPTION_URL, str(path), progress=False)
        except OSError as exc:
            raise DataError(
                f"inception-v3-compat: eval.inception_weights is not set, {filename} is not in the torch hub "
                f"cache {hub}, and downloading it failed ({exc}); put the file there or set eval.inception_weights "
                f"to its path"
            ) from None
    refuse_unless_plain_data(path)
    return path


def resolve_extractor(label: str, data: ImageData, eval_cfg: dict, domain_extractor: str | Path | None) -> Extractor:
    if label == "domain":
        if domain_extractor is None:  # where the workflow puts it
            domain_extractor = Path("results/reference") / f"{data.name}-domain.pt"
            if not domain_extractor.is_file():
                raise UsageError(
                    f"--domain-extractor: not given and {domain_extractor} does not exist; build it with "
                    f"`ganablate train-extractor --out {domain_extractor}`"
                )
        record = load_extractor_file(domain_extractor)
        if record["dataset"] != data.name or tuple(record["image_shape"]) != data.image_shape:
            raise DataError(
                f"{domain_extractor}: an extractor of {record['dataset']} {tuple(record['image_shape'])}, "
                f"not of {data.name} {data.image_shape}"
            )
        name, weights = register(data.name), Path(domain_extractor)
    else:
        name, weights = label, inception_weights(eval_cfg)
    # Keyed by content: a changed test split or a retrained extractor must not meet stale cached statistics.
    digest = hashlib.sha256(data.test_images.contiguous().numpy())
    with open(weights, "rb") as f:
        digest.update(hashlib.file_digest(f, "sha256").digest())
    return Extractor(label, name, weights, f"ganablate-{data.name}-test-{digest.hexdigest()[:16]}")


@contextmanager
def limited_threads(n: int):
    """Cap torch's threads and the BLAS's (numpy does torch-fidelity's FID and KID math) at n."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(limits=n):
            yield
    finally:
        torch.set_num_threads(previous)


# What torch-fidelity's FID statistics hold besides tensors: plain numpy arrays.
_NUMPY_ARRAY_GLOBALS = [np._core.multiarray._reconstruct, np.ndarray, np.dtype]


def refuse_unless_plain_data(path: Path) -> None:
    """torch-fidelity reads its cache files and Inception weights with torch.load(weights_only=False): read
    them safely first, so that a file from someone else's results folder can never run code here."""
    try:
        with torch.serialization.safe_globals(_NUMPY_ARRAY_GLOBALS + [type(np.dtype(t)) for t in "fdiq"]):
            torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure means: not plain data
        raise DataError(f"{path}: not plain tensor data; refusing to let torch-fidelity unpickle it "
                        f"({type(exc).__name__})") from None


def score(
    images: torch.Tensor, data: ImageData, extractor: Extractor, eval_cfg: dict, cache_root: str | Path,
    device: torch.device,
) -> dict[str, float]:
    """Every metric of uint8 `images` (N, C, H, W) against data's test split, in one extractor's features."""
    wanted = eval_cfg["kid_subset_size"]
    subset = min(wanted, len(images), len(data.test_images))
    if subset < wanted:
        warnings.warn(
            f"eval.kid_subset_size={wanted} exceeds the samples at hand ({len(images)} scored, "
            f"{len(data.test_images)} reference); KID uses subsets of {subset}",
            stacklevel=2,
        )
    for cached in Path(cache_root).glob(f"{extractor.reference_cache_name}-*.pt"):
        refuse_unless_plain_data(cached)
    result = torch_fidelity.calculate_metrics(
        input1=_RGBImages(images),
        input2=_RGBImages(data.test_images),
        input2_cache_name=extractor.reference_cache_name,
        cache_root=str(cache_root),
        feature_extractor=extractor.fidelity_name,
        feature_extractor_weights_path=str(extractor.weights),
        isc=True, fid=True, kid=True, prc=True,
        kid_subset_size=subset,
        batch_size=eval_cfg["batch_size"],
        cuda=device.type == "cuda",
        save_cpu_ram=True,  # no DataLoader worker processes: the images are in memory already
        verbose=False,
    )
    return {metric: float(result[key]) for metric, key in METRICS.items()}


def eval_z(n: int, z_dim: int) -> torch.Tensor:
    return torch.randn(n, z_dim, generator=torch.Generator().manual_seed(EVAL_Z_SEED))


@torch.inference_mode()
def generate(G: Generator, n: int, batch_size: int, g_mode: str, device: torch.device) -> torch.Tensor:
    """n uint8 samples (n, C, H, W) on the CPU from the fixed evaluation z. In train mode BN normalizes by
    batch statistics, so the samples then depend on batch_size as well."""
    G.train(g_mode == "train")
    return torch.cat([to_uint8(G(z.to(device))).cpu() for z in eval_z(n, G.z_dim).split(batch_size)])


def load_generator(path: Path, image_shape: tuple[int, int, int], model_cfg: dict) -> Generator:
    """G from a checkpoint, read as plain tensor data (never code); a file that does not load, or does not fit
    the config's model, is a UsageError of one line naming it, why, and the remedy."""
    retrain = f"remove {Path(path).parent.parent}/ and train the run again"
    state = load_tensors(path, retrain)
    G = build_generator(image_shape, model_cfg)
    try:
        G.load_state_dict(state)
    except Exception as exc:  # noqa: BLE001 - not a state_dict, or one of another model
        detail = " ".join(str(exc).split())[:300]
        raise UsageError(
            f"{path}: not a generator checkpoint for this config's model ({type(exc).__name__}: {detail}); "
            f"evaluate with the config the run was trained with, or {retrain}"
        ) from None
    return G


def write_grid(images: torch.Tensor, path: Path) -> None:
    grid = torchvision.utils.make_grid(images[:GRID_SIZE], nrow=8)
    png = io.BytesIO()
    Image.fromarray(grid.permute(1, 2, 0).numpy()).save(png, format="png")
    atomic_write_bytes(path, png.getvalue())


def _read_summary(run_dir: Path) -> dict:
    path = run_dir / "summary.json"
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        raise UsageError(f"--run: cannot read {path} ({exc.strerror}); is {run_dir} a finished training run?") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc.msg})") from None


def _checkpoint_files(run_dir: Path) -> dict[int, Path]:
    found = ((re.fullmatch(r"step_(\d+)\.pt", p.name), p) for p in (run_dir / "checkpoints").glob("step_*.pt"))
    return {int(match[1]): path for match, path in found if match}


def evaluate_run(
    config: dict, run_dir: str | Path, domain_extractor: str | Path | None = None,
    cache_root: str | Path = DEFAULT_CACHE_ROOT, data_path: str | None = None,
) -> pd.DataFrame:
    """Score every checkpoint of a training run into run_dir/metrics.csv and run_dir/samples/; returns the table."""
    run_dir = Path(run_dir)
    eval_cfg, train_cfg = config["eval"], config["train"]
    summary = _read_summary(run_dir)
    if summary.get("steps") != train_cfg["steps"]:
        raise ConfigError(
            f"train.steps={train_cfg['steps']}, but {run_dir / 'summary.json'} says the run had steps="
            f"{summary.get('steps')}; evaluate with the config the run was trained with"
        )
    status = summary.get("status")
    if status not in ("completed", "diverged"):
        raise DataError(f"{run_dir / 'summary.json'}: status {status!r}; expected completed or diverged")
    expected = set(checkpoint_steps(train_cfg))
    files = _checkpoint_files(run_dir)
    missing = sorted(expected - set(files))
    # A diverged run stopped early: the checkpoints it never reached are NaN rows, not an error.
    if missing and status != "diverged":
        raise DataError(f"{run_dir / 'checkpoints' / f'step_{missing[0]}.pt'}: missing in a {status} run")
    device = eval_device(eval_cfg["device"])
    with limited_threads(eval_cfg["threads"]):
        data = load_study_data(config["dataset"], data_path)
        if summary.get("dataset") != data.name:
            raise DataError(f"{run_dir / 'summary.json'}: the run trained on {summary.get('dataset')}, not {data.name}")
        extractors = [resolve_extractor(label, data, eval_cfg, domain_extractor) for label in eval_cfg["extractors"]]
        (run_dir / "samples").mkdir(exist_ok=True)  # the workflow's output, even when no checkpoint exists
        # Every checkpoint is loaded before any is scored, so that a damaged one fails the job at once.
        generators = {step: load_generator(path, data.image_shape, config["model"]) for step, path in files.items()}
        rows = []
        for step in sorted(expected | set(files)):
            if step not in generators:
                rows += [(step, e.label, m, math.nan, 0, eval_cfg["g_mode"], status)
                         for e in extractors for m in METRICS]
                continue
            G = generators[step].to(device, memory_format=torch.channels_last)  # a quarter faster on the CPU
            images = generate(G, eval_cfg["n_samples"], eval_cfg["batch_size"], eval_cfg["g_mode"], device)
            write_grid(images, run_dir / "samples" / f"step_{step}.png")
            for e in extractors:
                values = score(images, data, e, eval_cfg, cache_root, device)
                rows += [(step, e.label, m, v, len(images), eval_cfg["g_mode"], status) for m, v in values.items()]
                print(f"{run_dir}: step {step} {e.label}: fid={values['fid']:.4g} is={values['is']:.4g} "
                      f"kid={values['kid']:.4g}", flush=True)
    table = pd.DataFrame(rows, columns=COLUMNS)
    atomic_write_text(run_dir / "metrics.csv", table.to_csv(index=False))
    return table


def floor(
    config: dict, label: str, out: str | Path, domain_extractor: str | Path | None = None,
    cache_root: str | Path = DEFAULT_CACHE_ROOT, data_path: str | None = None,
) -> dict:
    """eval.n_samples real train images scored against the test split: the best a G's scores could be at the
    same sample count (FID is biased, and its bias depends on N). Scoring them also fills the reference cache, so the evaluations that follow find it warm."""
    eval_cfg = config["eval"]
    device = eval_device(eval_cfg["device"])
    with limited_threads(eval_cfg["threads"]):
        data = load_study_data(config["dataset"], data_path)
        extractor = resolve_extractor(label, data, eval_cfg, domain_extractor)
        n = min(eval_cfg["n_samples"], len(data.train_images))  # as many as a run is scored on: FID's bias is N's
        pick = torch.randperm(len(data.train_images), generator=torch.Generator().manual_seed(FLOOR_SEED))[:n]
        values = score(data.train_images[pick], data, extractor, eval_cfg, cache_root, device)
    result = {"dataset": data.name, "extractor": label, "samples": "train", "reference": "test", "n_samples": n}
    result |= values
    atomic_write_text(out, json.dumps(result, indent=2) + "\n")
    return result
