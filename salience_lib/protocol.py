"""The two protocols: every choice a measure makes that the paper's authors made one way and we another.

Crum et al. (2023) published their code (GitHub ``taisubmission23/Explain2Me``); read beside it, a
handful of steps can be done more than one way. :class:`Protocol` names each such step; the measure
functions take the pieces as arguments (none of them branches on a protocol's name), and the engine
passes the pieces of the chosen protocol. Two are registered (:data:`PROTOCOLS`):

``"paper"`` (the default) — the authors' code, generalised to other input sides by scaling their
pixel constants with ``side/224`` and using the model's native map where they use 7×7:

* maps are saved as 8 bits by truncation (torchvision's ``to_pil_image``: ``mul(255).byte()``), and
  every measure reads the 8-bit map — (a) the entropy of its grey levels (skimage's
  ``shannon_entropy``, normalised by ``log2 min(N, 256)``: their notebook divides by ``log2 49``),
  (d) skimage's SSIM of two 8-bit maps (7×7 window, data range 255);
* maps reach the input size by PIL's bicubic resize of the 8-bit map (their "upscaled" file);
* (b) skimage's ``random_noise(mode="s&p")``: each element (each colour channel) replaced with
  probability ``amount``; the score is ``sigmoid`` of the logit of class 1 ("Synthetic");
* (c) 12 transforms: both flips, ±90°, 8 shifts by ``side/14`` with edge replication;
* (e) the guided blur of their ``blur_image``: the 8-bit upscaled map smoothed (σ = 5 px at 224),
  divided by its maximum, rounded to 0.1; σ = (10 − s)⁴/1000 per level with scipy's ``reflect``
  border, on the 8-bit image; mode ``salient`` blurs with ``255 − map`` before smoothing.

``"refined"`` — this project's choices (float maps; whole-pixel grey noise of exactly
``round(f·HW)`` pixels; softmax probability of the clean prediction; 14 transforms with out-of-frame
pixels masked; min–max levels, replicate border; ...), each kept only where the book's page "The
paper's protocol and ours" shows a measured reason.

Where the authors' code does not show a step, ``"paper"`` makes the choice most consistent with
their other code and lists it in :attr:`Protocol.assumed`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = [
    "PAPER",
    "PAPER_TRANSFORMS",
    "PROTOCOLS",
    "REFINED",
    "REFINED_TRANSFORMS",
    "SALT_AND_PEPPER_AMOUNTS",
    "Protocol",
    "get_protocol",
]

PAPER_TRANSFORMS: tuple[str, ...] = (
    "hflip", "vflip", "rot90", "rot-90",
    "shift_n", "shift_ne", "shift_e", "shift_se", "shift_s", "shift_sw", "shift_w", "shift_nw",
)  # fmt: skip
"""The authors' 12 transforms (their Transformations notebook): flips, ±90°, 8 shifts by side/14."""

REFINED_TRANSFORMS: tuple[str, ...] = (*PAPER_TRANSFORMS, "rotate:30", "scale:1.25")
"""Ours: the paper's 12 plus an arbitrary rotation (30°) and a zoom (×1.25)."""

SALT_AND_PEPPER_AMOUNTS: tuple[float, ...] = (0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0)
"""The authors' amounts (``noise-varying-intensities.py``), used by both protocols."""


@dataclass(frozen=True)
class Protocol:
    """Every choice that differs between the authors' code and ours (module docstring).

    Attributes:
        name: the registered name (``"paper"``, ``"refined"``).
        map_bits: ``8``: maps are truncated to 8 bits (:func:`salience_lib.maps.to_uint8`) before
            every measure reads them; ``None``: float maps.
        upsample: how a map reaches the input size — ``"pil_bicubic"`` (PIL's bicubic resize of the
            8-bit map, rounded to 8 bits) or ``"bilinear"`` (torch, float).
        noise: ``"per_element"`` (skimage's ``random_noise(mode="s&p")``: every element replaced with
            probability ``amount``, colour noise) or ``"per_pixel"`` (exactly ``round(f·H·W)`` whole
            pixels, grey).
        noise_amounts: the salt-and-pepper schedule.
        score: ``"sigmoid_synthetic"`` (σ of the logit of class 1, the authors' ``PAScore``) or
            ``"softmax_predicted"`` (softmax probability of the class predicted on the clean image).
        transforms: the geometric transforms (names of :mod:`salience_lib.transforms`).
        mask_out_of_frame: (c) compare only pixels a transform did not bring in from outside, each
            map min–max renormalised over them; ``False``: the whole maps.
        degradation_compare_at: where (e) compares the map of the degraded image with the clean
            one — ``"input"`` (both brought to the input size by ``upsample``: the authors' 224-px
            "upscaled" files) or ``"map"`` (the native / ``map_size`` maps). (b) and (d) compare
            the maps themselves in both protocols (the authors' "small" 7×7 files); (c) always at
            the input size, where a shift of side/14 px is defined.
        blur_levels: (e) how the smoothed guide becomes levels s in [0, 10] — ``"max"`` (divided
            by its maximum, the authors') or ``"minmax"``.
        blur_border: (e) border of every Gaussian blur — ``"reflect"`` (scipy's default, the
            authors') or ``"replicate"``.
        salient_mode: (e) how mode ``salient`` is made — ``"invert_map"`` (``1 − map`` before
            smoothing, the authors' ``255 − cam``) or ``"invert_levels"`` (``10 − s`` after).
        blur_bits: (e) ``8``: the image and each blurred copy are 8-bit (scipy on ``uint8``);
            ``None``: float.
        assumed: fields whose value the authors' code does not show (chosen to fit their other code).
    """

    name: str
    map_bits: int | None
    upsample: Literal["pil_bicubic", "bilinear"]
    noise: Literal["per_element", "per_pixel"]
    noise_amounts: tuple[float, ...]
    score: Literal["sigmoid_synthetic", "softmax_predicted"]
    transforms: tuple[str, ...]
    mask_out_of_frame: bool
    degradation_compare_at: Literal["map", "input"]
    blur_levels: Literal["max", "minmax"]
    blur_border: Literal["reflect", "replicate"]
    salient_mode: Literal["invert_map", "invert_levels"]
    blur_bits: int | None
    assumed: tuple[str, ...] = field(default=())

    def describe(self) -> dict[str, Any]:
        """Every field, JSON-ready: what a cache key and a report's settings record."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


PAPER = Protocol(
    name="paper",
    map_bits=8,
    upsample="pil_bicubic",
    noise="per_element",
    noise_amounts=SALT_AND_PEPPER_AMOUNTS,
    score="sigmoid_synthetic",
    transforms=PAPER_TRANSFORMS,
    mask_out_of_frame=False,
    degradation_compare_at="input",
    blur_levels="max",
    blur_border="reflect",
    salient_mode="invert_map",
    blur_bits=8,
    # Not in their code: how the transformed maps (c) were compared. We compare their "upscaled"
    # maps (the default of their augmented-cams.py) over the whole image, without a mask.
    assumed=("mask_out_of_frame",),
)

REFINED = Protocol(
    name="refined",
    map_bits=None,
    upsample="bilinear",
    noise="per_pixel",
    noise_amounts=SALT_AND_PEPPER_AMOUNTS,
    score="softmax_predicted",
    transforms=REFINED_TRANSFORMS,
    mask_out_of_frame=True,
    degradation_compare_at="map",
    blur_levels="minmax",
    blur_border="replicate",
    salient_mode="invert_levels",
    blur_bits=None,
)

PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (PAPER, REFINED)}


def get_protocol(protocol: str | Protocol) -> Protocol:
    """The registered :class:`Protocol` of that name, or ``protocol`` itself.

    Raises:
        ValueError: an unknown name (the message lists the known ones and the option).
    """
    if isinstance(protocol, Protocol):
        return protocol
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown `protocol` (--protocol) {protocol!r}; choose from {list(PROTOCOLS)}")
    return PROTOCOLS[protocol]
