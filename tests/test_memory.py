import sys

import pytest
import torch

from salience_lib.memory import release_free_memory


def _rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS line")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc_trim is Linux-only")
def test_release_returns_freed_tensor_memory_to_the_os():
    """Freed 1 MiB tensors with small live tensors between them stay resident until released."""
    warm = [torch.ones(1 << 21) for _ in range(2)]
    del warm  # freeing an mmapped 8 MiB block raises glibc's mmap threshold: 1 MiB blocks then use the heap
    release_free_memory()
    blocks, pins = [], []
    for _ in range(120):
        blocks.append(torch.ones(1 << 18))
        pins.append(torch.ones(16))
    del blocks
    before = _rss_mib()
    assert release_free_memory() is True
    after = _rss_mib()
    assert after < before - 60, (before, after)
    assert len(pins) == 120
