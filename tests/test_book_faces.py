import pytest
import torch

from salience_lib.book import faces
from salience_lib.data import CsvImageDataset, synthetic


def test_dataset_examples_gives_images_masks_and_annotations_where_there_are_any(generated):
    train = CsvImageDataset(generated, "train", annotations=True)
    test = CsvImageDataset(generated, "test")
    synthetic_train = train.where(label="Synthetic")[0]
    images, masks, notes = faces.dataset_examples([(train, synthetic_train), (test, 0)])
    assert torch.equal(images[0], train[synthetic_train][0]) and torch.equal(images[1], test[0][0])
    assert torch.equal(masks[0], train.mask(synthetic_train)) and masks[0].sum() > 0
    assert torch.equal(notes[0], train[synthetic_train][2])
    assert notes[1] is None, "a split loaded without annotations shows the bare image"


def test_cue_difference_is_the_channel_mean_of_the_two_means(generated):
    train = CsvImageDataset(generated, "train")
    with_cue = torch.stack([train[i][0] for i in train.where(shortcut="1")]).mean(0)
    without = torch.stack([train[i][0] for i in train.where(shortcut="0")]).mean(0)
    difference = faces.cue_difference(train)
    assert difference.shape == (32, 32)
    assert torch.allclose(difference, (with_cue - without).mean(0))
    r0, c0, r1, c1 = synthetic.shortcut_box(32)
    corner = difference[r0:r1, c0:c1].abs().mean()
    assert corner > difference.abs().mean(), "the stamp stands out in its box"


def test_cue_difference_names_a_split_without_one_kind(generated, monkeypatch):
    train = CsvImageDataset(generated, "train")
    monkeypatch.setattr(train, "where", lambda **conditions: [] if conditions["shortcut"] == "1" else [0])
    with pytest.raises(ValueError, match="no images with shortcut=1"):
        faces.cue_difference(train)


def test_shortcut_figure_boxes_the_cue_and_enlarges_the_corner(generated):
    train = CsvImageDataset(generated, "train")
    example = train[train.where(shortcut="1")[0]][0]
    box = synthetic.shortcut_box(32)
    fig = faces.shortcut_figure(example, faces.cue_difference(train), box, limit=0.1)
    image_ax, corner_ax, difference_ax = fig.axes[:3]
    rectangle = image_ax.patches[0]
    assert (rectangle.get_x(), rectangle.get_y()) == (box[1] - 0.5, box[0] - 0.5)
    assert rectangle.get_width() == box[3] - box[1]
    assert corner_ax.get_images()[0].get_array().shape[:2] == (2 * box[2], 2 * box[3])
    assert difference_ax.get_images()[0].get_clim() == (-0.1, 0.1)
    assert len(fig.axes) == 4, "three panels and the colour bar"
