"""The mini-canvas world (objects drawn in styles) and the spec shared with UnlearnCanvas.

    >>> world = mini_canvas()
    >>> world.prompt("star", "polka dot")
    'A star image in dots style.'
    >>> image = world.render("star", "dots", seed=0)  # 32x32 RGB, the same on every machine
"""

from eval.canvas.mini import MiniCanvas, mini_canvas
from eval.canvas.spec import CanvasSpec

__all__ = ["CanvasSpec", "MiniCanvas", "mini_canvas"]
