"""Models: the classifiers the library builds and the run folders trained models live in.

:mod:`~salience_lib.models.builders` builds :class:`SalienceClassifier` models by architecture name
(``small_cnn`` and torchvision classifiers); :mod:`~salience_lib.models.runs` is the run-folder format
(checkpoint ``model.pt`` + JSON sidecar ``model.json``): writing it, reading it back, finding runs;
:mod:`~salience_lib.models.checkpoints` loads checkpoints trained anywhere (:func:`load_checkpoint`).
"""

from salience_lib.models.builders import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    GlobalAvgPool2d,
    Normalize,
    SalienceClassifier,
    build_model,
    known_architectures,
    small_cnn_features,
)
from salience_lib.models.checkpoints import NORMALIZATIONS, NormalizedModel, load_checkpoint, read_state_dict
from salience_lib.models.runs import (
    CLASSES,
    MODEL_FILE,
    RESUME_FILE,
    SIDECAR_FILE,
    SIDECAR_FORMAT,
    cpu_state,
    find_runs,
    load_model,
    read_sidecar,
    save_checkpoint,
    write_sidecar,
)

__all__ = [
    "CLASSES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MODEL_FILE",
    "NORMALIZATIONS",
    "RESUME_FILE",
    "SIDECAR_FILE",
    "SIDECAR_FORMAT",
    "GlobalAvgPool2d",
    "Normalize",
    "NormalizedModel",
    "SalienceClassifier",
    "build_model",
    "cpu_state",
    "find_runs",
    "known_architectures",
    "load_checkpoint",
    "load_model",
    "read_sidecar",
    "read_state_dict",
    "save_checkpoint",
    "small_cnn_features",
    "write_sidecar",
]
