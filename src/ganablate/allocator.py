"""The C allocator's policy for a ganablate process: keep freed memory for the next allocation.

A training step of the default model allocates and frees tens of tensors of about 1 MiB. glibc's malloc, by
default, maps such blocks afresh until its adaptive mmap threshold has grown past them, and hands freed memory at
the top of its heap back to the system once twice that threshold lies free there, as it does after every backward
pass: every step then faults its activations in again, and the kernel zeroes each page on first touch (5.1-5.4 s
of system time in a 51-56 s training run of the default config on one core, measured; 0.8-0.9 s with the policy).
Fixing the mmap threshold at 32 MiB (where glibc's adaptive one stops) and raising the trim threshold keeps freed
memory in the process for the next step; blocks of 32 MiB and more are mapped as by default (a larger threshold let
the heap grow at every aligned allocation of 100 MiB). Only where memory comes from changes, not what is computed:
a run trained and scored with and without the policy writes the same bytes (tests/test_allocator.py), and so does
a study (benchmarks/side_by_side.sh compares its files).
"""

from __future__ import annotations

import ctypes
import sys

# mallopt's parameters, from glibc's <malloc.h>.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 512 << 20


def keep_freed_memory() -> bool:
    """Set glibc's malloc to reuse freed memory (the module's docstring says why); True where it took effect.
    Elsewhere (macOS, Windows, musl) the system allocator is left as it is."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
