"""segfuse.metrics._surface_tables: the surfel tables equal DeepMind's and MONAI's, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from monai.metrics.utils import create_table_neighbour_code_to_contour_length as monai_lengths
from monai.metrics.utils import create_table_neighbour_code_to_surface_area as monai_areas
from surface_distance import lookup_tables

from segfuse.metrics._surface_tables import (
    _NEIGHBOUR_CODE_TO_NORMALS,
    deepmind_surfel_areas,
    encoding_weights,
    monai_surfel_areas,
)


def test_normals_are_deepminds():
    assert len(_NEIGHBOUR_CODE_TO_NORMALS) == 256
    for ours, theirs in zip(_NEIGHBOUR_CODE_TO_NORMALS, lookup_tables._NEIGHBOUR_CODE_TO_NORMALS):
        np.testing.assert_array_equal(np.array(ours), np.array(theirs))


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (1.0, 1.0, 2.5), (0.85, 1.2, 0.9), (3.0, 2.0, 1.0)])
def test_3d_area_tables_equal_the_references(spacing):
    np.testing.assert_array_equal(deepmind_surfel_areas(spacing),
                                  lookup_tables.create_table_neighbour_code_to_surface_area(spacing))
    np.testing.assert_array_equal(monai_surfel_areas(spacing), monai_areas(spacing)[0].double().numpy())


@pytest.mark.parametrize("spacing", [(1.0, 1.0), (2.0, 1.0), (0.7, 1.9)])
def test_2d_length_tables_equal_the_references(spacing):
    np.testing.assert_array_equal(deepmind_surfel_areas(spacing),
                                  lookup_tables.create_table_neighbour_code_to_contour_length(spacing))
    np.testing.assert_array_equal(monai_surfel_areas(spacing), np.asarray(monai_lengths(spacing)[0]))


def test_convention_encoding_weights_are_the_references_kernels():
    np.testing.assert_array_equal(encoding_weights(2), lookup_tables.ENCODE_NEIGHBOURHOOD_2D_KERNEL.ravel())
    np.testing.assert_array_equal(encoding_weights(3), lookup_tables.ENCODE_NEIGHBOURHOOD_3D_KERNEL.ravel())
    assert not deepmind_surfel_areas((1.0, 1.0)).flags.writeable
