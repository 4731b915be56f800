"""The domain feature extractor: a small CNN classifier of the dataset, scoring G offline where Inception can't.

Inception was trained on ImageNet photos; on 28x28 grayscale clothes its features say little. A classifier
trained on the dataset itself gives features that separate what matters there (the classes), and it works
without network access. It is registered with torch-fidelity, which does all the metric math.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch_fidelity import FeatureExtractorBase, register_feature_extractor
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from ganablate.data import DATASETS, ImageData, load_study_data, to_model_range
from ganablate.device import resolve_device
from ganablate.errors import ConfigError, UsageError
from ganablate.files import atomic_save, load_tensors

SEED = 0
BATCH_SIZE = 128
FEATURE_DIM = 64
# Test-split accuracy an extractor must reach before its features count as a metric of the dataset (data.DATASETS).
ACCURACY_BARS = {name: spec.accuracy_bar for name, spec in DATASETS.items() if spec.accuracy_bar is not None}
FILE_FORMAT = "ganablate-domain-extractor/1"


class DomainClassifier(nn.Module):
    """images in [-1, 1] (B, C, H, W) -> (penultimate features (B, FEATURE_DIM), logits (B, classes))."""

    def __init__(self, image_shape: tuple[int, int, int], num_classes: int):
        super().__init__()
        channels, height, width = image_shape
        # Narrow on purpose: scoring pushes 10k images per checkpoint through it on one CPU thread.
        self.body = nn.Sequential(
            nn.Conv2d(channels, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * (height // 4) * (width // 4), FEATURE_DIM),
            nn.ReLU(),
        )
        self.head = nn.Linear(FEATURE_DIM, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(x)
        return features, self.head(features)


@torch.inference_mode()
def accuracy(model: DomainClassifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    correct = sum(
        (model(to_model_range(x))[1].argmax(1) == y).sum().item()
        for x, y in zip(images.split(1000), labels.split(1000))
    )
    return correct / len(labels)


def train_classifier(data: ImageData, epochs: int, device: torch.device | str = "cpu") -> DomainClassifier:
    """Adam on the train split, its rate decaying linearly to 0 (worth a point of accuracy in a few epochs);
    a fixed seed makes the same data give the same extractor."""
    torch.manual_seed(SEED)
    model = DomainClassifier(data.image_shape, int(data.train_labels.max()) + 1).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    total_steps = epochs * math.ceil(len(data.train_images) / BATCH_SIZE)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / total_steps)
    order_rng = torch.Generator().manual_seed(SEED)
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(data.train_images), generator=order_rng).split(BATCH_SIZE):
            x = to_model_range(data.train_images[batch].to(device))
            loss = F.cross_entropy(model(x)[1], data.train_labels[batch].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    return model.cpu().eval()


def train_extractor(config: dict, out: Path, data_path: str | None = None) -> dict:
    """Train the domain extractor for config's dataset and save it to `out`; returns what was saved but weights, and
    the seconds training took. The file holds no wall time: the same data and epochs give the same bytes, whose
    digest keys the reference cache."""
    eval_cfg = config["eval"]
    torch.set_num_threads(eval_cfg["threads"])
    data = load_study_data(config["dataset"], data_path)
    t0 = time.perf_counter()
    model = train_classifier(data, eval_cfg["extractor_epochs"], eval_device(eval_cfg["device"]))
    seconds = time.perf_counter() - t0
    record = {
        "format": FILE_FORMAT,
        "dataset": data.name,
        "image_shape": list(data.image_shape),
        "num_classes": model.head.out_features,
        "epochs": eval_cfg["extractor_epochs"],
        "seed": SEED,
        "test_accuracy": accuracy(model, data.test_images, data.test_labels),
        "torch_version": str(torch.__version__),
    }
    bar = ACCURACY_BARS.get(data.name)
    if bar is not None and record["test_accuracy"] < bar:
        raise ConfigError(
            f"eval.extractor_epochs={record['epochs']}: the {data.name} extractor reached test accuracy "
            f"{record['test_accuracy']:.4f}, below the {bar} its features need; raise eval.extractor_epochs"
        )
    atomic_save(record | {"state_dict": model.state_dict()}, out)
    return record | {"train_seconds": seconds}


def eval_device(name: str) -> torch.device:
    return resolve_device(name, field="eval.device")


def load_extractor_file(path: str | Path) -> dict:
    """The saved extractor, read as plain tensor data (never code); a file that does not load, or is something
    else, is a UsageError of one line naming it, why, and the remedy."""
    remedy = "remove it and build it again with `ganablate train-extractor`"
    record = load_tensors(path, remedy)
    if not isinstance(record, dict) or record.get("format") != FILE_FORMAT:
        found = record.get("format") if isinstance(record, dict) else type(record).__name__
        raise UsageError(
            f"{path}: not a domain extractor from `ganablate train-extractor` (format {found!r}, "
            f"expected {FILE_FORMAT!r}); {remedy}"
        )
    return record


def load_classifier(record: dict) -> DomainClassifier:
    model = DomainClassifier(tuple(record["image_shape"]), record["num_classes"])
    model.load_state_dict(record["state_dict"])
    return model.eval()


class DomainFeatureExtractor(FeatureExtractorBase):
    """torch-fidelity's view of a saved DomainClassifier: uint8 Bx3xHxW in, (features, logits) out."""

    def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
        super().__init__(name, features_list)
        if feature_extractor_weights_path is None:
            raise ValueError(f"{name}: needs feature_extractor_weights_path, a file from `ganablate train-extractor`")
        record = load_extractor_file(feature_extractor_weights_path)
        self.channels = record["image_shape"][0]
        # channels_last halves the time of these small convolutions and pools on the CPU.
        self.classifier = load_classifier(record).to(memory_format=torch.channels_last)

    def forward(self, x):
        # torch-fidelity replicates grayscale to RGB; the classifier saw the dataset's own channels.
        x = to_model_range(x[:, : self.channels]).contiguous(memory_format=torch.channels_last)
        features, logits = self.classifier(x)
        provided = {"penultimate": features, "logits": logits}
        return tuple(provided[name] for name in self.features_list)

    @staticmethod
    def get_provided_features_list():
        return "penultimate", "logits"

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return "logits" if metric == "isc" else "penultimate"

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 3, 28, 28, dtype=torch.uint8)


def register(dataset: str) -> str:
    """Register the domain extractor of `dataset` with torch-fidelity (once per process); returns its name.

    The name carries the dataset because torch-fidelity's cache files are named after the extractor."""
    name = f"ganablate-domain-{dataset}"
    if name not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(name, DomainFeatureExtractor)
    return name
