"""Erasure methods behind one registry, one training loop, and one Python entry point.

    from erase import erase, ESDConfig
    result = erase(pipe, ESDConfig(concepts=["Van Gogh"], seed=0))
    result.apply_(pipe)            # pipe stays a StableDiffusionPipeline
    result.save("out/no-vangogh")  # artifact + record + card + stock pipeline folder
"""

from pipelines import ErasureResult

from . import esd  # noqa: F401  (registers the method)
from . import salun  # noqa: F401
from . import fewshot  # noqa: F401
from . import advunlearn  # noqa: F401
from . import sfd  # noqa: F401
from . import doco  # noqa: F401
from .advunlearn import AdvUnlearnConfig
from .api import erase
from .config import MethodConfig
from .doco import DoCoConfig
from .esd import ESDConfig
from .fewshot import FewShotConfig
from .method import ErasureMethod, RunOptions
from .registry import available, get_method, register
from .salun import SalUnConfig
from .sfd import SFDConfig

__all__ = [
    "AdvUnlearnConfig",
    "DoCoConfig",
    "ESDConfig",
    "ErasureMethod",
    "ErasureResult",
    "FewShotConfig",
    "MethodConfig",
    "RunOptions",
    "SFDConfig",
    "SalUnConfig",
    "available",
    "erase",
    "get_method",
    "register",
]
