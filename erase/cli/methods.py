"""``erase methods``: the registered methods, one line each."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("methods", help="list the erasure methods", description="List the registered erasure methods.")
    p.set_defaults(handler=run)


def run(args) -> int:
    from ..registry import available

    methods = available()
    width = max(len(n) for n in methods)
    for name, cls in methods.items():
        print(f"{name:<{width}}  {cls.summary}")
    return 0
