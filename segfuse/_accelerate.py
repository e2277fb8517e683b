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
    """The numba-compiled module ``module`` (a dotted name), or None where numba is missing or does not load."""
    if importlib.util.find_spec("numba") is None:
        return None
    try:
        return importlib.import_module(module)
    except Exception:  # e.g. a numba built for another numpy: the numpy code answers
        return None
