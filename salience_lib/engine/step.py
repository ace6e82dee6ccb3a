"""One model's measures, fed batch by batch from one shared clean pass (the pass floor, SPEC §8).

For every batch of in-set images, :class:`ModelMeasures` runs ONE clean Grad-CAM whose logits are
also the clean probabilities, and hands the clean maps and probabilities to every measure:

==========================  ===========================================================  ======
measure                     what it adds per image                                        passes
==========================  ===========================================================  ======
(a) entropy, ground truth   entropy of the clean map; accuracy, AUCs; mask mass,          1
                            pointing game, annotation agreement (clean maps only)
(b) salt-and-pepper         Grad-CAM of 7 noisy copies (severity 0 is the clean pass)     7
(c) geometric               Grad-CAM of 14 (``"paper"``: 12) transformed copies           14
(e) guided degradation      Grad-CAM of 4 degraded copies (2 modes × salience/random)     4
(e) deletion                forwards at 10 fractions > 0 × 2 rankings                     20
(d) stability, (b) shift    the clean native maps are kept (h·w floats per image)         0
==========================  ===========================================================  ======

— 46 passes per image and model (44 under the ``"paper"`` protocol, 12 transforms); a non-face
image costs one pass (its clean map). The kept maps
feed distribution shift after the pass (their similarity to the model's mean in-set map, which is
only known then) and cross-run stability across models (:mod:`salience_lib.engine.run`).

Never a silent wrong number (SPEC §9): the model's parameters are checked to be finite once, each
batch's images to be finite and in [0, 1], and the clean pass's logits and maps to be finite (one
host synchronisation each); any ValueError met on the way names the model, the measure and the images.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from salience_lib.engine.settings import DEGRADATION_MODES, EngineSettings
from salience_lib.engine.sources import Batch, Source
from salience_lib.engine.subjects import Subject
from salience_lib.imaging import check_unit_images, outside_unit_range
from salience_lib.inference import get_score, probabilities
from salience_lib.maps import check_finite, minmax_normalise, quantise, resize_maps
from salience_lib.measures.accumulator import ValuesAccumulator
from salience_lib.measures.degradation import (
    DegradationAccumulator,
    DeletionAccumulator,
    degradation_effect,
    deletion_blur,
    deletion_curve,
)
from salience_lib.measures.entropy import EntropyAccumulator
from salience_lib.measures.geometric import GeometricAccumulator, geometric_consistency
from salience_lib.measures.ground_truth import DetectionAccumulator, LocalisationAccumulator
from salience_lib.measures.out_of_set import (
    MeanMapAccumulator,
    PerturbationAccumulator,
    perturbation_curve,
)
from salience_lib.measures.probe import Similarity
from salience_lib.measures.stability import agreement_with_reference
from salience_lib.runtime import distributed as dist_utils
from salience_lib.runtime.device import amp_dtype
from salience_lib.salience import GradCAM

__all__ = ["KeptMaps", "ModelMeasures", "maps_at"]

_RANDOM_MAP_STREAM = 1_000_003
ENTROPY_KINDS = ("histogram", "spatial")


def maps_at(native: torch.Tensor, size: tuple[int, int] | None) -> torch.Tensor:
    """Native maps at ``size``: bilinear upsampling then min–max — what Grad-CAM at that size returns.

    (Min–max commutes with the affine, weights-summing-to-one interpolation, so normalising the
    native map first changes nothing beyond float rounding.)
    """
    if size is None or tuple(native.shape[-2:]) == tuple(size):
        return native
    return minmax_normalise(resize_maps(native.float(), size))


@dataclass
class KeptMaps:
    """This rank's clean native maps of one model, in image-index order, with each image's group."""

    index: torch.Tensor
    maps: torch.Tensor
    group: torch.Tensor


class ModelMeasures:
    """Every accumulator of one model and the per-batch update that feeds them (module docstring)."""

    def __init__(
        self, subject: Subject, model: nn.Module, source: Source, settings: EngineSettings, similarity: Similarity
    ) -> None:
        self.subject, self.model, self.source, self.settings, self.similarity = (
            subject, model, source, settings, similarity,
        )
        self._check_parameters()
        self.protocol = settings.chosen_protocol
        self.score = get_score(self.protocol.score)
        self.cam = GradCAM(model, autocast_dtype=amp_dtype(settings.amp))
        self.size = None if settings.map_size is None else (settings.map_size, settings.map_size)
        self.explainer = self.cam.at(self.size, bits=self.protocol.map_bits)
        self.native_size: tuple[int, int] | None = None
        groups = source.groups
        self.entropy = {kind: EntropyAccumulator(kind) for kind in ENTROPY_KINDS}
        self.detection = DetectionAccumulator(groups)
        self.localisation = LocalisationAccumulator(groups) if source.masks else None
        self.annotation = ValuesAccumulator(["agreement"]) if source.annotations else None
        self.mean_map: MeanMapAccumulator | None = None
        runs = settings.runs
        curve = PerturbationAccumulator("salt_and_pepper", self.protocol.noise_amounts)
        self.curve = curve if runs("out_of_set") else None
        self.geometric = GeometricAccumulator(self.protocol.transforms) if runs("geometric") else None
        self.single = {
            f"{kind}{mode}": DegradationAccumulator(mode) for kind in ("", "random_") for mode in DEGRADATION_MODES
        } if runs("degradation") else {}
        self.deletion = {"deletion": DeletionAccumulator(), "deletion_random": DeletionAccumulator()} if runs(
            "degradation"
        ) else {}
        self.timing: dict[str, float] = {}
        self._kept: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    # -- checks -------------------------------------------------------------------------------------
    def _check_parameters(self) -> None:
        """Refuse a model whose parameters hold NaN or inf (one synchronisation, once per model)."""
        named = [(name, p) for name, p in self.model.named_parameters() if p.is_floating_point()]
        if not named:
            return
        device = named[0][1].device
        flags = torch.stack([torch.isfinite(p.detach()).all().to(device) for _, p in named]).tolist()
        bad = [name for (name, _), ok in zip(named, flags, strict=True) if not ok]
        if bad:
            shown = ", ".join(bad[:5]) + (", ..." if len(bad) > 5 else "")
            raise ValueError(
                f"model {self.subject.name}, measure all: its weights contain NaN or inf ({len(bad)} of "
                f"{len(named)} parameters: {shown}); every measure would be meaningless"
            )

    def _images(self, batch: Batch, bad: torch.Tensor) -> str:
        """The images of ``batch`` at the ``(B,)`` bool ``bad``, by global index and path where known."""
        dataset, offset = (self.source.nonface, self.source.n) if batch.nonface else (self.source.dataset, 0)
        paths = getattr(dataset, "paths", None)
        chosen = batch.index[bad].tolist()
        names = [f"#{i} ({paths[i - offset]})" if paths is not None else f"#{i}" for i in chosen[:4]]
        return f"image{'s' if len(chosen) > 1 else ''} " + ", ".join(names) + (", ..." if len(chosen) > 4 else "")

    @contextlib.contextmanager
    def _measuring(self, measure: str, batch: Batch) -> Iterator[None]:
        """Re-raise a ValueError as one naming the model, the measure and the batch's images."""
        try:
            yield
        except ValueError as err:
            first, last = batch.index[0].item(), batch.index[-1].item()
            raise ValueError(
                f"model {self.subject.name}, measure {measure}: {err} (in the batch of images #{first}–#{last})"
            ) from err

    def _check_inputs(self, batch: Batch) -> None:
        """Each batch from the data: images finite and in [0, 1] (one synchronisation)."""
        try:
            check_unit_images(batch.images)
        except ValueError as err:
            images = self._images(batch, outside_unit_range(batch.images))
            raise ValueError(f"model {self.subject.name}, measure all (input check): {images}: {err}") from err

    def _check_clean(self, batch: Batch, logits: torch.Tensor, maps: torch.Tensor) -> None:
        """The clean pass, which every measure uses: logits and maps finite (one synchronisation)."""
        try:
            check_finite(("the model's logits", logits), ("its Grad-CAM maps", maps))
        except ValueError as err:
            bad = ~(torch.isfinite(logits).all(dim=1) & torch.isfinite(maps).flatten(1).all(dim=1))
            raise ValueError(
                f"model {self.subject.name}, measure all (clean Grad-CAM pass): {self._images(batch, bad)}: "
                f"{err}; the images are finite, so the weights or the model's arithmetic are not"
            ) from err

    # -- the per-batch update -----------------------------------------------------------------------
    def _timed(self, name: str, start: float) -> float:
        now = time.perf_counter()
        self.timing[name] = self.timing.get(name, 0.0) + now - start
        return now

    def probe(self, image: torch.Tensor) -> None:
        """Learn the native map size from one image before the pass (a sharded run: a rank may get no batch)."""
        self._check_size(self.cam(image[None]))

    def _check_size(self, native: torch.Tensor) -> None:
        self.native_size = tuple(native.shape[-2:])
        self.mean_map = MeanMapAccumulator(self.size or self.native_size).to(native.device)
        size = self.size or self.native_size
        if self.settings.similarity == "ssim" and min(size) < 7:
            raise ValueError(
                f"model {self.subject.name}: maps of {size[0]}×{size[1]} px (Grad-CAM's own: "
                f"{self.native_size[0]}×{self.native_size[1]}) are smaller than SSIM's 7×7 window; "
                "pass map_size=16 (--map-size 16) or another similarity"
            )

    def update(self, batch: Batch) -> None:
        """Measure one batch (its clean pass is shared by every measure)."""
        start = time.perf_counter()
        self._check_inputs(batch)
        explained = self.cam.explain(batch.images)
        native, clean = explained.maps, self.score.scores(explained.logits)
        self._check_clean(batch, explained.logits, native)
        if self.native_size is None:
            self._check_size(native)
        bits = self.protocol.map_bits  # the "paper" protocol's measures read 8-bit maps
        native, maps = quantise(native, bits), quantise(maps_at(native, self.size), bits)
        self._kept.append((batch.index.cpu(), native.cpu(), batch.group.cpu()))
        if batch.nonface:
            self._timed("clean", start)
            return
        with self._measuring("entropy", batch):
            for acc in self.entropy.values():
                acc.update(maps)
        with self._measuring("ground truth", batch):
            self.detection.update(probabilities(explained.logits), batch.labels, batch.group, batch.shortcut)
            if self.localisation is not None and batch.mask is not None:
                self.localisation.update(maps, batch.mask, batch.group)
        if self.annotation is not None and batch.annotation is not None and bool(batch.annotated.any()):
            keep = batch.annotated  # images without a heatmap carry NaN maps: never measured
            with self._measuring("annotation agreement", batch):
                agreement = agreement_with_reference(maps[keep], batch.annotation[keep], self.similarity)
                self.annotation.update("agreement", agreement)
        if bool(batch.in_set.any()):
            with self._measuring("out_of_set (distribution shift)", batch):
                self.mean_map.update(maps[batch.in_set])
        start = self._timed("clean", start)
        shared = {"clean_maps": maps, "clean_probabilities": clean}
        if self.curve is not None:
            per_channel = self.protocol.noise == "per_element"
            family = dist_utils.indexed_salt_and_pepper(batch.index, self.settings.seed, per_channel)
            with self._measuring("out_of_set (salt_and_pepper)", batch):
                self.curve.update(
                    perturbation_curve(
                        self.model, self.explainer, batch.images, family, self.protocol.noise_amounts,
                        self.similarity, score=self.score, **shared,
                    )
                )
            start = self._timed("out_of_set", start)
        if self.geometric is not None:
            with self._measuring("geometric", batch):
                scores = geometric_consistency(
                    self.explainer, batch.images, self.protocol.transforms, self.similarity, clean_maps=maps,
                    mask_out_of_frame=self.protocol.mask_out_of_frame, upsample=self.protocol.upsample,
                )
                self.geometric.update(scores)
            start = self._timed("geometric", start)
        if self.single:
            with self._measuring("degradation", batch):
                self._degrade(batch, maps, clean, shared)
            self._timed("degradation", start)

    def _random_maps(self, index: torch.Tensor) -> torch.Tensor:
        """Random maps at Grad-CAM's native resolution (blobs once upsampled): the degradation baseline."""
        assert self.native_size is not None
        height, width = self.native_size
        noise = dist_utils.indexed_uniform(index, height * width, self.settings.seed, _RANDOM_MAP_STREAM)
        noise = noise.view(-1, height, width)
        return noise if self.size is None else resize_maps(noise, self.size)

    def _degrade(self, batch: Batch, maps: torch.Tensor, clean: torch.Tensor, shared: dict[str, Any]) -> None:
        noise = self._random_maps(batch.index)
        for mode in DEGRADATION_MODES:
            for kind, guide in (("", None), ("random_", noise)):
                effect = degradation_effect(
                    self.model, self.explainer, batch.images, mode, self.similarity, guide,
                    protocol=self.protocol, **shared,
                )
                self.single[f"{kind}{mode}"].update(effect)
        blurred = deletion_blur(batch.images)  # one blur, two rankings
        for key, guide in (("deletion", maps), ("deletion_random", noise)):
            curve = deletion_curve(
                self.model, guide, batch.images, clean_probabilities=clean, blurred=blurred, score=self.score
            )
            self.deletion[key].update(curve)

    # -- after the pass -----------------------------------------------------------------------------
    def kept_maps(self) -> KeptMaps:
        """This rank's clean native maps (in-set and non-face images), in index order."""
        if not self._kept:
            empty = torch.empty(0, dtype=torch.long)
            return KeptMaps(empty, torch.empty(0, *(self.native_size or (1, 1))), empty)
        index, maps, group = (torch.cat(parts) for parts in zip(*self._kept, strict=True))
        order = index.argsort()
        return KeptMaps(index[order], maps[order], group[order])

    def close(self) -> None:
        """Release the Grad-CAM (no hooks outlive a call; this only refuses later calls)."""
        self.cam.close()
