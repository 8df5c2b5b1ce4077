"""The saliency mask on its own: ranking, accumulation, Adam, files (algorithms.md, Cheap verification)."""

import pytest
import torch

from erase.saliency import SaliencyMask, signed_gradient_sum, top_fraction
from erase.training import train
from pipelines.errors import ConfigError


def reference_top_fraction(scores: dict[str, torch.Tensor], fraction: float) -> dict[str, torch.Tensor]:
    """The official ranking: concatenate, stable descending argsort, keep ranks < floor(p N)."""
    flat = torch.cat([s.flatten() for s in scores.values()])
    keep = torch.zeros(flat.numel(), dtype=torch.bool)
    keep[torch.sort(flat, descending=True, stable=True).indices[: int(fraction * flat.numel())]] = True
    out, start = {}, 0
    for n, s in scores.items():
        out[n] = keep[start : start + s.numel()].view(s.shape)
        start += s.numel()
    return out


@pytest.mark.parametrize("fraction", [0.5, 0.4, 0.013, 1.0])
def test_exactly_floor_p_n_weights_are_kept_and_they_are_the_largest(fraction):
    g = torch.Generator().manual_seed(0)
    scores = {"a": torch.rand(7, 5, generator=g), "b": torch.rand(33, generator=g) * 3, "c": torch.rand(2, 3, 4, generator=g) / 2}
    masks = top_fraction(scores, fraction)
    total = sum(s.numel() for s in scores.values())
    assert sum(int(m.sum()) for m in masks.values()) == int(fraction * total)
    kept = torch.cat([s[m] for s, m in zip(scores.values(), masks.values())])
    dropped = torch.cat([s[~m] for s, m in zip(scores.values(), masks.values())])
    assert dropped.numel() == 0 or kept.min() >= dropped.max()  # global, not per tensor
    assert all(torch.equal(masks[n], r) for n, r in reference_top_fraction(scores, fraction).items())


def test_ties_are_broken_by_position_like_a_stable_argsort():
    g = torch.Generator().manual_seed(1)
    scores = {"a": torch.randint(0, 4, (50,), generator=g).float(), "b": torch.randint(0, 4, (6, 7), generator=g).float()}
    for fraction in (0.1, 0.37, 0.5, 0.9):
        masks = top_fraction(scores, fraction)
        assert all(torch.equal(masks[n], r) for n, r in reference_top_fraction(scores, fraction).items())
    zeros = top_fraction({"z": torch.zeros(10)}, 0.3)["z"]
    assert zeros.tolist() == [True] * 3 + [False] * 7


def test_nan_or_negative_scores_are_refused():
    with pytest.raises(ConfigError, match="non-negative"):
        top_fraction({"a": torch.tensor([1.0, float("nan")])}, 0.5)
    with pytest.raises(ConfigError, match="non-negative"):
        top_fraction({"a": torch.tensor([1.0, -2.0])}, 0.5)


def test_signed_sum_then_abs_differs_from_abs_per_batch():
    """Weight 0 gets +3 then -3 (cancels: not salient); weight 1 gets +1 twice (salient)."""
    w = torch.nn.Parameter(torch.zeros(2))
    batches = [torch.tensor([3.0, 1.0]), torch.tensor([-3.0, 1.0])]
    summed = signed_gradient_sum({"w": w}, ((w * b).sum() for b in batches))
    assert summed["w"].tolist() == [0.0, 2.0] and w.grad is None
    signed = SaliencyMask.from_gradients(summed, 0.5).masks["w"]
    per_batch = top_fraction({"w": sum(b.abs() for b in batches)}, 0.5)["w"]
    assert signed.tolist() == [False, True] and per_batch.tolist() == [True, False]


def test_signed_gradient_sum_is_the_sum_of_per_batch_gradients():
    torch.manual_seed(0)
    layer = torch.nn.Linear(4, 3)
    params = dict(layer.named_parameters())
    inputs = [torch.randn(5, 4) for _ in range(3)]
    expected = {n: torch.zeros_like(p) for n, p in params.items()}
    for x in inputs:
        layer.zero_grad()
        (layer(x) ** 2).mean().backward()
        for n, p in params.items():
            expected[n] += p.grad
    summed = signed_gradient_sum(params, ((layer(x) ** 2).mean() for x in inputs))
    for n in params:
        torch.testing.assert_close(summed[n], expected[n])


def test_masked_weights_stay_bit_identical_under_adam():
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(64))
    target = torch.randn(64)
    mask = SaliencyMask({"w": torch.arange(64) % 3 == 0}, 1 / 3)
    before = w.detach().clone()

    def loss_fn(step, generator):
        return ((w - target - 0.1 * torch.randn(64, generator=generator)) ** 2).sum()

    train({"w": w}, torch.optim.Adam([w], lr=0.1), loss_fn, steps=20, seed=0, grad_hook=lambda: mask.apply({"w": w}), progress=False)
    frozen = ~mask.masks["w"]
    assert torch.equal(w.detach()[frozen], before[frozen])  # bit for bit
    assert (w.detach()[~frozen] != before[~frozen]).all()


def test_masking_only_later_would_let_adam_move_masked_weights():
    """Why the mask applies from step 0: Adam's momentum moves a weight whose gradient is now zero."""
    w = torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.Adam([w], lr=0.1)
    for step in range(3):
        opt.zero_grad()
        (w ** 2).sum().backward()
        if step > 0:
            w.grad[0] = 0.0
        before = w.detach().clone()
        opt.step()
    assert w[0] != before[0]


def test_apply_zeroes_masked_gradients_even_when_infinite():
    w = torch.nn.Parameter(torch.zeros(3))
    w.grad = torch.tensor([float("inf"), 2.0, float("nan")])
    SaliencyMask({"w": torch.tensor([False, True, False])}).apply({"w": w})
    assert w.grad.tolist() == [0.0, 2.0, 0.0]


def test_report_counts_sparsity_per_tensor():
    mask = SaliencyMask({"a": torch.tensor([True, False, False, False]), "b": torch.ones(2, 2, dtype=torch.bool)}, 0.5)
    report = mask.report()
    assert (report["kept"], report["total"], report["sparsity"]) == (5, 8, 0.375)
    assert report["sparsity_per_tensor"] == {"a": 0.75, "b": 0.0}


def test_save_load_round_trip_and_checks(tmp_path):
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(0)
    params = {"unet.a.weight": torch.zeros(3, 4), "unet.b.bias": torch.zeros(5)}
    mask = SaliencyMask({n: torch.rand(p.shape, generator=g) > 0.5 for n, p in params.items()}, 0.5)
    path = mask.save(str(tmp_path / "mask.safetensors"), {"concepts": ["star"]})
    loaded = SaliencyMask.load(path)
    assert loaded.fraction == 0.5 and all(torch.equal(loaded.masks[n], m) for n, m in mask.masks.items())
    loaded.check(params)
    save_file({n: m.to(torch.uint8) for n, m in mask.masks.items()}, str(tmp_path / "u8.safetensors"))
    assert all(torch.equal(SaliencyMask.load(str(tmp_path / "u8.safetensors")).masks[n], m) for n, m in mask.masks.items())
    with pytest.raises(ConfigError, match="does not match the trained tensors"):
        loaded.check({"unet.a.weight": torch.zeros(3, 4)})
    with pytest.raises(ConfigError, match="shape"):
        loaded.check({"unet.a.weight": torch.zeros(4, 3), "unet.b.bias": torch.zeros(5)})
    with pytest.raises(ConfigError, match="does not exist"):
        SaliencyMask.load(str(tmp_path / "missing.safetensors"))
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ConfigError, match="not a safetensors mask file"):
        SaliencyMask.load(str(tmp_path / "junk.safetensors"))
