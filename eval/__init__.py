"""Measuring erasure: the mini-canvas world, the judges (classifiers) and, later, the runners."""
