"""A live explorer for a Jupyter kernel: point the measures at an image and a model, and watch them change.

:func:`explore` returns an :class:`Explorer`, a widget with one control per choice — the image, the
model, the salience method, the measure and the measure's parameter — above a picture
(``ipywidgets.Image``, PNG bytes) and the measure's number. Every change of a control recomputes
the number with the library's own measure function and redraws the picture:

========================  ============================  ===========================================
measure                   parameter                     number (library call)
========================  ============================  ===========================================
``entropy``  (a)          entropy kind                  :func:`~salience_lib.measures.entropy.salience_entropy`
``out_of_set``  (b)       salt-and-pepper fraction      SSIM of S(noisy) to S(clean), from
                                                        :func:`~salience_lib.measures.out_of_set.perturbation_curve`
``geometric``  (c)        transform                     :func:`~salience_lib.measures.geometric.geometric_consistency`
``degradation``  (e)      blur mode                     probability drop, from
                                                        :func:`~salience_lib.measures.degradation.degradation_effect`
``deletion``  (e)         deleted fraction q            probability after deleting the top q, from
                                                        :func:`~salience_lib.measures.degradation.deletion_curve`
========================  ============================  ===========================================

Callbacks run in the kernel, so on a static page (no kernel) the controls change nothing: the
book shows precomputed frames there (:meth:`Explorer.frames` and
:func:`~salience_lib.book.widgets.frame_dropdown`). Stability (d) needs several models at once and
is not a per-image measure, so it has no entry here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as widgets
import torch
from torch import nn

from salience_lib.book.figures import gallery, to_png
from salience_lib.inference import class_probabilities
from salience_lib.maps import minmax_normalise, resize_maps, top_fraction_mask
from salience_lib.measures import degradation, entropy, geometric, out_of_set
from salience_lib.salience import CAM, GradCAM, GradCAMPlusPlus, InputGradient
from salience_lib.transforms import DEFAULT_TRANSFORMS, get_transform, transform_maps

__all__ = ["MEASURES", "METHODS", "Explorer", "explore"]

METHODS: dict[str, type] = {
    "Grad-CAM": GradCAM,
    "Grad-CAM++": GradCAMPlusPlus,
    "CAM": CAM,
    "input gradient": InputGradient,
}
"""The salience methods the explorer offers, by the label of its dropdown (CAM only where it applies)."""

MEASURES: dict[str, str] = {
    "entropy": "(a) entropy",
    "out_of_set": "(b) salt-and-pepper noise",
    "geometric": "(c) geometric transform",
    "degradation": "(e) salience-guided blur",
    "deletion": "(e) deletion",
}
"""The measures the explorer offers: key -> the label of its dropdown."""

_STYLE = {"description_width": "initial"}


def _as_models(models: Mapping[str, Any] | Sequence[nn.Module]) -> dict[str, nn.Module]:
    """``label -> model`` from a mapping (values a model, or ``(model, sidecar)`` as ``load_runs`` gives) or a list."""
    items = models.items() if isinstance(models, Mapping) else ((f"model {i + 1}", m) for i, m in enumerate(models))
    out = {}
    for label, model in items:
        model = model[0] if isinstance(model, tuple) else model
        if not isinstance(model, nn.Module):
            raise TypeError(f"model {label!r} must be a torch.nn.Module, got {type(model).__name__}")
        out[str(label)] = model
    if not out:
        raise ValueError("`models` is empty: give at least one model")
    return out


def _as_images(images: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    """A batch ``(B, 3, H, W)`` in [0, 1] from a batch or a list of ``(3, H, W)`` images."""
    if not isinstance(images, torch.Tensor):
        images = torch.stack(list(images)) if len(images) else torch.empty(0)
    if images.ndim != 4 or len(images) == 0 or images.shape[1] != 3:
        raise ValueError(f"`images` must be a non-empty batch (B, 3, H, W), got shape {tuple(images.shape)}")
    if not bool(torch.isfinite(images).all()) or float(images.min()) < 0 or float(images.max()) > 1:
        raise ValueError("`images` must be finite and lie in [0, 1]")
    return images.float()


def _applicable(method: type, models: Mapping[str, nn.Module], image: torch.Tensor) -> bool:
    """Whether ``method`` explains every model (CAM needs a linear head after global pooling)."""
    try:
        for model in models.values():
            with method(model) as explain:
                explain(image)
    except (ValueError, TypeError):
        return False
    return True


class Explorer(widgets.VBox):
    """Controls above a picture and a number; every control change recomputes both (see the module docstring).

    Made by :func:`explore`. Set a control's ``value`` (``explorer.controls["measure"].value =
    "geometric"``) from Python or in the browser with a kernel: the picture and :attr:`value` follow.

    Attributes:
        controls: ``"image"``, ``"model"``, ``"method"``, ``"measure"``, and one parameter control
            per measure: ``"kind"``, ``"fraction"``, ``"transform"``, ``"mode"``, ``"deleted"``.
        picture: the ``ipywidgets.Image`` showing the current picture (PNG bytes in ``picture.value``).
        readout: an ``HTML`` widget with the measure's name and number.
        value: the measure's number for the current settings (a float).
        details: the other numbers of the current settings (e.g. probabilities), by name.
    """

    def __init__(
        self,
        models: dict[str, nn.Module],
        images: torch.Tensor,
        *,
        image_labels: Sequence[str],
        methods: Sequence[str],
        measure: str,
        seed: int,
        panel_size: float,
    ) -> None:
        self.models, self.images, self.seed, self.panel_size = models, images, seed, panel_size
        self.value: float = float("nan")
        self.details: dict[str, float] = {}
        # Menus, not ToggleButtons: a ToggleButtons model in a page's widget state makes the offline
        # widget bundle request its icon fonts from a wrong path (404s on the static site).
        c = {
            "image": widgets.Dropdown(options=[(label, i) for i, label in enumerate(image_labels)], value=0,
                                      description="image", style=_STYLE),
            "model": widgets.Dropdown(options=list(models), description="model", style=_STYLE),
            "method": widgets.Dropdown(options=list(methods), description="salience", style=_STYLE),
            "measure": widgets.Dropdown(options=[(label, key) for key, label in MEASURES.items()], value=measure,
                                        description="measure", style=_STYLE),
            "kind": widgets.Dropdown(options=["histogram", "spatial"], description="entropy", style=_STYLE),
            "fraction": widgets.FloatSlider(value=0.1, min=0.01, max=1.0, step=0.01, description="noise fraction",
                                            continuous_update=False, style=_STYLE),
            "transform": widgets.Dropdown(options=list(DEFAULT_TRANSFORMS), description="transform", style=_STYLE),
            "mode": widgets.Dropdown(options=["background", "salient"], description="blur", style=_STYLE),
            "deleted": widgets.FloatSlider(value=0.2, min=0.1, max=1.0, step=0.1, description="deleted fraction q",
                                           continuous_update=False, style=_STYLE),
        }
        self.controls: dict[str, widgets.Widget] = c
        self._parameter = {"entropy": "kind", "out_of_set": "fraction", "geometric": "transform",
                           "degradation": "mode", "deletion": "deleted"}  # fmt: skip
        self.picture = widgets.Image(format="png", layout=widgets.Layout(max_width="100%", height="auto"))
        self.readout = widgets.HTML()
        rows = [widgets.HBox([c["image"], c["model"], c["method"]]), c["measure"],
                *(c[name] for name in self._parameter.values())]  # fmt: skip
        super().__init__([*rows, self.readout, self.picture], layout=widgets.Layout(width="100%"))
        self.add_class("salience-explorer")
        self._paused = False
        for control in c.values():
            control.observe(self._changed, names="value")
        self.refresh()

    def _changed(self, _change: Any) -> None:
        if not self._paused:
            self.refresh()

    @property
    def png(self) -> bytes:
        """The PNG bytes of the picture shown now."""
        return bytes(self.picture.value)

    def settings(self) -> dict[str, Any]:
        """The current value of every control, by name."""
        return {name: control.value for name, control in self.controls.items()}

    def refresh(self) -> None:
        """Recompute the measure for the current settings and redraw; the parameter shown is the measure's."""
        measure = self.controls["measure"].value
        for key, name in self._parameter.items():
            self.controls[name].layout.display = None if key == measure else "none"
        model = self.models[self.controls["model"].value]
        image = self.images[self.controls["image"].value][None]
        with METHODS[self.controls["method"].value](model) as explain:
            clean = explain(image)
            name, self.value, self.details, panels = getattr(self, f"_{measure}")(model, explain, image, clean)
        titles = [title for title, _, _ in panels]
        fig = gallery([p for _, p, _ in panels], maps=[m for _, _, m in panels], titles=titles,
                      ncols=len(panels), panel_size=self.panel_size)  # fmt: skip
        extra = "".join(f", {k} = {v:.3f}" for k, v in self.details.items())
        context = " · ".join(self._label(key) for key in ("model", "method", "image"))
        fig.suptitle(f"{context}\n{name} = {self.value:.3f}{extra}", fontsize="small")
        fig.tight_layout()
        self.picture.value = to_png(fig)
        self.readout.value = f"<b>{MEASURES[measure]}</b>: {name} = {self.value:.4f}{extra}"

    # One method per measure: (number's name, number, other numbers, panels as (title, image, map or None)).

    def _entropy(self, model: nn.Module, explain: Any, image: torch.Tensor, clean: torch.Tensor) -> tuple:
        kind = self.controls["kind"].value
        value = float(entropy.salience_entropy(clean, kind)[0])
        side = f"{clean.shape[-2]}×{clean.shape[-1]}"
        return f"{kind} entropy ({side} map)", value, {}, [("image", image[0], None), ("S(x)", image[0], clean[0])]

    def _out_of_set(self, model: nn.Module, explain: Any, image: torch.Tensor, clean: torch.Tensor) -> tuple:
        fraction = float(self.controls["fraction"].value)
        curve = out_of_set.perturbation_curve(
            model, explain, image, "salt_and_pepper", (0.0, fraction), generator=self._generator(), clean_maps=clean
        )
        noisy = out_of_set.salt_and_pepper(image, fraction, self._generator())  # fraction 0 draws nothing: same noise
        details = {"p clean": float(curve.clean_probability[0]), "p noisy": float(curve.probability[0, -1])}
        panels = [("S(x)", image[0], clean[0]), (f"noise {fraction:.0%}", noisy[0], None),
                  ("S(noisy)", noisy[0], explain(noisy)[0])]  # fmt: skip
        return "SSIM to S(x)", float(curve.similarity[0, -1]), details, panels

    def _geometric(self, model: nn.Module, explain: Any, image: torch.Tensor, clean: torch.Tensor) -> tuple:
        transform = get_transform(self.controls["transform"].value)
        value = float(geometric.geometric_consistency(explain, image, [transform], clean_maps=clean)[transform.name][0])
        moved, valid = transform(image)
        size = tuple(image.shape[-2:])
        of_moved = minmax_normalise(resize_maps(explain(moved), size), valid)
        moved_map = minmax_normalise(transform_maps(transform, resize_maps(clean, size))[0], valid)
        panels = [("S(x)", image[0], clean[0]), ("T x", moved[0], None), ("S(T x)", moved[0], of_moved[0]),
                  ("T(S(x))", moved[0], moved_map[0])]  # fmt: skip
        return f"consistency c ({transform.name})", value, {}, panels

    def _degradation(self, model: nn.Module, explain: Any, image: torch.Tensor, clean: torch.Tensor) -> tuple:
        mode = self.controls["mode"].value
        result = degradation.degradation_effect(model, explain, image, mode, clean_maps=clean)
        blurred = degradation.salience_guided_blur(image, clean, mode)
        details = {"p clean": float(result.clean_probability[0]), "p blurred": float(result.probability[0]),
                   "SSIM of maps": float(result.similarity[0])}  # fmt: skip
        panels = [("S(x)", image[0], clean[0]), (f"blur {mode}", blurred[0], None),
                  ("S(blurred)", blurred[0], explain(blurred)[0])]  # fmt: skip
        return "probability drop", float(result.probability_drop[0]), details, panels

    def _deletion(self, model: nn.Module, explain: Any, image: torch.Tensor, clean: torch.Tensor) -> tuple:
        q = round(float(self.controls["deleted"].value), 6)
        blurred = degradation.deletion_blur(image)
        curve = degradation.deletion_curve(model, clean, image, (0.0, q), blurred=blurred)
        chosen = top_fraction_mask(resize_maps(clean, tuple(image.shape[-2:])), q, minimum=0)[:, None]
        deleted = torch.where(chosen, blurred, image)
        details = {"p clean": float(class_probabilities(model, image).amax(1)[0])}
        panels = [("S(x)", image[0], clean[0]), (f"top {q:.0%} blurred", deleted[0], None)]
        return f"p after deleting {q:.0%}", float(curve.probability[0, -1]), details, panels

    def _generator(self) -> torch.Generator:
        return torch.Generator(self.images.device).manual_seed(self.seed)

    def frames(self, settings: Sequence[Mapping[str, Any]]) -> tuple[list[bytes], list[str]]:
        """The picture for each of several settings, for a static frame widget; the controls are restored after.

        Args:
            settings: per frame, ``{control name: value}`` (e.g. ``{"measure": "geometric",
                "transform": "hflip"}``); unnamed controls keep their current value.

        Returns:
            The frames' PNG bytes, and a label per frame (the settings and the number).

        Raises:
            KeyError: a control name the explorer does not have.
        """
        before = self.settings()
        pngs, labels = [], []
        for setting in settings:
            unknown = set(setting) - set(self.controls)
            if unknown:
                raise KeyError(f"no control named {sorted(unknown)} (controls: {sorted(self.controls)})")
        try:
            for setting in settings:
                self._set(setting)
                pngs.append(self.png)
                labels.append(", ".join(self._label(name) for name in setting) + f": {self.value:.3f}")
        finally:
            self._set(before)
        return pngs, labels

    def _label(self, name: str) -> str:
        """The label a control shows for its current value (its option's label, or the value)."""
        control = self.controls[name]
        return str(getattr(control, "label", None) or control.value)

    def _set(self, setting: Mapping[str, Any]) -> None:
        """Set several controls, then recompute once."""
        self._paused = True
        try:
            for name, value in setting.items():
                self.controls[name].value = value
        finally:
            self._paused = False
        self.refresh()


def explore(
    models: Mapping[str, Any] | Sequence[nn.Module],
    images: torch.Tensor | Sequence[torch.Tensor],
    *,
    image_labels: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    measure: str = "entropy",
    seed: int = 0,
    panel_size: float = 2.0,
) -> Explorer:
    """A live explorer of the five measures over some images and models (module docstring), for a kernel.

    Args:
        models: label -> model (or -> ``(model, sidecar)``, as :func:`~salience_lib.book.load_runs`
            gives), or a list of models; each takes images in [0, 1].
        images: ``(B, 3, H, W)`` in [0, 1] (or a list of ``(3, H, W)``), on the models' device.
        image_labels: a label per image (default ``"image 1"``, ...).
        methods: labels of :data:`METHODS` to offer (default all that apply to every model: CAM is
            left out where a model has no linear head after global pooling).
        measure: the measure shown first, a key of :data:`MEASURES`.
        seed: seeds the salt-and-pepper noise (the same noise for every model and method).
        panel_size: side of one panel of the picture, in inches.

    Returns:
        The :class:`Explorer` widget.

    Raises:
        ValueError: no models or images, images outside [0, 1], a wrong number of image labels, an
            unknown method or measure, or a method that cannot explain one of the models.
        TypeError: a model that is not a ``torch.nn.Module``.
    """
    chosen = _as_models(models)
    batch = _as_images(images)
    labels = [f"image {i + 1}" for i in range(len(batch))] if image_labels is None else [str(s) for s in image_labels]
    if len(labels) != len(batch):
        raise ValueError(f"`image_labels` has {len(labels)} entries for {len(batch)} images")
    if measure not in MEASURES:
        raise ValueError(f"unknown `measure` {measure!r}; known: {list(MEASURES)}")
    if methods is None:
        names = [name for name, cls in METHODS.items() if cls is not CAM or _applicable(cls, chosen, batch[:1])]
    else:
        names = list(methods)
        unknown = [name for name in names if name not in METHODS]
        if unknown or not names:
            raise ValueError(f"unknown salience `methods` {unknown or names}; known: {list(METHODS)}")
        refused = [name for name in names if not _applicable(METHODS[name], chosen, batch[:1])]
        if refused:
            raise ValueError(f"salience method(s) {refused} cannot explain every model (CAM needs a linear head)")
    return Explorer(chosen, batch, image_labels=labels, methods=names, measure=measure, seed=seed,
                    panel_size=panel_size)  # fmt: skip
