import pytest
import torch

from salience_lib.transforms import DEFAULT_TRANSFORMS, Rotate90, Shift, get_transform, transform_maps


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(2, 3, 28, 28, generator=torch.Generator().manual_seed(0))


def test_default_set_has_flips_rotations_and_eight_shifts():
    names = [get_transform(n).name for n in DEFAULT_TRANSFORMS]
    assert names == list(DEFAULT_TRANSFORMS)
    assert sum(n.startswith("shift_") for n in names) == 8


def test_shift_moves_content_and_masks_incoming_pixels(images):
    out, valid = Shift(direction="se")(images)
    step = round(28 / 14)
    assert torch.equal(out[..., step:, step:], images[..., :-step, :-step])
    assert not valid[:, :step].any() and not valid[:, :, :step].any()
    assert valid[:, step:, step:].all()
    out, valid = Shift(dy=-3, dx=0)(images)
    assert torch.equal(out[..., :-3, :], images[..., 3:, :])
    assert torch.equal(out[..., -1, :], images[..., -1, :])  # edge-replicate padding
    assert not valid[:, -3:].any()


def test_rotate_90_matches_exact_quarter_turn(images):
    exact, _ = Rotate90(1)(images)
    resampled, valid = get_transform("rotate:90")(images)
    assert (exact - resampled).abs().max() < 1e-5
    assert valid.all()


def test_arbitrary_rotation_masks_corners(images):
    _, valid = get_transform("rotate:45")(images)
    assert not valid[:, 0, 0].any() and valid[:, 14, 14].all()
    assert 0.5 < valid.float().mean() < 0.9


def test_scale_masks_border_when_zooming_out(images):
    _, valid_in = get_transform("scale:1.25")(images)
    _, valid_out = get_transform("scale:0.5")(images)
    assert valid_in.all()
    assert abs(valid_out.float().mean().item() - 0.25) < 0.05


def test_unknown_and_malformed_transforms_are_refused():
    with pytest.raises(ValueError, match="unknown transform 'twirl'"):
        get_transform("twirl")
    with pytest.raises(ValueError, match="cannot parse"):
        get_transform("rotate:abc")
    with pytest.raises(TypeError, match="transform must be"):
        get_transform(3)
    with pytest.raises(ValueError, match="not smaller than the image"):
        Shift(dy=40)(torch.rand(1, 1, 28, 28))


def test_transform_maps_matches_image_transform(images):
    maps = images[:, 0]
    moved, valid = transform_maps(get_transform("shift_n"), maps)
    expected, expected_valid = get_transform("shift_n")(images)
    assert torch.equal(moved, expected[:, 0]) and torch.equal(valid, expected_valid)
