"""Optional compiled kernels (numba): load a kernel module only where numba is installed and imports.

Convention: every compiled module has a numpy twin that gives the same numbers; callers ask
:func:`compiled` and take the numpy path on None. Importing this module imports neither
numba nor torch.
"""

from __future__ import annotations

import importlib
import importlib.util
from functools import lru_cache


@lru_cache(maxsize=None)
def compiled(module: str):
    """The numba-compiled module ``module`` (a dotted name), or None where numba is missing, does not load
    or compiles nothing (``NUMBA_DISABLE_JIT=1`` would run the kernels as slow Python)."""
    if importlib.util.find_spec("numba") is None:
        return None
    try:
        kernels = importlib.import_module(module)
        from numba import config
    except Exception:  # e.g. a numba built for another numpy: the numpy code answers
        return None
    return None if config.DISABLE_JIT else kernels
