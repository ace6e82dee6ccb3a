"""Give freed heap memory back to the operating system between batches.

A long streaming run allocates and frees the same large temporaries (batches of images, blurred
copies, activations) thousands of times. glibc's allocator raises its mmap threshold after the
first large free, so later tensors of a few MB come from the heap, where small long-lived blocks
(tensor headers, accumulator states) fragment it: freed pages stay resident and the peak creeps up
with the number of batches. ``malloc_trim(0)`` after each batch returns every free page (also
those in the middle of the heap) — measured in the performance chapter.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys
from collections.abc import Callable

__all__ = ["release_free_memory"]


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or ``None`` where there is none (macOS, Windows, musl)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_free_memory() -> bool:
    """Return free heap pages to the OS (glibc ``malloc_trim(0)``); ``False`` where unsupported."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
