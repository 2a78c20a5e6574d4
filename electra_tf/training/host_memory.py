"""The host process's memory, as the training log and the benchmarks report it.

`resident_gib()` is the resident set now (Linux `/proc/self/statm`; None where there is no
`/proc`), `peak_resident_gib()` the largest it has been (`getrusage`). Both count the whole
process: model, optimizer state, activations kept for the gradient, the input pipeline's
buffers and TensorFlow's own caches. The standard library reads them; nothing here allocates.
"""

from __future__ import annotations

import os
import resource
import sys

_GIB = 2 ** 30


def resident_gib() -> float | None:
    """This process's resident memory now, in GiB, or None where `/proc` is absent."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            pages = int(f.read().split()[1])
    except OSError:
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / _GIB


def peak_resident_gib() -> float:
    """This process's peak resident memory so far, in GiB: ru_maxrss (KiB on Linux, bytes on
    macOS), or the resident memory now where the kernel's high-water mark lags behind it (it
    is updated lazily, and read a few hundred KiB low right after growth)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak = peak / _GIB if sys.platform == "darwin" else peak * 1024 / _GIB
    return max(peak, resident_gib() or 0.0)
