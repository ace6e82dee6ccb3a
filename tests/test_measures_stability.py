import pytest
import torch

from salience_lib.measures.stability import (
    StabilityAccumulator,
    agreement_with_reference,
    cross_run_stability,
    cross_set_similarity,
    pairwise_similarity,
)
from salience_lib.salience import GradCAM
from salience_lib.similarity import ssim
from tests.helpers import TinyCNN


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.rand(4, 3, 28, 28, generator=torch.Generator().manual_seed(0))


def _cam(seed: int):
    cam = GradCAM(TinyCNN(seed=seed))
    return lambda x: cam(x, size=(14, 14))


def test_identical_models_are_perfectly_stable(images):
    values = cross_run_stability([_cam(0), _cam(0), _cam(0)], images)
    assert torch.allclose(values, torch.ones(4), atol=1e-6)


def test_different_seeds_are_less_stable(images):
    values = cross_run_stability([_cam(0), _cam(1), _cam(2)], images)
    assert (values < 0.99).all()


def test_pairwise_matrix_is_symmetric_with_unit_diagonal(images):
    maps = torch.stack([_cam(s)(images) for s in range(3)])
    matrix = pairwise_similarity(maps)
    assert matrix.shape == (3, 3, 4)
    assert torch.allclose(matrix, matrix.transpose(0, 1))
    assert torch.allclose(torch.diagonal(matrix).T, torch.ones(3, 4), atol=1e-6)
    assert torch.allclose(matrix[0, 2], ssim(maps[0], maps[2]))
    expected = (matrix[0, 1] + matrix[0, 2] + matrix[1, 2]) / 3
    assert torch.allclose(cross_run_stability([_cam(0), _cam(1), _cam(2)], images), expected, atol=1e-6)


def test_cross_set_baseline(images):
    same = cross_set_similarity([_cam(0)], [_cam(0)], images)
    assert torch.allclose(same, torch.ones(4), atol=1e-6)
    mixed = cross_set_similarity([_cam(0), _cam(1)], [_cam(2)], images)
    maps = [_cam(s)(images) for s in range(3)]
    assert torch.allclose(mixed, (ssim(maps[0], maps[2]) + ssim(maps[1], maps[2])) / 2, atol=1e-6)


def test_agreement_with_reference_resizes_reference(images):
    maps = _cam(0)(images)
    assert torch.allclose(agreement_with_reference(maps, maps), torch.ones(4), atol=1e-6)
    big = torch.nn.functional.interpolate(maps[:, None], size=(28, 28), mode="bilinear")[:, 0]
    assert agreement_with_reference(maps, big).shape == (4,)
    with pytest.raises(ValueError, match="reference"):
        agreement_with_reference(maps, maps[:2])


def test_fewer_than_two_explainers_refused(images):
    with pytest.raises(ValueError, match="at least 2 explainers"):
        cross_run_stability([_cam(0)], images)
    with pytest.raises(ValueError, match="at least 2 models"):
        StabilityAccumulator(1)


def test_accumulator_merge_equals_one_pass(images):
    maps = torch.stack([_cam(s)(images) for s in range(3)])
    whole, first, second = StabilityAccumulator(3), StabilityAccumulator(3), StabilityAccumulator(3)
    whole.update(maps)
    first.update(maps[:, :1])
    second.update(maps[:, 1:])
    a, b = first.merge(second).compute(), whole.compute()
    assert a["stability"] == b["stability"]
    assert torch.allclose(a["matrix"], b["matrix"])
    with pytest.raises(ValueError, match=r"shape \(3, B, H, W\)"):
        whole.update(maps[:2])


def test_stability_per_run_is_the_off_diagonal_row_mean_and_averages_to_the_per_image_mean(images):
    from salience_lib.measures.stability import stability_per_run

    maps = torch.rand(3, 6, 8, 8, generator=torch.Generator().manual_seed(3))
    acc = StabilityAccumulator(3)
    acc.update(maps)
    out = acc.compute()
    per_run = stability_per_run(out["matrix"])
    m = out["matrix"].double()
    assert torch.allclose(per_run, torch.stack([(m[0, 1] + m[0, 2]) / 2, (m[1, 0] + m[1, 2]) / 2,
                                                (m[2, 0] + m[2, 1]) / 2]))  # fmt: skip
    assert float(per_run.mean()) == pytest.approx(out["stability"].mean, abs=1e-6)
    with pytest.raises(ValueError, match="K×K"):
        stability_per_run([[1.0]])


def test_nan_weights_are_an_error_not_perfect_stability(images):
    """Two NaN-weight runs used to give two all-zero maps per image: stability 1.0, no error."""
    def broken(seed: int):
        model = TinyCNN(seed=seed)
        with torch.no_grad():
            model.fc.weight.fill_(float("nan"))
        return GradCAM(model).at((14, 14))

    with pytest.raises(ValueError, match=r"`explainers\[0\] output` contain NaN or inf values for 4 of 4 images"):
        cross_run_stability([broken(0), broken(1)], images)
