"""model.arch: the registry, its guard, the protocol's checks (`ganablate check-arch`) and a user architecture trained
under the norm axis, solo and stacked."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from ganablate.cli import main
from ganablate.components import architectures
from ganablate.components.architectures import ARCHITECTURES, register_architecture
from ganablate.components.dcgan import Discriminator
from ganablate.components.networks import ScoredDiscriminator, build_discriminator
from ganablate.components.norms import NORMS, NormFactory
from ganablate.study.config import ConfigError, validate_config
from ganablate.training.train import train_run, train_stack

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


def test_check_arch_passes_an_architecture_that_meets_the_protocol(registered, tmp_path, capsys):
    registered("tiny", TinyG, tiny_d)
    config = tmp_path / "config.yaml"
    config.write_text("model: {z_dim: 8, d_width: 4}\ntrain: {batch_size: 8}\n")
    assert main(["check-arch", "tiny", "--config", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5 and all(line.startswith("tiny: ok    ") for line in lines)
    assert "steps under split" in lines[3] and "steps under joint" in lines[4]


@pytest.mark.parametrize(
    ("build_g", "build_d", "failure"),
    [
        (
            TinyG,
            lambda shape, model, norm: tiny_d(shape, model, norm, use_norm=False),
            "tiny: FAIL  D builds its norm layers and weight layers with the norm it is given: D never calls "
            "norm(channels): model.d_norm would change nothing in it",
        ),
        (
            lambda shape, model: TinyG(shape, model, shape=(1, 32, 32)),
            tiny_d,
            "tiny: FAIL  G maps z (64) to images (1, 28, 28) in [-1, 1]: G(z) has shape (4, 1, 32, 32); expected "
            "(4, 1, 28, 28)",
        ),
    ],
    ids=["d-ignores-the-norm", "g-of-the-wrong-shape"],
)
def test_check_arch_refuses_a_broken_architecture_in_one_line_and_exit_code_2(
    registered, capsys, build_g, build_d, failure
):
    registered("tiny", build_g, build_d)
    assert main(["check-arch", "tiny"]) == 2
    out, err = capsys.readouterr()
    assert [line for line in out.splitlines() if "FAIL" in line] == [failure]
    assert (
        err == "ganablate check-arch: error: model.arch: tiny fails 1 of the architecture protocol's checks (above)\n"
    )


def test_a_run_of_a_broken_architecture_stops_before_training_in_one_line(registered, tiny_config, tmp_path):
    registered("tiny", TinyG, lambda shape, model, norm: tiny_d(shape, model, norm, use_norm=False))
    config = copy.deepcopy(tiny_config)
    config["model"]["arch"] = "tiny"
    with pytest.raises(
        ConfigError, match=r"^model.arch: tiny: D builds .*: D never calls norm\(channels\).*check-arch"
    ):
        train_run(config, 0, tmp_path)
    assert not (tmp_path / "train_log.csv").exists()


def test_the_plan_the_workflows_first_job_refuses_a_broken_architecture_in_one_line(registered, tmp_path, capsys):
    registered("tiny", TinyG, tiny_d)
    registered("broken", TinyG, lambda shape, model, norm: tiny_d(shape, model, norm, use_norm=False))
    config = tmp_path / "config.yaml"
    axes = "{arch: {sets: model.arch, levels: [dcgan, tiny, broken]}, norm: {levels: [batch, layer]}}"
    config.write_text(f"study: {{axes: {axes}}}\nmodel: {{z_dim: 8, g_width: 4, d_width: 4}}\n")
    assert main(["plan", "--config", str(config), "--out", str(tmp_path / "plan.json")]) == 2
    assert capsys.readouterr().err == (
        "ganablate plan: error: model.arch: broken: D builds its norm layers and weight layers with the norm it is "
        "given: D never calls norm(channels): model.d_norm would change nothing in it (ganablate check-arch broken)\n"
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
