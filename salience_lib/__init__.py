"""salience_lib: five measures that explain a vision model's behaviour at scale from its salience maps.

Measures (Crum et al., "Explain To Me: Salience-Based Explainability for Synthetic Face Detection
Models", IEEE TAI 2023, arXiv:2303.11969): entropy, out-of-set response, geometric consistency,
cross-run stability and salience-guided degradation.

The package is importable without Jupyter; submodules are imported on demand.
"""

__version__ = "0.1.0"
