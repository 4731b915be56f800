"""Atomic writes: a reader (or a killed job's rerun) sees the old file or the new one, never half of one."""

from __future__ import annotations

import os
from pathlib import Path

import torch


def _write_via_tmp(path: str | Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    write(tmp)
    os.replace(tmp, path)


def atomic_save(obj, path: str | Path) -> None:
    """torch.save to `path` atomically; the content must load with torch.load(weights_only=True)."""
    _write_via_tmp(path, lambda tmp: torch.save(obj, tmp))


def atomic_write_text(path: str | Path, text: str) -> None:
    _write_via_tmp(path, lambda tmp: tmp.write_text(text))


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    _write_via_tmp(path, lambda tmp: tmp.write_bytes(data))
