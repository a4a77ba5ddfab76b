"""A fitted volume's density as a triangle mesh: an iso-surface by marching tetrahedra on a lattice over the box.

**Why marching tetrahedra.** Each lattice cube is cut into 6 tetrahedra that share the cube's main diagonal
(the Kuhn / Freudenthal triangulation). A tetrahedron has only 16 inside / outside patterns, each giving no
surface, one triangle or a quad, so the case table is built in a few lines below (no table of 256 cube cases to
copy, and no scikit-image dependency). Inside a tetrahedron the trilinear field is replaced by a linear one,
whose level set is one flat polygon: there is no ambiguous case. Every cube is cut the same way (the same
diagonal direction everywhere), so two neighbouring cubes cut their shared face along the same diagonal, and
the surface is watertight: every edge of the mesh is shared by exactly two triangles where the surface does not
leave the box. Marching cubes would give about half as many triangles at the same resolution; the mesh here is
finer in triangles, not in detail.

**Writing the mesh.** ``density_to_mesh`` returns a :class:`lumigrad.Mesh`; write it with the io writers, e.g.
``lumigrad.io.write_ply(path, mesh.verts, mesh.faces)`` or ``lumigrad.io.write_obj(path, mesh.verts, mesh.faces)``.
"""

from __future__ import annotations

import itertools
import math
from typing import Callable, Optional

import torch

from .._checks import check_number, check_positive_int
from ..mesh import Mesh
from .fields.aabb import AabbLike, as_aabb

__all__ = ["density_to_mesh", "default_surface_level"]

# ------------------------------------------------------------------------------------------- case tables
# Cube corner b (0..7) sits at offset (b & 1, (b >> 1) & 1, (b >> 2) & 1) in (x, y, z).
_CORNER_OFFSETS = [(b & 1, (b >> 1) & 1, (b >> 2) & 1) for b in range(8)]


def _kuhn_tetrahedra() -> list:
    """The 6 tetrahedra of a cube around its diagonal corner 0 -> corner 7: for each order (a, b, c) of the
    axes, ``[0, e_a, e_a + e_b, 7]``; each ordered to have a positive volume (``det > 0``)."""
    tets = []
    for a, b, c in itertools.permutations(range(3)):
        v1 = 1 << a
        v2 = v1 | (1 << b)
        tet = [0, v1, v2, 7]
        p = [_CORNER_OFFSETS[k] for k in tet]
        rows = [[p[k][i] - p[0][i] for i in range(3)] for k in (1, 2, 3)]
        det = (rows[0][0] * (rows[1][1] * rows[2][2] - rows[1][2] * rows[2][1])
               - rows[0][1] * (rows[1][0] * rows[2][2] - rows[1][2] * rows[2][0])
               + rows[0][2] * (rows[1][0] * rows[2][1] - rows[1][1] * rows[2][0]))
        tets.append(tet if det > 0 else [tet[0], tet[1], tet[3], tet[2]])
    return tets


_TET_EDGES = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]


def _edge(i: int, j: int) -> int:
    return _TET_EDGES.index((min(i, j), max(i, j)))


def _tet_cases() -> list:
    """Triangles per inside pattern of a positively oriented tetrahedron ``(v0, v1, v2, v3)``.

    Bit ``k`` of the pattern is set when vertex ``k`` is inside (dense). Returns 16 entries, each a list of two
    triangles given as 3 tetrahedron edges (``-1`` rows pad a missing triangle). Triangles face outward, from
    the dense vertices to the empty ones. The rule: for ``(a, b, c, d)`` an even permutation of the vertices
    (so still positively oriented), the triangle with corners on edges ``ab, ac, ad`` faces away from ``a``.
    """
    even = [p for p in itertools.permutations(range(4))
            if sum(p[i] > p[j] for i in range(4) for j in range(i + 1, 4)) % 2 == 0]
    cases = []
    for mask in range(16):
        inside = [k for k in range(4) if mask >> k & 1]
        tris = []
        if len(inside) == 1:  # one triangle facing away from the inside vertex
            a, b, c, d = next(p for p in even if p[0] == inside[0])
            tris = [(_edge(a, b), _edge(a, c), _edge(a, d))]
        elif len(inside) == 3:  # one triangle facing towards the outside vertex
            a, b, c, d = next(p for p in even if p[0] not in inside)
            tris = [(_edge(a, b), _edge(a, d), _edge(a, c))]
        elif len(inside) == 2:  # a quad ac, ad, bd, bc facing away from a and b, as two triangles
            a, b, c, d = next(p for p in even if p[0] in inside and p[1] in inside)
            ac, ad, bc, bd = _edge(a, c), _edge(a, d), _edge(b, c), _edge(b, d)
            tris = [(ac, ad, bd), (ac, bd, bc)]
        cases.append(tris + [(-1, -1, -1)] * (2 - len(tris)))
    return cases


_TETS = torch.tensor(_kuhn_tetrahedra(), dtype=torch.int64)  # [6, 4] cube corners
_EDGE_ENDS = torch.tensor(_TET_EDGES, dtype=torch.int64)  # [6, 2] tetrahedron vertices
_CASES = torch.tensor(_tet_cases(), dtype=torch.int64)  # [16, 2, 3] tetrahedron edges, -1 = none


# ----------------------------------------------------------------------------------------------- public
def default_surface_level(aabb: AabbLike, resolution: int) -> float:
    """The density at which one lattice step is half opaque: ``ln 2 / h``.

    ``h`` is the lattice spacing, the geometric mean ``(hx hy hz)^(1/3)`` of the cell edges
    ``(max - min) / resolution`` (the edge of a cube of the cell's volume). Over a step ``h`` through density
    ``sigma`` the opacity is ``1 - exp(-sigma h)``, which is ``1/2`` at ``sigma = ln 2 / h``: the surface drawn is
    where the volume, seen at the lattice's own resolution, turns from mostly clear to mostly opaque.
    A finer lattice needs denser matter to count as solid (a thin fog is a surface only when seen coarsely).

    Example: the box ``[-1, 1]^3`` at ``resolution=16`` has ``h = 0.125`` and level ``ln 2 / 0.125 = 5.545``.

    **Differentiability:** none (a number from the box and the resolution).
    """
    box = as_aabb(aabb)
    check_positive_int(resolution, "resolution")
    cell = ((box[1] - box[0]).double() / resolution).prod() ** (1.0 / 3.0)
    return math.log(2.0) / float(cell)


def density_to_mesh(density_fn: Callable[[torch.Tensor], torch.Tensor], aabb: AabbLike, *, resolution: int = 128,
                    level: Optional[float] = None, chunk: int = 2 ** 18) -> Mesh:
    """Extract the surface ``density = level`` of a field over a box as a closed, outward-facing triangle mesh.

    The density is sampled on the ``(resolution + 1)^3`` corners of a lattice of ``resolution^3`` cubes over the
    box, each cube cut into 6 tetrahedra (marching tetrahedra; module doc for why). A corner is *inside* when its
    density is ``> level``. Where a lattice edge joins an inside and an outside corner, the surface crosses it at
    the linear interpolation ``t = (level - d_u) / (d_v - d_u)``; the crossing is one mesh vertex shared by every
    triangle that uses that edge (vertices are deduplicated by a global edge key), so the mesh is connected and,
    away from the box walls, closed.

    Args:
        density_fn: maps world points ``[M, 3]`` (the box's dtype, float32 unless ``aabb`` is a float64 tensor;
            on the box's device) to densities ``[M]`` (e.g. ``field.density`` of a NeRF field). Called on at
            most ``chunk`` points at a time, under ``torch.no_grad``. Values must be finite; negative values are
            allowed (only the comparison with ``level`` matters).
        aabb: the box, ``[2, 3]`` or ``[6]`` (world units).
        resolution: cubes per axis (``>= 2``); lattice spacing ``(max - min) / resolution``.
        level: the iso-density (1 / world unit). Default :func:`default_surface_level`: ``ln 2 / h``, where a
            lattice step of length ``h`` becomes half opaque.
        chunk: points per ``density_fn`` call and cubes per meshing pass (bounds memory).

    Returns:
        :class:`lumigrad.Mesh` with ``verts [V, 3]`` (the box's dtype and device) and ``faces [F, 3]`` int64,
        counter-clockwise seen from outside: normals point from dense to empty. Where the dense region reaches
        the box walls the surface is cut open there (the lattice ends at the walls). A volume with no crossing
        inside the box (empty everywhere, or dense everywhere) gives an empty mesh: ``verts [0, 3]``,
        ``faces [0, 3]``. A corner whose density equals ``level`` exactly is outside, and the crossings next to it
        land on it: such triangles may have zero area (the mesh stays closed).

    Raises:
        TypeError: ``density_fn`` is not callable; ``resolution`` / ``chunk`` not ints.
        ValueError: ``resolution < 2``, ``chunk < 1``, a bad ``aabb`` or ``level``, or ``density_fn`` returned
            the wrong shape or NaN / Inf.

    Example: ``density_to_mesh(lambda p: 10.0 * (p.norm(dim=-1) < 0.5), [-1, -1, -1, 1, 1, 1], resolution=32,
    level=5.0)`` is a closed sphere of radius about 0.5 (its vertices lie within a lattice step of it).

    **Differentiability:** none; the mesh is an export (the densities are read under ``torch.no_grad`` and
    the topology is discrete).
    """
    if not callable(density_fn):
        raise TypeError(f"density_fn must be callable (points [M, 3] -> density [M]); got {type(density_fn).__name__}")
    box = as_aabb(aabb)
    check_positive_int(resolution, "resolution")
    if resolution < 2:
        raise ValueError(f"resolution must be >= 2 (cubes per axis); got {resolution}")
    check_positive_int(chunk, "chunk")
    level = default_surface_level(box, resolution) if level is None else check_number(level, "level")
    with torch.no_grad():
        density = _lattice_density(density_fn, box, resolution, chunk)
        return _march_tetrahedra(density, box, resolution, level, chunk)


# ----------------------------------------------------------------------------------------------- cores
def _lattice_points(ids: torch.Tensor, box: torch.Tensor, resolution: int) -> torch.Tensor:
    """World positions of flat lattice ids ``x + L (y + L z)`` (``L = resolution + 1``), in float64."""
    L = resolution + 1
    xyz = torch.stack([ids % L, (ids // L) % L, ids // (L * L)], -1).double()
    lo, hi = box[0].double(), box[1].double()
    return lo + (hi - lo) * (xyz / resolution)


def _lattice_density(density_fn, box: torch.Tensor, resolution: int, chunk: int) -> torch.Tensor:
    """``density_fn`` on every lattice corner: ``[(R + 1)^3]`` float64, flat ``x + L (y + L z)``."""
    total = (resolution + 1) ** 3
    out = torch.empty(total, dtype=torch.float64, device=box.device)
    for start in range(0, total, chunk):
        ids = torch.arange(start, min(start + chunk, total), device=box.device)
        points = _lattice_points(ids, box, resolution).to(box.dtype)
        sigma = density_fn(points)
        if not isinstance(sigma, torch.Tensor) or tuple(sigma.shape) != (points.shape[0],):
            got = tuple(sigma.shape) if isinstance(sigma, torch.Tensor) else type(sigma).__name__
            raise ValueError(f"density_fn must return a tensor [M] (M = {points.shape[0]}) for points [M, 3]; "
                             f"got {got}")
        if sigma.dtype.is_complex or sigma.dtype == torch.bool:
            raise ValueError(f"density_fn must return real densities; got dtype {sigma.dtype}")
        sigma = sigma.detach().to(out)
        if not bool(torch.isfinite(sigma).all()):
            raise ValueError("density_fn returned NaN or Inf densities")
        out[ids] = sigma
    return out


def _empty_mesh(box: torch.Tensor) -> Mesh:
    return Mesh(torch.zeros(0, 3, dtype=box.dtype, device=box.device),
                torch.zeros(0, 3, dtype=torch.int64, device=box.device))


def _march_tetrahedra(density: torch.Tensor, box: torch.Tensor, resolution: int, level: float,
                      chunk: int) -> Mesh:
    """The iso-surface of lattice densities ``[(R + 1)^3]`` (unchecked core of :func:`density_to_mesh`)."""
    R, L, dev = resolution, resolution + 1, density.device
    inside = (density > level).reshape(L, L, L)  # [z, y, x]
    # A cube is crossed when its 8 corners are neither all inside nor all outside.
    some, every = inside[:R, :R, :R].clone(), inside[:R, :R, :R].clone()
    for dx, dy, dz in _CORNER_OFFSETS[1:]:
        corner = inside[dz:dz + R, dy:dy + R, dx:dx + R]
        some |= corner
        every &= corner
    cubes = (some & ~every).reshape(-1).nonzero().squeeze(1)  # flat x + R (y + R z)
    if cubes.numel() == 0:
        return _empty_mesh(box)
    offsets = torch.tensor([dx + L * (dy + L * dz) for dx, dy, dz in _CORNER_OFFSETS], device=dev)
    tets, edge_ends, cases = _TETS.to(dev), _EDGE_ENDS.to(dev), _CASES.to(dev)
    inside_flat = inside.reshape(-1)
    keys = []
    for start in range(0, cubes.numel(), chunk):
        c = cubes[start:start + chunk]
        base = c % R + L * ((c // R) % R + L * (c // (R * R)))  # lattice id of corner 0
        verts = base[:, None, None] + offsets[tets]  # [C, 6, 4] lattice ids of the tetrahedra
        bits = inside_flat[verts].long() << torch.arange(4, device=dev)
        tris = cases[bits.sum(-1)]  # [C, 6, 2, 3] tetrahedron edges
        keep = tris[..., 0] >= 0  # [C, 6, 2]
        cube_i, tet_i, _ = keep.nonzero(as_tuple=True)
        tri_edges = tris[keep]  # [T, 3]
        ends = verts[cube_i, tet_i][:, None, :].expand(-1, 3, -1)  # [T, 3, 4]
        u = ends.gather(2, edge_ends[tri_edges][..., :1]).squeeze(2)  # [T, 3]
        v = ends.gather(2, edge_ends[tri_edges][..., 1:]).squeeze(2)
        # A lattice edge's global key: its lower corner and its direction, a corner offset b in 1..7 (every
        # tetrahedron edge joins two corners of a chain 0 -> e_a -> e_a + e_b -> 7, so it is such an offset).
        lower, diff = torch.minimum(u, v), (u - v).abs()
        keys.append(lower * 8 + diff % L + 2 * ((diff // L) % L) + 4 * (diff // (L * L)))
    unique, faces = torch.unique(torch.cat(keys).reshape(-1), return_inverse=True)
    u = unique // 8
    v = u + offsets[unique % 8]
    du, dv = density[u], density[v]
    t = ((level - du) / (dv - du)).clamp(0.0, 1.0)[:, None]  # du, dv on opposite sides: dv != du
    pu, pv = _lattice_points(u, box, resolution), _lattice_points(v, box, resolution)
    verts = (pu + t * (pv - pu)).to(box.dtype)
    return Mesh(verts, faces.reshape(-1, 3))
