"""Named variants of a method for ``erase bench``: one method, several configs, side by side.

An ablation benches one method under several settings (DoCo's gradient rule off, DoCo's,
PCGrad's). Cells are keyed and filed by method, so three configs of one method would share
``cells/doco/<target>``; a variant gives each its own name, which the folders, the leaderboard
rows and the plots show::

    erase bench --methods doco --targets stripes,star \\
        --variant doco-off=doco:surgery=off --variant doco-pcgrad=doco:surgery=pcgrad --out runs/ablation

``NAME=METHOD[:KEY=VALUE,KEY=VALUE...]``: the variant ``NAME`` is ``METHOD`` with the options
``KEY=VALUE`` (values read as JSON where they parse, ``lam=0.5``, ``hflip=false``; as text
otherwise) on top of that method's ``--method-config`` file, if any. The overrides are in the
cell's config and so in its key; the variant's name is in the key too. A plain method's cells
keep exactly the key they always had (no variant field in it), so finished benches stay done.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from pipelines.errors import ConfigError

from .stacks import is_stack

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
FORM = "NAME=METHOD[:KEY=VALUE,...], e.g. doco-off=doco:surgery=off"


@dataclass(frozen=True)
class Variant:
    name: str  # what the folders and the leaderboard show
    method: str  # the registered method it runs
    overrides: dict[str, Any] = field(default_factory=dict)


def parse_variant(entry: str) -> Variant:
    """One ``--variant`` value, or a ConfigError that names the problem and the form."""
    from erase.config import checked_values
    from erase.registry import available, get_method

    name, sep, rest = entry.partition("=")
    method, _, options = rest.partition(":")
    name, method = name.strip(), method.strip()
    if not sep or not method:
        raise ConfigError(f"--variant {entry!r}: give {FORM}")
    if not NAME.fullmatch(name):
        raise ConfigError(f"--variant {entry!r}: the name {name!r} names a folder; use letters, digits, '.', '_' and '-' ({FORM})")
    if name in available():
        raise ConfigError(f"--variant {entry!r}: {name!r} is a method's own name, whose cells it would share; pick another name")
    if is_stack(method):
        raise ConfigError(f"--variant {entry!r}: a stack row has no options of its own; its parts take their methods' "
                          "--method-config METHOD=FILE")
    cls = get_method(method)  # an unknown method fails here with the list of known ones
    overrides: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in options.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ConfigError(f"--variant {entry!r}: {item!r} is not KEY=VALUE ({FORM})")
        try:
            overrides[key.strip()] = json.loads(value)
        except ValueError:
            overrides[key.strip()] = value.strip()
    overrides = checked_values(cls.config_class, overrides, f"--variant {name}")
    if "concepts" in overrides:
        raise ConfigError(f"--variant {entry!r}: the bench sets the concepts (one target per cell); leave 'concepts' out")
    return Variant(name, method, overrides)


def parse_variants(entries: list[str]) -> list[Variant]:
    """Every ``--variant``; two with one name are refused (they would share folders)."""
    variants = [parse_variant(e) for e in entries]
    names = [v.name for v in variants]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"--variant {name!r} is given {names.count(name)} times; give each variant its own name")
    return variants
