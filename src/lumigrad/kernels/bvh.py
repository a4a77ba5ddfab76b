"""A triangle BVH for ray queries, refit in place, and a cache of one per topology.

Two engines answer the same queries with the same conventions: lumigrad's own flattened BVH (binned-SAH build
on the host, :mod:`.bvh_build`; traversal :mod:`.bvh_traverse`), used on the CPU for meshes of at most
:func:`own_bvh_max_faces` triangles (:data:`LANES_MAX_FACES` with the SIMD lanes, :data:`OWN_TREE_MAX_FACES`
without), where it measured faster, and Warp's ``wp.Mesh`` otherwise (docs/benchmarks.md, "Own BVH traversal
(issue 14), branch bvh"). On the CPU the own BVH of at most
:data:`LANES_MAX_FACES` triangles answers with its triangles tested 16 at a time as SIMD lanes (native C++,
:mod:`.bvh_native`; its tree only for ties and exactly-zero edge functions): up to 2-3x cheaper queries than
the tree or Warp's on such scenes (docs/benchmarks.md, "Ray queries as SIMD on the CPU (issue 14), branch simdhit").

:class:`TriangleBVH` answers closest-hit and any-hit queries for batches of rays with ids, float32 distances
and barycentrics; it runs no autograd (everything it is given is detached). What is differentiated is
recomputed from the face ids in PyTorch (``lumigrad.raytrace.intersect_faces``). :func:`bvh_for` keeps one
BVH per faces tensor and refits it when only the vertex positions change, so a renderer can ask for "the
BVH of these triangles" every frame.

Ray parameter ``t``: a hit is ``origin + t * direction`` with ``t`` in multiples of the *given* direction's
length (directions need not be unit: normalise them for ``t`` to be a distance). Hits count for
``0 <= t < t_max``; both sides of a triangle are hit (no culling); zero-area triangles and zero directions
never hit. Queries run in float32 whatever the input dtype. (Warp's traversal keeps at most 32 deferred
nodes; a pathologically deep tree, not seen on ordinary meshes, would end a query early. The own BVH's build
bounds its depth by its traversal stack.)
"""

from __future__ import annotations

import contextlib
import functools
import math
import threading
import warnings
import weakref
from typing import Literal, Optional, Tuple, Union

import torch
import warp as wp

from .._checks import check_indices, check_tensor
from . import bvh_kernels as bk
from .bvh_build import build_tree, refit as refit_tree, triangle_lanes
from .bvh_native import probe_lanes
from .bvh_traverse import FlatBVH
from .cutouts import CutoutTables, no_cutouts
from .ray_queries import USE_LANES
from ._runtime import as_warp, ensure_init, launch_split

__all__ = ["TriangleBVH", "bvh_cache_info", "bvh_for", "clear_bvh_cache"]

#: Rays per CPU thread below which a query is not split (a ray costs about a microsecond).
MIN_RAYS_PER_THREAD = 256
#: CPU meshes of at most this many triangles use lumigrad's own BVH's tree (``engine="auto"``) where the SIMD
#: lanes are unavailable, larger ones Warp's (the tree alone: no triangle count separated the engines).
OWN_TREE_MAX_FACES = 32
#: CPU meshes of at most this many triangles (with the own BVH) test their triangles as SIMD lanes, 16 at a
#: time, in blocks of nearby triangles with a box each (:mod:`.bvh_native`), the tree answering only the rays
#: the lanes cannot answer exactly as it would; where the lanes are usable, ``engine="auto"`` takes the own BVH
#: up to here: its lanes make path-traced scenes faster than Warp's queries (by 13-37 % a path at 26-266
#: triangles; level at 410, slower at 586).
LANES_MAX_FACES = 256
#: ``None``: ``engine="auto"`` takes the own BVH on the CPU up to :func:`own_bvh_max_faces` triangles; a number
#: overrides that limit whether or not the lanes are usable (benchmarks and tests force an engine with it).
OWN_BVH_MAX_FACES: Optional[int] = None
#: Per device type, whether the SIMD lanes may be used (off on CUDA: no clang vector types in NVRTC; on the
#: CPU they are used only where the probe of :func:`lanes_usable` compiled them).
NATIVE_LANES = {"cpu": True, "cuda": False}
#: The most BVHs :func:`bvh_for` keeps (a 1M-triangle BVH takes on the order of 100 MB).
CACHE_CAPACITY = 8


def _version(x: torch.Tensor) -> Optional[int]:
    try:
        return x._version
    except RuntimeError:  # inference tensors have no version counter
        return None


def lanes_usable(device_type: str) -> bool:
    """Whether the SIMD lanes run on ``device_type``: allowed by :data:`NATIVE_LANES`, and compiled in there (a
    one-thread probe kernel, built once a process; :func:`_lanes_compiled`)."""
    return NATIVE_LANES.get(device_type, False) and _lanes_compiled(device_type)


@functools.lru_cache(maxsize=None)
def _lanes_compiled(device_type: str) -> bool:
    """The probe's verdict, once a process: a failed probe warns, and the tree answers the same queries (same
    results, slower)."""
    try:
        ok, why = probe_lanes(device_type), "the compiler lacks clang's vector extensions"
    except Exception as error:  # noqa: BLE001 - a build failure: the tree needs no native code
        ok, why = False, str(error)
    if not ok:
        warnings.warn(f"lumigrad: the native SIMD ray queries are unavailable on this Warp ({wp.__version__}): "
                      f"{why}; using the BVH traversal (same results, slower)", RuntimeWarning, stacklevel=4)
    return ok


def own_bvh_max_faces() -> int:
    """The most triangles of a CPU mesh for which ``engine="auto"`` takes the own BVH: :data:`OWN_BVH_MAX_FACES`
    when set, else :data:`LANES_MAX_FACES` where the lanes are usable (at least :data:`OWN_TREE_MAX_FACES`), else
    :data:`OWN_TREE_MAX_FACES`."""
    if OWN_BVH_MAX_FACES is not None:
        return OWN_BVH_MAX_FACES
    return max(OWN_TREE_MAX_FACES, LANES_MAX_FACES if lanes_usable("cpu") else -1)


@contextlib.contextmanager
def _torch_stream(device: torch.device):
    """Run Warp work on the device's current PyTorch stream (CUDA), so it is ordered with PyTorch's."""
    if device.type != "cuda":
        yield
        return
    with wp.ScopedStream(wp.stream_from_torch(torch.cuda.current_stream(device)), sync_enter=False):
        yield


class TriangleBVH:
    """A BVH over the triangles ``faces`` of ``verts``, on ``verts.device`` (CPU or CUDA).

    Args:
        verts: ``[V, 3]`` float vertex positions (any float dtype; stored as float32, detached). Must be finite
            (checked here, once).
        faces: ``[F, 3]`` integer vertex indices into ``verts``, on the same device; ``F = 0`` gives a BVH that
            every ray misses.
        engine: ``"own"`` (lumigrad's BVH), ``"warp"`` (``wp.Mesh``) or ``"auto"``: on the CPU own for at
            most :func:`own_bvh_max_faces` triangles and Warp's above; Warp's on CUDA.

    Attributes:
        device: where the BVH lives; ``num_verts``, ``num_faces``: the sizes it was built for.
        engine: ``"own"`` or ``"warp"``, the one in use.
        refit_count: how many times :meth:`refit` ran (tests count them).

    The BVH keeps float32 copies of the points (and triangles); :meth:`refit` rewrites them in place and
    refits the bounding boxes (same tree, new boxes: fast, but the tree degrades if vertices move far).
    On CUDA, building, refitting and queries run on PyTorch's current stream.

    **Differentiability:** none. Inputs are detached and outputs are ids, float32 ``t`` and barycentrics;
    recompute what must be differentiated from the face ids (``lumigrad.raytrace.intersect_faces``).
    """

    def __init__(self, verts: torch.Tensor, faces: torch.Tensor,
                 engine: Literal["auto", "own", "warp"] = "auto"):
        check_tensor(verts, "verts", trailing=(None, 3), max_dims=2, floating=True, finite=True)
        check_tensor(faces, "faces", trailing=(None, 3), max_dims=2, floating=False, device=verts.device)
        check_indices(faces, "faces", verts.shape[0])
        if engine not in ("auto", "own", "warp"):
            raise ValueError(f"engine must be 'auto', 'own' or 'warp'; got {engine!r}")
        ensure_init()
        self.device = verts.device
        self.num_verts, self.num_faces = verts.shape[0], faces.shape[0]
        if engine == "auto":  # (the own BVH was measured faster on the CPU only; no GPU was at hand)
            engine = "own" if self.device.type == "cpu" and self.num_faces <= own_bvh_max_faces() else "warp"
        self.engine = engine
        self.refit_count = 0
        self._points = verts.detach().to(torch.float32, copy=True).contiguous()
        self._indices = faces.detach().to(torch.int32, copy=True).reshape(-1).contiguous()
        self._mesh = None
        self._tree = None
        self._own = FlatBVH()  # no nodes: every ray misses
        self._own.num_nodes = 0
        self._own.num_faces = 0
        self._lanes = None
        if self.num_faces and engine == "warp":
            with _torch_stream(self.device):
                self._mesh = wp.Mesh(points=as_warp(self._points, wp.vec3), indices=as_warp(self._indices))
        elif self.num_faces:
            self._tree = build_tree(self._points, faces)
            self._own.box = as_warp(self._tree.box.view(-1, 3), wp.vec3)
            self._own.node = as_warp(self._tree.node, wp.vec2i)
            self._own.tri = as_warp(self._tree.tri.view(-1, 3), wp.vec3)
            self._own.face = as_warp(self._tree.face)
            self._own.num_nodes = self._tree.node.shape[0]
            if self.device.type == "cpu" and self.num_faces <= LANES_MAX_FACES:
                self._lanes = triangle_lanes(self._tree.tri)
                self._own.lanes = as_warp(self._lanes.view(-1))
                self._own.num_faces = self.num_faces
        self._remember_source(verts)

    @property
    def has_faces(self) -> bool:
        """Whether the BVH holds any triangle (a BVH without any is missed by every ray)."""
        return self.num_faces > 0

    def query_handles(self, cutouts: Optional[CutoutTables] = None) -> tuple:
        """``(mesh, own, use_own, cut)``, the first arguments of the ray queries of :mod:`.ray_queries` and
        :mod:`.cutouts` (``cut``: the :class:`.cutouts.Cutouts` of ``cutouts``, None: every surface opaque)."""
        use_own = int(self._tree is not None)
        if self._lanes is not None and lanes_usable(self.device.type):
            use_own = USE_LANES
        cut = no_cutouts(self.device) if cutouts is None else cutouts.struct()
        return (0 if self._mesh is None else self._mesh.id), self._own, use_own, cut

    # ------------------------------------------------------------------------------------------- vertices
    def refit(self, verts: torch.Tensor) -> None:
        """Copy ``verts [V, 3]`` (same ``V`` and device; values not read here) into the BVH and refit its boxes."""
        check_tensor(verts, "verts", trailing=(self.num_verts, 3), max_dims=2, floating=True, device=self.device)
        self._points.copy_(verts.detach())
        if self._mesh is not None:
            with _torch_stream(self.device):
                self._mesh.refit()
        if self._tree is not None:
            refit_tree(self._tree, self._points)
        if self._lanes is not None:
            triangle_lanes(self._tree.tri, out=self._lanes)
        self.refit_count += 1
        self._remember_source(verts)

    def refit_if_changed(self, verts: torch.Tensor) -> bool:
        """Refit to ``verts`` unless they are the vertices of the last build or refit, unchanged; return
        whether it refit.

        "Unchanged" is known without reading values when ``verts`` views the same memory as last time and its
        version counter has not moved (every in-place change bumps it; writes through ``.data`` do not, so
        call :meth:`refit` after those). Otherwise, on CPU, the values are compared with the stored float32
        points; on CUDA it refits without comparing (a comparison would be a host sync).
        """
        if self._same_source(verts):
            return False
        if self.device.type == "cpu" and verts.shape == self._points.shape and verts.device == self.device \
                and torch.equal(verts.detach().to(torch.float32), self._points):
            self._remember_source(verts)
            return False
        self.refit(verts)
        return True

    def _remember_source(self, verts: torch.Tensor) -> None:
        # A reference to the source tensor keeps its memory alive, so an equal data_ptr later is the same memory.
        self._source = (verts.detach(), _version(verts))

    def _same_source(self, verts: torch.Tensor) -> bool:
        src, version = self._source
        return (version is not None and _version(verts) == version and verts.data_ptr() == src.data_ptr()
                and verts.dtype == src.dtype and verts.shape == src.shape and verts.stride() == src.stride()
                and verts.device == src.device)

    # ---------------------------------------------------------------------------------------------- queries
    def _rays(self, origins, directions, t_max):
        check_tensor(origins, "origins", trailing=(None, 3), max_dims=2, floating=True, device=self.device)
        check_tensor(directions, "directions", trailing=(None, 3), max_dims=2, floating=True, device=self.device)
        if directions.shape != origins.shape:
            raise ValueError(f"origins and directions must have the same shape [R, 3]; got {tuple(origins.shape)} "
                             f"and {tuple(directions.shape)}")
        R = origins.shape[0]
        if isinstance(t_max, torch.Tensor):
            check_tensor(t_max, "t_max", trailing=(R,), max_dims=1, floating=True, device=self.device)
            limits, step = t_max.detach().to(torch.float32).contiguous(), 1
        else:
            if isinstance(t_max, bool) or not isinstance(t_max, (int, float)) or math.isnan(t_max):
                raise TypeError(f"t_max must be a number (not NaN) or a float tensor [R]; got {t_max!r}")
            limits, step = torch.full((1,), float(t_max), dtype=torch.float32, device=self.device), 0
        o = origins.detach().to(torch.float32).contiguous()
        d = directions.detach().to(torch.float32).contiguous()
        return R, o, d, limits, step

    def nearest_faces(self, points: torch.Tensor) -> torch.Tensor:
        """Find the nearest triangle of each point (Warp's ``wp.mesh_query_point_no_sign``: the ``"warp"`` engine).

        The search runs in float32 over the BVH, ``O(log F)`` a point for ordinary meshes: between triangles
        within float32 rounding of the same distance it may choose either. Zero-area triangles are not
        reliable candidates (Warp's closest-point test assumes a proper triangle): callers that must count
        them as the segments they collapse to search those meshes otherwise.

        Args:
            points: ``[P, 3]`` float query points on this device.

        Returns:
            ``[P]`` int64 face ids (-1 for every point when the BVH holds no triangle).
        """
        check_tensor(points, "points", trailing=(None, 3), max_dims=2, floating=True, finite=True,
                     device=self.device)
        if self._mesh is None and self.has_faces:
            raise ValueError(f"nearest_faces needs the 'warp' engine (a wp.Mesh); this BVH uses {self.engine!r}")
        P = points.shape[0]
        face = torch.full((P,), -1, dtype=torch.int64, device=self.device)
        if self.has_faces and P:
            p = points.detach().to(torch.float32).contiguous()
            # every point is within the diagonal of the box around it and the mesh (Warp squares max_dist)
            lo = torch.minimum(p.min(0).values, self._points.min(0).values)
            hi = torch.maximum(p.max(0).values, self._points.max(0).values)
            reach = float((hi - lo).norm()) * 1.01 + 1e-6
            with _torch_stream(self.device):
                launch_split(bk.nearest_face, P, [self._mesh.id, as_warp(p, wp.vec3), reach, as_warp(face)],
                             self.device, min_chunk=MIN_RAYS_PER_THREAD)
        return face

    def closest_hit(self, origins: torch.Tensor, directions: torch.Tensor,
                    t_max: Union[float, torch.Tensor] = math.inf, cutouts: Optional[CutoutTables] = None
                    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Find the closest hit of each ray ``origins[r] + t * directions[r]``, ``0 <= t < t_max``.

        Args:
            origins, directions: ``[R, 3]`` float rays (directions of any non-zero length; ``t`` is in
                multiples of it).
            t_max: a number or ``[R]`` float tensor; hits at ``t >= t_max`` are ignored.
            cutouts: the scene's alpha (:class:`.cutouts.CutoutTables`, on this device): surfaces it cuts out
                are passed through. None: every surface is opaque.

        Returns:
            ``face [R]`` int64 (-1 on a miss), ``t [R]`` float32 (inf on a miss) and ``bary [R, 3]`` float32,
            the weights of the face's corners 0, 1, 2 (zero on a miss): the hit is
            ``sum_k bary[r, k] * verts[faces[face[r], k]]``.

        Example: the triangle ``(0,0,0), (1,0,0), (0,1,0)`` and the ray from ``(0.1, 0.3, 1)`` along
        ``(0, 0, -2)`` give face 0, ``t = 0.5`` and ``bary = (0.6, 0.1, 0.3)`` (the hit ``(0.1, 0.3, 0)``).
        """
        R, o, d, limits, step = self._rays(origins, directions, t_max)
        face = torch.full((R,), -1, dtype=torch.int64, device=self.device)
        t = torch.full((R,), math.inf, dtype=torch.float32, device=self.device)
        bary = torch.zeros(R, 3, dtype=torch.float32, device=self.device)
        if self.has_faces and R:  # (CUDA launches go out on PyTorch's current stream)
            launch_split(bk.closest_hit, R, [*self.query_handles(cutouts), as_warp(o, wp.vec3), as_warp(d, wp.vec3),
                                             as_warp(limits), step, as_warp(face), as_warp(t),
                                             as_warp(bary, wp.vec3)],
                         self.device, min_chunk=MIN_RAYS_PER_THREAD)
        return face, t, bary

    def occluded(self, origins: torch.Tensor, directions: torch.Tensor,
                 t_max: Union[float, torch.Tensor] = math.inf, cutouts: Optional[CutoutTables] = None
                 ) -> torch.Tensor:
        """Return ``[R]`` bool: whether ray ``r`` hits any triangle at ``0 <= t < t_max[r]`` (a shadow ray).

        Same arguments as :meth:`closest_hit`; cheaper, since it stops at the first hit found. Offset
        origins that lie on a surface (``lumigrad.raytrace.offset_ray_origin``) and shorten ``t_max`` below
        the light's distance, or the surfaces at both ends count as blockers.
        """
        R, o, d, limits, step = self._rays(origins, directions, t_max)
        hit = torch.zeros(R, dtype=torch.bool, device=self.device)
        if self.has_faces and R:
            launch_split(bk.any_hit, R, [*self.query_handles(cutouts), as_warp(o, wp.vec3), as_warp(d, wp.vec3),
                                         as_warp(limits), step, as_warp(hit)],
                         self.device, min_chunk=MIN_RAYS_PER_THREAD)
        return hit


# ------------------------------------------------------------------------------------------------ the cache
_lock = threading.RLock()
_cache: dict = {}  # id(faces) -> (weakref to faces, faces version, device, num_verts, TriangleBVH)
_stats = {"builds": 0, "refits": 0, "reuses": 0}


def bvh_for(verts: torch.Tensor, faces: torch.Tensor) -> TriangleBVH:
    """Return a :class:`TriangleBVH` of ``faces`` over ``verts``, cached per topology and refit as needed.

    The cache is keyed by the faces tensor (its identity, held weakly, and its version counter: an in-place
    edit is a new topology), the device and the vertex count. For the same topology the cached BVH is
    reused and refit only when the vertices changed (:meth:`TriangleBVH.refit_if_changed`); otherwise a new
    BVH is built. At most :data:`CACHE_CAPACITY` BVHs are kept: entries whose faces were freed go first, then
    the least recently used. Faces created in inference mode have no version counter and are never cached.

    **Differentiability:** none (see :class:`TriangleBVH`).
    """
    version = _version(faces)
    if version is None:
        _stats["builds"] += 1
        return TriangleBVH(verts, faces)
    key = id(faces)
    with _lock:
        entry = _cache.pop(key, None)
        if entry is not None and entry[0]() is faces and entry[1:4] == (version, verts.device, verts.shape[0]):
            _cache[key] = entry  # most recently used last
            bvh = entry[4]
            if bvh.refit_if_changed(verts):
                _stats["refits"] += 1
            else:
                _stats["reuses"] += 1
            return bvh
        bvh = TriangleBVH(verts, faces)
        _stats["builds"] += 1
        for stale in [k for k, e in _cache.items() if e[0]() is None]:
            del _cache[stale]
        while len(_cache) >= CACHE_CAPACITY:
            del _cache[next(iter(_cache))]
        _cache[key] = (weakref.ref(faces, lambda ref, key=key: _drop(key, ref)), version, verts.device,
                       verts.shape[0], bvh)
        return bvh


def _drop(key: int, ref) -> None:
    """Free the BVH of a faces tensor that was just freed."""
    with _lock:
        entry = _cache.get(key)
        if entry is not None and entry[0] is ref:
            del _cache[key]


def bvh_cache_info() -> dict:
    """Counts since the last :func:`clear_bvh_cache`: ``builds``, ``refits``, ``reuses`` (no refit needed) of
    :func:`bvh_for`, and ``size``, the BVHs held now."""
    with _lock:
        return {**_stats, "size": len(_cache)}


def clear_bvh_cache() -> None:
    """Drop every cached BVH and reset the counts of :func:`bvh_cache_info`."""
    with _lock:
        _cache.clear()
        _stats.update(builds=0, refits=0, reuses=0)
