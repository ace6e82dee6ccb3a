"""Data sets in CYBORG's layout (SPEC §3, §5): the layout, the torch data sets, the data-set hash.

:mod:`~salience_lib.data.layout` holds the file names and CSV validation, :mod:`~salience_lib.data.decode`
the image decoding, :mod:`~salience_lib.data.datasets` the torch ``Dataset`` classes,
:mod:`~salience_lib.data.fingerprint` :func:`dataset_hash`, and :mod:`~salience_lib.data.synthetic` the
generator of synthetic face data sets.
"""

from salience_lib.data.datasets import CsvImageDataset, NonFaceDataset
from salience_lib.data.fingerprint import dataset_hash
from salience_lib.data.layout import (
    CSV_NAME,
    HEATMAP_DIR,
    LABELS,
    METADATA_NAME,
    NONFACE_NAME,
    SPLITS,
    CsvEntry,
    read_csv,
)

__all__ = [
    "CSV_NAME",
    "HEATMAP_DIR",
    "LABELS",
    "METADATA_NAME",
    "NONFACE_NAME",
    "SPLITS",
    "CsvEntry",
    "CsvImageDataset",
    "NonFaceDataset",
    "dataset_hash",
    "read_csv",
]
