"""Under ``accelerate launch`` a bench gives whole cells to each process (``pipelines.sharding.alone``):
training inside a cell must neither join the other processes' collectives nor depend on its rank."""

import pytest
import torch
from safetensors.torch import load_file

from erase import ESDConfig, erase
from tests.launch import launch_two_processes

ALONE = r"""
import sys, torch
torch.set_num_threads(1)
from safetensors.torch import save_file
from erase import ESDConfig, erase
from pipelines import load_pipeline
from pipelines.sharding import alone, process_index
steps = 2 if process_index() == 0 else 4  # different cells: different numbers of steps, so any collective would hang
with alone():
    result = erase(load_pipeline(sys.argv[1]), ESDConfig(concepts=["star"], steps=steps, ddim_steps=2), progress=False)
save_file(result.tensors, f"{sys.argv[2]}/rank{process_index()}.safetensors")
"""


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="the two-process check runs on CPU machines")
def test_two_processes_train_different_cells_alone_and_match_a_single_process_run(tiny_folder, tiny_pipe, tmp_path):
    script = tmp_path / "alone.py"
    script.write_text(ALONE)
    launch_two_processes(str(script), tiny_folder, str(tmp_path))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the launched processes: bitwise equality needs the same reduction order
    try:
        single = erase(tiny_pipe, ESDConfig(concepts=["star"], steps=4, ddim_steps=2), progress=False)
    finally:
        torch.set_num_threads(threads)
    launched = load_file(str(tmp_path / "rank1.safetensors"))
    assert all((launched[n] == t).all() for n, t in single.tensors.items())  # rank 1's cell is the cell, not a rank-1 variant
