"""Diffusers-facing plumbing shared by every method, attack and metric.

The floor of the package: it imports nothing from ``erase``, ``attacks``, ``eval`` or
``demos``. Load a model with :func:`load_pipeline`; see it through a :class:`Backbone`; keep
what a method changed in an :class:`ErasureResult`.
"""

from .artifact import ErasureResult, load_erased, new_record, save_pipeline_folder, stock_pipeline
from .backbone import Backbone, backbone_for
from .errors import BaseMismatchError, ConfigError, EraseError, ModelLoadError, TrainingDiverged
from .loading import load_pipeline, resolve_device
from .noise import NoiseSchedule
from .params import select_parameters
from .prompts import PromptEncoder
from .sampling import sample, sample_until
from .shipped import MINI_CANVAS, mini_canvas_dir, mini_canvas_file
from .tokenizer import clip_tokenizer

__all__ = [
    "Backbone",
    "BaseMismatchError",
    "ConfigError",
    "EraseError",
    "ErasureResult",
    "MINI_CANVAS",
    "ModelLoadError",
    "NoiseSchedule",
    "PromptEncoder",
    "TrainingDiverged",
    "backbone_for",
    "clip_tokenizer",
    "load_erased",
    "load_pipeline",
    "mini_canvas_dir",
    "mini_canvas_file",
    "new_record",
    "resolve_device",
    "sample",
    "sample_until",
    "save_pipeline_folder",
    "select_parameters",
    "stock_pipeline",
]
