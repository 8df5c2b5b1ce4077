"""The old name of :mod:`pipelines.sharding`, kept so that ``eval`` code and tests that import or
monkeypatch ``eval.metrics.sharding`` reach the same module object (and its process state).

The sharding helpers moved to ``pipelines`` because ``attacks`` uses them too and may not import
the ``eval`` runners' layer (``shared/docs/contracts.md``).
"""

import sys

from pipelines import sharding as _moved

sys.modules[__name__] = _moved
