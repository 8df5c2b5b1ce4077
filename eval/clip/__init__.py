"""CLIP for measuring text-image alignment: the mini-canvas CLIP and CLIP score for any open_clip model.

    >>> model, report = train_mini_clip(mini_canvas())       # or: load_mini_clip(folder)
    >>> save_mini_clip(model, "/tmp/mini_clip", report, report["model_cfg"])
    >>> model, preprocess, tokenizer = load_mini_clip("/tmp/mini_clip")
    >>> clip_score(images, prompts, model, preprocess, tokenizer)   # torchmetrics' CLIPScore, 0-100

``python -m eval.clip.check`` trains one with the defaults and prints how good it is.
"""

from eval.clip.mini import BACKBONE, MODEL_CFG, create_mini_clip, load_mini_clip, read_record, save_mini_clip
from eval.clip.score import clip_score
from eval.clip.train import train_mini_clip

__all__ = ["BACKBONE", "MODEL_CFG", "clip_score", "create_mini_clip", "load_mini_clip", "read_record",
           "save_mini_clip", "train_mini_clip"]
