"""``coco_path``: run a test on the compiled (numba) matching and accumulation and on the numpy ones."""

from __future__ import annotations

import pytest

from segfuse import _accelerate
from segfuse.coco import _pipeline


@pytest.fixture(params=["numba", "numpy"])
def coco_path(request, monkeypatch):
    """The path under test: "numba" forces the compiled kernels (skips where numba is not installed),
    "numpy" switches them off."""
    kernels = _accelerate.compiled("segfuse.coco._compiled") if request.param == "numba" else None
    if request.param == "numba" and kernels is None:
        pytest.skip("numba is not installed: the compiled COCO path is off")
    monkeypatch.setattr(_pipeline, "kernels", lambda work=0: kernels)
    return request.param
