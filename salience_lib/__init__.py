"""salience_lib: five measures that explain a vision model's behaviour at scale from its salience maps.

Measures (Crum et al., "Explain To Me: Salience-Based Explainability for Synthetic Face Detection
Models", IEEE TAI 2023, arXiv:2303.11969): entropy, out-of-set response, geometric consistency,
cross-run stability and salience-guided degradation.

The package is importable without Jupyter; submodules are imported on demand.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "evaluate", "load_checkpoint"]


def __getattr__(name: str) -> object:
    """``salience_lib.evaluate`` and ``salience_lib.load_checkpoint`` without importing torch at package import."""
    if name == "evaluate":
        from salience_lib.engine import evaluate

        return evaluate
    if name == "load_checkpoint":
        from salience_lib.models.checkpoints import load_checkpoint

        return load_checkpoint
    raise AttributeError(f"module 'salience_lib' has no attribute {name!r}")
