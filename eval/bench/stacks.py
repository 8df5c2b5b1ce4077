"""Stack rows of ``erase bench``: a method name joined with ``+`` (``--methods esd,advunlearn,esd+advunlearn``).

A stack row benches, for each target, the artifact ``erase stack`` makes from its parts' artifacts
for that target (:mod:`pipelines.stack`: ESD's UNet under AdvUnlearn's text encoder), evaluated
and attacked like any cell, so a composition's figures come from the same command, protocol and
records as the methods it is made of.

Each part is the very cell its plain method's row would plan for the target (its
``--method-config``, its key). When that cell is finished in the same bench folder, the stack
takes its artifact as it is and trains nothing; otherwise the part is trained inside the stack's
own cell (``parts/<method>/``, resumable like any cell's erasure). The stack's key covers every
part's method, version, config and inputs, so a part that changes redoes the stack, and the
stack's config in its record says what each part was.
"""

from __future__ import annotations

from pipelines.errors import ConfigError

from .cells import Cell

SEPARATOR = "+"


def is_stack(name: str) -> bool:
    return SEPARATOR in name


def part_names(name: str) -> list[str]:
    """The registered methods a stack row is made of, or a ConfigError naming the problem."""
    from erase.registry import get_method

    parts = [p.strip() for p in name.split(SEPARATOR)]
    if len(parts) < 2 or not all(parts):
        raise ConfigError(f"--methods {name!r}: a stack row joins two or more methods with '+', e.g. esd+advunlearn")
    repeated = sorted({p for p in parts if parts.count(p) > 1})
    if repeated:
        raise ConfigError(f"--methods {name!r} names {repeated[0]} twice; a stack joins different methods, which change "
                          "different tensors")
    for part in parts:
        get_method(part)  # an unknown name fails here with the list of known ones
    return parts


def stack_cell(parts: list[Cell], attack: dict | None) -> Cell:
    """The cell of the stack of ``parts`` (plain cells of one target, in stacking order)."""
    first = parts[0]
    return Cell(method=SEPARATOR.join(p.method for p in parts), target=first.target, kind=first.kind,
                config={"stack": [{"method": p.method, "config": p.config} for p in parts]},
                method_version=SEPARATOR.join(p.method_version for p in parts), model=first.model,
                eval_settings=first.eval_settings, attack=attack,
                inputs={f"{p.method}:{name}": digest for p in parts for name, digest in p.inputs.items()},
                parts=tuple(parts))
