"""Neural and grid fields for volume rendering: dense voxel grid, multiresolution hash encoding (row-sparse
gradients), frequency and SH encodings, MLP heads, and ``NerfField`` assembling them."""

from .aabb import as_aabb, to_unit_cube
from .dense_grid import DenseGrid, grid_total_variation, trilinear_interpolate
from .encodings import FrequencyEncoding, SHEncoding, frequency_encode, sh_encode
from .hash_grid import HashGridEncoding, hash_grid_encode, hash_level_layout
from .mlp import MLP, density_activation
from .nerf import NerfField

__all__ = [
    "DenseGrid",
    "FrequencyEncoding",
    "HashGridEncoding",
    "MLP",
    "NerfField",
    "SHEncoding",
    "as_aabb",
    "density_activation",
    "frequency_encode",
    "grid_total_variation",
    "hash_grid_encode",
    "hash_level_layout",
    "sh_encode",
    "to_unit_cube",
    "trilinear_interpolate",
]
