"""Shared fixtures: tiny random pipelines saved once per session, loaded fresh per test."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network
# CI has 2 cores. Under pytest-xdist each worker gets one thread (two workers fill the cores
# without oversubscribing them); OMP_NUM_THREADS=1 does the same while another job shares them.
_default_threads = 1 if os.environ.get("PYTEST_XDIST_WORKER") else min(2, os.cpu_count() or 1)
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", _default_threads)))


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory) -> str:
    """A tiny SD 1.x-style pipeline saved as a diffusers folder."""
    from pipelines import save_pipeline_folder
    from tests.tiny import tiny_pipeline

    folder = str(tmp_path_factory.mktemp("tiny") / "pipe")
    os.makedirs(folder)
    save_pipeline_folder(tiny_pipeline(), folder)
    return folder


@pytest.fixture(scope="session")
def tiny_v_folder(tmp_path_factory) -> str:
    """The same, as a v-prediction model (SD 2.x style)."""
    from pipelines import save_pipeline_folder
    from tests.tiny import tiny_pipeline

    folder = str(tmp_path_factory.mktemp("tiny_v") / "pipe")
    os.makedirs(folder)
    save_pipeline_folder(tiny_pipeline(prediction_type="v_prediction", seed=1), folder)
    return folder


@pytest.fixture
def tiny_pipe(tiny_folder):
    from pipelines import load_pipeline

    return load_pipeline(tiny_folder)
