"""Gradient surgery on hand-made vectors (algorithms.md, Cheap verification, DoCo (1))."""

import math

import pytest
import torch

from erase.surgery import (
    ConceptPreservingGradient,
    clip_global_norm_,
    conflict_projection,
)

S = 1 / math.sqrt(2)


def test_doco_rule_on_the_two_dimensional_example():
    g_u, g_r = torch.tensor([1.0, 0.0]), torch.tensor([-S, S])  # cos = -1/sqrt(2) < 0
    cos = -S
    out = conflict_projection(g_u, g_r, "doco", lam=1.0)
    assert torch.allclose(out, g_u - cos * g_r)  # g_r is already a unit vector: (0.5, 0.5)
    assert torch.allclose(out, torch.tensor([0.5, 0.5]))
    assert torch.allclose(conflict_projection(g_u, g_r, "doco", lam=0.5), g_u - 0.5 * cos * g_r)


def test_doco_rule_uses_the_unit_direction_not_the_pcgrad_projection():
    g_u, g_r = torch.tensor([3.0, 0.0]), torch.tensor([-2.0, 2.0])  # |g_u| = 3: DoCo removes only |cos| of it
    doco, pcgrad = conflict_projection(g_u, g_r, "doco"), conflict_projection(g_u, g_r, "pcgrad")
    assert torch.allclose(doco, torch.tensor([3.0 - 0.5, 0.5]))
    assert torch.dot(doco, g_r) < -1e-3  # the conflict is only partly removed
    assert torch.allclose(pcgrad, torch.tensor([1.5, 1.5]))
    assert abs(torch.dot(pcgrad, g_r).item()) < 1e-6


def test_pcgrad_mode_leaves_no_conflict():
    g_u, g_r = torch.tensor([1.0, 0.0]), torch.tensor([-S, S])
    out = conflict_projection(g_u, g_r, "pcgrad")
    assert abs(torch.dot(out, g_r).item()) < 1e-7 and not torch.allclose(out, g_u)


@pytest.mark.parametrize("mode", ["doco", "pcgrad", "off"])
def test_no_conflict_no_change(mode):
    g_u = torch.tensor([1.0, 0.0])
    for g_r in (torch.tensor([S, S]), torch.tensor([0.0, 1.0]), torch.zeros(2)):  # cos > 0, cos = 0, no g_r
        assert torch.equal(conflict_projection(g_u, g_r, mode), g_u)
    assert torch.equal(conflict_projection(torch.zeros(2), torch.tensor([-1.0, 0.0]), mode), torch.zeros(2))


def test_off_leaves_conflicts_alone_and_bad_modes_are_refused():
    g_u, g_r = torch.tensor([1.0, 0.0]), torch.tensor([-S, S])
    assert torch.equal(conflict_projection(g_u, g_r, "off"), g_u)
    with pytest.raises(ValueError, match="doco, pcgrad, off"):
        conflict_projection(g_u, g_r, "pc-grad")


def test_projection_is_per_tensor():
    """Two tensors: one conflicts, one does not. Global PCGrad would change both; per tensor only one moves."""
    a = torch.nn.Parameter(torch.zeros(2))
    b = torch.nn.Parameter(torch.zeros(1, 2))
    cpg = ConceptPreservingGradient({"a": a, "b": b}, "doco", max_grad_norm=None)
    retain = (a * torch.tensor([-S, S])).sum() + (b * torch.tensor([[1.0, 0.0]])).sum()
    cpg.store_retain(retain)
    assert a.grad is None and b.grad is None  # the retain backward leaves .grad free
    ((a * torch.tensor([1.0, 0.0])).sum() + (b * torch.tensor([[0.5, 0.5]])).sum()).backward()
    cpg.correct()
    assert torch.allclose(a.grad, torch.tensor([0.5, 0.5]))
    assert torch.equal(b.grad, torch.tensor([[0.5, 0.5]]))  # its own cos > 0, whatever the other tensor does
    assert cpg.conflicts == 1
    with pytest.raises(RuntimeError, match="before store_retain"):
        cpg.correct()


def test_both_gradients_are_clipped_to_the_global_norm_before_the_rule():
    p = torch.nn.Parameter(torch.zeros(2))
    cpg = ConceptPreservingGradient({"p": p}, "doco", max_grad_norm=1.0)
    cpg.store_retain((p * torch.tensor([-30.0, 30.0])).sum())
    assert torch.allclose(cpg.retain["p"].norm(), torch.tensor(1.0), atol=1e-5)
    (p * torch.tensor([10.0, 0.0])).sum().backward()
    cpg.correct()
    # after clipping |g_u| = 1, so the DoCo rule removes the conflict exactly
    assert torch.allclose(p.grad, torch.tensor([0.5, 0.5]), atol=1e-5)
    grads = [torch.tensor([3.0, 4.0]), torch.tensor([0.0])]
    assert clip_global_norm_(grads, 1.0) == pytest.approx(5.0)
    assert torch.allclose(grads[0], torch.tensor([0.6, 0.8]), atol=1e-5)
