"""The relaxed token variable: simplex projection, straight-through sampling, discretisation."""

import numpy as np
import pytest
import torch

from attacks.relaxed import discretise, project_simplex, sample_one_hot, uniform_init


def official_bisection(row: np.ndarray, tol: float = 1e-12) -> np.ndarray:
    """The official formulation, one row at a time: clip(a - mu, 0, 1) with its sum = 1, by bisection."""
    lo, hi = row.min() - 1, row.max()
    while hi - lo > tol:
        mu = (lo + hi) / 2
        if np.clip(row - mu, 0, 1).sum() > 1:
            lo = mu
        else:
            hi = mu
    return np.clip(row - (lo + hi) / 2, 0, 1)


@pytest.mark.parametrize("scale, shift", [(1.0, 0.0), (3.0, -1.0), (0.01, 0.5), (5.0, 2.0)])
def test_projection_puts_every_row_on_the_simplex(scale, shift):
    torch.manual_seed(0)
    u = torch.randn(2, 3, 500) * scale + shift  # negative entries, entries above 1, sums far from 1
    assert ((u.sum(-1) - 1).abs() > 1).all()
    x = project_simplex(u)
    assert x.shape == u.shape
    assert torch.allclose(x.sum(-1), torch.ones(2, 3), atol=1e-4)
    assert x.min() >= 0 and x.max() <= 1
    assert torch.equal(project_simplex(x), x) or torch.allclose(project_simplex(x), x, atol=1e-7)  # a projection


def test_projection_is_the_official_bisection_point():
    torch.manual_seed(1)
    u = torch.randn(6, 200, dtype=torch.float64) * torch.tensor([0.01, 0.1, 1, 2, 4, 10], dtype=torch.float64)[:, None]
    expected = np.stack([official_bisection(row) for row in u.numpy()])
    assert np.allclose(project_simplex(u).numpy(), expected, atol=1e-8)
    assert torch.equal(project_simplex(torch.tensor([[5.0, 0.0, 0.0]])), torch.tensor([[1.0, 0.0, 0.0]]))


def test_projection_of_a_full_vocabulary_row_after_an_adam_like_step():
    """The case that matters: 49,408 entries moved by +-lr; tens of thousands stay positive."""
    torch.manual_seed(2)
    u = uniform_init(1, 2, 49408) + 0.01 * torch.sign(torch.randn(1, 2, 49408))
    x = project_simplex(u)
    assert torch.allclose(x.sum(-1), torch.ones(1, 2), atol=1e-4) and x.min() >= 0
    assert (x > 0).sum() > 10_000


def test_uniform_init_is_the_official_start():
    u = uniform_init(2, 3, 10)
    assert torch.allclose(u, torch.full((2, 3, 10), 0.1))


def test_straight_through_sample_is_one_hot_from_the_support_and_passes_clipped_gradients():
    torch.manual_seed(3)
    u = project_simplex(torch.rand(2, 3, 50) * 3 - 2).requires_grad_(True)  # sparse rows
    generators = [torch.Generator().manual_seed(s) for s in (0, 1)]
    one_hot = sample_one_hot(u, generators)
    assert one_hot.shape == (2, 3, 50)
    assert torch.equal(one_hot.sum(-1), torch.ones(2, 3))
    assert bool((u.detach()[one_hot.bool()] > 0).all())  # never a zero-probability token
    upstream = torch.randn(2, 3, 50) * 3  # many entries beyond [-1, 1]
    (grad,) = torch.autograd.grad((one_hot * upstream).sum(), u)
    assert grad.shape == u.shape
    assert torch.equal(grad, upstream.clamp(-1, 1))


def test_sampling_follows_the_distribution_and_the_prompt_generator_only():
    u = torch.zeros(1, 1, 5)
    u[0, 0, 1], u[0, 0, 3] = 0.7, 0.3
    generator = torch.Generator().manual_seed(0)
    ids = torch.stack([sample_one_hot(u, [generator]).argmax(-1) for _ in range(2000)]).flatten()
    assert set(ids.tolist()) == {1, 3}
    assert abs((ids == 1).float().mean().item() - 0.7) < 0.04
    # A prompt's draws depend on its own generator, not on the other prompts in the batch.
    v = torch.rand(2, 2, 5)
    alone = sample_one_hot(v[:1], [torch.Generator().manual_seed(7)])
    together = sample_one_hot(v, [torch.Generator().manual_seed(7), torch.Generator().manual_seed(8)])
    assert torch.equal(alone[0], together[0])


def test_discretise_takes_the_argmax_of_every_row():
    u = torch.zeros(2, 3, 10)
    u[0, :, 4] = 1
    u[1, :, 9] = 1
    u[1, 1, 2] = 2
    assert discretise(u).tolist() == [[4, 4, 4], [9, 2, 9]]
