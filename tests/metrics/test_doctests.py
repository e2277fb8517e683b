import doctest
import importlib

import pytest
import torch

MODULES = ["confusion", "scores", "semantic", "fscore", "pr_curve"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(f"segfuse.metrics.{name}")
    result = doctest.testmod(module, extraglobs={"torch": torch})
    assert result.failed == 0 and result.attempted > 0
