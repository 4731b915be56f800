"""Scoring G checkpoints against the test split: samples from one fixed z stream, metrics by torch-fidelity."""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torchvision
from PIL import Image
from threadpoolctl import threadpool_limits
from torch.utils.data import Dataset
from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3
from torch_fidelity.metric_fid import fid_featuresdict_to_statistics
from torch_fidelity.utils import (
    create_feature_extractor,
    get_featuresdict_from_dataset,
    resolve_feature_layer_for_metric,
)

from ganablate.components.networks import build_generator
from ganablate.data import ImageData, load_study_data, to_uint8
from ganablate.errors import ConfigError, DataError, UsageError
from ganablate.files import (
    atomic_save,
    atomic_write_bytes,
    atomic_write_text,
    load_tensors,
    read_json_digested,
    with_digest,
)
from ganablate.scoring.extractor import eval_device, load_extractor_file, register
from ganablate.scoring.metrics import KID, METRICS, computed_by, knn_radii, skipped_at
from ganablate.study.config import checkpoint_steps
from ganablate.study.layout import CACHE, domain_extractor_file
from ganablate.study.vocab import EXTRACTORS

DOMAIN, INCEPTION = EXTRACTORS
INCEPTION_URL = URL_INCEPTION_V3
# Fixed streams: every run and checkpoint is scored on the same z, every floor on the same real images.
EVAL_Z_SEED = 20_241_127
FLOOR_SEED = 20_241_128
GRID_SIZE = 64
COLUMNS = ["step", "extractor", "metric", "value", "n_samples", "g_mode", "status"]
REFERENCE_FORMAT = "ganablate-reference/1"


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
        return path
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    path = hub / filename
    if not path.is_file():
        try:
            hub.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(INCEPTION_URL, str(path), progress=False)
        except OSError as exc:
            raise DataError(
                f"{INCEPTION}: eval.inception_weights is not set, {filename} is not in the torch hub "
                f"cache {hub}, and downloading it failed ({exc}); put the file there or set eval.inception_weights "
                f"to its path"
            ) from None
    return path


def resolve_extractor(label: str, data: ImageData, config: dict, domain_extractor: str | Path | None) -> Extractor:
    eval_cfg = config["eval"]
    if label == DOMAIN:
        if domain_extractor is None:  # where the workflow puts it
            domain_extractor = domain_extractor_file(config)
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


@contextmanager
def handed_to_fidelity(extractor: Extractor) -> Iterator[Path]:
    """The weights file torch-fidelity's extractor is built from. Its Inception loader unpickles the file
    (torch.load(weights_only=False)): so it gets a private copy (mkstemp, mode 0600, removed after) of bytes read once
    and loaded as plain tensor data here, never the user's path, which a file swapped after the check could make run
    code. The domain extractor's loader is ganablate's own and loads its file safely."""
    if extractor.label == DOMAIN:
        yield extractor.weights
        return
    data = extractor.weights.read_bytes()
    try:
        torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure means: not plain data
        raise DataError(
            f"{extractor.weights}: not plain tensor data; refusing to let torch-fidelity unpickle it "
            f"({type(exc).__name__})"
        ) from None
    fd, name = tempfile.mkstemp(prefix="ganablate-weights-", suffix=extractor.weights.suffix)
    try:
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        except OSError as exc:  # a full /tmp (a node's small one): one line, and the partial copy goes below
            raise UsageError(
                f"{name}: cannot write torch-fidelity's copy of {extractor.weights} ({exc.strerror}); free space "
                f"in {tempfile.gettempdir()} or point TMPDIR elsewhere"
            ) from None
        yield Path(name)
    finally:
        os.unlink(name)


@dataclass(frozen=True)
class Reference:
    """The test split's side of every metric in one extractor's features: its features (KID's and precision/recall's
    layers), FID's statistics of them, and each real sample's k-NN radius. It depends only on the test split and the
    extractor, so it is computed once per study (by the floor job, the first to score) and read by every other."""

    features: dict[str, torch.Tensor]
    fid_stats: dict[str, np.ndarray]
    prc_radii: torch.Tensor


class Scorer:
    """One extractor's metrics against data's test split, through torch-fidelity's own functions in the order
    calculate_metrics calls them. Built once per job: the extractor is loaded, and the test split's side read from
    the cache (or computed into it), once rather than once per checkpoint."""

    def __init__(
        self, data: ImageData, extractor: Extractor, eval_cfg: dict, cache_root: str | Path, device: torch.device
    ):
        self.label = extractor.label
        self.n_reference = len(data.test_images)
        self.kid_subset_size = eval_cfg["kid_subset_size"]
        # What calculate_metrics was called with; every other setting is torch-fidelity's default, as it was.
        self.kwargs = {
            "feature_extractor": extractor.fidelity_name,
            "feature_extractor_weights_path": str(extractor.weights),
            "batch_size": eval_cfg["batch_size"],
            "cuda": device.type == "cuda",
            "save_cpu_ram": True,  # no DataLoader worker processes: the images are in memory already
            "verbose": False,
        }
        self.layers = {m: resolve_feature_layer_for_metric(m, **self.kwargs) for m in ("isc", "fid", "kid", "prc")}
        with handed_to_fidelity(extractor) as weights:
            self.model = create_feature_extractor(
                extractor.fidelity_name,
                sorted(set(self.layers.values())),
                **(self.kwargs | {"feature_extractor_weights_path": str(weights)}),
            )
        path = Path(cache_root) / f"{extractor.reference_cache_name}-{extractor.fidelity_name}-reference.pt"
        self.reference = load_reference(path, self._reference_layers()) if path.is_file() else self._compute(data, path)
        self.kid = KID(self.reference.features[self.layers["kid"]])  # KID's real side, reused per checkpoint

    def features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        kw = self.kwargs
        return get_featuresdict_from_dataset(
            _RGBImages(images), self.model, kw["batch_size"], kw["cuda"], kw["save_cpu_ram"], kw["verbose"]
        )

    def _reference_layers(self) -> set[str]:
        return {self.layers["kid"], self.layers["prc"]}  # FID's side is its statistics, IS has none

    def _compute(self, data: ImageData, path: Path) -> Reference:
        features = self.features(data.test_images)
        reference = Reference(
            features={layer: features[layer] for layer in self._reference_layers()},
            fid_stats=fid_featuresdict_to_statistics(features, self.layers["fid"]),
            prc_radii=knn_radii(features[self.layers["prc"]], self.kwargs),
        )
        save_reference(reference, path)
        return reference

    def score(self, images: torch.Tensor, skipped: frozenset[str] = frozenset()) -> dict[str, float]:
        """Every metric of uint8 `images` (N, C, H, W) against the test split, but those in `skipped` (eval.final_only
        at an earlier checkpoint), which are not computed."""
        subset = min(self.kid_subset_size, len(images), self.n_reference)
        if subset < self.kid_subset_size:
            warnings.warn(
                f"eval.kid_subset_size={self.kid_subset_size} exceeds the samples at hand ({len(images)} scored, "
                f"{self.n_reference} reference); KID uses subsets of {subset}",
                stacklevel=2,
            )
        kwargs, generated, result = self.kwargs | {"kid_subset_size": subset}, self.features(images), {}
        for name, metric in METRICS.items():
            if metric.compute is not None and not all(skipped_at(m, skipped) for m in computed_by(name)):
                result |= metric.compute(self, generated, kwargs)
        return {name: float(result[m.key]) for name, m in METRICS.items() if not skipped_at(name, skipped)}


def save_reference(reference: Reference, path: Path) -> None:
    """Plain tensors only (FID's numpy statistics as tensors, bit for bit), so that it loads with weights_only."""
    atomic_save(
        {
            "format": REFERENCE_FORMAT,
            "features": reference.features,
            "prc_radii": reference.prc_radii,
            "fid_stats": {name: torch.from_numpy(value) for name, value in reference.fid_stats.items()},
        },
        path,
    )


def load_reference(path: Path, layers: set[str]) -> Reference:
    """The cached test split's side, read as plain tensor data (never code); a file that does not load, or does not
    hold `layers`' features, is a UsageError of one line naming it, why, and the remedy."""
    remedy = "remove it, and the next `ganablate floor` or `ganablate evaluate` computes it again"
    record = load_tensors(path, remedy)
    try:
        if record["format"] != REFERENCE_FORMAT:
            raise ValueError(f"format {record['format']!r}, expected {REFERENCE_FORMAT!r}")
        reference = Reference(
            {layer: record["features"][layer] for layer in layers},
            {name: record["fid_stats"][name].numpy() for name in ("mu", "sigma")},
            record["prc_radii"],
        )
        if not all(f.dim() == 2 and len(f) == len(reference.prc_radii) for f in reference.features.values()):
            raise ValueError("its features are not one row per radius")
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise UsageError(
            f"{path}: not a reference cache of `ganablate floor` ({type(exc).__name__}: {exc}); {remedy}"
        ) from None
    return reference


def score(
    images: torch.Tensor,
    data: ImageData,
    extractor: Extractor,
    eval_cfg: dict,
    cache_root: str | Path,
    device: torch.device,
) -> dict[str, float]:
    """Every metric of uint8 `images` (N, C, H, W) against data's test split, in one extractor's features."""
    return Scorer(data, extractor, eval_cfg, cache_root, device).score(images)


def eval_z(n: int, z_dim: int) -> torch.Tensor:
    return torch.randn(n, z_dim, generator=torch.Generator().manual_seed(EVAL_Z_SEED))


@torch.inference_mode()
def generate(G: torch.nn.Module, n: int, batch_size: int, g_mode: str, device: torch.device) -> torch.Tensor:
    """n uint8 samples (n, C, H, W) on the CPU from the fixed evaluation z. In train mode BN normalizes by
    batch statistics, so the samples then depend on batch_size as well."""
    G.train(g_mode == "train")
    return torch.cat([to_uint8(G(z.to(device))).cpu() for z in eval_z(n, G.z_dim).split(batch_size)])


def load_generator(path: Path, image_shape: tuple[int, int, int], model_cfg: dict) -> torch.nn.Module:
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
    if not path.is_file():
        raise UsageError(f"--run: cannot read {path} (no such file); is {run_dir} a finished training run?")
    return read_json_digested(path, f"remove {run_dir}/ and train the run again")


def _checkpoint_files(run_dir: Path) -> dict[int, Path]:
    found = ((re.fullmatch(r"step_(\d+)\.pt", p.name), p) for p in (run_dir / "checkpoints").glob("step_*.pt"))
    return {int(match[1]): path for match, path in found if match}


def _scorable(config: dict, run_dir: Path) -> tuple[dict, dict[int, Path]]:
    """(the run's summary, its checkpoint files): a run trained with this config and finished, or a one-line error."""
    train_cfg = config["train"]
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
    return summary, files


class Scoring:
    """What scoring a run needs that is not the run: the data, the extractors and their Scorers (the test split's
    side read from the cache, KID's real kernel sums). Built once per process, for every run the process scores:
    a job that scores several runs pays for it once."""

    def __init__(
        self,
        config: dict,
        domain_extractor: str | Path | None = None,
        cache_root: str | Path = CACHE,
        data_path: str | None = None,
    ):
        self.config, eval_cfg = config, config["eval"]
        self.device = eval_device(eval_cfg["device"])
        with limited_threads(eval_cfg["threads"]):
            self.data = load_study_data(config["dataset"], data_path)
            self.extractors = [
                resolve_extractor(label, self.data, config, domain_extractor) for label in eval_cfg["extractors"]
            ]
            self.scorers = [Scorer(self.data, e, eval_cfg, cache_root, self.device) for e in self.extractors]

    def evaluate(self, run_dir: str | Path) -> pd.DataFrame:
        """Score every checkpoint of a training run into run_dir/metrics.csv and run_dir/samples/; returns the
        table."""
        run_dir, config, data, device = Path(run_dir), self.config, self.data, self.device
        eval_cfg, train_cfg = config["eval"], config["train"]
        summary, files = _scorable(config, run_dir)
        status = summary["status"]
        if summary.get("dataset") != data.name:
            raise DataError(f"{run_dir / 'summary.json'}: the run trained on {summary.get('dataset')}, not {data.name}")
        with limited_threads(eval_cfg["threads"]):
            (run_dir / "samples").mkdir(exist_ok=True)  # the workflow's output, even when no checkpoint exists
            # Every checkpoint is loaded before any is scored, so that a damaged one fails the job at once.
            generators = {step: load_generator(path, data.image_shape, config["model"]) for step, path in files.items()}
            rows = []
            for step in sorted(set(checkpoint_steps(train_cfg)) | set(files)):
                # The scoring plan: eval.final_only's metrics are scored at the last step only, and have no earlier
                # rows.
                skipped = frozenset(eval_cfg["final_only"] if step != train_cfg["steps"] else ())
                if step not in generators:
                    rows += [
                        (step, e.label, m, math.nan, 0, eval_cfg["g_mode"], status)
                        for e in self.extractors
                        for m in METRICS
                        if not skipped_at(m, skipped)
                    ]
                    continue
                G = generators[step].to(device, memory_format=torch.channels_last)  # a quarter faster on the CPU
                images = generate(G, eval_cfg["n_samples"], eval_cfg["batch_size"], eval_cfg["g_mode"], device)
                write_grid(images, run_dir / "samples" / f"step_{step}.png")
                for scorer in self.scorers:
                    values = scorer.score(images, skipped)
                    rows += [
                        (step, scorer.label, m, v, len(images), eval_cfg["g_mode"], status) for m, v in values.items()
                    ]
                    shown = " ".join(f"{m}={v:.4g}" for m, v in values.items() if m in ("fid", "is", "kid"))
                    print(f"{run_dir}: step {step} {scorer.label}: {shown}", flush=True)
        table = pd.DataFrame(rows, columns=COLUMNS)
        # Its last line is the sha256 of the lines above, which aggregate checks: a cut or edited file is refused.
        atomic_write_text(run_dir / "metrics.csv", with_digest(table.to_csv(index=False)))
        return table


def evaluate_runs(
    config: dict,
    run_dirs: list[str | Path],
    domain_extractor: str | Path | None = None,
    cache_root: str | Path = CACHE,
    data_path: str | None = None,
) -> Iterator[pd.DataFrame]:
    """Score every checkpoint of each training run (Scoring.evaluate), one Scoring for all of them; yields each
    run's table once its files are written. Every run is checked before anything loads."""
    run_dirs = [Path(run_dir) for run_dir in run_dirs]
    for run_dir in run_dirs:
        _scorable(config, run_dir)
    scoring = Scoring(config, domain_extractor, cache_root, data_path)
    for run_dir in run_dirs:
        yield scoring.evaluate(run_dir)


def evaluate_run(
    config: dict,
    run_dir: str | Path,
    domain_extractor: str | Path | None = None,
    cache_root: str | Path = CACHE,
    data_path: str | None = None,
) -> pd.DataFrame:
    """Score every checkpoint of one training run (evaluate_runs)."""
    return next(evaluate_runs(config, [run_dir], domain_extractor, cache_root, data_path))


def floor(
    config: dict,
    label: str,
    out: str | Path,
    domain_extractor: str | Path | None = None,
    cache_root: str | Path = CACHE,
    data_path: str | None = None,
) -> dict:
    """eval.n_samples real train images scored against the test split: the best a G's scores could be at the
    same sample count (FID is biased, and its bias depends on N). Scoring them also computes the test split's side
    of every metric into the reference cache, so that the evaluations that follow only read it."""
    eval_cfg = config["eval"]
    device = eval_device(eval_cfg["device"])
    with limited_threads(eval_cfg["threads"]):
        data = load_study_data(config["dataset"], data_path)
        extractor = resolve_extractor(label, data, config, domain_extractor)
        n = min(eval_cfg["n_samples"], len(data.train_images))  # as many as a run is scored on: FID's bias is N's
        pick = torch.randperm(len(data.train_images), generator=torch.Generator().manual_seed(FLOOR_SEED))[:n]
        values = score(data.train_images[pick], data, extractor, eval_cfg, cache_root, device)
    result = {"dataset": data.name, "extractor": label, "samples": "train", "reference": "test", "n_samples": n}
    result |= values
    atomic_write_text(out, json.dumps(result, indent=2) + "\n")
    return result
