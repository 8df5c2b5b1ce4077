"""SiD / SFD loss functions (erase/sid.py) against their closed forms."""

import torch

from erase.sid import fake_score_loss, keep_or_replace, kept_rows, sid_generator_loss


def _batch(seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(3, 4, 2, 2, generator=g) for _ in range(3)]


def test_generator_loss_matches_the_formula_and_alpha_one_simplifies():
    x_g, y_real, y_fake = _batch(0)
    for alpha in (0.5, 1.0, 1.2):
        w = (x_g - y_real).abs().mean(dim=(1, 2, 3), keepdim=True)
        expected = ((y_real - y_fake) * ((y_real - x_g) - alpha * (y_real - y_fake)) / w).sum() / 3
        assert torch.allclose(sid_generator_loss(x_g, y_real, y_fake, alpha), expected, rtol=1e-5)
    simple = ((y_real - y_fake) * (y_fake - x_g) / (x_g - y_real).abs().mean(dim=(1, 2, 3), keepdim=True)).sum() / 3
    assert torch.allclose(sid_generator_loss(x_g, y_real, y_fake, 1.0), simple, rtol=1e-5)


def test_generator_loss_is_zero_with_zero_gradient_when_real_equals_fake():
    x_g, y_real, _ = _batch(1)
    x_g.requires_grad_(True)
    loss = sid_generator_loss(x_g, y_real, y_real.clone(), 1.0)
    loss.backward()
    assert loss.item() == 0.0 and x_g.grad.abs().max().item() == 0.0


def test_weight_is_a_stop_gradient():
    """With constant y's the gradient w.r.t. x_g is -(y_real - y_fake) / w: w is not differentiated."""
    x_g, y_real, y_fake = _batch(2)
    x_g.requires_grad_(True)
    sid_generator_loss(x_g, y_real, y_fake, 1.0).backward()
    w = (x_g.detach() - y_real).abs().mean(dim=(1, 2, 3), keepdim=True)
    assert torch.allclose(x_g.grad, -(y_real - y_fake) / w / 3, rtol=1e-5, atol=1e-7)


def test_weight_is_floored():
    x = torch.ones(1, 4, 2, 2)
    loss = sid_generator_loss(x, x.clone(), x - 1, 1.0)  # w = mean|x_g - y_real| = 0 -> 1e-5
    assert torch.isclose(loss, torch.tensor(-16 / 1e-5), rtol=1e-5)  # 16 pixels of 1 * (0 - 1) / 1e-5


def test_fake_score_loss_is_sum_over_pixels_mean_over_batch():
    a, b, _ = _batch(3)
    assert torch.allclose(fake_score_loss(a, b), ((a - b) ** 2).sum() / 3)
    assert fake_score_loss(a, a).item() == 0.0


def test_prompt_drop_replaces_rows_with_uncond():
    cond, uncond = torch.ones(64, 5, 2), torch.zeros(1, 5, 2)
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    assert kept_rows(64, 0.0, g) is None and torch.equal(g.get_state(), state)  # no drop, no draw
    assert torch.equal(keep_or_replace(kept_rows(64, 0.0, g), cond, uncond), cond)
    assert torch.equal(keep_or_replace(kept_rows(64, 1.0, g), cond, uncond), torch.zeros_like(cond))
    keep = kept_rows(64, 0.5, g)
    dropped = (keep_or_replace(keep, cond, uncond).sum(dim=(1, 2)) == 0)
    assert 10 < dropped.sum().item() < 54 and torch.equal(dropped, ~keep)  # about half, row-wise, the mask's rows
