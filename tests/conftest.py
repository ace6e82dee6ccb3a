"""Shared fixtures. Torch runs single-threaded: on a loaded 2-core machine more threads are slower."""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture
def generator() -> torch.Generator:
    """A seeded CPU generator, fresh for every test."""
    return torch.Generator().manual_seed(0)
