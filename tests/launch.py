"""Run a script as two real processes under ``accelerate launch``, on the CPU, for the multi-process tests."""

import os
import socket
import subprocess
import sys


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_two_processes(script: str, *args: str, timeout: int = 300) -> None:
    """``accelerate launch`` ``script *args`` as two processes; fail with their stderr if they fail.

    accelerate 1.x's ``--cpu`` launches a single process; ``--multi_gpu`` on a machine without CUDA
    starts torchrun processes that ``pipelines.sharding`` joins over gloo, on the CPU.
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd()}
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--main_process_port", str(_free_port()), "--mixed_precision", "no",
               "--dynamo_backend", "no", script, *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
