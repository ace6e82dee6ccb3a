"""Shared fixtures. Torch runs single-threaded: on a loaded 2-core machine more threads are slower."""

import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture
def generator() -> torch.Generator:
    """A seeded CPU generator, fresh for every test."""
    return torch.Generator().manual_seed(0)


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny generated 32-px data set (60 training images), shared by the data tests; never modify it."""
    from salience_lib.data import synthetic

    return synthetic.generate_dataset(tmp_path_factory.mktemp("data") / "tiny", 60, size=32, seed=2, progress=False)


@pytest.fixture
def root(generated: Path, tmp_path: Path) -> Path:
    """A private copy of the generated set that a test may corrupt."""
    return Path(shutil.copytree(generated, tmp_path / "copy"))


@pytest.fixture(autouse=True)
def _close_figures():
    """Close the figures a test left open (only where matplotlib is loaded: no import for other tests)."""
    yield
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close("all")
