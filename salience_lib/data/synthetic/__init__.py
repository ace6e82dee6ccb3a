"""Procedural synthetic-face data set in CYBORG's layout (SPEC §5): the generator's public face.

No face data set can be downloaded here, so this package draws stylised faces (head, skin, eyes,
brows, nose, mouth, ears, hair, neck, clothes, background) with random pose, shape and colours.
"Real" faces are clean. "Synthetic" faces come from generator *families*, each leaving one
localised artifact where GAN artifacts are known to appear (:data:`FAMILIES`). Every artifact
region also carries a faint period-2 checkerboard (the shared low-level signature of GAN
upsampling), and a faint striped corner stamp (the *shortcut cue*) is correlated with the label in
train/val and decorrelated in test. Each image is drawn from its own random stream derived from
``(seed, index)``, so files are byte-identical for a given seed and independent of the order (or
the number of processes) in which they are generated.

Layout written by :func:`generate_dataset` (``<out>/``)::

    dataset.csv      header-less CYBORG CSV, lines ``split,label,path`` (split: train/val/test,
                     label: Real/Synthetic, path relative to <out>)
    metadata.csv     with header: index,path,split,label,family,group,shortcut,mask_path,heatmap_path
    nonface.csv      with header: index,path,kind (out-of-set images; not part of dataset.csv)
    info.json        generator version, config, size, seed, counts, families, shortcut box
    <split>/<family>/<index>.png         images (family "real" for Real images)
    nonface/<kind>/<index>.png           non-face images (textures, shapes)
    heatmaps/<index>.png                 human-like annotation, 8-bit, every train/val image
    masks/<index>.png                    exact artifact mask (0/255), every Synthetic image

File names (``<index>.png``) are unique across the data set, so ``heatmaps/`` and ``masks/``
are flat folders keyed by the image's file name, as in CYBORG's training code.

Modules, imports pointing down: :mod:`~.config` (settings, constants, sample specs),
:mod:`~.faces` (canvas, palettes, clean-face drawing), :mod:`~.artifacts` (the families' edits,
masks, checkerboard, shortcut stamp), :mod:`~.annotation` (human-like maps), :mod:`~.nonface`
(out-of-set images), :mod:`~.render` (one image from its spec), :mod:`~.plan` (which images a data
set holds) and :mod:`~.writer` (the files on disk).
"""

from salience_lib.data.synthetic.annotation import human_annotation
from salience_lib.data.synthetic.artifacts import shortcut_box
from salience_lib.data.synthetic.config import (
    FAMILIES,
    GENERATOR_VERSION,
    INFO_NAME,
    METADATA_FIELDS,
    NONFACE_KINDS,
    GeneratorConfig,
    SampleSpec,
)
from salience_lib.data.synthetic.nonface import render_nonface
from salience_lib.data.synthetic.plan import plan_dataset
from salience_lib.data.synthetic.render import Face, Sample, render_face, render_sample
from salience_lib.data.synthetic.writer import generate_dataset, main_make_data

__all__ = [
    "FAMILIES",
    "GENERATOR_VERSION",
    "INFO_NAME",
    "METADATA_FIELDS",
    "NONFACE_KINDS",
    "Face",
    "GeneratorConfig",
    "Sample",
    "SampleSpec",
    "generate_dataset",
    "human_annotation",
    "main_make_data",
    "plan_dataset",
    "render_face",
    "render_nonface",
    "render_sample",
    "shortcut_box",
]
