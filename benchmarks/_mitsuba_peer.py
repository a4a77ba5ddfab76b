"""Mitsuba 3 as a peer renderer for lumigrad's benchmarks (CPU, ``llvm_ad_rgb`` variant).

Install with ``bash benchmarks/setup_mitsuba.sh``. Typical use from a benchmark script::

    import _mitsuba_peer as peer
    ok, why = peer.available()
    if ok:
        p = peer.MitsubaPeer(verts, faces, uv, fx=fx, fy=fy, cx=cx, cy=cy,
                             width=512, height=512, world_to_cam=w2c)
        gbuf = p.gbuffer()                       # dict of numpy arrays
        print(np.median(p.time_gbuffer(10)))     # seconds per 1-spp G-buffer render
        print(np.median(p.time_vertex_gradient(5)))
        _, peak = peak_rss_growth(p.vertex_gradient)

Camera convention is lumigrad's (``src/lumigrad/conventions.py``): OpenCV camera frame (x right, y down,
z forward), ``x_cam = R @ x_world + t``, pixel (row i, col j) covers ``[j, j+1] x [i, i+1]`` so a centred
principal point is ``(cx, cy) = (W/2, H/2)``. Mitsuba's camera frame is x left, y up, z forward, so its
``to_world`` is ``inv(world_to_cam) @ diag(-1, -1, 1, 1)`` (a 180 degree turn about z, still a rotation).
Mitsuba's film coordinates then coincide with lumigrad's pixel coordinates; ``_selfcheck`` verifies this.

Running this file (``.venv/bin/python benchmarks/_mitsuba_peer.py``) runs the self-check and then times
the Spot cow at 512x512.

Path tracing: :func:`scene_dict` translates a lumigrad ``Scene`` and ``Camera`` into a ``mi.load_dict``
dictionary (meshes with their materials as :func:`bsdf_dict` maps them, area lights, an environment map made
exact by :func:`envmap_bitmap`); ``tests/integrators/test_path_vs_mitsuba.py`` checks each convention and
compares the images, ``benchmarks/pathtrace.py`` times both renderers on it.

Environment: Dr.Jit's LLVM backend ``dlopen``s a system libLLVM at run time. If ``DRJIT_LIBLLVM_PATH`` is
unset, this module points it at Debian's libLLVM 19 (package ``libllvm19``) when present, before
``drjit`` is imported.
"""

from __future__ import annotations

import glob
import math
import os
import statistics
import time
from pathlib import Path

import numpy as np

_LLVM_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/libLLVM-19.so",
    "/usr/lib/x86_64-linux-gnu/libLLVM.so.19.1",
    "/usr/lib/llvm-19/lib/libLLVM.so",
    "/usr/lib/llvm-19/lib/libLLVM-19.so",
)
SPOT_OBJ = "/work/shared/data/spot-cow/spot_triangulated.obj"
VARIANT = "llvm_ad_rgb"
# G-buffer channels requested from the `aov` integrator ("name:type"; see Mitsuba's aov plugin).
AOVS = "dd.y:depth,uv:uv,nn:geo_normal,pos:position,tri:prim_index,sid:shape_index"


def _set_llvm_path() -> None:
    """Point ``DRJIT_LIBLLVM_PATH`` at a system libLLVM if the variable is unset (prefers LLVM 19)."""
    if os.environ.get("DRJIT_LIBLLVM_PATH"):
        return
    found = [p for p in _LLVM_CANDIDATES if os.path.exists(p)]
    if not found:  # any other versioned libLLVM, newest first
        found = sorted(glob.glob("/usr/lib/*-linux-gnu/libLLVM-[0-9]*.so*"), reverse=True)
    if found:
        os.environ["DRJIT_LIBLLVM_PATH"] = found[0]


_set_llvm_path()

_mi = None  # the mitsuba module once `_load()` has succeeded
_dr = None


def _load():
    """Import mitsuba/drjit and select the LLVM AD variant (raises on failure)."""
    global _mi, _dr
    if _mi is None:
        import drjit as dr
        import mitsuba as mi

        mi.set_variant(VARIANT)
        x = dr.llvm.Float([1.0, 2.0]) * 2.0  # force the LLVM backend to JIT one kernel
        dr.eval(x)
        if x.numpy().tolist() != [2.0, 4.0]:
            raise RuntimeError("Dr.Jit LLVM backend produced a wrong result")
        _mi, _dr = mi, dr
    return _mi, _dr


def available() -> tuple[bool, str]:
    """Tells whether Mitsuba 3 with the ``llvm_ad_rgb`` variant can be used here.

    Returns:
        ``(True, "mitsuba X / drjit Y, libLLVM at PATH")`` or ``(False, reason)``. Never raises.
    """
    try:
        mi, dr = _load()
        return True, (f"mitsuba {mi.__version__} / drjit {dr.__version__}, "
                      f"DRJIT_LIBLLVM_PATH={os.environ.get('DRJIT_LIBLLVM_PATH', '(unset)')}")
    except ModuleNotFoundError as e:
        return False, f"mitsuba/drjit not installed ({e}); run benchmarks/setup_mitsuba.sh"
    except Exception as e:  # noqa: BLE001 - report anything (missing libLLVM, bad variant, ...)
        return False, f"{type(e).__name__}: {e}"


def mitsuba_or_report():
    """Mitsuba's module in the ``llvm_ad_rgb`` variant, or None after printing why it is unavailable (a
    benchmark whose rows all need the peer then prints that line and returns no rows)."""
    ok, why = available()
    if not ok:
        print(f"Mitsuba 3 unavailable: {why}")
        return None
    use_variant()
    return _load()[0]


def _sync(*values) -> None:
    """Evaluates Dr.Jit values and waits for the kernels, so wall-clock timings are real."""
    _dr.eval(*values)
    _dr.sync_thread()


def _timed(fn, repeats: int) -> list[float]:
    """Runs ``fn`` once as warm-up (JIT compilation), then ``repeats`` timed times; returns seconds."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def peak_rss_growth(fn, *args, **kwargs):
    """Measures how far a call pushes the process's peak resident set size (RSS).

    :func:`lumigrad.app.benchmarking.peak_rss_growth` (the one implementation; see it for what is counted), after
    flushing Dr.Jit's cache of freed buffers (``dr.flush_malloc_cache()``), which would otherwise hide a
    repeated call's memory.

    Args:
        fn: the callable to measure; ``*args`` / ``**kwargs`` are passed to it.

    Returns:
        ``(result, growth_bytes, exact)``; ``exact`` is False when the peak could not be reset.
    """
    from lumigrad.app.benchmarking import peak_rss_growth as _peak_rss_growth

    if _dr is not None:
        _dr.flush_malloc_cache()
    return _peak_rss_growth(fn, *args, **kwargs)


def load_obj(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Minimal OBJ reader for triangle meshes (``v``, ``vt``, ``f`` lines; normals ignored).

    Vertices are split wherever one position carries several texture coordinates. ``v`` is flipped
    to lumigrad's top-left texture origin (``v = 1 - v_obj``).

    Returns:
        ``verts [V,3] float32``, ``faces [F,3] int32`` and ``uv [V,2] float32`` (None without ``vt``).
    """
    pos, tex, corners = [], [], []
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "v":
            pos.append([float(x) for x in parts[1:4]])
        elif parts[0] == "vt":
            tex.append([float(x) for x in parts[1:3]])
        elif parts[0] == "f":
            if len(parts) != 4:
                raise ValueError(f"only triangles are supported: {line!r}")
            for c in parts[1:]:
                idx = c.split("/")
                vi = int(idx[0])
                ti = int(idx[1]) if len(idx) > 1 and idx[1] else 0
                corners.append((vi - 1 if vi > 0 else len(pos) + vi,
                                (ti - 1 if ti > 0 else len(tex) + ti) if ti else -1))
    keys, faces = np.unique(np.array(corners, np.int64), axis=0, return_inverse=True)
    verts = np.asarray(pos, np.float32)[keys[:, 0]]
    uv = None
    if tex and (keys[:, 1] >= 0).all():
        uv = np.asarray(tex, np.float32)[keys[:, 1]]
        uv[:, 1] = 1.0 - uv[:, 1]
    return verts, faces.reshape(-1, 3).astype(np.int32), uv


class MitsubaPeer:
    """One triangle mesh seen by one pinhole camera, rendered by Mitsuba 3 on the CPU (LLVM).

    Args:
        verts: ``[V, 3]`` float32 world-space positions.
        faces: ``[F, 3]`` int32 vertex indices (counter-clockwise = front, as in lumigrad).
        uv: optional ``[V, 2]`` texture coordinates (passed through unchanged).
        fx, fy, cx, cy: OpenCV intrinsics in pixels; ``fx == fy`` and ``(cx, cy) == (W/2, H/2)`` required.
        width, height: image size in pixels.
        world_to_cam: ``[4, 4]`` rigid OpenCV world-to-camera matrix.

    Raises:
        ValueError: non-square pixels, off-centre principal point, or a non-rigid ``world_to_cam``.
        RuntimeError / ImportError: Mitsuba is not usable (check ``available()`` first).
    """

    def __init__(self, verts, faces, uv=None, *, fx, fy, cx, cy, width, height, world_to_cam):
        self.width, self.height = int(width), int(height)
        if not math.isclose(fx, fy, rel_tol=1e-6):
            raise ValueError(f"non-square pixels (fx={fx}, fy={fy}) are not supported")
        if abs(cx - self.width / 2) > 1e-6 * self.width or abs(cy - self.height / 2) > 1e-6 * self.height:
            raise ValueError(f"principal point ({cx}, {cy}) is not the image centre "
                             f"({self.width / 2}, {self.height / 2})")
        w2c = np.asarray(world_to_cam, np.float64)
        rot = w2c[:3, :3]
        if w2c.shape != (4, 4) or not np.allclose(rot @ rot.T, np.eye(3), atol=1e-5) \
                or np.linalg.det(rot) < 0 or not np.allclose(w2c[3], [0, 0, 0, 1]):
            raise ValueError("world_to_cam must be a 4x4 rigid transform (rotation + translation)")
        self.world_to_cam = w2c
        self.fov_x = math.degrees(2.0 * math.atan(self.width / (2.0 * fx)))
        # OpenCV camera (x right, y down) -> Mitsuba camera (x left, y up): a 180 deg turn about z.
        self.to_world = np.linalg.inv(w2c) @ np.diag([-1.0, -1.0, 1.0, 1.0])

        self.verts = np.ascontiguousarray(verts, np.float32).reshape(-1, 3)
        self.faces = np.ascontiguousarray(faces, np.int32).reshape(-1, 3)
        self.uv = None if uv is None else np.ascontiguousarray(uv, np.float32).reshape(-1, 2)
        self._gbuf_scene = None
        self._grad_scene = self._grad_params = None

    # -- scene construction ---------------------------------------------------------------------
    def _mesh(self):
        """A Mitsuba mesh with the default BSDF (diffuse, reflectance 0.5) and no vertex normals."""
        mi, _ = _load()
        mesh = mi.Mesh("mesh", len(self.verts), len(self.faces), has_vertex_normals=False,
                       has_vertex_texcoords=self.uv is not None)
        params = mi.traverse(mesh)
        params["vertex_positions"] = mi.Float(self.verts.ravel())
        params["faces"] = mi.UInt32(self.faces.ravel().astype(np.uint32))
        if self.uv is not None:
            params["vertex_texcoords"] = mi.Float(self.uv.ravel())
        params.update()
        return mesh

    def _sensor(self, sampler: dict, film: dict) -> dict:
        mi, _ = _load()
        return {"type": "perspective", "fov": self.fov_x, "fov_axis": "x",
                "near_clip": 1e-3, "far_clip": 1e4,
                "to_world": mi.ScalarTransform4f(self.to_world.tolist()),
                "sampler": sampler,
                "film": {"type": "hdrfilm", "width": self.width, "height": self.height,
                         "rfilter": {"type": "box"}, **film}}

    def _gbuffer_scene(self):
        if self._gbuf_scene is None:
            mi, _ = _load()
            # spp=1, un-jittered stratified sampling: one ray through each pixel centre, like a rasterizer.
            sampler = {"type": "stratified", "sample_count": 1, "jitter": False}
            self._gbuf_scene = mi.load_dict({
                "type": "scene",
                "integrator": {"type": "aov", "aovs": AOVS},
                "sensor": self._sensor(sampler, {}),
                "mesh": self._mesh(),
            })
        return self._gbuf_scene

    def _gradient_scene(self):
        if self._grad_scene is None:
            mi, _ = _load()
            self._grad_scene = mi.load_dict({
                "type": "scene",
                # Projective-sampling direct illumination; no guiding structure for indirect edges.
                "integrator": {"type": "direct_projective", "guiding": "none"},
                "sensor": self._sensor({"type": "independent", "sample_count": 1},
                                       {"pixel_format": "rgb", "sample_border": True}),
                "emitter": {"type": "constant", "radiance": {"type": "rgb", "value": 1.0}},
                "mesh": self._mesh(),
            })
            self._grad_params = mi.traverse(self._grad_scene)
        return self._grad_scene, self._grad_params

    # -- G-buffer ---------------------------------------------------------------------------------
    def _render_gbuffer(self, spp: int = 1):
        mi, _ = _load()
        img = mi.render(self._gbuffer_scene(), spp=spp)
        _sync(img)
        return img

    def gbuffer(self, spp: int = 1) -> dict[str, np.ndarray]:
        """Renders a rasterizer-like G-buffer with the ``aov`` integrator (one ray per pixel centre).

        Returns:
            Dict of numpy arrays, ``[H, W, C]``, row 0 at the top: ``mask`` (bool, ray hit the mesh),
            ``depth`` (camera-frame z, lumigrad's definition, 0 on background), ``ray_depth`` (Mitsuba's
            ``depth`` AOV: distance along the ray from the near plane), ``position`` (world),
            ``uv``, ``geo_normal`` (world, unit, from the triangle's winding), ``tri`` (triangle
            index, int64) and ``shape`` (shape index; always 0 here). Background pixels are zero.
        """
        a = np.array(self._render_gbuffer(spp))
        names = self._gbuffer_scene().integrator().aov_names()
        col = {n: i for i, n in enumerate(names)}
        take = lambda *ns: a[..., [col[n] for n in ns]]  # noqa: E731
        ray_depth = take("dd.y.T")
        mask = ray_depth[..., 0] > 0
        pos = take("pos.X", "pos.Y", "pos.Z")
        r, t = self.world_to_cam[:3, :3], self.world_to_cam[:3, 3]
        depth = np.where(mask[..., None], pos @ r[2:].T.astype(np.float32) + np.float32(t[2]), 0)
        return {"mask": mask, "depth": depth, "ray_depth": ray_depth, "position": pos,
                "uv": take("uv.U", "uv.V"), "geo_normal": take("nn.X", "nn.Y", "nn.Z"),
                "tri": take("tri.I")[..., 0].round().astype(np.int64),
                "shape": take("sid.I")[..., 0].round().astype(np.int64)}

    def time_gbuffer(self, repeats: int = 10, spp: int = 1) -> list[float]:
        """Seconds per G-buffer render (evaluated and synchronised), after one untimed warm-up."""
        return _timed(lambda: self._render_gbuffer(spp), repeats)

    # -- vertex gradient --------------------------------------------------------------------------
    def _vertex_gradient(self, spp: int = 1, seed: int = 0):
        mi, dr = _load()
        scene, params = self._gradient_scene()
        key = "mesh.vertex_positions"
        dr.enable_grad(params[key])
        dr.clear_grad(params[key])
        params.update()
        img = mi.render(scene, params, spp=spp, seed=seed)
        loss = dr.mean(img, axis=None)
        dr.backward(loss)
        grad = dr.grad(params[key])
        _sync(loss, grad)
        return loss, grad

    def vertex_gradient(self, spp: int = 1, seed: int = 0) -> tuple[float, np.ndarray]:
        """Gradient of the mean rendered pixel value w.r.t. the vertex positions.

        The mesh is diffuse (reflectance 0.5) under a constant white environment (radiance 1), rendered
        with ``direct_projective`` (``guiding='none'``), which includes the visibility (silhouette and
        shadow-edge) terms via projective sampling. ``spp`` applies to the continuous, primary-visibility
        and indirect-visibility estimators alike.

        Returns:
            ``(loss, grad)`` with ``grad`` a ``[V, 3]`` float32 numpy array.
        """
        loss, grad = self._vertex_gradient(spp, seed)
        return float(loss.numpy().ravel()[0]), np.array(grad).reshape(-1, 3)

    def time_vertex_gradient(self, repeats: int = 5, spp: int = 1) -> list[float]:
        """Seconds per render + backward pass (evaluated and synchronised), after one untimed warm-up."""
        return _timed(lambda: self._vertex_gradient(spp), repeats)


# -- lumigrad scenes in Mitsuba (path tracing) -----------------------------------------------------
def use_variant() -> None:
    """Select the ``llvm_ad_rgb`` variant again (another caller may have switched Mitsuba to another one)."""
    mi, _ = _load()
    if mi.variant() != VARIANT:
        mi.set_variant(VARIANT)


def sensor_dict(camera, spp: int = 1, *, sampler: str = "independent", **film) -> dict:
    """A Mitsuba ``perspective`` sensor seeing what the lumigrad ``camera`` sees, pixel for pixel.

    The camera must be unbatched, undistorted, perspective, with square pixels and a centred principal point.
    Mitsuba's camera frame is x left, y up, z forward: ``to_world = inv(world_to_cam) @ diag(-1, -1, 1, 1)``
    (see the module docstring), and the film is a box-filtered ``hdrfilm`` (each sample lands in one pixel,
    as lumigrad's jittered samples do). ``film`` adds ``hdrfilm`` entries (e.g. ``sample_border=True``).
    """
    mi, _ = _load()
    if camera.batch_shape != () or camera.distortion is not None or camera.projection != "perspective":
        raise ValueError("sensor_dict needs one undistorted perspective camera")
    K = camera.K.detach().double().cpu().numpy()
    w2c = camera.world_to_cam.detach().double().cpu().numpy()
    W, H = int(camera.width), int(camera.height)
    if not math.isclose(K[0, 0], K[1, 1], rel_tol=1e-6) or abs(K[0, 2] - W / 2) > 1e-6 * W \
            or abs(K[1, 2] - H / 2) > 1e-6 * H or abs(K[0, 1]) > 1e-9:
        raise ValueError(f"sensor_dict needs square pixels and a centred principal point; K = {K.tolist()}")
    to_world = np.linalg.inv(w2c) @ np.diag([-1.0, -1.0, 1.0, 1.0])
    return {"type": "perspective", "fov_axis": "x", "fov": math.degrees(2.0 * math.atan(W / (2.0 * K[0, 0]))),
            "near_clip": 1e-3, "far_clip": 1e4,  # lumigrad's camera rays start at the eye
            "to_world": mi.ScalarTransform4f(to_world.tolist()),
            "sampler": {"type": sampler, "sample_count": int(spp)},
            "film": {"type": "hdrfilm", "width": W, "height": H, "rfilter": {"type": "box"},
                     "pixel_format": "rgb", **film}}


def envmap_bitmap(texels) -> np.ndarray:
    """Mitsuba ``envmap`` data that evaluates to exactly lumigrad's bilinear lookup of ``texels [H, W, C]``.

    Both renderers map a direction to ``u = atan2(d_x, -d_z) / 2 pi``, ``v = acos(d_y) / pi`` and centre column
    ``j`` at ``u = (j + 0.5) / W``. Lumigrad centres row ``i`` at ``v = (i + 0.5) / H`` (constant beyond the first
    and last row centres); Mitsuba puts row ``i`` of an ``H'``-row bitmap at ``v = i / (H' - 1)``, on the poles at
    both ends. With ``H' = 2 H + 1`` Mitsuba's rows fall on every lumigrad row centre (odd rows: the texels) and
    half-way between them (even rows: the mean of the two neighbours; the poles repeat the first / last row), so
    both bilinear interpolants are the same function (see :func:`lumigrad.io.mitsuba_xml.mitsuba_envmap_to_equirect`
    for the converse, which is exact at texel centres only).
    """
    t = np.asarray(texels.detach().cpu().numpy() if hasattr(texels, "detach") else texels, np.float64)
    H = t.shape[0]
    out = np.empty((2 * H + 1,) + t.shape[1:], np.float64)
    out[1::2] = t
    out[2:-1:2] = 0.5 * (t[:-1] + t[1:])
    out[0], out[-1] = t[0], t[-1]
    return np.ascontiguousarray(out, np.float32)


def _rgb(value) -> dict:
    return {"type": "rgb", "value": [float(c) for c in np.asarray(value, np.float64).reshape(-1)[:3]]}


def _widths(m, rough: float) -> dict:
    """A rough plugin's ``alpha``, or with a ``roughness_aspect`` its ``alpha_u = alpha / aspect`` (along ``dp/du``)
    and ``alpha_v = alpha aspect`` (``alpha = roughness^2``, each at least 1e-3 as lumigrad's)."""
    if getattr(m, "roughness_aspect", None) is None:
        return {"alpha": max(rough * rough, 1e-3)}
    aspect = float(m.roughness_aspect.detach().reshape(-1)[0])
    return {"alpha_u": max(rough * rough / aspect, 1e-3), "alpha_v": max(rough * rough * aspect, 1e-3)}


def bsdf_dict(material, *, metal: str = "principled") -> dict:
    """The Mitsuba BSDF closest to a lumigrad glTF ``Material`` (factors only, or a base-colour texture).

    * ``metallic 0, specular_factor 0, no transmission``: ``diffuse``, the same Lambertian BSDF (what
      ``lumigrad.io.read_mitsuba_xml`` reads a ``diffuse`` as); ``metallic 0, ior 1``: ``diffuse`` too, an
      approximation (lumigrad's Schlick coat with ``f0 = 0`` still adds a little rough specular at grazing
      angles: ``(1 - v.h)^5``; Mitsuba's ``diffuse`` has none);
      ``base_color_texture`` becomes an 8-bit sRGB ``bitmap`` (``raw = False``, bilinear, ``repeat``).
    * ``metallic 1``: ``metal="principled"``: ``principled`` with ``metallic = 1`` (Schlick Fresnel with ``F0 =
      base_color`` and GGX with ``alpha = roughness^2``, as lumigrad, but Smith shadowing is separable,
      ``G1(wi) G1(wo)``, where lumigrad's is height-correlated); ``metal="roughconductor"``: a GGX
      ``roughconductor`` with ``F = 1`` (``material = "none"``) times ``specular_reflectance = base_color``.
    * ``transmission_factor 1, metallic 0``, white: ``roughdielectric`` (GGX, ``alpha = roughness^2``, ``int_ior =
      ior``; a ``roughness_aspect`` as ``alpha_u, alpha_v``, as a conductor's below).
    * ``roughconductor`` and ``roughdielectric`` take the material's ``microfacet`` as their ``distribution``.
    * ``Material.principled`` (with its ``principled_lobes``): ``principled`` (the same model); a
      ``roughness_aspect`` in ``[sqrt(0.1), 1]`` as its ``anisotropic``.
    * ``Material.conductor_eta`` / ``conductor_k``: ``roughconductor`` with that ``eta`` and ``k`` and
      ``specular_reflectance = base_color / F(1; eta, k)`` (the same model); a ``roughness_aspect`` as
      ``alpha_u, alpha_v`` (the shape's texture coordinates written with it: Mitsuba's frame is ``dp/du``).
    * ``Material.plastic``: ``roughplastic`` (the same model); ``thin_dielectric`` with
      ``transmission_factor`` 1: ``thindielectric`` tinted by the base colour.
    * ``Material.delta_specular``: the smooth plugin (``conductor``, ``dielectric``, ``plastic``): delta lobes, as
      lumigrad's towards delta lights.

    Raises:
        NotImplementedError: anything else (a mixture no Mitsuba plugin reproduces).
    """
    m = material
    f = lambda t: float(t.detach().reshape(-1)[0])  # noqa: E731
    base = m.base_color_factor.detach().double().cpu().numpy()
    metallic, rough, ior, trans = f(m.metallic_factor), f(m.roughness_factor), f(m.ior), f(m.transmission_factor)
    coat = f(m.specular_factor)
    others = [k for k in ("metallic_roughness_texture", "normal_texture", "occlusion_texture", "emissive_texture")
              if getattr(m, k) is not None]
    if others or (m.base_color_texture is not None and (metallic != 0 or not np.allclose(base, 1))):
        raise NotImplementedError(f"no Mitsuba equivalent for a material with {others or 'a tinted texture'}")
    if getattr(m, "principled", False):  # the same model (opaque: spec_trans 0), with its other lobes
        if m.base_color_texture is not None:
            raise NotImplementedError("a textured principled (the peer writes factors only)")
        out = {"type": "principled", "base_color": _rgb(base), "metallic": metallic, "roughness": rough, "eta": ior}
        if getattr(m, "roughness_aspect", None) is not None:  # aspect = sqrt(1 - 0.9 anisotropic)
            aspect = f(m.roughness_aspect)
            if not math.sqrt(0.1) - 1e-6 <= aspect <= 1.0:
                raise NotImplementedError(f"Mitsuba's principled takes aspects in [sqrt(0.1), 1]; got {aspect}")
            out["anisotropic"] = min(max((1.0 - aspect * aspect) / 0.9, 0.0), 1.0)
        if getattr(m, "principled_lobes", None) is not None:
            names = ("spec_tint", "sheen", "sheen_tint", "clearcoat", "clearcoat_gloss", "flatness")
            out.update({k: float(v) for k, v in zip(names, m.principled_lobes.detach().reshape(6).tolist()) if v})
        return out
    if getattr(m, "conductor_eta", None) is not None:  # the same model: the base colour is s F(1; eta, k)
        if m.base_color_texture is not None:
            raise NotImplementedError("a textured conductor (the peer writes factors only)")
        eta, k = (v.detach().double().cpu().numpy().reshape(3) for v in (m.conductor_eta, m.conductor_k))
        head_on = ((eta - 1) ** 2 + k ** 2) / ((eta + 1) ** 2 + k ** 2)
        tint = np.clip(base[:3] / head_on, 0.0, 1.0)  # (float32 rounding may lift a white tint above 1)
        if getattr(m, "delta_specular", False):  # Mitsuba's smooth conductor
            return {"type": "conductor", "eta": _rgb(eta), "k": _rgb(k), "specular_reflectance": _rgb(tint)}
        return {"type": "roughconductor", "distribution": m.microfacet, **_widths(m, rough),
                "eta": _rgb(eta), "k": _rgb(k), "specular_reflectance": _rgb(tint)}
    if getattr(m, "plastic", False):
        if m.base_color_texture is not None:
            raise NotImplementedError("a textured plastic (the peer writes factors only)")
        if getattr(m, "delta_specular", False):  # Mitsuba's smooth plastic (a delta coat)
            return {"type": "plastic", "int_ior": ior, "ext_ior": 1.0, "diffuse_reflectance": _rgb(base)}
        return {"type": "roughplastic", "distribution": m.microfacet, "alpha": max(rough * rough, 1e-3),
                "int_ior": ior, "ext_ior": 1.0, "diffuse_reflectance": _rgb(base)}
    if trans == 1.0 and metallic == 0.0 and getattr(m, "thin_dielectric", False):
        return {"type": "thindielectric", "int_ior": ior, "ext_ior": 1.0, "specular_transmittance": _rgb(base)}
    if trans == 1.0 and metallic == 0.0 and np.allclose(base[:3], 1):
        if getattr(m, "delta_specular", False):  # Mitsuba's smooth dielectric
            return {"type": "dielectric", "int_ior": ior, "ext_ior": 1.0}
        return {"type": "roughdielectric", "distribution": m.microfacet, **_widths(m, rough), "int_ior": ior,
                "ext_ior": 1.0}
    if trans == 0.0 and metallic == 0.0 and (coat == 0.0 or ior == 1.0):
        if m.base_color_texture is None:
            return {"type": "diffuse", "reflectance": _rgb(base)}
        mi, _ = _load()
        tex = m.base_color_texture.detach().double().cpu().numpy()[..., :3]
        texels = np.round(tex * 255.0)
        if np.abs(texels - tex * 255.0).max() > 1e-3:
            raise NotImplementedError("base_color_texture must hold 8-bit values (k / 255) to match an sRGB bitmap")
        bitmap = mi.Bitmap(np.ascontiguousarray(texels.astype(np.uint8)))  # 8-bit: sRGB-encoded
        return {"type": "diffuse", "reflectance": {"type": "bitmap", "bitmap": bitmap, "raw": False,
                                                   "filter_type": "bilinear", "wrap_mode": "repeat"}}
    if trans == 0.0 and metallic == 1.0:
        if metal == "principled":
            if m.microfacet != "ggx":
                raise NotImplementedError("Mitsuba's principled BSDF is GGX's; pass metal='roughconductor'")
            return {"type": "principled", "base_color": _rgb(base), "metallic": 1.0, "roughness": rough}
        if metal == "roughconductor":
            return {"type": "roughconductor", "distribution": m.microfacet, "alpha": max(rough * rough, 1e-3),
                    "material": "none", "specular_reflectance": _rgb(base)}
        raise ValueError(f"metal must be 'principled' or 'roughconductor'; got {metal!r}")
    raise NotImplementedError(f"no Mitsuba equivalent for metallic={metallic}, ior={ior}, transmission={trans}")


def medium_dict(medium) -> dict:
    """Mitsuba's ``homogeneous`` medium (``sigma_t``, ``albedo``, an ``hg`` phase) of a lumigrad
    ``HomogeneousMedium``."""
    arr = lambda t: np.broadcast_to(t.detach().double().cpu().numpy().reshape(-1), (3,))  # noqa: E731
    sigma_a, sigma_s = arr(medium.sigma_a), arr(medium.sigma_s)
    sigma_t = sigma_a + sigma_s
    albedo = np.where(sigma_t > 0, sigma_s / np.maximum(sigma_t, 1e-30), 0.0)
    g = float(medium.g.detach()) if hasattr(medium.g, "detach") else float(medium.g)
    scale = max(float(sigma_t.max()), 1e-30)  # Mitsuba's RGB values must lie in [0, 1]: sigma_t / scale
    return {"type": "homogeneous", "sigma_t": _rgb(sigma_t / scale), "scale": scale, "albedo": _rgb(albedo),
            "phase": {"type": "hg", "g": g}}


def mesh_object(name: str, verts, faces, *, uv=None, uv_faces=None, normals=None, bsdf: dict | None = None,
                emitter: dict | None = None, interior: dict | None = None):
    """A Mitsuba ``Mesh`` from world-space triangles (numpy or torch), shading ``normals`` indexed by ``faces``.

    Corners that share both their position index and their texture-coordinate index (``uv_faces``, default
    ``faces``) share one Mitsuba vertex, so that the mesh is as connected as the source: Mitsuba's projective
    integrators take an edge with one adjacent face for a silhouette (boundary) edge, and a mesh with one
    vertex per face corner made every triangle edge one (the lamp-height gradient of a Cornell box came out
    0.13 against finite differences' 0.173). Corners on a texture seam stay split, as any OBJ importer splits
    them."""
    mi, _ = _load()
    arr = lambda t: np.asarray(t.detach().double().cpu().numpy() if hasattr(t, "detach") else t)  # noqa: E731
    faces = arr(faces).astype(np.int64)
    uvf = faces if uv is None or uv_faces is None else arr(uv_faces).astype(np.int64)
    keys, welded = np.unique(np.stack([faces.reshape(-1), uvf.reshape(-1)], 1), axis=0, return_inverse=True)
    welded = welded.reshape(-1)
    corners = arr(verts)[keys[:, 0]]
    props = mi.Properties()
    props["bsdf"] = mi.load_dict(bsdf if bsdf is not None else {"type": "diffuse", "reflectance": _rgb([0, 0, 0])})
    if emitter is not None:
        props["emitter"] = mi.load_dict(emitter)
    if interior is not None:
        props["interior"] = mi.load_dict(interior)
    mesh = mi.Mesh(name, len(corners), len(faces), props=props, has_vertex_normals=normals is not None,
                   has_vertex_texcoords=uv is not None)
    params = mi.traverse(mesh)
    params["vertex_positions"] = mi.Float(corners.ravel().astype(np.float32))
    params["faces"] = mi.UInt32(welded.astype(np.uint32))
    if normals is not None:
        params["vertex_normals"] = mi.Float(arr(normals)[keys[:, 0]].reshape(-1).astype(np.float32))
    if uv is not None:
        params["vertex_texcoords"] = mi.Float(arr(uv)[keys[:, 1]].reshape(-1).astype(np.float32))
    params.update()
    return mesh


def rfilter_dict(pixel_filter) -> dict:
    """Mitsuba's ``rfilter`` of a lumigrad :class:`~lumigrad.cameras.pixel_filter.PixelFilter` (the same kinds and
    parameters)."""
    f = pixel_filter
    props = {"tent": {"radius": f.radius}, "gaussian": {"stddev": f.stddev}, "mitchell": {"B": f.b, "C": f.c},
             "lanczos": {"lobes": f.lobes}}.get(f.kind, {})
    return {"type": f.kind, **props}


def scene_dict(scene, camera, *, integrator: dict, spp: int = 1, metal: str = "principled") -> dict:
    """A Mitsuba scene dictionary (for ``mi.load_dict``) of a lumigrad ``Scene`` seen by ``camera``.

    Meshes keep their names (so ``mi.traverse`` keys read ``"<name>.bsdf...."``; double-sided ones get a
    ``twosided`` BSDF, ``"<name>.bsdf.brdf_0...."``) and their interpolated shading normals; materials as
    :func:`bsdf_dict`. An ``AreaLight`` of uniform radiance becomes a mesh with a one-sided ``area`` emitter and
    a black ``diffuse`` BSDF (lumigrad's lamp surface is black under a Schlick coat with ``f0 = 0.04``: a few
    percent of rough specular that Mitsuba's lamp lacks). An ``EnvironmentLight`` becomes an ``envmap`` of
    :func:`envmap_bitmap` (``scale`` folded in). A material's ``interior`` medium becomes the mesh's
    ``interior`` (:func:`medium_dict`; render it with ``volpath``). Point, directional and linear-falloff spot lights
    become Mitsuba's (:func:`punctual_emitter_dict`); other lights are refused.
    """
    from lumigrad.scene.lights import AreaLight, EnvironmentLight

    flat = scene.flatten(emitters=True, normals=True)
    out = {"type": "scene", "integrator": integrator,
           "sensor": sensor_dict(camera, spp, rfilter=rfilter_dict(scene.film.pixel_filter))}
    for k, part in enumerate(flat.parts):
        rows = (flat.face_part == k).nonzero()[:, 0]
        group, name = part.name.split(".", 1)
        if isinstance(part.source, AreaLight):
            if part.source.two_sided:
                raise NotImplementedError("Mitsuba's area emitter is one-sided")
            bsdf, emitter = None, {"type": "area", "radiance": _rgb(part.source.radiance.detach().cpu())}
        else:
            bsdf, emitter = bsdf_dict(part.material, metal=metal), None
            if part.double_sided:
                bsdf = {"type": "twosided", "bsdf": bsdf}
        # the shape's own texture coordinates set Mitsuba's frames (dp/du) of an anisotropic lobe
        anisotropic = getattr(part.material, "roughness_aspect", None) is not None
        if anisotropic and getattr(part.source, "tangents", None) is not None:
            raise NotImplementedError("an anisotropic lobe on a shape with its own tangents (Mitsuba's frame is dp/du)")
        has_uv = part.material.base_color_texture is not None or (
            anisotropic and getattr(part.source, "uv", None) is not None)
        medium = getattr(part.material, "interior", None) if emitter is None else None
        out[name] = mesh_object(name, flat.verts, flat.faces[rows], normals=flat.normals,
                                uv=flat.uv if has_uv else None, uv_faces=flat.uv_faces[rows] if has_uv else None,
                                bsdf=bsdf, emitter=emitter, interior=medium_dict(medium) if medium else None)
    for name, light in scene.lights.items():
        if isinstance(light, AreaLight) and light.radiance.dim() == 1:
            continue  # drawn above
        if isinstance(light, EnvironmentLight):
            mi, _ = _load()
            out[name] = {"type": "envmap", "bitmap": mi.Bitmap(envmap_bitmap(light.radiance.detach()))}
            continue
        out[name] = punctual_emitter_dict(light, name)
    return out


def punctual_emitter_dict(light, name: str = "light") -> dict:
    """Mitsuba's ``point``, ``spot`` or ``directional`` emitter of a lumigrad light of the same kind (a spot light
    with ``falloff="linear"``, Mitsuba's own edge; glTF's has no Mitsuba equivalent; no ``range``)."""
    from lumigrad.scene.lights import DirectionalLight, PointLight, SpotLight

    mi, _ = _load()
    arr = lambda t: np.asarray(t.detach().double().cpu().numpy(), np.float64).reshape(-1)  # noqa: E731
    if isinstance(light, DirectionalLight):
        return {"type": "directional", "direction": mi.ScalarVector3f(*arr(light.direction)),
                "irradiance": _rgb(arr(light.irradiance)[0] * arr(light.color))}
    if not isinstance(light, (PointLight, SpotLight)) or light.range is not None:
        raise NotImplementedError(f"no Mitsuba conversion for a {type(light).__name__} ({name!r})")
    intensity = _rgb(arr(light.intensity)[0] * arr(light.color))
    position = arr(light.position)
    if isinstance(light, PointLight):
        return {"type": "point", "position": mi.ScalarPoint3f(*position), "intensity": intensity}
    if light.falloff != "linear":
        raise NotImplementedError(f"spot light {name!r} has glTF's falloff, which Mitsuba's spot lacks")
    axis = arr(light.direction) / np.linalg.norm(arr(light.direction))
    up = np.eye(3)[int(np.argmin(np.abs(axis)))]
    return {"type": "spot", "intensity": intensity, "cutoff_angle": math.degrees(float(light.outer_angle)),
            "beam_width": math.degrees(float(light.inner_angle)),
            "to_world": mi.ScalarTransform4f().look_at(origin=position.tolist(), target=(position + axis).tolist(),
                                                       up=up.tolist())}


def render_numpy(mitsuba_scene, spp: int, seed: int = 0, params=None) -> np.ndarray:
    """``mi.render`` as a ``[H, W, 3]`` float64 numpy image (evaluated and synchronised)."""
    mi, _ = _load()
    img = mi.render(mitsuba_scene, params, spp=spp, seed=seed)
    _sync(img)
    return np.array(img, np.float64)


# -- checks and the Spot benchmark ----------------------------------------------------------------
def look_at_world_to_cam(eye, target, up=(0.0, 1.0, 0.0)) -> np.ndarray:
    """OpenCV ``world_to_cam`` of a camera at ``eye`` looking at ``target`` (image up ~ ``up``)."""
    eye, target, up = (np.asarray(v, np.float64) for v in (eye, target, up))
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)  # right
    x /= np.linalg.norm(x)
    y = np.cross(z, x)   # down
    w2c = np.eye(4)
    w2c[:3, :3] = np.stack([x, y, z])
    w2c[:3, 3] = -w2c[:3, :3] @ eye
    return w2c


def _project(w2c, f, cx, cy, pts):
    cam = pts @ w2c[:3, :3].T + w2c[:3, 3]
    return np.stack([f * cam[:, 0] / cam[:, 2] + cx, f * cam[:, 1] / cam[:, 2] + cy], -1), cam[:, 2]


def _selfcheck() -> None:
    """Checks the camera conversion, the G-buffer and the gradient on one off-centre triangle.

    * the centroid of Mitsuba's coverage mask equals the centroid of the OpenCV-projected triangle;
    * every covered pixel's world ``position`` AOV projects (OpenCV model) onto that pixel's centre;
    * ``depth`` equals camera-frame z, ``geo_normal`` faces the camera, ``tri`` is 0;
    * the vertex gradient is finite and non-zero.
    """
    w, h, f = 96, 64, 80.0
    w2c = look_at_world_to_cam(eye=(0.4, -0.3, -3.0), target=(0.1, 0.2, 0.0))
    tri = np.array([[-0.2, 0.9, 0.1], [1.1, 0.6, 0.0], [0.5, -0.5, 0.3]], np.float32)
    uv2d, z = _project(w2c, f, w / 2, h / 2, tri.astype(np.float64))
    # Wind counter-clockwise as seen from the camera (image y is down, so check the signed area).
    e1, e2 = uv2d[1] - uv2d[0], uv2d[2] - uv2d[0]
    faces = np.array([[0, 1, 2]] if e1[0] * e2[1] - e1[1] * e2[0] < 0 else [[0, 2, 1]], np.int32)
    peer = MitsubaPeer(tri, faces, np.array([[0, 0], [1, 0], [0, 1]], np.float32), fx=f, fy=f,
                       cx=w / 2, cy=h / 2, width=w, height=h, world_to_cam=w2c)
    g = peer.gbuffer()
    m = g["mask"]
    assert 500 < m.sum() < m.size / 2, f"triangle covers {m.sum()} pixels"
    rows, cols = np.nonzero(m)
    mask_centroid = np.array([cols.mean() + 0.5, rows.mean() + 0.5])
    err = np.abs(mask_centroid - uv2d.mean(0)).max()
    assert err < 0.1, f"mask centroid {mask_centroid} vs projected centroid {uv2d.mean(0)} ({err:.3f} px)"
    pix, zc = _project(w2c, f, w / 2, h / 2, g["position"][m].astype(np.float64))
    centres = np.stack([cols + 0.5, rows + 0.5], -1)
    perr = np.abs(pix - centres).max()
    assert perr < 1e-2, f"position AOV reprojects {perr:.4f} px away from the pixel centre"
    assert np.allclose(g["depth"][m][:, 0], zc, rtol=1e-4), "depth is not camera-frame z"
    n_cam = g["geo_normal"][m] @ w2c[:3, :3].T
    assert (n_cam[:, 2] < 0).all(), "front-facing triangle's normal does not face the camera"
    assert (g["tri"][m] == 0).all() and (g["uv"][m] >= -1e-4).all()

    loss, grad = peer.vertex_gradient(spp=16)
    assert np.isfinite(grad).all() and np.abs(grad).max() > 0, "vertex gradient is zero or not finite"
    print(f"selfcheck ok: centroid error {err:.3f} px, position reprojection error {perr:.1e} px, "
          f"{m.sum()} pixels covered, loss {loss:.4f}, |grad|max {np.abs(grad).max():.3e}")


def spot_peer(size: int = 512, obj: str = SPOT_OBJ) -> MitsubaPeer:
    """The Spot cow seen from the front-right and a little above, fitted to ~90% of a square image."""
    verts, faces, uv = load_obj(obj)
    lo, hi = verts.min(0), verts.max(0)
    centre, radius = (lo + hi) / 2, float(np.linalg.norm(hi - lo)) / 2
    view = np.array([0.8, 0.3, 0.5])
    w2c = look_at_world_to_cam(centre + 3.0 * radius * view / np.linalg.norm(view), centre)
    cam = verts @ w2c[:3, :3].T + w2c[:3, 3]
    f = 0.45 * size / np.abs(cam[:, :2] / cam[:, 2:]).max()
    return MitsubaPeer(verts, faces, uv, fx=f, fy=f, cx=size / 2, cy=size / 2, width=size, height=size,
                       world_to_cam=w2c)


def _bench_spot(size: int = 512, repeats: int = 10) -> None:
    peer = spot_peer(size)
    g = peer.gbuffer()
    print(f"Spot: {len(peer.verts)} verts, {len(peer.faces)} triangles, {size}x{size}, "
          f"coverage {g['mask'].mean():.1%}, {len(np.unique(g['tri'][g['mask']]))} triangles visible")
    tg = peer.time_gbuffer(repeats)
    _, peak_g, exact = peak_rss_growth(peer.gbuffer)
    loss, grad = peer.vertex_gradient()
    assert np.abs(grad).max() > 0, "zero vertex gradient"
    tv = peer.time_vertex_gradient(max(3, repeats // 2))
    _, peak_v, _ = peak_rss_growth(peer.vertex_gradient)
    print(f"  G-buffer (aov, 1 spp):                  median {statistics.median(tg) * 1e3:8.1f} ms  "
          f"(min {min(tg) * 1e3:.1f}, n={len(tg)}), peak RSS growth {peak_g / 2**20:.1f} MiB")
    print(f"  vertex gradient (direct_projective, 1 spp): median {statistics.median(tv) * 1e3:8.1f} ms  "
          f"(min {min(tv) * 1e3:.1f}, n={len(tv)}), peak RSS growth {peak_v / 2**20:.1f} MiB")
    print(f"  loss {loss:.4f}, non-zero vertex grads {np.count_nonzero(np.abs(grad).sum(1))}/{len(grad)}"
          f"{'' if exact else ' (peak RSS could not be reset: growth is a lower bound)'}")


if __name__ == "__main__":
    ok, why = available()
    print(("available: " if ok else "NOT available: ") + why)
    if ok:
        _selfcheck()
        _bench_spot()
