"""``python -m erase`` (and ``accelerate launch -m erase run ...`` for several GPUs)."""

from .cli import entry

entry()
