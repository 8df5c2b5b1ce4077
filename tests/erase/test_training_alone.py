"""Under ``accelerate launch`` a bench gives whole cells to each process (``pipelines.sharding.alone``):
training inside a cell must neither join the other processes' collectives nor depend on its rank."""

import os
import subprocess
import sys

import pytest
from safetensors.torch import load_file

from erase import ESDConfig, erase
from tests.eval.test_answers import _free_port

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
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd()}
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--main_process_port", str(_free_port()), "--mixed_precision", "no",
               "--dynamo_backend", "no", str(script), tiny_folder, str(tmp_path)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    single = erase(tiny_pipe, ESDConfig(concepts=["star"], steps=4, ddim_steps=2), progress=False)
    launched = load_file(str(tmp_path / "rank1.safetensors"))
    assert all((launched[n] == t).all() for n, t in single.tensors.items())  # rank 1's cell is the cell, not a rank-1 variant
