"""Training XENT and CYBORG models: losses, recipes, and a seeded, resumable, cached training loop.

:mod:`~salience_lib.training.losses` holds the losses (cross-entropy, CYBORG as the authors' code computes
it, Boyd et al., WACV 2023, and the earlier ``cyborg_pooled`` variant),
:mod:`~salience_lib.training.config` the recipe (:class:`TrainConfig`) and its hash,
:mod:`~salience_lib.training.batches` the in-memory data and seeded batch order, and
:mod:`~salience_lib.training.loop` the loop that trains, resumes and reuses runs. The run folders it
writes (checkpoint + sidecar) are the format of :mod:`salience_lib.models.runs`, which also reads them
back (``load_model``, ``find_runs``).
"""

from salience_lib.training.config import (
    PAPER_OPTIMIZER,
    RECIPE_VERSION,
    TrainConfig,
    config_from_args,
    recipe_hash,
)
from salience_lib.training.loop import EpochCallback, main_train, train_on, train_one, train_runs
from salience_lib.training.losses import (
    cam_feature_layer,
    cyborg_loss,
    cyborg_pooled_loss,
    forward_with_features,
    pil_annotations,
    pool_annotations,
    xent_loss,
)

__all__ = [
    "PAPER_OPTIMIZER",
    "RECIPE_VERSION",
    "EpochCallback",
    "TrainConfig",
    "cam_feature_layer",
    "config_from_args",
    "cyborg_loss",
    "cyborg_pooled_loss",
    "forward_with_features",
    "main_train",
    "pil_annotations",
    "pool_annotations",
    "recipe_hash",
    "train_on",
    "train_one",
    "train_runs",
    "xent_loss",
]
