"""model.arch: the registry, its guard, the protocol's checks (`ganablate check-arch`) and a user architecture trained
under the norm axis, solo and stacked."""

from __future__ import annotations

import copy
import inspect
import json
import re

import pytest
import torch
from torch import nn

from ganablate import __version__
from ganablate.cli import main
from ganablate.components import architectures
from ganablate.components.architectures import ARCHITECTURES, register_architecture
from ganablate.components.dcgan import Discriminator
from ganablate.components.networks import ScoredDiscriminator, build_discriminator
from ganablate.components.norms import NORMS, NormFactory
from ganablate.components.protocol import flat_norms
from ganablate.errors import ConfigError
from ganablate.study.config import validate_config
from ganablate.training.archcheck import check
from ganablate.training.train import train_run, train_stack
from tests.conftest import REPO

MODEL = {"z_dim": 8, "g_width": 8, "d_width": 8, "reference_size": 4}


class TinyG(nn.Module):
    def __init__(self, image_shape, model_cfg, shape=None):
        super().__init__()
        self.z_dim, self.shape = model_cfg["z_dim"], shape or image_shape
        self.net = nn.Sequential(nn.Linear(self.z_dim, int(torch.tensor(self.shape).prod())), nn.Tanh())

    def forward(self, z):
        return self.net(z).view(len(z), *self.shape)


def tiny_d(image_shape, model_cfg, norm, use_norm=True):
    channels, size, _ = image_shape
    width = model_cfg["d_width"]
    hidden = norm(width) if use_norm else nn.BatchNorm2d(width)
    return nn.Sequential(
        norm.weight(nn.Conv2d(channels, width, 4, 2, 1)),
        hidden,
        nn.LeakyReLU(0.2),
        nn.Flatten(),
        norm.weight(nn.Linear(width * (size // 2) ** 2, 1)),  # (N, 1): one logit per image
    )


@pytest.fixture
def registered():
    """Register architectures in this process for one test: name -> (build_g, build_d)."""
    names = []

    def register(name, build_g, build_d):
        names.append(name)
        register_architecture(name, build_g, build_d)

    yield register
    for name in names:
        ARCHITECTURES.pop(name)


def test_dcgan_is_built_in_and_builds_todays_discriminator():
    assert architectures.names()[0] == "dcgan" and architectures.BUILTIN == ("dcgan",)
    assert type(build_discriminator((1, 28, 28), MODEL, "batch")) is Discriminator


def test_register_architecture_refuses_a_name_taken_and_what_is_not_callable():
    with pytest.raises(ValueError, match="register_architecture: 'dcgan' is already registered; allowed: a new name"):
        register_architecture("dcgan", TinyG, tiny_d)
    with pytest.raises(TypeError, match="register_architecture: 'mine': build_g and build_d must be callables"):
        register_architecture("mine", TinyG, None)
    assert "mine" not in ARCHITECTURES


def test_an_unknown_architecture_is_one_line_listing_the_known_ones(registered, capsys):
    registered("tiny", TinyG, tiny_d)
    with pytest.raises(ConfigError, match=r"^config: model.arch: unknown 'resnet'; allowed: dcgan, tiny$"):
        validate_config({"model": {"arch": "resnet"}})
    assert main(["check-arch", "resnet"]) == 2
    assert capsys.readouterr().err == (
        "ganablate check-arch: error: model.arch: unknown architecture 'resnet'; allowed: dcgan, tiny\n"
    )


def test_check_arch_passes_an_architecture_that_meets_the_protocol_in_every_cell_of_the_study(
    registered, tmp_path, capsys
):
    registered("tiny", TinyG, tiny_d)
    config = tmp_path / "config.yaml"
    config.write_text(
        "model: {z_dim: 8, g_width: 4, d_width: 4}\ntrain: {batch_size: 8}\n"
    )  # the defaults' study: 18 cells
    assert main(["check-arch", "tiny", "--config", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all(line.startswith("tiny: ok    ") for line in lines)
    assert lines[1].endswith("under each norm: none, batch, instance, layer, group, spectral")
    assert "each of the study's 18 cells give finite losses (feed: split, joint, joint_consistent; " in lines[2]


def flat_d(image_shape, model_cfg, norm):
    """A D whose hidden features are (N, C): its norm layer sits after a linear layer."""
    channels, size, _ = image_shape
    width = model_cfg["d_width"]
    return nn.Sequential(
        nn.Flatten(),
        norm.weight(nn.Linear(channels * size * size, width)),
        norm(width),
        nn.LeakyReLU(0.2),
        norm.weight(nn.Linear(width, 1)),
    )


class SkipsItsNorm(nn.Module):
    """A D that makes its norm layer and keeps it, but never runs it."""

    def __init__(self, image_shape, model_cfg, norm):
        super().__init__()
        self.norm = norm(model_cfg["d_width"])
        self.net = tiny_d(image_shape, model_cfg, norm, use_norm=False)

    def forward(self, x):
        return self.net(x)


class Lambda(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def build_d_with_a_typo(image_shape, model_cfg, norm):
    return tiny_d(image_shape, model_cfg | {"d_width": model_cfg["d_widht"]}, norm)


def d_of_three_channels(image_shape, model_cfg, norm):
    return nn.Sequential(Lambda(lambda x: x.view(len(x), 3, -1)), tiny_d(image_shape, model_cfg, norm))


class Doubled(torch.autograd.Function):
    """A user's op whose backward cannot itself be differentiated: fine for ns, not for wgan_gp's penalty."""

    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        return grad * 2


def once_differentiable_d(image_shape, model_cfg, norm):
    return nn.Sequential(Lambda(Doubled.apply), tiny_d(image_shape, model_cfg, norm))


D_CHECK = "D gives one logit per image and runs the norm layers it makes, under each norm: layer, batch"


@pytest.mark.parametrize(
    ("build_g", "build_d", "failure"),
    [
        (
            TinyG,
            lambda shape, model, norm: tiny_d(shape, model, norm, use_norm=False),
            f"tiny: FAIL  {D_CHECK}: cell norm=layer: D never calls norm(channels): model.d_norm would change nothing "
            "in it",
        ),
        (
            TinyG,
            SkipsItsNorm,
            f"tiny: FAIL  {D_CHECK}: cell norm=layer: D makes 1 norm layers with norm(channels) but never runs 1 of "
            "them: model.d_norm would change nothing there",
        ),
        (
            TinyG,
            flat_d,
            f"tiny: FAIL  {D_CHECK}: cell norm=batch: D gives a norm layer features of shape (4, 8); norm batch takes "
            "(N, C, H, W) only; (N, C) features are taken by none, layer, group, spectral, ghost",
        ),
        (
            lambda shape, model: TinyG(shape, model, shape=(1, 32, 32)),
            tiny_d,
            "tiny: FAIL  G maps z (64) to images (1, 28, 28) in [-1, 1]: G(z) has shape (4, 1, 32, 32); expected "
            "(4, 1, 28, 28)",
        ),
    ],
    ids=["d-ignores-the-norm", "d-never-runs-its-norm-layer", "d-of-n-c-features-under-batch", "g-of-the-wrong-shape"],
)
def test_check_arch_refuses_a_broken_architecture_in_one_line_and_exit_code_2(
    registered, tmp_path, capsys, build_g, build_d, failure
):
    """Under each of the study's norms, not model.d_norm alone: a D of (N, C) features passes under layer and fails
    under batch."""
    registered("tiny", build_g, build_d)
    config = tmp_path / "config.yaml"
    config.write_text("study: {axes: {norm: {levels: [layer, batch]}}}\nmodel: {d_norm: layer, d_width: 8}\n")
    assert main(["check-arch", "tiny", "--config", str(config)]) == 2
    out, err = capsys.readouterr()
    assert [line for line in out.splitlines() if "FAIL" in line] == [failure]
    assert (
        err == "ganablate check-arch: error: model.arch: tiny fails 1 of the architecture protocol's checks (above)\n"
    )


def test_check_arch_trains_every_loss_level_of_the_study_not_only_train_loss(registered, tmp_path, capsys):
    registered("tiny", TinyG, once_differentiable_d)
    config = tmp_path / "config.yaml"
    config.write_text("study: {axes: {loss: {sets: train.loss, levels: [ns, wgan_gp]}}}\nmodel: {d_width: 8}\n")
    assert main(["check-arch", "tiny", "--config", str(config)]) == 2
    fail = capsys.readouterr().out.splitlines()[-1]
    assert fail.startswith(
        "tiny: FAIL  2 training steps of each of the study's 2 cells give finite losses (feed: split; norm: batch; "
        "loss: ns, wgan_gp): cell loss=wgan_gp: training step 1 raised RuntimeError: "
    )
    assert "once_differentiable" in fail
    config.write_text(config.read_text().replace(", wgan_gp]", "]"))
    assert main(["check-arch", "tiny", "--config", str(config)]) == 0


def _line_of(fn, text: str) -> int:
    lines, start = inspect.getsourcelines(fn)
    return start + next(i for i, line in enumerate(lines) if text in line)


@pytest.mark.parametrize(
    ("build_d", "failure", "where"),
    [
        (
            build_d_with_a_typo,
            "build_d raised KeyError: 'd_widht' ({file}:{line}, in build_d_with_a_typo)",
            (build_d_with_a_typo, "d_widht"),
        ),
        (
            d_of_three_channels,
            "D's forward raised RuntimeError: shape '[4, 3, -1]' is invalid for input of size 3136 ({file}:{line}, in "
            "d_of_three_channels.<locals>.<lambda>)",
            (d_of_three_channels, "x.view"),
        ),
    ],
    ids=["in-build-d", "in-d-forward"],
)
def test_an_exception_in_the_architectures_code_is_one_line_naming_the_call_and_its_file_and_line(
    registered, capsys, build_d, failure, where
):
    registered("tiny", TinyG, build_d)
    assert main(["check-arch", "tiny"]) == 2
    fail = next(line for line in capsys.readouterr().out.splitlines() if "FAIL" in line)
    assert fail.endswith(": cell feed=split, norm=none: " + failure.format(file=__file__, line=_line_of(*where)))


def test_the_default_dcgan_passes_the_check_under_every_registered_norm():
    config = validate_config(
        {
            "study": {"axes": {"norm": {"levels": list(NORMS)}}},
            "model": {"z_dim": 8, "g_width": 8, "d_width": 8, "ghost_chunk": 4, "reference_size": 4},
            "train": {"batch_size": 8, "feed": "joint"},
        }
    )
    checks = check(config, "dcgan")
    assert [c.problem for c in checks] == [None, None, None]
    assert checks[1].what.endswith(", ".join(NORMS))


def test_the_doc_lists_the_norms_that_take_n_c_features_as_the_registry_has_them():
    doc = " ".join((REPO / "docs/extending.md").read_text().split())
    listed = re.search(r"\(N, C\) features \(after a linear layer or a pooling\) are taken by ([^.]*)\.", doc)
    assert listed is not None and re.findall(r"`([a-z_]+)`", listed[1]) == flat_norms()
    assert 0 < len(flat_norms()) < len(NORMS)  # the others' layers refuse (N, C), or give another shape


def test_a_run_of_a_broken_architecture_stops_before_training_in_one_line(registered, tiny_config, tmp_path):
    registered("tiny", TinyG, lambda shape, model, norm: tiny_d(shape, model, norm, use_norm=False))
    config = copy.deepcopy(tiny_config)
    config["model"]["arch"] = "tiny"
    with pytest.raises(
        ConfigError, match=r"^model.arch: tiny: D with norm batch: D never calls norm\(channels\).*check-arch tiny\)$"
    ):
        train_run(config, 0, tmp_path)
    assert not (tmp_path / "train_log.csv").exists()


def test_the_plan_the_workflows_first_job_refuses_a_broken_architecture_in_one_line(registered, tmp_path, capsys):
    registered("tiny", TinyG, tiny_d)
    registered("broken", TinyG, flat_d)  # runs under layer, not under batch
    config = tmp_path / "config.yaml"
    axes = "{arch: {sets: model.arch, levels: [dcgan, tiny, broken]}, norm: {levels: [layer, batch]}}"
    config.write_text(f"study: {{axes: {axes}}}\nmodel: {{z_dim: 8, g_width: 4, d_width: 4}}\n")
    assert main(["plan", "--config", str(config), "--out", str(tmp_path / "plan.json")]) == 2
    assert capsys.readouterr().err == (
        "ganablate plan: error: model.arch: broken: D gives one logit per image and runs the norm layers it makes, "
        "under each norm: layer, batch: cell arch=broken, norm=batch: D gives a norm layer features of shape (4, 4); "
        "norm batch takes (N, C, H, W) only; (N, C) features are taken by none, layer, group, spectral, ghost "
        "(ganablate check-arch broken)\n"
    )
    assert not (tmp_path / "plan.json").exists()
    config.write_text(config.read_text().replace(", broken]", "]"))
    assert main(["plan", "--config", str(config), "--out", str(tmp_path / "plan.json")]) == 0
    assert (tmp_path / "plan.json").is_file()


@pytest.mark.parametrize("norm", ["batch", "spectral", "reference"])
def test_the_norm_axis_acts_on_a_user_architecture(registered, norm):
    """Its hidden norm layers and weight layers are the norm's; a reference batch rides in front of its batches."""
    registered("tiny", TinyG, tiny_d)
    reference = torch.rand(MODEL["reference_size"], 1, 28, 28) * 2 - 1 if norm == "reference" else None
    D = build_discriminator((1, 28, 28), MODEL | {"arch": "tiny"}, norm, reference)
    assert isinstance(D, ScoredDiscriminator) and D(torch.rand(6, 1, 28, 28)).shape == (6,)
    expected = tiny_d((1, 28, 28), MODEL, NormFactory(NORMS[norm], MODEL))
    # By name: spectral norm's parametrized layers are classes made per module.
    assert [type(m).__name__ for m in D.discriminator.modules()] == [type(m).__name__ for m in expected.modules()]
    assert (D.reference is None) == (norm != "reference")


def test_a_user_architecture_trains_solo_and_stacked(registered, tiny_config, tmp_path):
    registered("tiny", TinyG, tiny_d)
    config = copy.deepcopy(tiny_config)
    config["model"]["arch"] = "tiny"
    config["train"].update(steps=4, checkpoints=[], feed="joint")
    assert train_run(config, 0, tmp_path / "solo")["status"] == "completed"
    assert [s["status"] for s in train_stack(config, [0, 1], tmp_path / "stack")] == ["completed", "completed"]


@pytest.fixture
def installed_entry_point(tmp_path, monkeypatch):
    """Install a distribution whose ganablate.architectures entry point `name` names `value`: a dist-info folder on
    sys.path, as pip would leave it."""

    def install(name: str, value: str) -> None:
        dist = tmp_path / "user_arch-0.1.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: user-arch\nVersion: 0.1\n")
        (dist / "entry_points.txt").write_text(f"[{architectures.ENTRY_POINTS}]\n{name} = {value}\n")
        monkeypatch.syspath_prepend(str(tmp_path))

    yield install
    ARCHITECTURES.pop("user", None)


def test_an_installed_entry_point_is_an_architecture_loaded_on_first_use(installed_entry_point, tmp_path):
    (tmp_path / "user_arch.py").write_text("from tests.test_architectures import TinyG as build_g, tiny_d as build_d\n")
    installed_entry_point("user", "user_arch")
    assert architectures.names() == ["dcgan", "user"] and "user" not in ARCHITECTURES
    with pytest.raises(ValueError, match="register_architecture: 'user' is already registered"):
        register_architecture("user", TinyG, tiny_d)  # an installed name is taken before it is loaded
    assert architectures.architecture("user").build_g is TinyG


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("no_such_module", r"does not load \(ModuleNotFoundError: No module named 'no_such_module'\)"),
        ("json", "has no callables build_g and build_d; allowed: a module or object with both"),
    ],
)
def test_an_entry_point_that_is_no_architecture_is_one_line_naming_it(installed_entry_point, value, message):
    installed_entry_point("user", value)
    with pytest.raises(ValueError, match=rf"^model.arch: user: the entry point '{value}' \(ganablate.architectures\) "):
        architectures.architecture("user")
    with pytest.raises(ValueError, match=message):
        architectures.architecture("user")


def test_a_run_records_the_distribution_and_version_that_provide_its_architecture(
    installed_entry_point, tiny_config, tmp_path
):
    (tmp_path / "user_arch.py").write_text("from tests.test_architectures import TinyG as build_g, tiny_d as build_d\n")
    installed_entry_point("user", "user_arch")
    config = copy.deepcopy(tiny_config)
    config["model"]["arch"] = "user"
    config["train"].update(steps=2, checkpoints=[])
    summary = train_run(config, 0, tmp_path / "run")
    assert summary["architecture"] == {"name": "user", "distribution": "user-arch", "version": "0.1"}
    assert json.loads((tmp_path / "run/summary.json").read_text())["architecture"] == summary["architecture"]
    assert architectures.provenance("dcgan") == {"name": "dcgan", "distribution": "ganablate", "version": __version__}
