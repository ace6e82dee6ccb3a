"""What the engine measures and how it runs: one frozen settings object, validated once.

The CLI takes its choices and defaults from here (:data:`MEASURES`, :data:`SPLITS`,
:data:`~salience_lib.similarity.SIMILARITIES`, :data:`~salience_lib.runtime.device.AMP_DTYPES`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from salience_lib import __version__
from salience_lib.measures.degradation import DEFAULT_FRACTIONS
from salience_lib.protocol import PROTOCOLS, Protocol, get_protocol
from salience_lib.runtime.device import AMP_DTYPES
from salience_lib.similarity import SIMILARITIES

__all__ = ["DEGRADATION_MODES", "ENGINE_VERSION", "MEASURES", "SPLITS", "EngineSettings", "SettingsError"]

# Bump when a change of the engine changes the numbers for given settings (invalidates cached results).
ENGINE_VERSION = 4  # 4: protocols ("paper" default); 3: 16-bit images scaled, shift groups from folders
SPLITS = ("train", "val", "test")
MEASURES = ("entropy", "out_of_set", "geometric", "stability", "degradation")
"""The five measures (a)–(e); accuracy and the ground-truth checks (annotations, masks) come with every run."""
DEGRADATION_MODES = ("background", "salient")
_EXECUTION_FIELDS = ("batch_size", "num_workers", "device", "progress")


class SettingsError(ValueError):
    """A bad setting; the message names it (and its command-line flag)."""


@dataclass(frozen=True)
class EngineSettings:
    """What to measure and how to run it.

    Attributes:
        split: ``train``, ``val`` or ``test`` (for a CYBORG-layout folder).
        csv: the folder's CSV (absolute or relative to it); ``None``: ``dataset.csv``.
        similarity: a name in :data:`salience_lib.similarity.SIMILARITIES`.
        map_size: upsample maps to this side before every measure (``None``: Grad-CAM's native size).
        image_size: resize images to this side (``None``: the models' common training size, else native).
        amp: ``none``, ``bf16`` or ``fp16`` autocast for Grad-CAM.
        limit: only the first ``limit`` images of the split (and of the non-face set).
        seed: seed of the salt-and-pepper noise and the random maps (drawn per image index).
        in_set_groups: groups whose mean map is the in-set reference of distribution shift (metadata
            groups, or folder groups ``<family>_aligned``; at the default and with folder groups
            none of which is named, the Real images' groups).
        measures: which of :data:`MEASURES` to run (the clean pass always runs: entropy, accuracy,
            ground truth and the maps of stability cost nothing extra).
        protocol: ``"paper"`` (the authors' steps, the default) or ``"refined"`` (ours), see
            :mod:`salience_lib.protocol` — or a :class:`~salience_lib.protocol.Protocol` of your own
            (e.g. ``dataclasses.replace(PAPER, blur_border="replicate")``, to measure what one step
            changes); every field of it is part of a cache key.
        batch_size, num_workers, device, progress: execution only; not part of a cache key (the
            batch size can move float32 results in the last digits).
    """

    split: str = "test"
    csv: str | None = None
    similarity: str = "ssim"
    map_size: int | None = None
    image_size: int | None = None
    amp: str = "none"
    limit: int | None = None
    seed: int = 0
    in_set_groups: tuple[str, ...] = ("real", "seen")
    measures: tuple[str, ...] = MEASURES
    protocol: str | Protocol = "paper"
    batch_size: int = 64
    num_workers: int = 0
    device: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "in_set_groups", tuple(self.in_set_groups))
        object.__setattr__(self, "measures", tuple(self.measures))
        if self.amp is None:
            object.__setattr__(self, "amp", "none")
        choices = {"split": SPLITS, "similarity": tuple(SIMILARITIES), "amp": tuple(AMP_DTYPES)}
        if not isinstance(self.protocol, Protocol):
            choices["protocol"] = tuple(PROTOCOLS)
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise SettingsError(f"unknown `{name}` (--{name}) {getattr(self, name)!r}; choose from {list(allowed)}")
        unknown = [m for m in self.measures if m not in MEASURES]
        if unknown:
            raise SettingsError(f"unknown `measures` (--measures) {unknown}; choose from {list(MEASURES)}")
        for name in ("map_size", "image_size", "limit", "batch_size"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise SettingsError(f"`{name}` (--{name.replace('_', '-')}) must be a positive integer, got {value!r}")
        if self.num_workers < 0 or not 0 <= self.seed < 2**32:
            raise SettingsError(f"need --num-workers >= 0 and 0 <= --seed < 2**32, got {self.num_workers}, {self.seed}")

    def runs(self, measure: str) -> bool:
        """Whether ``measure`` is among the chosen ones."""
        return measure in self.measures

    @property
    def chosen_protocol(self) -> Protocol:
        """The :class:`~salience_lib.protocol.Protocol` named by ``protocol`` (or ``protocol`` itself)."""
        return get_protocol(self.protocol)

    def measured(self) -> dict[str, Any]:
        """The settings that change the numbers, with the protocol's constants (a cache key's input)."""
        chosen = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _EXECUTION_FIELDS}
        chosen["protocol"] = self.chosen_protocol.name
        return chosen | {
            "measures": sorted(self.measures),
            "salience": "gradcam (predicted class, automatic target layer)",
            "protocol_steps": self.chosen_protocol.describe(),
            "degradation_modes": list(DEGRADATION_MODES),
            "deletion_fractions": list(DEFAULT_FRACTIONS),
            "degradation_reference_size": 224,
            "annotation_resize": "area when shrinking, bilinear when growing (maps.match_size)",
            "pointing_game_tolerance_px_at_224": 15,
            "confidence": 0.95,
            "bootstrap_resamples": 2000,
            "engine_version": ENGINE_VERSION,
            "library_version": __version__,
        }
