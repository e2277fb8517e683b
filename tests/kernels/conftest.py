"""Kernel tests: Triton's interpreter on CPU tensors (CI), compiled kernels on CUDA.

TRITON_INTERPRET must be set before Triton kernels are defined. segfuse defines them
when a kernel module (segfuse.kernels.multiclass, ...) is first imported, which happens
only at the first kernel call, so setting the variable here, at collection time, is
early enough even when other test files imported segfuse before. Without CUDA the
interpreter is switched on for the session (it only affects Triton kernels defined
after this point); with CUDA the compiled kernels are tested (tests/kernels/test_cuda.py)
and the interpreter tests skip.
"""

import importlib.util
import os
import sys

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

INTERPRETER = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
TRITON = importlib.util.find_spec("triton") is not None


def _modules_defined_without_interpreter() -> list[str]:
    names = ("segfuse.kernels.multiclass", "segfuse.kernels.sigmoid", "segfuse.kernels.confusion")
    return [name for name in names if name in sys.modules and not sys.modules[name].DEFINED_FOR_INTERPRETER]


@pytest.fixture
def interpreted_kernels(monkeypatch):
    """Route CPU tensors through the kernels (Triton interpreter) for one test."""
    if not TRITON:
        pytest.skip("triton is not installed")
    if not INTERPRETER:
        pytest.skip("interpreter tests run without CUDA (TRITON_INTERPRET=1); see test_cuda.py")
    stale = _modules_defined_without_interpreter()
    if stale:
        pytest.fail(f"{stale} were imported before TRITON_INTERPRET=1 was set; their kernels are compiled ones")
    monkeypatch.setenv("SEGFUSE_FORCE_KERNELS", "1")
    monkeypatch.delenv("SEGFUSE_DISABLE_KERNELS", raising=False)
    yield


@pytest.fixture
def torch_path(monkeypatch):
    """A context switch: ``with torch_path(): ...`` runs the torch reference path."""
    import contextlib

    @contextlib.contextmanager
    def switch():
        with monkeypatch.context() as patch:
            patch.setenv("SEGFUSE_DISABLE_KERNELS", "1")
            yield

    return switch
