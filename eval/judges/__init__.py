"""Judges: classifiers that say whether an image shows a concept (``predict`` and ``verdict``)."""

from eval.judges.canvas_judge import CanvasJudge, JudgeConfig, train_judge

__all__ = ["CanvasJudge", "JudgeConfig", "train_judge"]
