"""Tests of salience_lib.data.synthetic.annotation: human-like maps of artifacts, or of eyes and mouth."""

from __future__ import annotations

import numpy as np
import pytest

from salience_lib.data import synthetic

N, SIZE, SEED = 60, 64, 11


def test_annotations_cover_the_artifact_or_eyes_and_mouth() -> None:
    for spec in synthetic.plan_dataset(N, SEED)[:40]:
        if not spec.has_heatmap:
            continue
        sample = synthetic.render_sample(spec, SEED, SIZE)  # what generate_dataset writes to heatmaps/, masks/
        heat = sample.heatmap.astype(np.float32) / 255
        assert heat.shape == (SIZE, SIZE) and heat.max() == 1.0
        if sample.mask is not None:
            assert heat[sample.mask].mean() > 3 * heat[~sample.mask].mean()
        else:  # eyes and mouth: the upper-middle and lower-middle of the face, not the corners
            assert heat[:8, :8].max() == 0 and heat[SIZE // 4 : 7 * SIZE // 8, SIZE // 4 : 3 * SIZE // 4].max() == 1


def test_human_annotation_is_an_imperfect_union_of_blobs() -> None:
    regions = [(20.0, 20.0, 3.0, 4.0), (40.0, 44.0, 2.0, 2.0)]
    maps = [synthetic.human_annotation(np.random.default_rng(k), regions, SIZE, annotators=5) for k in range(2)]
    for heat in maps:
        assert heat.dtype == np.float32 and heat.max() == pytest.approx(1.0)
        assert heat[20, 20] > 0.3 and heat[5, 60] == 0
    assert not np.allclose(maps[0], maps[1])
    assert not synthetic.human_annotation(np.random.default_rng(0), [], SIZE).any()
