"""Ray queries that see through alpha: glTF ``alphaMode`` ``"MASK"`` and ``"BLEND"`` surfaces in the ray tracer.

A :class:`Cutouts` table says, per part, how a hit on it is read (``part_mode``: 0 opaque, 1 mask, 2 blend) with
its alpha ``a = part_alpha * texture alpha`` (the base colour texture's fourth channel, bilinear at level 0, as
the path tracer's other lookups): a masked surface is not there where ``a < part_cutoff``; a blended one is
there with probability ``clamp(a, 0, 1)`` (stochastic transparency, as pbrt-v4's alpha), decided by a hash of the
face and the ray's bits, so that the same ray gets the same answer in every pass (a fused primal and its
replay) and a shadow ray sees what a path would. A surface that is not there is passed straight through: not a
bounce, no shading, no random number drawn. ``on`` 0 (every surface opaque) costs one branch a query.

:func:`closest_visible_hit_wp` and :func:`visible_any_hit_wp` wrap :mod:`.ray_queries` (the same conventions:
``t`` in multiples of ``d``, ``(u, v)`` the weights of corners 0 and 1): a hit on a cut-out surface continues
from an origin offset just past it (:func:`.ray_offsets.offset_origin_wp`), at most :data:`MAX_CROSSINGS`
times (the next surface after that counts as opaque).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

import torch
import warp as wp

from ._runtime import as_warp

from .bvh_traverse import FlatBVH
from .counter_rng import pcg_hash_wp
from .path_textures import texture_wp
from .ray_offsets import offset_origin_wp
from .ray_queries import any_hit_any_bvh, closest_hit_any_bvh

wp.set_module_options({"enable_backward": False})

#: ``part_mode`` values.
CUT_OPAQUE, CUT_MASK, CUT_BLEND = 0, 1, 2
#: Cut-out surfaces a ray passes before the next one counts as opaque.
MAX_CROSSINGS = 64


@wp.struct
class Cutouts:
    """See the module docstring. ``verts [V, 3]``, ``faces [3 F]`` (the BVH's triangles), ``face_part [F]``;
    ``part_mode``, ``part_alpha``, ``part_cutoff``, ``part_texture`` ``[P]`` (the alpha texture, -1: none);
    ``uvs [T, 2]`` and ``uv_faces [3 F]``; texture ``k``'s texels from ``tex_offset[k]`` in ``texels [N, 3]``
    (alpha in every channel, linear), ``tex_width``, ``tex_height``, ``tex_wrap`` (0 repeat, 1 clamp, 2 mirror);
    ``seed`` salts the blend decisions."""

    on: int
    verts: wp.array(dtype=wp.vec3)
    faces: wp.array(dtype=wp.int32)
    face_part: wp.array(dtype=wp.int32)
    part_mode: wp.array(dtype=wp.int32)
    part_alpha: wp.array(dtype=float)
    part_cutoff: wp.array(dtype=float)
    part_texture: wp.array(dtype=wp.int32)
    uvs: wp.array(dtype=wp.vec2)
    uv_faces: wp.array(dtype=wp.int32)
    tex_offset: wp.array(dtype=wp.int32)
    tex_width: wp.array(dtype=wp.int32)
    tex_height: wp.array(dtype=wp.int32)
    tex_wrap: wp.array(dtype=wp.int32)
    texels: wp.array(dtype=wp.vec3)
    seed: wp.uint32


@dataclass
class CutoutTables:
    """The torch tensors of a :class:`Cutouts` table (float32 / int32, contiguous, one device; see the module
    docstring); :meth:`struct` is the kernels' argument (built once, holding views of these tensors)."""

    verts: torch.Tensor
    faces: torch.Tensor
    face_part: torch.Tensor
    part_mode: torch.Tensor
    part_alpha: torch.Tensor
    part_cutoff: torch.Tensor
    part_texture: torch.Tensor
    uvs: torch.Tensor
    uv_faces: torch.Tensor
    tex_offset: torch.Tensor
    tex_width: torch.Tensor
    tex_height: torch.Tensor
    tex_wrap: torch.Tensor
    texels: torch.Tensor
    seed: int = 0
    _struct: Optional[Cutouts] = field(default=None, repr=False, compare=False)

    @property
    def stochastic(self) -> bool:
        """Whether a part is ``"BLEND"`` (its surfaces are there by a random choice per ray)."""
        return bool((self.part_mode == CUT_BLEND).any())

    def reseed(self, seed: int) -> None:
        """Salt the blend choices with a render's ``seed`` (a pass and its replay, with one seed, choose alike;
        renders with other seeds choose anew)."""
        self.seed = (int(seed) ^ (int(seed) >> 32)) & 0xFFFFFFFF
        if self._struct is not None:
            self._struct.seed = wp.uint32(self.seed)

    def struct(self) -> Cutouts:
        if self._struct is None:
            c = Cutouts()
            c.on = 1
            for name, dtype in (("verts", wp.vec3), ("faces", None), ("face_part", None), ("part_mode", None),
                                ("part_alpha", None), ("part_cutoff", None), ("part_texture", None),
                                ("uvs", wp.vec2), ("uv_faces", None), ("tex_offset", None), ("tex_width", None),
                                ("tex_height", None), ("tex_wrap", None), ("texels", wp.vec3)):
                setattr(c, name, as_warp(getattr(self, name), dtype))
            c.seed = wp.uint32(self.seed & 0xFFFFFFFF)
            self._struct = c
        return self._struct


_OFF: Dict[str, Tuple[CutoutTables, Cutouts]] = {}  # device -> (the placeholder tensors, held; their struct)


def no_cutouts(device: torch.device) -> Cutouts:
    """The table of a scene whose surfaces are all opaque (``on`` 0; placeholder arrays), one per device."""
    key = str(device)
    if key not in _OFF:
        i32 = torch.zeros(1, dtype=torch.int32, device=device)
        f32 = torch.zeros(1, dtype=torch.float32, device=device)
        tables = CutoutTables(torch.zeros(1, 3, device=device), i32, i32, i32, f32, f32, i32,
                              torch.zeros(1, 2, device=device), i32, i32, i32, i32, i32,
                              torch.zeros(1, 3, device=device))
        c = tables.struct()
        c.on = 0
        _OFF[key] = (tables, c)
    return _OFF[key][1]


@wp.func
def _bits(x: float) -> wp.uint32:
    return wp.uint32(wp.cast(x, wp.int32))


@wp.func
def blend_uniform_wp(seed: wp.uint32, face: int, o: wp.vec3, d: wp.vec3) -> float:
    """A number in [0, 1) from the face and the ray's float bits (the same ray, the same number)."""
    h = pcg_hash_wp(seed ^ wp.uint32(face))
    for k in range(3):
        h = pcg_hash_wp(h ^ _bits(o[k]))
        h = pcg_hash_wp(h ^ _bits(d[k]))
    return float(h >> wp.uint32(8)) / 16777216.0


@wp.func
def surface_alpha_wp(cut: Cutouts, face: int, u: float, v: float) -> float:
    """The alpha ``a`` of face ``face`` at barycentrics ``(u, v, 1 - u - v)``."""
    part = cut.face_part[face]
    a = cut.part_alpha[part]
    tex = cut.part_texture[part]
    if tex >= 0:
        w = 1.0 - u - v
        uv = u * cut.uvs[cut.uv_faces[3 * face]] + v * cut.uvs[cut.uv_faces[3 * face + 1]] \
            + w * cut.uvs[cut.uv_faces[3 * face + 2]]
        a = a * texture_wp(tex, uv, cut.tex_offset, cut.tex_width, cut.tex_height, cut.tex_wrap, cut.texels, 0)[0]
    return a


@wp.func
def cut_out_wp(cut: Cutouts, face: int, u: float, v: float, o: wp.vec3, d: wp.vec3) -> bool:
    """Whether the hit of ray ``o + t d`` on ``face`` at ``(u, v)`` passes through (the surface is not there)."""
    mode = cut.part_mode[cut.face_part[face]]
    out = False
    if mode == CUT_MASK:
        out = surface_alpha_wp(cut, face, u, v) < cut.part_cutoff[cut.face_part[face]]
    elif mode == CUT_BLEND:
        out = blend_uniform_wp(cut.seed, face, o, d) >= wp.clamp(surface_alpha_wp(cut, face, u, v), 0.0, 1.0)
    return out


@wp.func
def closest_visible_hit_wp(mesh: wp.uint64, own: FlatBVH, use_own: int, cut: Cutouts, o: wp.vec3, d: wp.vec3,
                           t_max: float):
    """:func:`.ray_queries.closest_hit_any_bvh` that passes through cut-out surfaces: ``(face, t, u, v)`` of the
    first surface that is there (``t`` from ``o``; ``face`` -1 and ``t`` inf on a miss)."""
    face, t, u, v = closest_hit_any_bvh(mesh, own, use_own, o, d, t_max)
    if cut.on != 0:
        start = o
        travelled = float(0.0)
        dd = wp.dot(d, d)
        for _crossing in range(MAX_CROSSINGS):
            if face < 0:
                break
            if not cut_out_wp(cut, face, u, v, start, d):
                break
            p0 = cut.verts[cut.faces[3 * face]]
            ng = wp.cross(cut.verts[cut.faces[3 * face + 1]] - p0, cut.verts[cut.faces[3 * face + 2]] - p0)
            ng = ng / wp.max(wp.length(ng), 1.0e-30)
            nxt = offset_origin_wp(start + t * d, ng, d)
            travelled = travelled + wp.dot(nxt - start, d) / dd
            start = nxt
            if not (t_max - travelled > 0.0):
                face = int(-1)
                break
            face, t, u, v = closest_hit_any_bvh(mesh, own, use_own, start, d, t_max - travelled)
        if face >= 0:
            t = t + travelled
        else:
            t = float(wp.inf)
            u = float(0.0)
            v = float(0.0)
    return face, t, u, v


@wp.func
def visible_any_hit_wp(mesh: wp.uint64, own: FlatBVH, use_own: int, cut: Cutouts, o: wp.vec3, d: wp.vec3,
                       t_max: float) -> bool:
    """:func:`.ray_queries.any_hit_any_bvh` that passes through cut-out surfaces (a shadow ray). With the table on,
    one front-to-back search for the first surface that is there (an any-hit query before it would cost a blocked
    ray two traversals)."""
    hit = False
    if cut.on != 0:
        face, t, u, v = closest_visible_hit_wp(mesh, own, use_own, cut, o, d, t_max)
        hit = face >= 0
    else:
        hit = any_hit_any_bvh(mesh, own, use_own, o, d, t_max)
    return hit
