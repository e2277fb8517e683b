"""The docstring examples run (each ends in .backward())."""

import doctest

import pytest
import torch

from segfuse.losses import compound, cross_entropy, focal, lovasz, overlap


@pytest.mark.parametrize("module", [overlap, lovasz, focal, cross_entropy, compound])
def test_docstring_examples_run(module):
    result = doctest.testmod(module, extraglobs={"torch": torch}, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
