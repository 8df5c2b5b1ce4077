"""Where the files shipped inside the package live (the embedded mini-canvas model).

The mini-canvas world's text-to-image pipeline, its judge and its small CLIP are package data
under ``pipelines/mini_canvas/``. This module only *locates* them, so that loading the default
model never imports the evaluation code that trains or uses them.
"""

from __future__ import annotations

import os

from .errors import ModelLoadError

MINI_CANVAS = "mini-canvas"
#: The subfolder of a mini-canvas folder holding its one-step generator (SFD stage one's artifact).
ONE_STEP_DIR = "one_step"
_MINI_CANVAS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mini_canvas")


def mini_canvas_dir() -> str:
    """The folder holding the shipped mini-canvas files (it may not exist before training)."""
    return _MINI_CANVAS_DIR


def shipped_one_step_dir() -> str:
    """The shipped one-step generator distilled from the mini-canvas model (SFD stage one's artifact)."""
    return os.path.join(_MINI_CANVAS_DIR, ONE_STEP_DIR)


def mini_canvas_file(name: str) -> str:
    """Path of one shipped mini-canvas file or folder; a clear error if it is missing."""
    path = os.path.join(_MINI_CANVAS_DIR, name)
    if not os.path.exists(path):
        raise ModelLoadError(
            f"the shipped mini-canvas file '{name}' is missing from {_MINI_CANVAS_DIR}; reinstall the "
            "package, or rebuild the mini-canvas models with `erase mini-canvas train`"
        )
    return path
