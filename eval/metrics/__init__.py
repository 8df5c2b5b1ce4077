"""Metrics of ``erase eval``: UA / IRA / CRA with bootstrap intervals, FID, CLIP score, and the
plumbing around them (generation cache, prompt sharding, reference sets, reports).

    from eval.metrics.accuracy import Axes, Judged, unlearning_metrics, bootstrap_intervals
    from eval.metrics.fid import Fid, JudgeFeatures, StandardInception, UnlearnCanvasInception
    from eval.metrics.clip import ClipScorer
"""
