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

A row joined with ``@`` (``advunlearn@esd``) is a stack trained in sequence: the part after ``@`` is
taken as above, and the one before it is trained in front of that artifact (its ``unet_from``
option: AdvUnlearn's text encoder against ESD's erased UNet, the targets the base model's), into
the cell's artifact, which holds both edits. Only a method with that option can stand before ``@``.
"""

from __future__ import annotations

from dataclasses import fields

from pipelines.errors import ConfigError

from .cells import Cell

SEPARATOR = "+"
OVER = "@"  # ``top@under``: top trained in front of under's artifact (its ``unet_from``)


def is_stack(name: str) -> bool:
    return SEPARATOR in name or OVER in name


def is_sequential(name: str) -> bool:
    return OVER in name


def part_names(name: str) -> list[str]:
    """The registered methods a stack row is made of, in the order they are made (``advunlearn@esd``:
    esd, then advunlearn), or a ConfigError naming the problem."""
    from erase.registry import get_method

    if is_sequential(name):
        parts = [p.strip() for p in name.split(OVER)][::-1]
        if SEPARATOR in name or len(parts) != 2 or not all(parts):
            raise ConfigError(f"--methods {name!r}: a sequential row is TOP@UNDER, two methods, e.g. advunlearn@esd "
                              "(AdvUnlearn trained in front of ESD's UNet)")
        if "unet_from" not in {f.name for f in fields(get_method(parts[1]).config_class)}:
            raise ConfigError(f"--methods {name!r}: {parts[1]} cannot be trained in front of another erasure (it has no "
                              "--unet-from); put a method that has it before the @, e.g. advunlearn@esd")
    else:
        parts = [p.strip() for p in name.split(SEPARATOR)]
    if len(parts) < 2 or not all(parts):
        raise ConfigError(f"--methods {name!r}: a stack row joins two or more methods with '+', e.g. esd+advunlearn")
    repeated = sorted({p for p in parts if parts.count(p) > 1})
    if repeated:
        raise ConfigError(f"--methods {name!r} names {repeated[0]} twice; a stack joins different methods, which change "
                          "different tensors")
    for part in parts:
        if get_method(part).one_step:  # an unknown name fails here with the list of known ones
            raise ConfigError(f"--methods {name!r}: {part} makes a one-step generator, which samples alone and can "
                              "share a model with no other erasure; bench it as its own row")
    return parts


def stack_cell(parts: list[Cell], attack: dict | None, sequential: bool = False) -> Cell:
    """The cell of the stack of ``parts`` (plain cells of one target, in the order :func:`part_names`
    gives), trained in sequence (``top@under``) or merged (``a+b``)."""
    first = parts[0]
    if sequential:
        _check_under(parts)
    name = OVER.join(p.method for p in reversed(parts)) if sequential else SEPARATOR.join(p.method for p in parts)
    return Cell(method=name, target=first.target, kind=first.kind,
                config={"stack": [{"method": p.method, "config": p.config} for p in parts]},
                method_version=SEPARATOR.join(p.method_version for p in parts), model=first.model,
                eval_settings=first.eval_settings, attack=attack,
                inputs={f"{p.method}:{name}": digest for p in parts for name, digest in p.inputs.items()},
                parts=tuple(parts))


def _check_under(parts: list[Cell]) -> None:
    """A ``top@under`` row whose under part would change more than the UNet fails when top is trained,
    after under's training; its ``params`` preset says so before anything trains."""
    from pipelines.params import preset_components

    under, top = parts
    preset = under.config.get("params")
    if preset is not None and preset_components(preset) != ("unet",):
        raise ConfigError(f"--methods {top.method}{OVER}{under.method}: {under.method} trains {preset} "
                          f"({' and '.join(preset_components(preset))}), and {top.method} can only be trained in "
                          "front of an erasure of the UNet alone: put esd, salun or doco after the @, or give "
                          f"{under.method} a UNet preset (--method-config {under.method}=FILE)")
