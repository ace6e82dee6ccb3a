import numpy as np
import pytest
import torch
from scipy import ndimage

from salience_lib.blur import border_index, uint8_constant_table
from salience_lib.imaging import (
    blur_levels,
    gaussian_blur,
    gaussian_kernel1d,
    gaussian_noise,
    salt_and_pepper,
    spatially_varying_blur,
)
from salience_lib.maps import minmax_normalise
from salience_lib.measures.degradation import level_sigmas


@pytest.mark.parametrize("sigma", [0.3, 1.0, 2.5])
def test_gaussian_blur_equals_scipy(sigma):
    images = torch.rand(2, 3, 20, 17, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ours = gaussian_blur(images, sigma).numpy()
    reference = ndimage.gaussian_filter(images.numpy(), (0, 0, sigma, sigma), mode="nearest", truncate=4.0)
    assert np.abs(ours - reference).max() < 1e-10


def test_zero_sigma_is_identity_and_kernel_sums_to_one():
    images = torch.rand(1, 1, 5, 5)
    assert gaussian_blur(images, 0.0) is images
    assert gaussian_kernel1d(3.0).sum().item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="sigma"):
        gaussian_kernel1d(-1.0)


def _direct_per_pixel(image: np.ndarray, sigma_map: np.ndarray) -> np.ndarray:
    """Each output pixel is a Gaussian-weighted sum around it with its own σ (replicated edges)."""
    _, height, width = image.shape
    out = np.empty_like(image)
    for y in range(height):
        for x in range(width):
            sigma = sigma_map[y, x]
            radius = int(4.0 * sigma + 0.5)
            if radius == 0:
                out[:, y, x] = image[:, y, x]
                continue
            offsets = np.arange(-radius, radius + 1)
            kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
            kernel /= kernel.sum()
            ys = np.clip(y + offsets, 0, height - 1)
            xs = np.clip(x + offsets, 0, width - 1)
            patch = image[:, ys][:, :, xs]
            out[:, y, x] = np.einsum("cij,i,j->c", patch, kernel, kernel)
    return out


def test_spatially_varying_blur_equals_direct_per_pixel_reference():
    g = torch.Generator().manual_seed(3)
    images = torch.rand(2, 2, 12, 12, generator=g, dtype=torch.float64)
    sigmas = torch.tensor([0.0, 0.1, 0.6, 1.3, 2.0], dtype=torch.float64)
    levels = torch.randint(0, 5, (2, 12, 12), generator=g)
    ours = spatially_varying_blur(images, sigmas, levels).numpy()
    for b in range(2):
        reference = _direct_per_pixel(images[b].numpy(), sigmas[levels[b]].numpy())
        assert np.abs(ours[b] - reference).max() < 1e-10


def _per_level_scipy(images: np.ndarray, sigmas: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """The authors' loop: blur the whole image once per level present, take that level's pixels."""
    out = images.copy()
    for b in range(images.shape[0]):
        for level in np.unique(levels[b]):
            blurred = ndimage.gaussian_filter(images[b], (0, sigmas[level], sigmas[level]), mode="nearest")
            out[b][:, levels[b] == level] = blurred[:, levels[b] == level]
    return out


@pytest.mark.parametrize(("height", "width"), [(70, 45), (130, 130), (9, 150)])
def test_spatially_varying_blur_equals_per_level_scipy_on_smooth_levels(height, width):
    """Smooth level maps (as from salience) at sizes that are not multiples of any tile, with radii
    from 0 up to far more than the image side, so every tile size and the edge padding are used."""
    g = torch.Generator().manual_seed(height)
    images = torch.rand(3, 2, height, width, generator=g, dtype=torch.float64)
    maps = torch.rand(3, 5, 5, generator=g)
    levels = blur_levels(maps, (height, width), smoothing_sigma=3.0)
    sigmas = torch.linspace(0, 10, 101, dtype=torch.float64) ** 4 / 1000 * 2.5  # σ up to 25 px
    ours = spatially_varying_blur(images, sigmas, levels).numpy()
    reference = _per_level_scipy(images.numpy(), sigmas.numpy(), levels.numpy())
    assert np.abs(ours - reference).max() < 1e-10


@pytest.mark.parametrize("side", [40, 64])  # 64: a multiple of every tile, so nothing is padded
def test_spatially_varying_blur_single_pixel_level_and_untouched_levels(side):
    images = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    original = images.clone()
    levels = torch.zeros(1, side, side, dtype=torch.long)
    levels[0, 17, 30] = 1
    out = spatially_varying_blur(images, torch.tensor([0.0, 2.0], dtype=torch.float64), levels)
    reference = ndimage.gaussian_filter(images[0].numpy(), (0, 2.0, 2.0), mode="nearest")
    assert np.abs(out[0, :, 17, 30].numpy() - reference[:, 17, 30]).max() < 1e-12
    unchanged = levels[0] == 0
    assert torch.equal(out[0][:, unchanged], images[0][:, unchanged])
    assert out.data_ptr() != images.data_ptr() and torch.equal(images, original)


def test_spatially_varying_blur_rejects_levels_out_of_range():
    with pytest.raises(ValueError, match=r"levels.*\[0, 2\)"):
        spatially_varying_blur(torch.rand(1, 1, 8, 8), torch.zeros(2), torch.full((1, 8, 8), 2))


def test_spatially_varying_blur_checks_levels_shape():
    with pytest.raises(ValueError, match="levels"):
        spatially_varying_blur(torch.rand(1, 3, 8, 8), torch.zeros(3), torch.zeros(1, 4, 4, dtype=torch.long))


def test_blur_levels_span_full_range():
    maps = torch.rand(3, 7, 7)
    levels = blur_levels(maps, (28, 28), smoothing_sigma=1.0)
    assert levels.shape == (3, 28, 28)
    assert (levels.flatten(1).amin(1) == 0).all() and (levels.flatten(1).amax(1) == 100).all()


# -- scipy's default border ("reflect") and its uint8 output (the authors' blur) ------------------------


def _uint8_images(shape: tuple[int, ...], seed: int, flat: bool = True) -> np.ndarray:
    """Random 8-bit images, with a flat patch (where scipy's float64 rounding decides the cast)."""
    images = np.random.default_rng(seed).integers(0, 256, shape).astype(np.uint8)
    if flat:
        images[..., 3:15, 2:12] = 200
        images[..., -8:, -9:] = 255
    return images


def test_border_index_reflect_is_numpy_symmetric_at_any_distance():
    for n in (1, 2, 5):
        index = torch.arange(-4 * n - 3, 5 * n + 3)
        expected = np.pad(np.arange(n), (4 * n + 3, 4 * n + 3), mode="symmetric")
        assert border_index(index, n, "reflect").tolist() == expected.tolist()
        assert border_index(index, n, "replicate").tolist() == np.clip(index.numpy(), 0, n - 1).tolist()


@pytest.mark.parametrize("sigma", [0.3, 1.0, 2.5, 6.0])  # 6.0: radius 24 > the 20 × 17 image
def test_gaussian_blur_reflect_equals_scipy_default_mode(sigma):
    images = torch.rand(2, 3, 20, 17, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ours = gaussian_blur(images, sigma, border="reflect").numpy()
    reference = ndimage.gaussian_filter(images.numpy(), (0, 0, sigma, sigma), truncate=4.0)  # mode="reflect"
    assert np.abs(ours - reference).max() < 1e-10


def test_uint8_constant_table_equals_scipy_on_constant_lines():
    """Every level σ of the protocol at 224, 112 and 64 px and the map smoothing σ."""
    lines = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 9, axis=1)
    for scale in (1.0, 0.5, 64 / 224):
        for sigma in [*level_sigmas(scale).tolist(), 5.0 * scale]:
            if int(4 * sigma + 0.5) == 0:
                continue
            expected = ndimage.gaussian_filter1d(lines, sigma, axis=1)[:, 4]
            assert np.array_equal(uint8_constant_table(sigma).numpy(), expected), (scale, sigma)
    dropped = 255 - uint8_constant_table(0.3)[255]
    assert dropped == 1, "scipy's uint8 output truncates: a flat 255 loses a level per pass at σ = 0.3"


def _smooth_uint8_images(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Smooth 8-bit images (low-pass noise and a ramp) with a saturated patch: flat runs after each pass."""
    noise = ndimage.gaussian_filter(np.random.default_rng(seed).normal(size=shape), (0, 0, 4, 4))
    ramp = np.linspace(0, 1, shape[-1])
    images = np.clip(255 * (0.6 * (noise - noise.min()) / np.ptp(noise) + 0.4 * ramp), 0, 255).astype(np.uint8)
    images[..., :10, :12] = 255
    return images


@pytest.mark.parametrize(("border", "mode"), [("reflect", "reflect"), ("replicate", "nearest")])
@pytest.mark.parametrize("sigma", [0.13, 0.3, 0.46, 1.0, 2.5, 10.0])  # 0.13, 0.46: outer taps < 1e-4
def test_gaussian_blur_8_bit_equals_scipy_on_uint8(border, mode, sigma):
    """scipy truncates each 1-D pass into its uint8 output (flat 255 at σ = 0.3 → 253): bit for bit
    with ``exact=True``; the fast float32 cast is within one grey level nearly everywhere (a flat
    region can keep the level or two that scipy's float64 rounding loses)."""
    for images in (_uint8_images((2, 3, 40, 36), seed=int(sigma * 10)), _smooth_uint8_images((2, 3, 40, 36), 1)):
        reference = ndimage.gaussian_filter(images, (0, 0, sigma, sigma), mode=mode).astype(int)
        unit = torch.from_numpy(images).float() / 255
        exact = torch.round(gaussian_blur(unit, sigma, border=border, bits=8, exact=True) * 255).numpy()
        assert np.array_equal(exact.astype(int), reference)
        fast = torch.round(gaussian_blur(unit, sigma, border=border, bits=8) * 255).numpy().astype(int)
        assert np.abs(fast - reference).max() <= 2 and (np.abs(fast - reference) <= 1).mean() > 0.99
        assert (fast == reference).mean() > 0.6  # σ = 0.46 on smooth images: outer taps ~1e-5 (docstring)
    if sigma == 0.3:
        assert reference[0, 0, -3, -3] != 253 and exact[0, 0, -3, -3] == reference[0, 0, -3, -3]
        flat = _uint8_images((1, 1, 40, 36), seed=0)
        blurred = gaussian_blur(torch.from_numpy(flat).float() / 255, sigma, border=border, bits=8, exact=True)
        reference = ndimage.gaussian_filter(flat, (0, 0, sigma, sigma), mode=mode)
        assert round(float(blurred[0, 0, -3, -3]) * 255) == 253 == reference[0, 0, -3, -3]
    random = _uint8_images((2, 3, 40, 36), seed=int(sigma * 10), flat=False)
    fast = gaussian_blur(torch.from_numpy(random).float() / 255, sigma, border=border, bits=8)
    reference = ndimage.gaussian_filter(random, (0, 0, sigma, sigma), mode=mode)
    assert (torch.round(fast * 255).numpy() == reference).mean() > 0.995


def _per_level_scipy_uint8(images: np.ndarray, sigmas: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """The authors' loop on uint8 channels: one scipy blur (reflect, uint8 output) per level present."""
    out = images.copy()
    for b in range(images.shape[0]):
        for level in np.unique(levels[b]):
            where = levels[b] == level
            for c in range(images.shape[1]):
                out[b, c][where] = ndimage.gaussian_filter(images[b, c], sigmas[level])[where]
    return out


@pytest.mark.parametrize(("height", "width"), [(70, 45), (64, 64), (9, 150)])
def test_spatially_varying_blur_reflect_equals_per_level_scipy(height, width):
    """Float and 8-bit, tiled and whole-image paths (σ up to 25 px: radius beyond the image side)."""
    g = torch.Generator().manual_seed(height)
    images = torch.rand(3, 2, height, width, generator=g, dtype=torch.float64)
    levels = blur_levels(torch.rand(3, 5, 5, generator=g), (height, width), smoothing_sigma=3.0)
    sigmas = torch.linspace(0, 10, 101, dtype=torch.float64) ** 4 / 1000 * 2.5
    ours = spatially_varying_blur(images, sigmas, levels, border="reflect").numpy()
    s_np = sigmas.numpy()
    out = images.numpy().copy()
    for b in range(3):
        for level in np.unique(levels[b].numpy()):
            where = levels[b].numpy() == level
            out[b][:, where] = ndimage.gaussian_filter(images[b].numpy(), (0, s_np[level], s_np[level]))[:, where]
    assert np.abs(ours - out).max() < 1e-10
    for grey in (_uint8_images((3, 2, height, width), seed=height), _smooth_uint8_images((3, 2, height, width), 2)):
        reference = _per_level_scipy_uint8(grey, s_np, levels.numpy()).astype(int)
        unit = torch.from_numpy(grey).float() / 255
        exact = spatially_varying_blur(unit, sigmas, levels, border="reflect", bits=8, exact=True)
        assert np.array_equal(torch.round(exact * 255).numpy().astype(int), reference)
        fast = spatially_varying_blur(unit, sigmas, levels, border="reflect", bits=8)
        fast = torch.round(fast * 255).numpy().astype(int)
        assert np.abs(fast - reference).max() <= 2 and (np.abs(fast - reference) <= 1).mean() > 0.99


def test_blur_levels_max_rescale_is_numpy_around_and_a_zero_map_blurs_nothing():
    g = torch.Generator().manual_seed(2)
    maps = torch.rand(2, 24, 24, generator=g)
    levels = blur_levels(maps, (24, 24), 1.5, upsample="pil_bicubic", rescale="max", border="reflect", bits=8)
    cam = (minmax_normalise(maps).clamp(0, 1) * 255).to(torch.uint8).numpy()
    for b in range(2):
        smoothed = ndimage.gaussian_filter(cam[b], 1.5)
        expected = np.around(smoothed / (smoothed.max() / 10), 1)
        assert np.array_equal(levels[b].numpy(), np.rint(expected * 10).astype(int))
    inverted = blur_levels(maps, (24, 24), 1.5, upsample="pil_bicubic", rescale="max", border="reflect", bits=8,
                           invert=True)  # fmt: skip
    smoothed = ndimage.gaussian_filter(255 - cam[0], 1.5)
    assert np.array_equal(inverted[0].numpy(), np.rint(np.around(smoothed / (smoothed.max() / 10), 1) * 10))
    zero = blur_levels(torch.zeros(1, 6, 6), (24, 24), 1.5, upsample="pil_bicubic", rescale="max", bits=8)
    assert (zero == 100).all(), "their code divides by zero (NaN levels: nothing blurred); here: the top level"
    with pytest.raises(ValueError, match="rescale"):
        blur_levels(maps, (24, 24), 1.5, rescale="mean")
    with pytest.raises(ValueError, match="border"):
        gaussian_blur(torch.rand(1, 1, 4, 4), 1.0, border="wrap")
    with pytest.raises(ValueError, match="bits"):
        gaussian_blur(torch.rand(1, 1, 4, 4), 1.0, bits=16)


@pytest.mark.parametrize("fraction", [0.0, 0.01, 0.25, 1.0])
def test_salt_and_pepper_replaces_exact_fraction(fraction):
    images = torch.full((3, 3, 10, 10), 0.5)
    noisy = salt_and_pepper(images, fraction, torch.Generator().manual_seed(0))
    changed = (noisy != 0.5).all(dim=1)
    assert (changed.flatten(1).sum(1) == round(fraction * 100)).all()
    assert set(noisy.permute(0, 2, 3, 1)[changed].unique().tolist()) <= {0.0, 1.0}
    # all channels of a pixel get the same value
    assert (noisy.amax(1) == noisy.amin(1)).all()


def test_salt_and_pepper_is_reproducible_and_validates():
    images = torch.rand(2, 3, 8, 8)
    a = salt_and_pepper(images, 0.3, torch.Generator().manual_seed(5))
    b = salt_and_pepper(images, 0.3, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="fraction"):
        salt_and_pepper(images, 1.5)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        salt_and_pepper(images[0], 0.1)


def test_gaussian_noise_statistics():
    images = torch.full((4, 3, 32, 32), 0.5)
    noisy = gaussian_noise(images, 0.1, torch.Generator().manual_seed(0))
    assert abs(float((noisy - images).std()) - 0.1) < 0.01
    assert noisy.min() >= 0 and noisy.max() <= 1


# -- images outside [0, 1] or with NaN are refused by every perturbation (SPEC §9) ---------------------

_LEVELS = torch.zeros(2, 8, 8, dtype=torch.long)
PERTURBATIONS = {
    "salt_and_pepper": lambda x: salt_and_pepper(x, 0.1, torch.Generator().manual_seed(0)),
    "gaussian_noise": lambda x: gaussian_noise(x, 0.1, torch.Generator().manual_seed(0)),
    "gaussian_blur": lambda x: gaussian_blur(x, 1.0),
    "spatially_varying_blur": lambda x: spatially_varying_blur(x, torch.tensor([2.0]), _LEVELS),
}
OUT_OF_RANGE = {
    "0_255": torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 255,
    "imagenet_normalised": (torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0)) - 0.45) / 0.225,
}


def test_0_255_images_are_rejected_by_salt_and_pepper():
    """0–255 floats used to get "salt" = 1 and "pepper" = 0: a nearly black image, measured as noise."""
    with pytest.raises(ValueError, match=r"\[0, 1\].*divide by 255.*normalise inside the model"):
        salt_and_pepper(torch.rand(2, 3, 8, 8) * 255, 0.1)


@pytest.mark.parametrize("kind", OUT_OF_RANGE)
@pytest.mark.parametrize("name", PERTURBATIONS)
def test_images_outside_unit_range_are_rejected_by_every_perturbation(name, kind):
    with pytest.raises(ValueError, match=r"`images` must hold values in \[0, 1\].*load_checkpoint\(normalize="):
        PERTURBATIONS[name](OUT_OF_RANGE[kind])


@pytest.mark.parametrize("name", PERTURBATIONS)
def test_nan_pixel_is_rejected_by_every_perturbation(name):
    images = torch.rand(2, 3, 8, 8)
    images[1, 2, 3, 4] = float("nan")
    with pytest.raises(ValueError, match=r"`images` contain NaN or inf values for 1 of 2 images \(batch positions 1\)"):
        PERTURBATIONS[name](images)


@pytest.mark.parametrize("name", PERTURBATIONS)
def test_unit_range_check_tolerates_float_rounding(name):
    images = torch.rand(2, 3, 8, 8)
    images[0, 0, 0, 0], images[1, 0, 0, 0] = 1 + 5e-7, -5e-7
    assert PERTURBATIONS[name](images).shape == images.shape


def test_unit_range_check_says_which_images():
    from salience_lib.imaging import check_unit_images, outside_unit_range

    images = torch.rand(4, 3, 8, 8)
    images[2] *= 255
    assert outside_unit_range(images).tolist() == [False, False, True, False]
    assert check_unit_images(images[:2]) is not None
    with pytest.raises(ValueError, match=r"in 1 of 4 images \(batch positions 2\)"):
        check_unit_images(images)
