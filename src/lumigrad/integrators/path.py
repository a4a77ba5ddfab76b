"""The path tracer as integrators: ``"path"`` (multi-bounce) and ``"direct"`` (emitters and direct light).

A thin layer over :func:`lumigrad.raytrace.transport.sample_paths`: it turns the :class:`Scene` into world
triangles (:meth:`Scene.flatten`, area lights included as emissive parts), shoots ``spp`` jittered rays per
pixel, and wires the transport into autograd with path replay backpropagation: the forward pass renders
without a graph; the backward pass renders the primal again with ``seed_grad`` / ``spp_grad`` (decorrelated
from the forward image by default, so a loss's gradient is unbiased) and replays those paths, one vertex at a
time, so memory does not grow with ``max_depth``. Primal passes run on the fused Warp kernel of
:mod:`lumigrad.integrators.fused_paths` where the scene allows it (the same paths, drawn from the same
counter-based random numbers), else on ``sample_paths``.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional, Sequence

import torch

from .._checks import check_choice, check_positive_int
from ..cameras.camera import Camera
from ..cameras.pixel_filter import PixelFilter, filter_adjoint_at, sample_in_pixels
from ..conventions import pixel_centers
from ..raytrace.edges import sample_primary_edges
from ..raytrace.shadow_edge_connections import camera_path_vertices, connected_shadow_edges
from ..raytrace.silhouette_connections import connected_silhouettes
from ..raytrace.shadow_edges import sample_shadow_edge_sources, shadow_edge_jumps, shadow_edges_seen_by
from ..kernels.path_trace import PathTables
from ..kernels.replay_kernels import ReplayKernels
from ..raytrace.transport import PathAdjoint, TraceScene, sample_paths, surface_at
from ..scene.lights import AreaLight, EnvironmentLight, SHLight
from ..scene.scene import Scene
from ..shading.emitters import AREA_SAMPLING
from ..shading.image_formation import form_image_unchecked
from ..shading.material import has_principled_lobes
from .base import AOV_CHANNELS, Integrator, RenderOutput, register_integrator
from .frame_checks import check_index_tables, check_something_to_draw, frame_checks
from .fused_adjoint import fused_adjoint_unsupported, fused_value_gradients
from .fused_paths import path_tables, sample_paths_fused, use_fused

__all__ = ["DirectIntegrator", "PathIntegrator"]

_SEED_MOD = 2 ** 62
#: The random streams of one pass (seed): each gets its own seed through :func:`_stream`.
#: ``_EDGE_SIDES`` and ``_EDGE_SIDES + 1`` are the primary edges' two sides (one stream when antithetic); then the
#: shadow edges beyond the first hit (pool and connections) and the silhouettes beyond it (draws, paths).
_PATHS, _CAMERA, _PRIMARY_EDGES, _SHADOW_EDGES, _EDGE_SIDES = range(5)
_DEEP_SHADOW_EDGES, _DEEP_SILHOUETTES, _DEEP_SILHOUETTE_SIDES = _EDGE_SIDES + 2, _EDGE_SIDES + 3, _EDGE_SIDES + 4
_LENS = _EDGE_SIDES + 5  # a thin lens's aperture samples of the camera rays
#: The aperture points a thin-lens camera's boundary terms are drawn from, per view: each is a pinhole camera
#: (:meth:`lumigrad.Camera.through_lens`) taking an equal share of the edge samples, weighted by its share.
LENS_EDGE_VIEWS = 8
_MASK64 = 2 ** 64 - 1


def _stream(seed: int, stream: int) -> int:
    """The seed of random stream ``stream`` of the pass ``seed``. The paths (counter-based numbers) take ``2 seed``
    and the camera jitter (a ``torch.Generator``) ``2 seed + 1``: two generators, never one stream for two passes.
    The edge streams (edge points and shadow-edge light points, generators; the paths of the edges' two sides,
    counter-based) take a splitmix64 finaliser of ``(seed, stream)``: affine maps (``seed + 7``, ``3 seed + 2``,
    ``5 seed + 3``) gave pass ``s``'s edge sides pass ``s + 7``'s paths and one pass's edge points another's
    camera jitter, so that the passes of a fit (seeds 0, 1, 2, ...) were correlated."""
    if stream == _PATHS:
        return (2 * int(seed)) % _SEED_MOD
    if stream == _CAMERA:
        return (2 * int(seed) + 1) % _SEED_MOD
    z = (int(seed) * 0x9E3779B97F4A7C15 + (stream + 1) * 0xD1B54A32D192ED03) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (z ^ (z >> 31)) % _SEED_MOD
#: ``light_sampling`` by default (docs/design.md, "Area-light sampling in the primal": never less efficient
#: than solid angle in the scenes measured, cheaper far from small lamps).
DEFAULT_LIGHT_SAMPLING = "auto"
#: Paths the backward pass replays at once: the replay's autograd graph (one vertex of each path, about 1 KiB a
#: path, twice that while a BSDF-weight ratio waits a vertex) is held for this many paths at most, so beyond it the
#: backward pass's memory grows only by the per-path state (radiance, adjoint, throughput: ~100 bytes a path).
REPLAY_PATHS = 1 << 16


@register_integrator("path")
class PathIntegrator(Integrator):
    """Unidirectional path tracing with next-event estimation and MIS (``integrator="path"``).

    Settings:
        max_depth: longest path in vertices, as Mitsuba counts (1: emitters only; 2: direct light; -1: no
            limit, Russian roulette ends paths). Default 8.
        rr_depth: depth from which Russian roulette may end a path (default 5).
        hide_emitters: emitters seen directly are black.
        spp_grad / seed_grad: samples per pixel and seed of the backward pass (default: ``spp`` and
            ``seed + 1``, independent of the forward image).
        edge_samples: points per view on silhouette edges for the visibility gradient (default:
            ``H * W * spp_grad / 16``, at least 256; 0 turns edge sampling off).
        antithetic_edges: trace the two sides of an edge point with the same random numbers (default), so
            the noise of the radiance jump largely cancels; False draws them independently (for comparison).
        shadow_edge_samples: points per view on shadow edges for the gradient of moving shadows (secondary
            visibility; default as ``edge_samples``; 0 turns it off).
        deep_shadow_edges: also connect those points to the vertices of camera paths, for the shadows seen
            beyond the first hit (in reflections, or changing the light bounced onward; default True; only with
            ``max_depth`` 3 or more).
        deep_silhouette_samples: points per view on the silhouettes seen from the vertices of camera paths beyond
            the first hit (:mod:`lumigrad.raytrace.silhouette_connections`: an occluder of bounced light; only
            with ``max_depth`` 3 or more). Default 0, off: the term is unbiased in its tests but heavy-tailed
            where path vertices lie close to edges (docs/benchmarks.md, "Silhouettes beyond the first hit");
            None: as many as ``edge_samples``.
        use_fused_kernel: run primal passes (the forward image, the backward pass's radiance of each path,
            the edge samples' radiance) on the fused Warp kernel (:mod:`lumigrad.integrators.fused_paths`)
            where the scene allows it (default); False, or the environment variable
            ``LUMIGRAD_PATH_TRANSPORT=torch``, keeps them on the PyTorch transport. Both draw the same
            counter-based random numbers, so they render the same paths (to float32 rounding).
        fused_adjoint: where only material and light values require gradients (factors, the base colour,
            metallic-roughness and emissive textures' texels, light values, environment texels; no geometry,
            camera, normal map texel or scale, or medium parameter), the fused kernel renders the scene and no
            principled part has other lobes (``principled_lobes``, whose derivatives are PyTorch's), run the
            backward pass on it too (:mod:`lumigrad.integrators.fused_adjoint`: path replay with detached sampling, no
            PyTorch graph, one pass on the CPU, several times faster; default True). False, or any other
            parameter requiring a gradient, replays the paths on the PyTorch transport, which differentiates
            everything.
        light_sampling: how next-event estimation samples area lights in the primal pass (and so the density
            weighing the emission BSDF samples find on them): ``"solid_angle"`` (a triangle by the solid angle
            it subtends, then uniformly inside it), ``"area"`` (a triangle by area, a point uniform on it:
            cheaper, noisier for large, close lamps) or ``"auto"`` (default: by area from points farther than
            :data:`lumigrad.shading.emitters.AUTO_AREA_DISTANCE` bounding radii from the lamp, by solid angle
            nearer; by area everywhere for a lamp of more than ``AUTO_SOLID_ANGLE_MAX_FACES`` = 32 triangles,
            whose solid-angle choice costs a solid angle per triangle); see docs/design.md. Each is unbiased; the backward pass's own area-light samples do not
            depend on it.

    Materials: the glTF metallic-roughness BSDF with KHR_materials_transmission (glass: a rough dielectric)
    and normal maps (the mesh's tangents or tangents from its uv, as the rasterizer). A transmitting
    material's ``interior`` (a :class:`~lumigrad.shading.HomogeneousMedium`: ``sigma_a``, ``sigma_s``,
    Henyey-Greenstein ``g``) fills its closed mesh with a participating medium, traced by volumetric path
    tracing (subsurface scattering: free flights by spectral MIS, scattering vertices with phase-function
    next-event estimation and phase sampling; :mod:`lumigrad.raytrace.volumetric`); a material's ``exterior``
    is the medium a path refracting out of its mesh enters (nested media, Mitsuba's rule: the tags are
    trusted), and ``Scene.medium`` the one around everything, where camera rays start. Lights: point, spot,
    directional, area (uniform radiance: also hit by BSDF rays) and environment; ``SHLight`` is refused.

    Pixels: the scene film's ``pixel_filter`` (:mod:`lumigrad.cameras.pixel_filter`; box by default, Mitsuba's
    ``rfilter`` kinds) places each pixel's camera rays and weighs their radiance (filter importance sampling:
    unbiased for the normalised filtered radiance); the visibility gradients spread each edge point's jump over
    the pixels whose filters hold it.

    AOVs (:data:`lumigrad.integrators.AOV_DOCS`): ``depth``, ``normal``, ``position``, ``albedo`` and ``mask`` of
    the surface each camera ray hits first, averaged over the pixel's ``spp`` rays (placed by the pixel filter but
    not weighed: a normalised filtering by ``|f|``, so a fully covered pixel's coverage is exactly 1 and a flat
    wall's depth its depth; silhouette pixels mix surface and zero background); the alpha likewise; ``normal`` is the shading normal, turned towards the
    camera on double-sided meshes. They are differentiable by ordinary autograd (the first hit recomputed from
    the vertices), without visibility gradients at silhouettes.

    **Differentiability:** unbiased gradients w.r.t. materials (factors, texels; an interior medium's
    ``sigma_a``, ``sigma_s`` and ``g`` through its free-flight and phase weights), emitters (radiance,
    intensity, environment texels, light positions through their direct lighting) and the film. Geometry
    and the camera get the interior term of every path vertex (its shading for a fixed incoming ray; the
    environment seen directly moves with the camera rays, so pose, ``K`` and lens get its gradient too) and
    the boundary term of primary visibility by edge sampling (:mod:`lumigrad.raytrace.edges`: silhouettes
    move, pixels change; through lens distortion too, along the edges' curved images), and the boundary term
    of the direct
    light's visibility at the first hit by shadow-edge sampling (:mod:`lumigrad.raytrace.shadow_edges`:
    moving an occluder, a light, the receiver or the camera moves the shadows the camera sees, for point, spot,
    directional, area and environment lights); with ``max_depth`` 3 or more the same shadow-edge samples are
    connected to the vertices of camera paths too (:mod:`lumigrad.raytrace.shadow_edge_connections`), so shadows
    seen in glossy reflections or through rough glass, and shadows that change the light bounced onward, get
    their boundary term (``deep_shadow_edges``; not through a delta lobe, nor in scenes where a path can be in a
    medium; in fog the first-hit term carries the medium's ``Tr`` on its camera and shadow rays, exact for a pure
    absorber, while the in-scattered light's own shadow boundaries are left out). A silhouette seen by a
    BSDF-sampled ray beyond the first hit (an occluder of indirect light) gets its term only when asked for,
    ``deep_silhouette_samples > 0`` (:mod:`lumigrad.raytrace.silhouette_connections`: unbiased in the tests, but
    heavy-tailed where vertices lie close to edges, so off by default). Area lights' direct light is
    differentiated in the lamp's area parameterisation in both terms (the backward pass's own next-event
    samples, points that move with the lamp, at full weight; the emission BSDF samples find left out;
    :mod:`lumigrad.raytrace.transport`), so with ``seed_grad = seed`` the gradient of a scene with area lights
    is not exactly that of the forward estimate, but an independent unbiased one. Where only material and light
    values require gradients (``fused_adjoint``), the replay runs on the fused kernel with the primal's own
    estimator, area lights included, and has no boundary terms (nothing moves).
    Inside a medium, the distance to the boundary is taken as a constant (the
    boundary's motion changing the flight lengths gives no geometry gradient), and scattering positions are
    detached.
    """

    aov_names = ("depth", "normal", "position", "albedo", "mask")
    monte_carlo = True

    def __init__(self, *, max_depth: int = 8, rr_depth: int = 5, hide_emitters: bool = False,
                 spp_grad: Optional[int] = None, seed_grad: Optional[int] = None, edge_samples: Optional[int] = None,
                 antithetic_edges: bool = True, shadow_edge_samples: Optional[int] = None,
                 use_fused_kernel: bool = True, light_sampling: str = DEFAULT_LIGHT_SAMPLING,
                 deep_shadow_edges: bool = True, deep_silhouette_samples: Optional[int] = 0,
                 fused_adjoint: bool = True):
        check_choice(light_sampling, "light_sampling", AREA_SAMPLING)
        self.light_sampling = light_sampling
        if isinstance(max_depth, bool) or not isinstance(max_depth, int) or (max_depth < 1 and max_depth != -1):
            raise ValueError(f"max_depth must be a positive int or -1 (no limit); got {max_depth!r}")
        check_positive_int(rr_depth, "rr_depth")
        if not isinstance(hide_emitters, bool):
            raise TypeError(f"hide_emitters must be a bool; got {type(hide_emitters).__name__}")
        if spp_grad is not None:
            check_positive_int(spp_grad, "spp_grad")
        if seed_grad is not None and (isinstance(seed_grad, bool) or not isinstance(seed_grad, int) or seed_grad < 0):
            raise ValueError(f"seed_grad must be a non-negative int or None; got {seed_grad!r}")
        if edge_samples is not None and (isinstance(edge_samples, bool) or not isinstance(edge_samples, int)
                                         or edge_samples < 0):
            raise ValueError(f"edge_samples must be a non-negative int or None; got {edge_samples!r}")
        if not isinstance(antithetic_edges, bool):
            raise TypeError(f"antithetic_edges must be a bool; got {type(antithetic_edges).__name__}")
        if shadow_edge_samples is not None and (isinstance(shadow_edge_samples, bool)
                                                or not isinstance(shadow_edge_samples, int) or shadow_edge_samples < 0):
            raise ValueError(f"shadow_edge_samples must be a non-negative int or None; got {shadow_edge_samples!r}")
        self.shadow_edge_samples = shadow_edge_samples
        if not isinstance(deep_shadow_edges, bool):
            raise TypeError(f"deep_shadow_edges must be a bool; got {type(deep_shadow_edges).__name__}")
        self.deep_shadow_edges = deep_shadow_edges
        if deep_silhouette_samples is not None and (isinstance(deep_silhouette_samples, bool)
                                                    or not isinstance(deep_silhouette_samples, int)
                                                    or deep_silhouette_samples < 0):
            raise ValueError(f"deep_silhouette_samples must be a non-negative int or None; "
                             f"got {deep_silhouette_samples!r}")
        self.deep_silhouette_samples = deep_silhouette_samples
        if not isinstance(use_fused_kernel, bool):
            raise TypeError(f"use_fused_kernel must be a bool; got {type(use_fused_kernel).__name__}")
        self.use_fused_kernel = use_fused_kernel
        if not isinstance(fused_adjoint, bool):
            raise TypeError(f"fused_adjoint must be a bool; got {type(fused_adjoint).__name__}")
        self.fused_adjoint = fused_adjoint
        self.edge_samples = edge_samples
        self.antithetic_edges = antithetic_edges
        self.max_depth = max_depth
        self.rr_depth = rr_depth
        self.hide_emitters = hide_emitters
        self.spp_grad = spp_grad
        self.seed_grad = seed_grad

    def render(self, scene: Scene, camera: Camera, *, aovs: Sequence[str] = (), spp: int = 1,
               seed: int = 0) -> RenderOutput:
        """Render colour, coverage and the AOVs ``aovs``; see the class."""
        run = _Run(self, scene, camera, spp, seed)
        check_index_tables(scene)
        frame_checks(scene, camera).flush()  # one read: the path tracer syncs freely anyway
        params = run.parameters()
        radiance = _PathReplay.apply(run, *params)
        film = scene.film
        rgb = form_image_unchecked(radiance, exposure=film.exposure, white_balance=film.white_balance,
                                   vignetting=film.vignetting, K=camera.K if film.vignetting is not None else None,
                                   tone=film.tone, encode=film.encode, gamma=film.gamma)
        return RenderOutput(rgb, run.alpha, run.aovs(tuple(aovs)) if aovs else {})


@register_integrator("direct")
class DirectIntegrator(PathIntegrator):
    """Direct illumination (``integrator="direct"``): emitters seen by the camera and one bounce of light,
    next-event estimation of every light and a BSDF sample, combined by MIS: ``"path"`` with
    ``max_depth = 2``. Settings as ``"path"`` without ``max_depth`` and ``rr_depth``."""

    def __init__(self, *, hide_emitters: bool = False, spp_grad: Optional[int] = None,
                 seed_grad: Optional[int] = None, edge_samples: Optional[int] = None, antithetic_edges: bool = True,
                 shadow_edge_samples: Optional[int] = None, use_fused_kernel: bool = True,
                 light_sampling: str = DEFAULT_LIGHT_SAMPLING, fused_adjoint: bool = True):
        super().__init__(max_depth=2, rr_depth=8, hide_emitters=hide_emitters, spp_grad=spp_grad,
                         seed_grad=seed_grad, edge_samples=edge_samples, antithetic_edges=antithetic_edges,
                         shadow_edge_samples=shadow_edge_samples, use_fused_kernel=use_fused_kernel,
                         light_sampling=light_sampling, fused_adjoint=fused_adjoint)


class _BoundaryView(NamedTuple):
    """One pinhole view of a boundary term (:meth:`_Run._views`): ``camera``; ``v``, the image adjoint its edge
    samples weigh; ``pixels``, the image adjoint of its per-pixel path pools; ``count`` edge samples; the
    ``generator`` they draw from."""
    camera: Camera
    v: torch.Tensor
    pixels: torch.Tensor
    count: int
    generator: torch.Generator


class _Run:
    """One render: the scene, the camera and the sample counts, able to run the primal and the adjoint."""

    def __init__(self, integrator: PathIntegrator, scene: Scene, camera: Camera, spp: int, seed: int):
        if any(isinstance(l, SHLight) for l in scene.lights.values()):
            raise ValueError("the path tracer cannot sample an SHLight (a radiance projection, not an emitter); "
                             "use an EnvironmentLight")
        check_something_to_draw(scene)
        self.integrator, self.scene, self.camera = integrator, scene, camera
        self.spp, self.seed = spp, seed
        self.alpha = None

    def parameters(self):
        """The scene's and camera's tensors that require gradients (the inputs of the autograd function)."""
        tensors = list(self.scene.parameters().values())
        tensors += list(self.camera.parameters().values())
        seen, out = set(), []
        for t in tensors:
            if t.requires_grad and id(t) not in seen:
                seen.add(id(t))
                out.append(t)
        return out

    def primal(self) -> torch.Tensor:
        ts = _trace_scene(self.scene, self.integrator.light_sampling)
        o, d, w = _filtered_camera_rays(self.camera, self.spp, self.seed, ts.verts.dtype,
                                        self.scene.film.pixel_filter)
        hits: list = []
        L = self._primal_paths(ts, o, d, hits=hits, **self._settings(self.seed))
        # coverage: the plain mean over the rays the filter placed (|f|'s filtering: exactly 1 where all hit)
        self.alpha = _pixels(hits[0].to(o.dtype)[:, None], self.camera, self.spp)
        return _pixels(L, self.camera, self.spp, w)

    def adjoint(self, v_image: torch.Tensor, params) -> list:
        it = self.integrator
        spp = it.spp_grad or self.spp
        seed = it.seed_grad if it.seed_grad is not None else (self.seed + 1) % _SEED_MOD
        with torch.enable_grad():  # (the graph: the replay differentiates it; what requires gradients)
            ts = _trace_scene(self.scene, self.integrator.light_sampling)
            *rays, w = _filtered_camera_rays(self.camera, spp, seed, ts.verts.dtype, self.scene.film.pixel_filter)
        v = v_image.reshape(-1, 1, v_image.shape[-1]).expand(-1, spp, -1).reshape(-1, v_image.shape[-1]) / spp
        if w is not None:  # each ray enters its pixel with its filter weight
            v = v * w[:, None].to(v.dtype)
        with torch.no_grad():
            # the fused kernel's tables, once for the whole backward (detached copies)
            tables = path_tables(ts) if use_fused(ts, it.use_fused_kernel) else None
            if tables is not None and it.fused_adjoint and fused_adjoint_unsupported(ts, self.camera) is None:
                # only values move: no visibility changes (no boundary terms), the replay runs on the fused kernel
                return fused_value_gradients(ts, tables, rays[0], rays[1], v, params, **self._settings(seed))
            # a blended surface's choice hashes the ray's float bits: a PyTorch replay retraces the PyTorch primal's
            # rays only (the fused kernel's arithmetic differs in the last bits, and the paths would part)
            stochastic = ts.cutouts is not None and ts.cutouts.stochastic
            if stochastic:
                L = sample_paths(ts, rays[0].detach(), rays[1].detach(), **self._settings(seed))
            else:
                L = self._primal_paths(ts, rays[0].detach(), rays[1].detach(), tables=tables, **self._settings(seed))
        adjoint = PathAdjoint(v.to(L.dtype), L, params)
        del v, L  # the adjoint holds its own copies
        # where the fused kernel gave L, its arithmetic (float32) also redraws what the replay does not differentiate
        # (the replay kernels' BSDF sample is the opaque models': glass, Mitsuba's shadowed normal maps, a
        # principled's other lobes and anisotropic lobes replay on PyTorch)
        torch_samples = any((getattr(m, "mitsuba_normal_map", False) and m.normal_texture is not None)
                            or has_principled_lobes(m) or getattr(m, "roughness_aspect", None) is not None
                            for m in ts.materials)
        kernels = (ReplayKernels(tables) if tables is not None and not ts.transmissive and not torch_samples
                   and not stochastic else None)
        count = rays[0].shape[0]
        for start in range(0, count, REPLAY_PATHS):  # the same paths, REPLAY_PATHS at a time
            end = min(count, start + REPLAY_PATHS)
            sample_paths(ts, rays[0][start:end].detach(), rays[1][start:end].detach(),
                         adjoint=adjoint.paths(start, end), primary=lambda a=start, b=end: (rays[0][a:b], rays[1][a:b]),
                         kernels=kernels, path_offset=start, **self._settings(seed))
        del kernels, rays
        if it.edge_samples != 0:
            with torch.enable_grad():
                self._edges(ts, v_image, adjoint, spp, seed, tables)
        if it.shadow_edge_samples != 0 and it.max_depth >= 2:
            with torch.enable_grad():
                self._shadow_edges(ts, v_image, adjoint, spp, seed)
        if it.deep_silhouette_samples != 0 and (it.max_depth < 0 or it.max_depth >= 3):
            with torch.enable_grad():
                self._deep_silhouettes(ts, v_image, adjoint, spp, seed, tables)
        del tables
        return adjoint.grads

    def _views(self, v_image: torch.Tensor, seed: int, count: int):
        """The pinhole views the boundary terms sample (:class:`_BoundaryView`: an unbatched pinhole camera, its
        image adjoints, the number of edge samples it takes and the generator its samples draw from, one for
        all, seeded with ``seed``).

        A pinhole camera's views are its own. A thin lens's are the pinhole cameras of :data:`LENS_EDGE_VIEWS`
        aperture points per view (:meth:`lumigrad.Camera.through_lens`), each with the view's adjoint divided by
        their number and that share of ``count`` (the thin lens's image is the mean of these pinhole images over
        its aperture): half of them a Latin hypercube of the unit square, the other half their antithetic
        mirrors through the lens centre, which draw the same edge samples as their twins (the generator's state
        replayed), so that the terms odd in the aperture point, large and of either sign, cancel pairwise. The
        per-pixel path pools (the deep boundary terms) instead give each pixel to one of the aperture points, at
        random, with its whole adjoint (``pixels``): one camera path per pixel, as for a pinhole."""
        cam = self.camera
        views = [cam] if cam.batch_shape == () else [cam[i] for i in range(len(cam))]
        v_views = v_image.reshape(-1, cam.height, cam.width, v_image.shape[-1]).unbind(0)
        gen = torch.Generator(device=cam.device)
        gen.manual_seed(seed)
        if not cam.thin_lens:
            for view, v in zip(views, v_views):
                yield _BoundaryView(view, v, v, count, gen)
            return
        pairs = LENS_EDGE_VIEWS // 2
        share = max(1, -(-count // (2 * pairs)))
        for view, v in zip(views, v_views):
            v_share = v / (2 * pairs)
            cells = torch.stack([torch.randperm(pairs, generator=gen, device=cam.device) for _ in range(2)], -1)
            lens = (cells + torch.rand(pairs, 2, generator=gen, device=cam.device, dtype=cam.dtype)) / pairs
            owner = (torch.randperm(cam.height * cam.width, generator=gen, device=cam.device) % (2 * pairs))
            owner = owner.reshape(cam.height, cam.width, 1)
            for k, point in enumerate(lens):
                state = gen.get_state()
                yield _BoundaryView(view.through_lens(point), v_share, v * (owner == 2 * k), share, gen)
                gen.set_state(state)
                yield _BoundaryView(view.through_lens(1 - point), v_share, v * (owner == 2 * k + 1), share, gen)

    def _edges(self, ts: TraceScene, v_image: torch.Tensor, adjoint: PathAdjoint, spp: int, seed: int,
               tables: Optional[PathTables]) -> None:
        """The boundary term of primary visibility (:mod:`lumigrad.raytrace.edges`), view by view (``tables``:
        the fused kernel's of ``ts``, or None)."""
        cam = self.camera
        H, W = cam.height, cam.width
        count = self.integrator.edge_samples or max(256, H * W * spp // 16)
        for view, v, _, count, gen in self._views(v_image, _stream(seed, _PRIMARY_EDGES), count):
            edges = sample_primary_edges(ts.verts, ts.faces, view.K.to(ts.verts.dtype),
                                         view.world_to_cam.to(ts.verts.dtype), view.near, W, H, count, gen,
                                         orthographic=view.projection == "orthographic",
                                         distortion=None if view.projection == "orthographic" else view.distortion,
                                         distortion_model=view.distortion_model)
            p = edges.points.detach()
            col, row = p[:, 0].floor().long(), p[:, 1].floor().long()
            inside = (col >= 0) & (col < W) & (row >= 0) & (row < H)
            if not bool(inside.any()):
                continue
            keep = inside.nonzero()[:, 0]
            p, n = p[keep], edges.normals[keep]
            v_at = filter_adjoint_at(self.scene.film.pixel_filter, v, p)  # the pixels whose filters hold p
            eps = 1e-3  # pixels to either side of the edge
            with torch.no_grad():
                radiance = []
                for k, side in enumerate((-1.0, 1.0)):  # antithetic: the same seed on both sides
                    o, d = _rays_through(view, p + side * eps * n, ts.verts.dtype)
                    stream = _EDGE_SIDES + (0 if self.integrator.antithetic_edges else k)
                    radiance.append(self._primal_paths(ts, o, d, tables=tables, **self._settings(seed, stream)))
                jump = radiance[0] - radiance[1]  # f_minus - f_plus
                weight = (v_at.to(jump.dtype) * jump).sum(-1) * edges.inv_pdf[keep]
            surrogate = (weight * (n * edges.points[keep]).sum(-1)).sum()
            adjoint.backprop(surrogate)

    def _shadow_edges(self, ts: TraceScene, v_image: torch.Tensor, adjoint: PathAdjoint, spp: int,
                      seed: int) -> None:
        """The boundary term of the direct light's visibility, view by view: at the first hit, the camera
        connected to shadow-edge samples (:mod:`lumigrad.raytrace.shadow_edges`); beyond it (``max_depth`` of 3
        or more, unless ``deep_shadow_edges`` is False), the same samples connected to the vertices of camera
        paths (:mod:`lumigrad.raytrace.shadow_edge_connections`)."""
        it = self.integrator
        cam = self.camera
        H, W = cam.height, cam.width
        count = it.shadow_edge_samples or max(256, H * W * spp // 16)
        views = self._views(v_image, _stream(seed, _SHADOW_EDGES), count)
        deep = it.deep_shadow_edges and (it.max_depth < 0 or it.max_depth >= 3)
        if deep:  # the pool's paths and the connections: a stream of their own (the first hit's draws unchanged)
            deep_gen = torch.Generator(device=cam.device)
            deep_gen.manual_seed(_stream(seed, _DEEP_SHADOW_EDGES))
        dtype = ts.verts.dtype
        for view, v, pixels, count, gen in views:
            sources = sample_shadow_edge_sources(ts, count, gen)
            edges = shadow_edges_seen_by(ts, sources, view.K.to(dtype), view.world_to_cam.to(dtype), view.near, W, H,
                                         orthographic=view.projection == "orthographic",
                                         distortion=view.distortion, distortion_model=view.distortion_model)
            if len(edges):
                jump = shadow_edge_jumps(ts, edges, lambda uv: _rays_through(view, uv, dtype))  # f_minus - f_plus
                v_at = filter_adjoint_at(self.scene.film.pixel_filter, v, edges.points.detach())
                weight = (v_at.to(jump.dtype) * jump).sum(-1) * edges.inv_pdf
                surrogate = (weight * (edges.normals * edges.points).sum(-1)).sum()
                adjoint.backprop(surrogate)
            if deep and len(sources):
                pool = camera_path_vertices(ts, lambda uv: _rays_through(view, uv, dtype), pixels, it.max_depth,
                                            it.rr_depth, deep_gen, self.scene.film.pixel_filter)
                surrogate = connected_shadow_edges(ts, sources, pool, deep_gen)
                if surrogate is not None:
                    adjoint.backprop(surrogate)

    def _deep_silhouettes(self, ts: TraceScene, v_image: torch.Tensor, adjoint: PathAdjoint, spp: int,
                          seed: int, tables: Optional[PathTables]) -> None:
        """The boundary term of the silhouettes seen from camera-path vertices beyond the camera, view by view
        (:mod:`lumigrad.raytrace.silhouette_connections`). The pool of each depth ``j`` (``x_j``, ``1 <= j <=
        max_depth - 2``) is the tail of :func:`camera_path_vertices` traced to ``max_depth = j + 2`` from the
        same generator state (a longer path draws the same numbers first); the radiance arriving at ``x_j``
        has the remaining ``max_depth - j`` (``tables``: the fused kernel's of ``ts``, or None)."""
        it = self.integrator
        cam = self.camera
        count = it.deep_silhouette_samples or max(256, cam.height * cam.width * spp // 16)
        views = self._views(v_image, _stream(seed, _DEEP_SILHOUETTES), count)
        dtype = ts.verts.dtype
        settings = self._settings(seed, _DEEP_SILHOUETTE_SIDES)
        film_filter = self.scene.film.pixel_filter

        def radiance(o, d, max_depth):
            with torch.no_grad():
                return self._primal_paths(ts, o, d, tables=tables,
                                          **dict(settings, max_depth=max_depth, hide_emitters=True))

        for view, _, pixels, count, gen in views:
            rays = lambda uv, view=view: _rays_through(view, uv, dtype)  # noqa: E731
            if it.max_depth < 0:
                pools = [(camera_path_vertices(ts, rays, pixels, -1, it.rr_depth, gen, film_filter), -1)]
            else:
                state, pools, seen = gen.get_state(), [], 0
                for j in range(1, it.max_depth - 1):
                    gen.set_state(state)
                    pool = camera_path_vertices(ts, rays, pixels, j + 2, it.rr_depth, gen, film_filter)
                    tail = torch.arange(seen, len(pool), device=pool.face.device)
                    pools.append((type(pool)(*(z.index_select(0, tail) for z in (pool.face, pool.origins,
                                                                                   pool.directions, pool.weights))),
                                  it.max_depth - j))
                    seen = len(pool)
            surrogate = connected_silhouettes(ts, pools, radiance, gen, count)
            if surrogate is not None:
                adjoint.backprop(surrogate)

    def aovs(self, names) -> dict:
        """The first-hit buffers ``names`` (``[..., H, W, C]``, the pixel's mean over its camera rays)."""
        ts = _trace_scene(self.scene, self.integrator.light_sampling)
        o, d, _ = _filtered_camera_rays(self.camera, self.spp, self.seed, ts.verts.dtype,
                                        self.scene.film.pixel_filter)
        face, _, _ = ts.bvh().closest_hit(o.detach(), d.detach())
        rows = (face >= 0).nonzero()[:, 0]
        if rows.numel() == 0:  # no ray meets a surface (the sky alone, a camera looking away): empty buffers
            return {name: _pixels(o.new_zeros(o.shape[0], AOV_CHANNELS[name]), self.camera, self.spp)
                    for name in names}
        si, _, _, _ = surface_at(ts, face.index_select(0, rows), o.index_select(0, rows), d.index_select(0, rows))
        w2c = self.camera.flat()[1].to(ts.verts.dtype)  # [views, 4, 4]
        view = rows // (self.camera.height * self.camera.width * self.spp)
        R = w2c[view]
        depth = (R[:, 2, :3] * si.position).sum(-1, keepdim=True) + R[:, 2, 3:]
        values = {"depth": depth, "normal": si.normal, "position": si.position, "albedo": si.base_color,
                  "mask": torch.ones_like(depth)}
        out = {}
        for name in names:
            v = values[name]
            dense = v.new_zeros(o.shape[0], v.shape[-1]).index_copy(0, rows, v)
            out[name] = _pixels(dense, self.camera, self.spp)
        return out

    def _primal_paths(self, ts: TraceScene, o: torch.Tensor, d: torch.Tensor,
                      tables: Optional[PathTables] = None, **settings) -> torch.Tensor:
        """The radiance of rays ``o, d`` (no graph): the fused kernel where supported (on ``tables`` where
        given, ``ts``'s), else the transport."""
        if use_fused(ts, self.integrator.use_fused_kernel):
            return sample_paths_fused(ts, o, d, tables=tables, **settings).to(ts.verts.dtype)
        return sample_paths(ts, o, d, **settings)

    def _settings(self, seed: int, stream: int = _PATHS) -> dict:
        it = self.integrator
        return dict(max_depth=it.max_depth, rr_depth=it.rr_depth, seed=_stream(seed, stream),
                    hide_emitters=it.hide_emitters)


class _PathReplay(torch.autograd.Function):
    """Radiance ``[..., H, W, 3]`` of a :class:`_Run`: the primal forward, path replay backward."""

    @staticmethod
    def forward(ctx, run: _Run, *params):
        ctx.run = run
        with torch.no_grad():
            return run.primal()

    @staticmethod
    def backward(ctx, v_image):
        params = ctx.run.parameters()
        grads = ctx.run.adjoint(v_image, params)
        return (None,) + tuple(grads)


def _trace_scene(scene: Scene, light_sampling: str = DEFAULT_LIGHT_SAMPLING) -> TraceScene:
    flat = scene.flatten(emitters=True, normals=True)
    part_emitters = [p.source if isinstance(p.source, AreaLight) else None for p in flat.parts]
    lights = [l for l in scene.lights.values() if not isinstance(l, SHLight)]
    envs = [l for l in lights if isinstance(l, EnvironmentLight)]
    if len(envs) > 1:
        raise ValueError(f"a scene takes at most one EnvironmentLight; it has {len(envs)}")
    materials = [p.material for p in flat.parts]
    media = [(f"{p.name}.material.{side}", getattr(p.material, side, None)) for p in flat.parts
             for side in ("interior", "exterior")] + [("medium", scene.medium)]
    media = {id(m): (name, m) for name, m in reversed(media) if m is not None}  # a shared medium checked once
    for name, medium in media.values():
        if medium.channels not in (1, 3):
            raise ValueError(f"scene parameters {name}.sigma_a / sigma_s have "
                             f"{medium.channels} channels; the path tracer renders RGB: give 1 or 3")
        g = torch.as_tensor(medium.g).detach()  # (a number, or a tensor)
        if bool((g.abs() >= 1).any()):  # it may have been optimised
            raise ValueError(f"scene parameter {name}.g must lie in (-1, 1); got {float(g):.9g}")
    transmissive = any(bool(m.transmission_factor.detach().abs().max() > 0) for m in materials)
    verts, faces, normals, uv, uv_faces, face_part = (flat.verts, flat.faces, flat.normals, flat.uv, flat.uv_faces,
                                                      flat.face_part)
    if not flat.parts and envs:  # nothing but the sky: the render's precision and device are the map's
        device, dtype = envs[0].texels.device, envs[0].texels.dtype
        verts, normals, uv = (t.to(device, dtype) for t in (verts, normals, uv))
        faces, uv_faces, face_part = (t.to(device) for t in (faces, uv_faces, face_part))
    return TraceScene(verts, faces, normals, uv, uv_faces, face_part, materials,
                      [p.double_sided for p in flat.parts], part_emitters, lights, envs[0] if envs else None,
                      transmissive, flat.shading_tangents(), light_sampling, scene.medium)


def _rays_through(camera: Camera, uv: torch.Tensor, dtype: torch.dtype):
    """World rays ``(origins, unit directions) [S, 3]`` of one (unbatched) camera through pixel positions
    ``uv [S, 2]``."""
    o_c, d_c = camera.ray_origins_directions(uv.to(camera.dtype))
    R, t = camera.world_to_cam[:3, :3], camera.world_to_cam[:3, 3]
    o, d = (o_c - t) @ R, d_c @ R
    return o.to(dtype), (d / torch.linalg.vector_norm(d, dim=-1, keepdim=True)).to(dtype)


def _camera_rays(camera: Camera, spp: int, seed: int, dtype: torch.dtype):
    """:func:`_filtered_camera_rays` of the box filter: ``(origins, unit directions)``, jittered inside each pixel."""
    return _filtered_camera_rays(camera, spp, seed, dtype, PixelFilter())[:2]


def _filtered_camera_rays(camera: Camera, spp: int, seed: int, dtype: torch.dtype, pixel_filter: PixelFilter):
    """World rays ``(origins, unit directions) [views * H * W * spp, 3]`` and their filter weights ``[rays]``
    (None for the box filter: all 1), drawn around each pixel by ``pixel_filter``
    (:func:`lumigrad.cameras.pixel_filter.sample_in_pixels`; the box filter: jittered inside the pixel); rows
    ordered view, row, column, sample. Differentiable in the camera's ``K``, ``world_to_cam`` and distortion."""
    H, W = camera.height, camera.width
    gen = torch.Generator(device=camera.device)
    gen.manual_seed(_stream(seed, _CAMERA))
    batch = tuple(camera.batch_shape)
    u = torch.rand(batch + (H, W, spp, 2), generator=gen, device=camera.device, dtype=camera.dtype)
    weight = None
    if pixel_filter.is_box:
        centres = pixel_centers(H, W, device=camera.device, dtype=camera.dtype)  # [H, W, 2]
        uv = centres[..., None, :] + (u - 0.5)
    else:
        rows = torch.arange(H, device=camera.device)[:, None, None]
        cols = torch.arange(W, device=camera.device)[None, :, None]
        uv, weight = sample_in_pixels(pixel_filter, rows, cols, H, W, u)
        weight = weight.reshape(-1).to(dtype)
    views = math.prod(batch)
    w2c = camera.flat()[1]  # [views, 4, 4] (a pose shared by the batch's views expanded)
    R, t = w2c[:, :3, :3], w2c[:, None, :3, 3]
    # x_w = R^T (x_c - t), one matrix product per view (a batch of [1, 3] @ [3, 3] products is ~20x slower)
    if camera.thin_lens:  # each ray leaves from its own point of the aperture
        gen.manual_seed(_stream(seed, _LENS))
        lens = torch.rand(uv.shape, generator=gen, device=camera.device, dtype=camera.dtype)
        o_c, d_c = camera.ray_origins_directions(uv, lens)
        o = torch.bmm(o_c.reshape(views, -1, 3) - t, R)
    elif camera.projection == "perspective":  # every ray leaves the centre: one origin a view
        d_c = camera.rays(uv)
        o = torch.bmm(-t, R).expand(views, H * W * spp, 3)
    else:
        o_c, d_c = camera.ray_origins_directions(uv)
        o = torch.bmm(torch.broadcast_to(o_c, d_c.shape).reshape(views, -1, 3) - t, R)
    d = torch.bmm(d_c.reshape(views, -1, 3), R)
    d = d / torch.linalg.vector_norm(d, dim=-1, keepdim=True)
    return o.reshape(-1, 3).to(dtype).contiguous(), d.reshape(-1, 3).to(dtype), weight


def _pixels(L: torch.Tensor, camera: Camera, spp: int, weight: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The pixels ``[..., H, W, C]`` of per-ray values ``L [rays, C]``: the mean of ``weight * L`` over each
    pixel's ``spp`` rays (``weight``: the rays' filter weights, None: 1)."""
    if weight is not None:
        L = L * weight[:, None].to(L.dtype)
    shape = tuple(camera.batch_shape) + (camera.height, camera.width, spp, L.shape[-1])
    return L.reshape(shape).mean(-2)

