"""Prepare a method on a pipeline the way ``ErasureMethod.fit`` does, for tests that call ``loss`` directly."""

from __future__ import annotations

from pipelines import backbone_for
from pipelines.params import select_parameters


def prepare_method(method, pipe):
    """Validate ``method``'s config, select its trainable tensors, and ``prepare`` it on ``pipe``.

    Returns ``(method, params)``: tests read the gradients of ``params`` after ``loss().backward()``.
    """
    method.config.validate()
    bb = backbone_for(pipe)
    params = select_parameters(bb.components, method.config.params)
    for p in params.values():
        p.requires_grad_(True)
    method.prepare(bb, params, {n: p.detach().clone() for n, p in params.items()})
    return method, params
