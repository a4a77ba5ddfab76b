"""Mesh geometry: edges, Laplacians (uniform, cotangent), point / mesh distances, subdivision and icospheres."""

from .distance import (chamfer_distance, closest_point_on_triangle, point_mesh_distance, points_to_mesh_loss,
                       sample_points_on_mesh)
from .laplacian import cotangent_laplacian, mesh_edges, uniform_laplacian
from .subdivide import icosphere, loop_subdivide, numbered_edges, subdivide_midpoint

__all__ = [
    "chamfer_distance",
    "closest_point_on_triangle",
    "cotangent_laplacian",
    "icosphere",
    "loop_subdivide",
    "mesh_edges",
    "numbered_edges",
    "point_mesh_distance",
    "points_to_mesh_loss",
    "sample_points_on_mesh",
    "subdivide_midpoint",
    "uniform_laplacian",
]

from .deformation import (BasisDeformation, MLPDeformation, NonRigidDeformation, basis_offsets, dct_basis,
                          deform_verts, mlp_offsets, positional_encoding, remove_rigid_motion)

__all__ += ["BasisDeformation", "MLPDeformation", "NonRigidDeformation", "basis_offsets", "dct_basis", "deform_verts",
            "mlp_offsets", "positional_encoding", "remove_rigid_motion"]
