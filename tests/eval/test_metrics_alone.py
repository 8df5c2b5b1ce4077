"""A bench cell scored inside ``pipelines.sharding.alone()`` keeps its FID to itself: torchmetrics would
otherwise add the other process's images (a different cell) into the statistics on ``compute``."""

from torch import nn

from eval.metrics.fid import Fid
from pipelines import sharding


class _Features(nn.Module):
    num_features = 4

    def forward(self, x):
        return x.float().flatten(1)[:, :4]


class _TwoProcesses:
    num_processes, process_index, is_main_process = 2, 1, False


def test_fid_syncs_across_processes_except_inside_alone(monkeypatch):
    monkeypatch.setattr(sharding, "_accelerate_state", lambda: _TwoProcesses())
    assert Fid(_Features()).metric.sync_on_compute  # a sharded eval: every process holds part of the images
    with sharding.alone():
        assert not Fid(_Features()).metric.sync_on_compute  # a bench cell: this process's images are the cell's
