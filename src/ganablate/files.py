"""Atomic writes: a reader (or a killed job's rerun) sees the old file or the new one, never half of one; a write
that fails (a full disk) leaves no temporary file and is one line of error naming the file.
Integrity: every file a later job reads carries a digest its writer recorded, which the reader checks. torch.save's
files are zip archives whose entries carry CRC-32s that torch.load never checks: load_tensors checks them (so the
bytes of checkpoints, states, the extractor, the reference cache and the data stay exactly those torch writes). A
text file carries a sha256 line of its own (with_digest, read_digested), or has its sha256 in another file its
writer wrote after it (train_log.csv, in summary.json).
Safe loads: every torch file is read with weights_only=True, and one that does not load is one line of error."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import pickle
import re
import shutil
import warnings
import zipfile
from pathlib import Path

from ganablate.errors import UsageError

# Below this many free bytes after a failed torch.save, the file system is taken to be full (torch's writer reports
# a failed write as RuntimeError "unexpected pos N vs M", without the errno; a full disk leaves next to nothing).
FULL_BELOW_BYTES = 1 << 20
DIGEST_LINE = "# sha256 "
# The key of a JSON record that holds the sha256 of the record's other keys.
JSON_DIGEST = "digest"


def _write_via_tmp(path: str | Path, write) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        os.replace(tmp, path)
        return
    except BaseException as exc:  # interrupted too: no temporary file stays behind
        why = _write_failure(exc, path.parent)  # before the unlink, which frees the space the file took
        tmp.unlink(missing_ok=True)
        if why is None:
            raise
    # Raised here, not in the handler, so that nothing keeps the failed write's traceback alive: its frames hold
    # torch's writer, whose open file would keep the unlinked temporary file's space taken.
    raise UsageError(f"{path}: cannot write it: {why}")


def _write_failure(exc: BaseException, folder: Path) -> str | None:
    """Why a write failed where the file system refused it, and what to do; None for anything else (a bug, whose
    traceback says more)."""
    remedy = "free space there and run the command again"
    if isinstance(exc, OSError):
        return f"{exc.strerror}; {remedy}" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else exc.strerror or str(exc)
    if isinstance(exc, RuntimeError) and "unexpected pos" in str(exc):
        if folder.is_dir() and shutil.disk_usage(folder).free < FULL_BELOW_BYTES:
            return f"{os.strerror(errno.ENOSPC)}; {remedy}"
        return f"torch.save's write failed: {' '.join(str(exc).split())}"
    return None


def atomic_save(obj, path: str | Path) -> None:
    """torch.save to `path` atomically; the content must load with torch.load(weights_only=True). (torch names the
    archive's folder after the file it writes: the temporary name keeps the bytes those of a save to `path`.)"""
    import torch  # here, not at the top: the text writers below serve torch-free commands (plan, stats)

    _write_via_tmp(path, lambda tmp: torch.save(obj, tmp))


def load_tensors(path: str | Path, remedy: str, map_location="cpu"):
    """torch.load(path, weights_only=True) of a file whose every zip entry matches the CRC-32 torch.save recorded:
    nothing in the file can run code, and no byte of it changed since it was written. A file that does not load
    (damaged, foreign, or a pickle of Python objects) is a UsageError of one line: the file, why, and `remedy`."""
    import torch

    damaged = _damaged_entry(path)
    if damaged:
        raise UsageError(f"{path}: {damaged}; {remedy}")
    try:
        with warnings.catch_warnings():  # e.g. a foreign pickle protocol: the error says what matters, in one line
            warnings.simplefilter("ignore")
            loaded = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # damaged bytes surface as any of pickle's, zipfile's, struct's or torch's errors
        raise UsageError(f"{path}: {unloadable_because(exc)}; {remedy}") from None
    if damaged is None:  # it loaded, yet zipfile cannot read it: torch's format before 1.6, which has no CRC-32s
        raise UsageError(
            f"{path}: not a zip archive as torch.save writes, so its integrity cannot be checked; {remedy}"
        )
    return loaded


def _damaged_entry(path: str | Path) -> str | None:
    """'' when every entry of the zip archive at `path` matches its recorded CRC-32; what is wrong when one does not,
    or when a file that begins as a zip archive has no directory zipfile can read (cut short, or damaged there); None
    when `path` is no zip archive (a pickle, other bytes) or cannot be read: torch.load then says why."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except OSError:
        return None
    except Exception as exc:  # noqa: BLE001 - a damaged directory breaks zipfile's parsing in many ways
        with open(path, "rb") as f:
            if f.read(4) != b"PK\x03\x04":  # a zip archive's first bytes
                return None
        return f"truncated or damaged: its zip directory does not read ({type(exc).__name__})"
    return f"damaged: its entry {bad} fails its CRC-32 or header check (changed since it was written)" if bad else ""


def unloadable_because(exc: Exception) -> str:
    """Why torch.load(weights_only=True) failed, in a few words (torch's own message runs to many lines, and
    suggests weights_only=False, which would run whatever the file holds)."""
    text = " ".join(str(exc).split())
    if isinstance(exc, pickle.UnpicklingError):
        refused = "refused without running any of it"
        found = re.search(r"unsupported GLOBAL:? (?:GLOBAL )?([\w.]+)", text, re.IGNORECASE)
        if found:
            return f"a pickle of Python objects (it refers to {found[1]}), not plain tensor data; {refused}"
        found = re.search(r"WeightsUnpickler error: (.*?)(?: Check the documentation|$)", text)
        return f"not plain tensor data ({found[1] if found else 'refused by weights_only loading'}); {refused}"
    if isinstance(exc, EOFError) or "central directory" in text or "zip archive" in text:
        return "truncated or damaged, or not a file torch.save wrote"
    if isinstance(exc, OSError):
        return f"cannot read it ({exc.strerror or text})"
    return f"unreadable ({type(exc).__name__}: {text[:200]})"


def atomic_write_text(path: str | Path, text: str) -> None:
    _write_via_tmp(path, lambda tmp: tmp.write_text(text))


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    _write_via_tmp(path, lambda tmp: tmp.write_bytes(data))


def sha256(data: str | bytes) -> str:
    """The hex sha256 of `data` (text as UTF-8): the digest a writer records and a reader checks."""
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def with_digest(text: str) -> str:
    """`text` (whole lines) and a last line `# sha256 <its digest>`, which read_digested checks."""
    return f"{text}{DIGEST_LINE}{sha256(text)}\n"


def read_digested(path: str | Path, remedy: str) -> str:
    """The text with_digest wrote to `path`, without its digest line; a file without that line (cut short) or whose
    text no longer matches it (edited, damaged) is a UsageError of one line naming it and `remedy`."""
    data = _read_bytes(path, remedy)
    body, _, last = data.rstrip(b"\n").rpartition(b"\n")
    body += b"\n"
    if not last.startswith(DIGEST_LINE.encode()):
        raise UsageError(f"{path}: no digest line at its end (cut short, or not written by ganablate); {remedy}")
    return read_checked(path, last[len(DIGEST_LINE) :].decode(errors="replace"), remedy, body)


def read_checked(path: str | Path, digest: str | None, remedy: str, data: bytes | None = None) -> str:
    """The text of `path` (or its `data`, already read) if its sha256 is `digest`, which its writer recorded; else a
    UsageError of one line naming it and `remedy`."""
    data = _read_bytes(path, remedy) if data is None else data
    if sha256(data) != digest:
        raise UsageError(
            f"{path}: its content does not match the digest its writer recorded (edited or damaged); {remedy}"
        )
    return data.decode()


def _read_bytes(path: str | Path, remedy: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it ({exc.strerror}); {remedy}") from None


def _json_digest(record: dict) -> str:
    return sha256(json.dumps({k: v for k, v in record.items() if k != JSON_DIGEST}, sort_keys=True))


def json_with_digest(record: dict) -> str:
    """`record` as JSON text with one more key, JSON_DIGEST: the sha256 of the rest, which read_json_digested checks
    (a JSON file stays JSON for every other reader)."""
    return json.dumps({**record, JSON_DIGEST: _json_digest(record)}, indent=2) + "\n"


def read_json_digested(path: str | Path, remedy: str) -> dict:
    """The record json_with_digest wrote to `path`; one that does not parse, has no digest or no longer matches it
    (edited, damaged) is a UsageError of one line naming it and `remedy`."""
    try:
        record = json.loads(_read_bytes(path, remedy))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path}: not valid JSON ({type(exc).__name__}); {remedy}") from None
    if not isinstance(record, dict) or JSON_DIGEST not in record:
        raise UsageError(f"{path}: no {JSON_DIGEST!r} key (not written by this ganablate); {remedy}")
    if record[JSON_DIGEST] != _json_digest(record):
        raise UsageError(
            f"{path}: its content does not match the digest its writer recorded (edited or damaged); {remedy}"
        )
    return record
