"""Atomic writes: a reader (or a killed job's rerun) sees the old file or the new one, never half of one.
Safe loads: every torch file is read with weights_only=True, and one that does not load is one line of error."""

from __future__ import annotations

import os
import pickle
import re
import warnings
from pathlib import Path

from ganablate.study.config import UsageError


def _write_via_tmp(path: str | Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    write(tmp)
    os.replace(tmp, path)


def atomic_save(obj, path: str | Path) -> None:
    """torch.save to `path` atomically; the content must load with torch.load(weights_only=True)."""
    import torch  # here, not at the top: the text writers below serve torch-free commands (plan, stats)

    _write_via_tmp(path, lambda tmp: torch.save(obj, tmp))


def load_tensors(path: str | Path, remedy: str, map_location="cpu"):
    """torch.load(path, weights_only=True): nothing in the file can run code. A file that does not load (damaged,
    foreign, or a pickle of Python objects) is a UsageError of one line: the file, why, and `remedy`."""
    import torch

    try:
        with warnings.catch_warnings():  # e.g. a foreign pickle protocol: the error says what matters, in one line
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # damaged bytes surface as any of pickle's, zipfile's, struct's or torch's errors
        raise UsageError(f"{path}: {unloadable_because(exc)}; {remedy}") from None


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
        return "truncated, or not a file torch.save wrote"
    if isinstance(exc, OSError):
        return f"cannot read it ({exc.strerror or text})"
    return f"unreadable ({type(exc).__name__}: {text[:200]})"


def atomic_write_text(path: str | Path, text: str) -> None:
    _write_via_tmp(path, lambda tmp: tmp.write_text(text))


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    _write_via_tmp(path, lambda tmp: tmp.write_bytes(data))
