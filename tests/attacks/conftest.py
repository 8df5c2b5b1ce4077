"""Tiny pipelines built in memory: loading one from disk costs a tokenizer parse per test."""

import pytest

from tests.tiny import tiny_pipeline


@pytest.fixture(scope="session")
def memory_pipe():
    """A tiny SD 1.x-style pipeline shared by the attack tests; treat it as read-only."""
    pipe = tiny_pipeline()
    pipe.set_progress_bar_config(disable=True)
    return pipe
