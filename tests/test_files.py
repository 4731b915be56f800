"""files.py's digests and atomic writers, through the jobs that use them. Every file a later job reads proves its
integrity or is refused in one line naming it (a digest recorded by the writer, checked by the reader); every write
is atomic, and a full disk is one line saying so, leaving no temporary file and the old file intact."""

from __future__ import annotations

import argparse
import errno
import json
import os
import shutil
import struct
import subprocess
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import torch

from ganablate.analysis import aggregate, tables
from ganablate.cli import main
from ganablate.data import ImageData
from ganablate.errors import UsageError
from ganablate.files import atomic_save, atomic_write_text, json_with_digest, with_digest
from ganablate.scoring.evaluate import evaluate_run
from ganablate.scoring.extractor import train_extractor
from ganablate.study.config import validate_config
from ganablate.training.train import train_run
from tests.eval_fakes import synthetic_data

CONFIG = {
    "model": {"z_dim": 8, "g_width": 8, "d_width": 8},
    "train": {"steps": 20, "batch_size": 16, "checkpoints": [10], "state_every": 5, "log_every": 5, "threads": 1},
    "eval": {"n_samples": 200, "kid_subset_size": 50, "batch_size": 100, "extractor_epochs": 1},
}


@pytest.fixture(scope="module")
def config() -> dict:
    return validate_config(CONFIG, whole=False)


@pytest.fixture(scope="module")
def scored(tmp_path_factory, config) -> Path:
    """What the jobs leave: the data file, the domain extractor, the reference cache, and one trained and scored run
    (checkpoints, state/state.pt, train_log.csv, summary.json, metrics.csv)."""
    root = tmp_path_factory.mktemp("scored")
    synthetic_data().save(root / "data.pt")
    train_run(config, 0, root / "runs/seed0", str(root / "data.pt"))
    train_extractor(config, root / "domain.pt", str(root / "data.pt"))
    evaluate_run(config, root / "runs/seed0", root / "domain.pt", root / "cache", str(root / "data.pt"))
    return root


@pytest.fixture
def study(scored, tmp_path) -> Path:
    shutil.copytree(scored, tmp_path / "study")
    return tmp_path / "study"


def _refused(call, path: Path, *words: str) -> str:
    with pytest.raises(UsageError) as error:
        call()
    message = str(error.value)
    assert message.startswith(f"{path}:") and "\n" not in message, message
    assert all(w in message for w in words), message
    return message


# --- torch files: the CRC-32 of each zip entry, which torch.save records and torch.load never checks ---------


def _largest_entry(path: Path) -> tuple[int, int]:
    """(offset, size) of the bytes of the archive's largest entry: tensor data."""
    with zipfile.ZipFile(path) as archive:
        info = max(archive.infolist(), key=lambda i: i.file_size)
    with open(path, "rb") as f:
        f.seek(info.header_offset + 26)
        name_len, extra_len = struct.unpack("<HH", f.read(4))
    return info.header_offset + 30 + name_len + extra_len, info.file_size


def _rewrite(path: Path, offset: int, n: int) -> None:
    """Bytes offset..offset+n changed in place (b -> 7b + 13 mod 256, as the reliability review did): same size."""
    data = bytearray(path.read_bytes())
    data[offset : offset + n] = bytes((b * 7 + 13) % 256 for b in data[offset : offset + n])
    path.write_bytes(data)


def _damage(path: Path, how: str) -> None:
    start, size = _largest_entry(path)
    if how == "4 KiB of tensor data":
        _rewrite(path, start + (size - 4096) // 2, 4096)
    elif how == "4 KiB from the first zip header":
        _rewrite(path, 0, 4096)
    elif how == "4 KiB of the zip directory at its end":
        _rewrite(path, path.stat().st_size - 4096, 4096)
    else:  # one bit flipped mid-tensor
        data = bytearray(path.read_bytes())
        data[start + size // 2] ^= 0x10
        path.write_bytes(data)


FILES = {  # which file, and the job that reads it
    "checkpoint": "runs/seed0/checkpoints/step_10.pt",
    "reference cache": "cache/*-reference.pt",
    "domain extractor": "domain.pt",
    "data file": "data.pt",
    "training state": "runs/seed0/state/state.pt",
}


@pytest.mark.parametrize(
    "how",
    ["4 KiB of tensor data", "4 KiB from the first zip header", "4 KiB of the zip directory at its end", "a bit flip"],
)
@pytest.mark.parametrize("kind", list(FILES))
def test_a_torch_file_changed_in_place_is_refused_in_one_line_by_the_job_that_reads_it(study, config, kind, how):
    path = next(study.glob(FILES[kind]))
    before = (study / "runs/seed0/metrics.csv").read_bytes()
    _damage(path, how)
    data = str(study / "data.pt")
    said = "zip directory does not read" if "directory" in how else "fails its CRC-32 or header check"
    if kind == "training state":  # a rerun resumes from it
        _refused(lambda: train_run(config, 0, study / "runs/seed0", data), path, said, "remove")
    else:
        job = lambda: evaluate_run(config, study / "runs/seed0", study / "domain.pt", study / "cache", data)  # noqa: E731
        _refused(job, path, said, "remove")
    assert (study / "runs/seed0/metrics.csv").read_bytes() == before


def test_a_pickle_as_the_data_file_is_one_line_not_a_traceback(study, config, capsys):
    torch.save(argparse.Namespace(train_images=1), study / "data.pt")  # weights_only refuses its global
    _refused(lambda: ImageData.load(study / "data.pt"), study / "data.pt", "argparse.Namespace", "prepare-data")


def test_a_torch_file_of_the_format_before_zip_archives_is_refused_as_uncheckable(tmp_path):
    torch.save({"train_images": torch.zeros(2)}, tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    _refused(lambda: ImageData.load(tmp_path / "old.pt"), tmp_path / "old.pt", "not a zip archive")


# --- metrics.csv (its sha256 line) and train_log.csv (its sha256 in summary.json) -------------------------------


def _cut_a_row(data: bytes) -> bytes:
    lines = data.splitlines(keepends=True)
    return b"".join(lines[:3] + lines[4:])


def _edit_a_number(data: bytes) -> bytes:
    header, first, *rest = data.splitlines(keepends=True)
    cells = first.split(b",")
    cells[3] = repr(float(cells[3]) + 0.5).encode()
    return b"".join([header, b",".join(cells), *rest])


METRICS_DAMAGE = {
    "truncated mid-row": lambda b: b[: len(b) // 2],
    "cut: a row lost mid-file": _cut_a_row,
    "edited: a number changed to another": _edit_a_number,
    "garbage bytes": lambda b: b[:300] + bytes(range(128, 256)) + b[428:],
}


@pytest.mark.parametrize("damage", list(METRICS_DAMAGE))
def test_a_damaged_metrics_csv_is_refused_in_one_line_by_aggregate(study, damage):
    path = study / "runs/seed0/metrics.csv"
    assert len(aggregate.aggregate([study / "runs"])[0]) == 2 * 7  # intact: two checkpoints, seven metrics
    path.write_bytes(METRICS_DAMAGE[damage](path.read_bytes()))
    _refused(lambda: aggregate.aggregate([study / "runs"]), path, "ganablate evaluate --run")


def test_an_edited_train_log_is_refused_by_aggregate(study):
    path = study / "runs/seed0/train_log.csv"
    path.write_bytes(_edit_a_number(path.read_bytes()))
    _refused(lambda: aggregate.aggregate([study / "runs"]), path, "digest its writer recorded", "train the run again")


@pytest.mark.parametrize("edit", [{"status": "diverged"}, {"seed": 1}, {"digest": None}])
def test_an_edited_summary_is_refused_by_scoring_and_by_aggregate(study, config, edit):
    path = study / "runs/seed0/summary.json"
    summary = json.loads(path.read_text())
    path.write_text(json.dumps({**summary, **edit}))
    _refused(lambda: aggregate.aggregate([study / "runs"]), path, "train the run again")
    _refused(
        lambda: evaluate_run(config, path.parent, study / "domain.pt", study / "cache", str(study / "data.pt")), path
    )


def _rewrite_metrics(path: Path, change) -> None:
    """metrics.csv changed and its digest line written again: what a faulty writer would leave."""
    body = path.read_text().rsplit("# sha256", 1)[0]
    path.write_text(with_digest(change(body)))


def test_a_non_numeric_value_is_one_line_from_the_cli_not_a_traceback(study, capsys):
    path = study / "runs/seed0/metrics.csv"
    value = path.read_text().splitlines()[1].split(",")[3]
    _rewrite_metrics(path, lambda body: body.replace(f",{value},", ",five-hundred,", 1))
    assert main(["aggregate", "--runs", str(study / "runs"), "--out-dir", str(study / "tables")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{path}: value 'five-hundred'" in err and "not a number" in err
    assert not (study / "tables").exists()


def test_a_run_lacking_a_row_the_other_runs_have_is_refused_naming_its_file(study):
    second = study / "runs/seed1"
    shutil.copytree(study / "runs/seed0", second)
    summary = json.loads((second / "summary.json").read_text())
    (second / "summary.json").write_text(json_with_digest({**summary, "seed": 1}))
    assert len(aggregate.aggregate([study / "runs"])[0]) == 2 * 2 * 7
    _rewrite_metrics(second / "metrics.csv", lambda body: "".join(body.splitlines(keepends=True)[:-1]))
    _refused(lambda: aggregate.aggregate([study / "runs"]), second / "metrics.csv", "no row of step 20")


def test_metrics_rows_of_steps_other_than_the_runs_checkpoints_are_refused(study):
    path = study / "runs/seed0/metrics.csv"
    _rewrite_metrics(path, lambda body: body.replace("\n10,", "\n11,"))
    _refused(lambda: aggregate.aggregate([study / "runs"]), path, "steps 11, 20", "checkpoints are at steps 10, 20")


# --- shared outputs' bytes ----------------------------------------------------------------------------------------


def test_two_builds_of_the_domain_extractor_are_byte_identical(scored, config, tmp_path):
    """Its digest keys the reference cache: a rebuild must not make every cache entry stale. (torch.save names the
    archive's folder after the file: the same name, in another folder.)"""
    record = train_extractor(config, tmp_path / "domain.pt", str(scored / "data.pt"))
    assert (tmp_path / "domain.pt").read_bytes() == (scored / "domain.pt").read_bytes()
    assert record["train_seconds"] > 0  # told in the job's log, not stored


# --- writes: atomic, and a full disk is one line -------------------------------------------------------------------


def _full_disk_write_text(self, data, *args, **kwargs):
    """Path.write_text on a disk that fills after ten characters."""
    with open(self, "w") as f:
        f.write(data[:10])
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_table_written_on_a_full_disk_leaves_the_old_table_whole_and_no_temporary_file(tmp_path, monkeypatch):
    old = pd.DataFrame({"x": [1.0, 2.0]})
    tables.write_table(old, tmp_path, "summary", "the note")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    monkeypatch.setattr(Path, "write_text", _full_disk_write_text)
    _refused(
        lambda: tables.write_table(pd.DataFrame({"x": [3.0] * 100}), tmp_path, "summary", "the note"),
        tmp_path / "summary.csv",
        "No space left on device",
        "free space",
    )
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs (needs the right to mount one: root in CI and here; skipped elsewhere)."""
    mount = tmp_path / "small"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_is_one_line_naming_the_file_for_torch_and_text_writes_alike(small_disk):
    atomic_write_text(small_disk / "state.pt", "the old state\n")
    atomic_write_text(small_disk / "table.csv", "the old table\n")
    # torch.save's writer says RuntimeError "unexpected pos", not ENOSPC: the message must still say the disk is full
    _refused(
        lambda: atomic_save({"x": torch.zeros(1 << 19)}, small_disk / "state.pt"),
        small_disk / "state.pt",
        "No space left on device",
    )
    _refused(
        lambda: atomic_write_text(small_disk / "table.csv", "x\n" * (1 << 20)),
        small_disk / "table.csv",
        "No space left on device",
    )
    assert sorted(p.name for p in small_disk.iterdir()) == ["state.pt", "table.csv"]
    assert (small_disk / "state.pt").read_text() == "the old state\n"
    assert (small_disk / "table.csv").read_text() == "the old table\n"
