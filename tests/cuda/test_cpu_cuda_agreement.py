"""CPU / CUDA agreement: every public differentiable op gives the same values and gradients on both devices.

Each test builds one small problem on the CPU in float64 from a seed, runs it on a reference device and on the
device under test (``LUMIGRAD_AGREEMENT_DEVICES``, default ``"cpu,cuda"``), and compares the forward values
and the gradients w.r.t. every differentiable input (vertices, ``K``, ``world_to_cam``, distortion,
attributes, textures, material, light and film parameters) under one random cotangent.

How the comparison stays honest where the two devices may legitimately differ:

* Face ids come from the visibility kernel on both devices; a pixel centre lying on an edge may go to either
  face (FMA contraction, other rounding). At most a 1e-3 fraction of the pixels (at least 2 pixels in these
  small images) may disagree. Values are compared where the ids agree, and the cotangent is zero where they do
  not (for ``antialias``, also next to such a pixel), so the gradients of one and the same function are
  compared and can be held to a tight tolerance.
* Pipelines whose face ids are internal (``render``, ``render_through_lens``) are held to the tight tolerance
  when their images agree everywhere, else: fewer than 1% of the pixels differ, the mean difference is below
  1e-4 of the image's scale, and gradients have cosine > 0.999 and a relative L2 error < 5e-2. Three ``Fit``
  steps: losses within 1e-4 (relative), parameter updates with cosine > 0.999 and relative L2 error < 1e-2.
* float32: kernels sum with atomics in another order and CUDA's transcendental functions differ from the CPU's
  in the last bit. Values must agree to 1e-4 of their scale except a 1% fraction of ill-conditioned elements
  (pixels on grazing triangles), which must still agree to 2e-3; gradients to 1e-3 of the largest entry with
  cosine > 0.9999. These bounds are a few times float32's own error here (measured against float64 runs:
  barycentrics 2e-4 at worst, gradients 1.5e-4 of the largest entry). float64: 1e-9 and 1e-7.
* TF32 (cuDNN convolutions, cuBLAS matmuls) is turned off while the tests run, as they compare lumigrad's
  arithmetic, except in ``test_ssim_float32_under_default_tf32_stays_close``, which checks what users get.

``LUMIGRAD_AGREEMENT_DEVICES=cpu,cpu`` runs everything on the CPU without the ``cuda`` marker, to check this
file on a machine without a GPU.
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass
from typing import Callable, Dict, Optional

import pytest
import torch
import torch.nn.functional as F

import lumigrad as lg
from lumigrad.cameras.projection import K_orthographic, look_at

from ..conftest import save_failure_images, uv_sphere

F32, F64 = torch.float32, torch.float64


def _device_pair():
    raw = os.environ.get("LUMIGRAD_AGREEMENT_DEVICES", "cpu,cuda")
    parts = [p.strip() for p in raw.split(",")]
    try:
        if len(parts) != 2:
            raise ValueError("need two comma-separated devices")
        return torch.device(parts[0]), torch.device(parts[1]), None
    except (RuntimeError, ValueError) as exc:
        return torch.device("cpu"), torch.device("cuda"), f"LUMIGRAD_AGREEMENT_DEVICES={raw!r} is invalid ({exc}); " \
                                                          "give two devices, e.g. 'cpu,cuda' or 'cpu,cpu'"


REF, DEV, _PAIR_ERROR = _device_pair()
_USES_CUDA = "cuda" in (REF.type, DEV.type)
pytestmark = [pytest.mark.cuda] if _USES_CUDA else []
PAIR = f"{REF}->{DEV}"


@pytest.fixture(autouse=True)
def _setup():
    if _PAIR_ERROR:
        pytest.fail(_PAIR_ERROR)
    conv_tf32, matmul_tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = conv_tf32, matmul_tf32


# ------------------------------------------------------------------------------------------ tolerances
@dataclass(frozen=True)
class Tol:
    value: float        # |a - b| <= value * max(1, |b|max) for all but `outliers` of the elements
    value_loose: float  # ... and for every element
    outliers: float     # fraction of elements allowed beyond `value`
    grad: float         # |a - b|max <= grad * |b|max, per input
    cos: float          # cosine(a, b) >= cos, per input


TOL = {F32: Tol(1e-4, 2e-3, 1e-2, 1e-3, 0.9999), F64: Tol(1e-9, 1e-9, 0.0, 1e-7, 1 - 1e-9)}
PIPELINE = dict(cos=0.999, rel_l2=5e-2)  # gradients of pipelines whose face ids could not be aligned
DTYPES = [pytest.param(F32, id="float32"), pytest.param(F64, id="float64")]
MAX_ID_MISMATCH = 1e-3  # fraction of the pixels; at least 2 pixels are allowed in the tiny images here


def _cpu(t: torch.Tensor) -> torch.Tensor:
    t = t.detach().cpu()
    return t.double() if t.is_floating_point() else t


def _rand(*shape, seed: int, lo: float = 0.0, hi: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return lo + (hi - lo) * torch.rand(*shape, generator=g, dtype=F64)


def _leaf(t: torch.Tensor, device, dtype=None) -> torch.Tensor:
    dtype = dtype or t.dtype
    return t.detach().to(device=device, dtype=dtype).clone().requires_grad_(True)


def _cotangent(shape, seed: int, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """A random cotangent in [-0.5, 1.5) (mean 0.5, so sums do not cancel to noise), zero where ``mask`` is
    False (``mask`` broadcasts from the left over trailing channel dims)."""
    w = _rand(*shape, seed=seed, lo=-0.5, hi=1.5)
    if mask is not None:
        m = mask.to(F64)
        while m.dim() < w.dim():
            m = m[..., None]
        w = w * m
    return w


def _assert_values(op: str, got: torch.Tensor, want: torch.Tensor, dtype, where: Optional[torch.Tensor] = None,
                   scale: Optional[float] = None, tol: Optional[Tol] = None) -> None:
    """``got`` (device under test) agrees with ``want`` (reference) at the elements selected by ``where``."""
    got, want = _cpu(got), _cpu(want)
    assert got.shape == want.shape, f"{op}: shape {tuple(got.shape)} on {DEV} vs {tuple(want.shape)} on {REF}"
    if where is not None:
        m = where.cpu()
        while m.dim() < got.dim():
            m = m[..., None]
        m = m.expand_as(got)
        got, want = got[m], want[m]
    if want.numel() == 0:
        return
    tol = tol or TOL[dtype]
    s = scale if scale is not None else max(1.0, float(want.abs().max()))
    assert torch.isfinite(got).all() == torch.isfinite(want).all(), f"{op}: non-finite values on one device only"
    err = (got - want).abs() / s
    beyond = float((err > tol.value).double().mean())
    ok = beyond <= tol.outliers and float(err.max()) <= tol.value_loose
    assert ok, (f"{op} ({PAIR}, {dtype}): values differ: max |diff| / scale {float(err.max()):.3g} (scale {s:.3g}), "
                f"{beyond:.2%} of {err.numel()} elements beyond {tol.value:g} (allowed {tol.outliers:.2%}, and none "
                f"beyond {tol.value_loose:g})")


def _assert_images(op: str, got: torch.Tensor, want: torch.Tensor, dtype, where=None) -> None:
    """As :func:`_assert_values`, writing the two images and their difference on failure."""
    try:
        _assert_values(op, got, want, dtype, where)
    except AssertionError:
        g, w = _cpu(got), _cpu(want)
        while g.dim() > 3:
            g, w = g[0], w[0]
        save_failure_images(f"agreement-{op}-{dtype}".replace("torch.", ""), reference=w, device=g,
                            diff=(g - w).abs())
        raise


def _rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.reshape(-1), b.reshape(-1)
    return float((a @ b) / (a.norm() * b.norm()).clamp_min(1e-300))


def _assert_grads(op: str, got: Dict[str, Optional[torch.Tensor]], want: Dict[str, Optional[torch.Tensor]], dtype,
                  pipeline: bool = False, may_be_zero=(), tol: Optional[Tol] = None) -> None:
    """Per input: both devices give a gradient, it is non-zero on the reference (unless listed in
    ``may_be_zero``), and the two agree (tight, or the pipeline tolerance)."""
    assert got.keys() == want.keys()
    tol = tol or TOL[dtype]
    for name in want:
        g, w = got[name], want[name]
        assert (g is None) == (w is None), f"{op}: grad wrt {name} is None on one device only ({PAIR})"
        if w is None and name in may_be_zero:
            continue
        if w is None:
            raise AssertionError(f"{op}: no gradient reached {name} ({PAIR})")
        g, w = _cpu(g), _cpu(w)
        assert torch.isfinite(g).all() and torch.isfinite(w).all(), f"{op}: non-finite grad wrt {name} ({PAIR})"
        scale = float(w.abs().max())
        if scale == 0:
            assert name in may_be_zero, f"{op}: grad wrt {name} is zero on {REF}: nothing is being compared"
            tiny = 1e-6 if dtype == F32 else 1e-12
            assert float(g.abs().max()) <= tiny, f"{op}: grad wrt {name} is zero on {REF} but not on {DEV}"
            continue
        err = float((g - w).abs().max()) / scale
        cos = _cos(g, w) if w.numel() > 1 else 1.0
        rel = _rel_l2(g, w)
        if pipeline:
            assert cos >= PIPELINE["cos"] and rel <= PIPELINE["rel_l2"], (
                f"{op} ({PAIR}, {dtype}): grad wrt {name}: cosine {cos:.6f} (>= {PIPELINE['cos']}), relative L2 "
                f"{rel:.3g} (<= {PIPELINE['rel_l2']})")
        else:
            assert cos >= tol.cos and err <= tol.grad, (
                f"{op} ({PAIR}, {dtype}): grad wrt {name}: max |diff| / max |grad| {err:.3g} (<= {tol.grad:g}), "
                f"cosine {cos:.8f} (>= {tol.cos}), relative L2 {rel:.3g}")


def _backward(outputs: Dict[str, torch.Tensor], cotangents: Dict[str, torch.Tensor],
              inputs: Dict[str, torch.Tensor]) -> Dict[str, Optional[torch.Tensor]]:
    """Back-propagate ``sum_k <outputs[k], cotangents[k]>`` and return the inputs' gradients on the CPU."""
    for t in inputs.values():
        t.grad = None
    loss = sum((outputs[k] * cotangents[k].to(outputs[k])).sum() for k in cotangents)
    loss.backward()
    return {k: (None if t.grad is None else _cpu(t.grad)) for k, t in inputs.items()}


def _assert_few_differ(op: str, agree: torch.Tensor, what: str = "face ids") -> None:
    """At most MAX_ID_MISMATCH of the pixels (and at least 2 of them) may disagree."""
    differ = int((~agree).sum())
    allowed = max(2, int(MAX_ID_MISMATCH * agree.numel()))
    assert differ <= allowed, (f"{op} ({PAIR}): {what} differ at {differ} of {agree.numel()} pixels "
                               f"({differ / agree.numel():.3%}; allowed {allowed})")


def _id_agreement(op: str, ids_ref: torch.Tensor, ids_dev: torch.Tensor, lists: bool = False) -> torch.Tensor:
    """Check that few pixels' face ids (``lists``: candidate lists ``[..., K]``, as sets) differ; return the
    per-pixel agreement mask."""
    a, b = ids_ref.cpu(), ids_dev.cpu()
    assert a.shape == b.shape, f"{op}: face id shapes {tuple(b.shape)} on {DEV} vs {tuple(a.shape)} on {REF}"
    assert bool((a >= 0).any()), f"{op}: nothing was drawn; the test scene is wrong"
    if lists:  # sorted by depth; ties in depth may swap neighbours, so compare as sets
        a, b = a.sort(-1).values, b.sort(-1).values
    agree = a == b
    if lists:
        agree = agree.all(-1)
    _assert_few_differ(op, agree)
    return agree


def _away_from(disagree: torch.Tensor, radius: int = 1) -> torch.Tensor:
    """Pixels ``[..., H, W]`` farther than ``radius`` (Chebyshev) from every True pixel of ``disagree``."""
    shape = disagree.shape
    x = disagree.reshape(-1, 1, shape[-2], shape[-1]).double()
    near = F.max_pool2d(x, 2 * radius + 1, stride=1, padding=radius) > 0
    return ~near.reshape(shape)


def _both(build: Callable[[torch.device], dict]):
    return build(REF), build(DEV)


# ------------------------------------------------------------------------------------------ scenes
def _K(size, fov_y=0.8, fx_ratio=1.07, skew=0.4, shift=(1.3, -0.7)) -> torch.Tensor:
    """Perspective intrinsics with fx != fy, a small skew and an off-centre principal point (float64, CPU)."""
    W, H = size
    f = 0.5 * H / math.tan(0.5 * fov_y)
    return torch.tensor([[f * fx_ratio, skew, 0.5 * W + shift[0]], [0.0, f, 0.5 * H + shift[1]], [0, 0, 1]], dtype=F64)


def _w2c(eye, target=(0.0, 0.1, 0.0)) -> torch.Tensor:
    return look_at(torch.tensor(eye, dtype=F64), torch.tensor(target, dtype=F64),
                   torch.tensor([0.0, 1.0, 0.0], dtype=F64))


def _camera(device, dtype, size=(64, 56), eye=(2.0, 0.5, 2.2), target=(0.0, 0.1, 0.0), *, projection="perspective",
            distortion=None, model="opencv", near=0.05, far=1e4, grad=True, K=None, w2c=None):
    """A camera whose K, world_to_cam (and distortion) are leaves on ``device``; returns ``(camera, leaves)``."""
    if K is None:
        K = _K(size) if projection == "perspective" else K_orthographic(2.2, size[0], size[1], dtype=F64)
    if w2c is None:
        w2c = _w2c(eye, target)
    make = (lambda t: _leaf(t, device, dtype)) if grad else (lambda t: t.to(device, dtype))
    leaves = {"K": make(K), "world_to_cam": make(w2c)}
    if distortion is not None:
        leaves["distortion"] = make(torch.tensor(distortion, dtype=F64))
    cam = lg.Camera(K=leaves["K"], world_to_cam=leaves["world_to_cam"], width=size[0], height=size[1], near=near,
                    far=far, distortion=leaves.get("distortion"), distortion_model=model, projection=projection)
    return cam, (leaves if grad else {})


def _sphere(n=10, radius=0.8):
    verts, faces = uv_sphere(n, 2 * n, radius)
    # a little asymmetry, so that no two pixels see mirror-image geometry
    verts = verts * torch.tensor([1.0, 0.9, 1.1], dtype=F64) + torch.tensor([0.05, 0.1, -0.03], dtype=F64)
    return verts, faces


def _corner_uv(verts: torch.Tensor, faces: torch.Tensor):
    """Per-corner spherical uv without a seam jump: ``(uv [3F, 2], uv_faces [F, 3])``."""
    d = verts / verts.norm(dim=-1, keepdim=True)
    u = (torch.atan2(d[:, 0], -d[:, 2]) / (2 * math.pi)) % 1.0
    v = torch.acos(d[:, 1].clamp(-1, 1)) / math.pi
    cu, cv = u[faces], v[faces]  # [F, 3]
    span = cu.max(1, keepdim=True).values - cu.min(1, keepdim=True).values
    cu = torch.where((span > 0.5) & (cu < 0.5), cu + 1.0, cu)
    pole = (cv < 1e-6) | (cv > 1 - 1e-6)  # a pole's u is undefined: take its neighbours' mean
    mean = torch.where(pole, 0.0, cu).sum(1, keepdim=True) / (~pole).sum(1, keepdim=True).clamp_min(1)
    cu = torch.where(pole, mean, cu)
    uv = torch.stack([cu, cv], -1).reshape(-1, 2)
    return uv, torch.arange(uv.shape[0]).reshape(-1, 3)


def _vertex_colours(verts: torch.Tensor) -> torch.Tensor:
    lo, hi = verts.min(0).values, verts.max(0).values
    return (verts - lo) / (hi - lo)


# ================================================================================== rasterize
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("projection,cull", [("perspective", "none"), ("orthographic", "back")])
def test_rasterize_agrees(spot, dtype, projection, cull):
    """rasterize: face ids, barycentrics, depth and barycentric derivatives; grads wrt verts, K, world_to_cam."""
    def build(device):
        verts = _leaf(spot.verts, device, dtype)
        cam, cam_leaves = _camera(device, dtype, size=(72, 60), projection=projection)
        frags = lg.rasterize(verts, spot.faces.to(device), cam, cull=cull, return_bary_derivs=True)
        return dict(frags=frags, inputs={"verts": verts, **cam_leaves})

    ref, dev = _both(build)
    fr, fd = ref["frags"], dev["frags"]
    agree = _id_agreement("rasterize", fr.face_ids, fd.face_ids) & fr.mask.cpu()
    _assert_values("rasterize.bary", fd.bary, fr.bary, dtype, agree)
    _assert_values("rasterize.depth", fd.depth, fr.depth, dtype, agree)
    _assert_values("rasterize.bary_derivs", fd.bary_derivs, fr.bary_derivs, dtype, agree)
    _assert_values("rasterize.zbuf", fd.zbuf, fr.zbuf, F32, agree)
    shape = fr.face_ids.shape
    cot = {"bary": _cotangent(shape + (3,), 1, agree), "depth": _cotangent(shape + (1,), 2, agree),
           "bary_derivs": _cotangent(shape + (3, 2), 3, agree)}
    grads = [_backward({k: getattr(r["frags"], k) for k in cot}, cot, r["inputs"]) for r in (ref, dev)]
    _assert_grads(f"rasterize[{projection}]", grads[1], grads[0], dtype)


# ================================================================================== interpolate
@pytest.mark.parametrize("dtype", DTYPES)
def test_interpolate_agrees(spot, dtype):
    """interpolate: per-corner uv with screen-space derivatives and per-vertex colours; grads wrt the
    attributes, verts, K and world_to_cam."""
    def build(device):
        verts = _leaf(spot.verts, device, dtype)
        uv = _leaf(spot.uv, device, dtype)
        colours = _leaf(_vertex_colours(spot.verts), device, dtype)
        cam, cam_leaves = _camera(device, dtype)
        frags = lg.rasterize(verts, spot.faces.to(device), cam, return_bary_derivs=True)
        tc, duv = lg.interpolate(uv, frags, spot.uv_faces.to(device), return_derivatives=True)
        col = lg.interpolate(colours, frags, spot.faces.to(device))
        return dict(frags=frags, out={"uv": tc, "duv": duv, "colour": col},
                    inputs={"verts": verts, "uv": uv, "colours": colours, **cam_leaves})

    ref, dev = _both(build)
    agree = _id_agreement("interpolate", ref["frags"].face_ids, dev["frags"].face_ids)
    for k in ref["out"]:
        _assert_values(f"interpolate.{k}", dev["out"][k], ref["out"][k], dtype, agree)
    cot = {k: _cotangent(v.shape, 10 + i, agree) for i, (k, v) in enumerate(ref["out"].items())}
    grads = [_backward(r["out"], cot, r["inputs"]) for r in (ref, dev)]
    _assert_grads("interpolate", grads[1], grads[0], dtype)


# ================================================================================== texture
PRECISIONS = [pytest.param((F32, "kernel"), id="float32-kernel"), pytest.param((F32, "torch"), id="float32-torch"),
              pytest.param((F64, "torch"), id="float64-torch")]


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("wrap", ["repeat", "clamp", "mirror"])
@pytest.mark.parametrize("filter", ["nearest", "bilinear", "trilinear"])
def test_texture_agrees(filter, wrap, precision):
    """texture: every filter and wrap mode on a non-power-of-two texture, uv outside [0, 1], mip levels from
    -1 to 5, a sample mask and per-view textures; grads wrt texels, uv and uv derivatives."""
    dtype, backend = precision
    views, H, W = 2, 12, 14
    tex = _rand(views, 20, 28, 3, seed=20)
    uv = _rand(views, H, W, 2, seed=21, lo=-0.4, hi=1.4)
    lod = _rand(views, H, W, 1, 1, seed=22, lo=-1.0, hi=5.0)
    direction = _rand(views, H, W, 2, 2, seed=23, lo=-1.0, hi=1.0)
    # columns d uv / d(pixel u), d uv / d(pixel v) of lengths 2^lod and 0.55 * 2^lod texels: no ties in the max
    duv = (direction / direction.norm(dim=-2, keepdim=True) * (2.0 ** lod) * torch.tensor([1.0, 0.55], dtype=F64)
           / torch.tensor([28.0, 20.0], dtype=F64)[:, None])
    mask = _rand(views, H, W, seed=24) < 0.9

    def build(device):
        inputs = {"tex": _leaf(tex, device, dtype), "uv": _leaf(uv, device, dtype)}
        kw = {}
        if filter == "trilinear":
            inputs["uv_derivs"] = _leaf(duv, device, dtype)
            kw["uv_derivs"] = inputs["uv_derivs"]
        out = lg.texture(inputs["tex"], inputs["uv"], filter=filter, wrap=wrap, mask=mask.to(device),
                         backend=backend, lod_bias=0.25, **kw)
        return dict(out={"colour": out}, inputs=inputs)

    ref, dev = _both(build)
    op = f"texture[{filter},{wrap},{backend}]"
    if filter == "nearest":  # a sample on a texel boundary may round to either texel
        diff = (_cpu(dev["out"]["colour"]) - _cpu(ref["out"]["colour"])).abs().amax(-1)
        same = diff < 1e-4
        _assert_few_differ(op, same, "nearest texels")
    else:
        same = torch.ones(views, H, W, dtype=torch.bool)
    _assert_values(op, dev["out"]["colour"], ref["out"]["colour"], dtype, same)
    cot = {"colour": _cotangent((views, H, W, 3), 25, same)}
    grads = [_backward(r["out"], cot, r["inputs"]) for r in (ref, dev)]
    _assert_grads(op, grads[1], grads[0], dtype, may_be_zero=("uv",) if filter == "nearest" else ())


@pytest.mark.parametrize("dtype", DTYPES)
def test_texture_mipmaps_agree(dtype):
    """build_mipmaps of a non-power-of-two texture, and texture() reading a prebuilt pyramid."""
    tex = _rand(24, 40, 4, seed=30)

    def build(device):
        t = _leaf(tex, device, dtype)
        levels = lg.build_mipmaps(t)
        uv = _rand(10, 12, 2, seed=31).to(device, dtype)
        duv = (_rand(10, 12, 2, 2, seed=32, lo=0.02, hi=0.3)).to(device, dtype)
        out = lg.texture(t, uv, uv_derivs=duv, mipmaps=levels, filter="trilinear")
        return dict(out={f"level{i}": lv for i, lv in enumerate(levels)} | {"sampled": out}, inputs={"tex": t})

    ref, dev = _both(build)
    assert ref["out"].keys() == dev["out"].keys(), "build_mipmaps: different number of levels"
    for k in ref["out"]:
        _assert_values(f"build_mipmaps.{k}", dev["out"][k], ref["out"][k], dtype)
    cot = {k: _cotangent(v.shape, 33 + i) for i, (k, v) in enumerate(ref["out"].items())}
    grads = [_backward(r["out"], cot, r["inputs"]) for r in (ref, dev)]
    _assert_grads("build_mipmaps+texture", grads[1], grads[0], dtype)


# ================================================================================== environment maps
ENV_OPS = ["envmap_lookup", "prefilter_ggx", "split_sum_lut", "sh_project_equirect", "sh_irradiance"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ENV_OPS)
def test_environment_map_ops_agree(name, dtype):
    """The environment-map ops behind EnvironmentLight: lookup, GGX pre-filtering, the split-sum table, SH."""
    from lumigrad.shading import envmap, sh

    env = _rand(8, 16, 3, seed=40, lo=0.1, hi=2.0)
    dirs = _rand(6, 7, 3, seed=41, lo=-1.0, hi=1.0)

    def build(device):
        if name == "envmap_lookup":
            inputs = {"env": _leaf(env, device, dtype), "dirs": _leaf(dirs, device, dtype)}
            out = envmap.envmap_lookup(inputs["env"], inputs["dirs"])
        elif name == "prefilter_ggx":
            inputs = {"env": _leaf(env, device, dtype)}
            out = envmap.prefilter_ggx(inputs["env"], [0.0, 0.3, 0.7, 1.0], size=(6, 12))
        elif name == "split_sum_lut":
            inputs = {"n_dot_v": _leaf(_rand(50, seed=42, lo=0.05, hi=1.0), device, dtype),
                      "roughness": _leaf(_rand(50, seed=43, lo=0.05, hi=1.0), device, dtype)}
            out = envmap.split_sum_lut(inputs["n_dot_v"], inputs["roughness"])
        elif name == "sh_project_equirect":
            inputs = {"env": _leaf(env, device, dtype)}
            out = sh.sh_project_equirect(inputs["env"], 2)
        else:
            inputs = {"normals": _leaf(dirs, device, dtype), "coeffs": _leaf(_rand(9, 3, seed=44), device, dtype)}
            out = sh.sh_irradiance(inputs["normals"], inputs["coeffs"])
        return dict(out={"out": out}, inputs=inputs)

    ref, dev = _both(build)
    _assert_values(name, dev["out"]["out"], ref["out"]["out"], dtype)
    cot = {"out": _cotangent(ref["out"]["out"].shape, 45)}
    grads = [_backward(r["out"], cot, r["inputs"]) for r in (ref, dev)]
    _assert_grads(name, grads[1], grads[0], dtype)


# ================================================================================== antialias
def _raster_pipeline(mesh, verts, faces_dev, cam, device, dtype, tex=None, colours=None):
    frags = lg.rasterize(verts, faces_dev, cam, return_bary_derivs=tex is not None)
    if tex is not None:
        uv, duv = lg.interpolate(mesh.uv.to(device, dtype), frags, mesh.uv_faces.to(device), return_derivatives=True)
        colour = lg.texture(tex, uv, uv_derivs=duv, mask=frags.mask)
    else:
        colour = lg.interpolate(colours, frags, faces_dev)
    return frags, lg.antialias(colour, frags, verts, faces_dev, cam)


@pytest.mark.parametrize("dtype", DTYPES)
def test_antialias_agrees(spot, dtype):
    """antialias of interpolated colours: silhouette and occlusion edges; grads wrt verts, colours, K and
    world_to_cam (the visibility gradients), compared away from pixels whose face ids differ."""
    def build(device):
        verts = _leaf(spot.verts, device, dtype)
        colours = _leaf(_vertex_colours(spot.verts), device, dtype)
        cam, cam_leaves = _camera(device, dtype, size=(72, 64))
        frags, image = _raster_pipeline(spot, verts, spot.faces.to(device), cam, device, dtype, colours=colours)
        return dict(frags=frags, out={"image": image}, inputs={"verts": verts, "colours": colours, **cam_leaves})

    ref, dev = _both(build)
    agree = _id_agreement("antialias", ref["frags"].face_ids, dev["frags"].face_ids)
    clean = _away_from(~agree)
    _assert_images("antialias", dev["out"]["image"], ref["out"]["image"], dtype, clean)
    cot = {"image": _cotangent(ref["out"]["image"].shape, 50, clean)}
    grads = [_backward(r["out"], cot, r["inputs"]) for r in (ref, dev)]
    _assert_grads("antialias", grads[1], grads[0], dtype)


# ================================================================================== soft rasterization
@pytest.mark.parametrize("dtype", DTYPES)
def test_soft_rasterize_agrees(dtype):
    """soft_rasterize (float32: the fused kernel; float64: PyTorch): candidates, silhouette and aggregated
    attributes; grads wrt verts, attrs, background, K and world_to_cam."""
    verts0, faces = _sphere(8)
    colours0 = _vertex_colours(verts0)

    def build(device):
        verts = _leaf(verts0, device, dtype)
        attrs = _leaf(colours0, device, dtype)
        background = _leaf(torch.tensor([0.2, 0.3, 0.4], dtype=F64), device, dtype)
        cam, cam_leaves = _camera(device, dtype, size=(40, 36), eye=(0.4, 0.6, -3.0), target=(0.0, 0.0, 0.0),
                                  far=8.0)
        out = lg.soft_rasterize(verts, faces.to(device), cam, attrs, background=background, sigma=1.5, gamma=0.05,
                                tol=1e-4, faces_per_pixel=24)
        return dict(ids=out.face_ids, out={"silhouette": out.silhouette, "attrs": out.attrs},
                    inputs={"verts": verts, "attrs": attrs, "background": background, **cam_leaves})

    ref, dev = _both(build)
    same = _id_agreement("soft_rasterize.face_ids", ref["ids"], dev["ids"], lists=True)
    for k in ref["out"]:
        _assert_values(f"soft_rasterize.{k}", dev["out"][k], ref["out"][k], dtype, same)
    cot = {k: _cotangent(v.shape, 60 + i, same) for i, (k, v) in enumerate(ref["out"].items())}
    grads = [_backward(r["out"], cot, r["inputs"]) for r in (ref, dev)]
    _assert_grads("soft_rasterize", grads[1], grads[0], dtype)


# ================================================================================== lens distortion
LENSES = [pytest.param(("opencv", [-0.22, 0.06, 0.003, -0.002, 0.008]), id="opencv"),
          pytest.param(("fisheye", [0.07, -0.02, 0.004, -0.001]), id="fisheye")]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lens", LENSES)
def test_distort_undistort_agree(lens, dtype):
    """lumigrad.cameras.distort and undistort (Newton in a kernel, implicit-function gradients); grads wrt the
    points and the coefficients."""
    model, coeffs = lens
    xy = _rand(200, 2, seed=70, lo=-0.6, hi=0.6)

    def build(device):
        inputs = {"xy": _leaf(xy, device, dtype), "coeffs": _leaf(torch.tensor(coeffs, dtype=F64), device, dtype)}
        c = inputs["coeffs"].expand(200, -1)
        d = lg.cameras.distort(inputs["xy"], c, model)
        u = lg.cameras.undistort(d, c, model)
        return dict(out={"distorted": d, "undistorted": u}, inputs=inputs)

    ref, dev = _both(build)
    for k in ref["out"]:
        _assert_values(f"{model}.{k}", dev["out"][k], ref["out"][k], dtype)
    cot = {k: _cotangent(v.shape, 71 + i) for i, (k, v) in enumerate(ref["out"].items())}
    grads = [_backward(r["out"], cot, r["inputs"]) for r in (ref, dev)]
    _assert_grads(f"distort/undistort[{model}]", grads[1], grads[0], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lens", LENSES)
def test_pinhole_cover_and_distort_image_agree(lens, dtype):
    """pinhole_cover (the same cover on both devices) and distort_image with 2x2 samples; grads wrt the image,
    K, world_to_cam and the distortion coefficients."""
    model, coeffs = lens

    def build(device):
        cam, cam_leaves = _camera(device, dtype, size=(40, 32), distortion=coeffs, model=model)
        pinhole = lg.pinhole_cover(cam, supersample=1.5)
        g = torch.Generator().manual_seed(80)
        image = F.interpolate(torch.rand(1, 3, 12, 14, generator=g, dtype=F64), size=(pinhole.height, pinhole.width),
                              mode="bilinear", align_corners=False)[0].permute(1, 2, 0)
        image = _leaf(image, device, dtype)
        out = lg.distort_image(image, pinhole, cam, samples=2)
        return dict(pinhole=pinhole, out={"image": out}, inputs={"image": image, **cam_leaves})

    ref, dev = _both(build)
    pr, pd = ref["pinhole"], dev["pinhole"]
    assert (pd.width, pd.height) == (pr.width, pr.height), \
        f"pinhole_cover[{model}]: {pd.width}x{pd.height} on {DEV} vs {pr.width}x{pr.height} on {REF}"
    _assert_values(f"pinhole_cover[{model}].K", pd.K, pr.K, dtype)
    _assert_images(f"distort_image[{model}]", dev["out"]["image"], ref["out"]["image"], dtype)
    cot = {"image": _cotangent(ref["out"]["image"].shape, 81)}
    grads = [_backward(r["out"], cot, r["inputs"]) for r in (ref, dev)]
    _assert_grads(f"distort_image[{model}]", grads[1], grads[0], dtype, may_be_zero=("world_to_cam",))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lens", LENSES)
def test_render_through_lens_agrees(spot, lens, dtype):
    """render_through_lens of the full raster pipeline (rasterize, interpolate, texture, antialias on the
    pinhole cover, then the distortion resampling); grads wrt verts, texture, K, world_to_cam, distortion."""
    model, coeffs = lens

    def build(device):
        verts = _leaf(spot.verts, device, dtype)
        tex = _leaf(spot.texture[..., :3], device, dtype)
        cam, cam_leaves = _camera(device, dtype, size=(48, 40), distortion=coeffs, model=model)
        faces = spot.faces.to(device)
        image = lg.render_through_lens(
            lambda c: _raster_pipeline(spot, verts, faces, c, device, dtype, tex=tex)[1], cam, supersample=1.25,
            samples=2)
        return dict(out={"image": image}, inputs={"verts": verts, "texture": tex, **cam_leaves})

    _compare_pipeline(f"render_through_lens[{model}]", _both(build), dtype, seed=90)


def _compare_pipeline(op, results, dtype, seed):
    """Images agree (outside a few edge pixels); gradients tight when the images agree everywhere, else to the
    pipeline tolerance."""
    ref, dev = results
    tol = TOL[dtype]
    exact = True
    for k in ref["out"]:
        a, b = _cpu(dev["out"][k]), _cpu(ref["out"][k])
        assert a.shape == b.shape, f"{op}.{k}: shape {tuple(a.shape)} on {DEV} vs {tuple(b.shape)} on {REF}"
        scale = max(1.0, float(b.abs().max()))
        err = (a - b).abs() / scale
        pixel_err = err.reshape(-1, err.shape[-1]).amax(-1) if err.dim() >= 3 else err.reshape(-1)
        exact &= float(err.max()) <= tol.value_loose
        off = float((pixel_err > tol.value_loose).double().mean())
        if off >= 1e-2 or float(err.mean()) > 1e-4:
            g = a
            while g.dim() > 3:
                g, b = g[0], b[0]
            save_failure_images(f"agreement-{op}-{k}".replace("[", "-").replace("]", ""), reference=b, device=g,
                                diff=(g - b).abs())
        assert off < 1e-2, f"{op}.{k} ({PAIR}, {dtype}): {off:.3%} of the pixels differ by more than " \
                           f"{tol.value_loose:g} x {scale:.3g}"
        assert float(err.mean()) <= 1e-4, f"{op}.{k} ({PAIR}, {dtype}): mean |diff| / scale {float(err.mean()):.3g}"
    cot = {k: _cotangent(v.shape, seed + i) for i, (k, v) in enumerate(ref["out"].items())}
    grads = [_backward(r["out"], cot, r["inputs"]) for r in (ref, dev)]
    _assert_grads(op, grads[1], grads[0], dtype, pipeline=not exact)


# ================================================================================== depth peeling
@pytest.mark.parametrize("dtype", DTYPES)
def test_depth_peel_agrees(spot, dtype):
    """depth_peel, 3 layers: face ids per layer, barycentrics and depth; grads wrt verts, K and world_to_cam."""
    def build(device):
        verts = _leaf(spot.verts, device, dtype)
        cam, cam_leaves = _camera(device, dtype, size=(56, 48), eye=(2.4, 0.3, 0.6))
        layers = lg.depth_peel(verts, spot.faces.to(device), cam, 3)
        return dict(layers=layers, inputs={"verts": verts, **cam_leaves})

    ref, dev = _both(build)
    agree = torch.ones(ref["layers"][0].face_ids.shape, dtype=torch.bool)
    for k, (lr, ld) in enumerate(zip(ref["layers"], dev["layers"])):
        agree &= _id_agreement(f"depth_peel.layer{k}", lr.face_ids, ld.face_ids)
    assert bool((ref["layers"][2].face_ids >= 0).any()), "depth_peel: the third layer is empty; the scene is wrong"
    for k, (lr, ld) in enumerate(zip(ref["layers"], dev["layers"])):
        _assert_values(f"depth_peel.layer{k}.bary", ld.bary, lr.bary, dtype, agree)
        _assert_values(f"depth_peel.layer{k}.depth", ld.depth, lr.depth, dtype, agree)
    outs = [{f"{q}{k}": getattr(layer, q) for k, layer in enumerate(r["layers"]) for q in ("bary", "depth")}
            for r in (ref, dev)]
    cot = {k: _cotangent(v.shape, 100 + i, agree) for i, (k, v) in enumerate(outs[0].items())}
    grads = [_backward(o, cot, r["inputs"]) for o, r in zip(outs, (ref, dev))]
    _assert_grads("depth_peel", grads[1], grads[0], dtype)


# ================================================================================== batched views
@pytest.mark.parametrize("dtype", DTYPES)
def test_multi_view_batched_pipeline_agrees(spot, dtype):
    """Three views in one batched camera (one K and pose per view) through rasterize, interpolate, texture and
    antialias; grads wrt verts, texture and every view's K and world_to_cam."""
    eyes = [(2.0, 0.5, 2.2), (-2.3, 0.2, 1.1), (0.3, 1.8, -2.4)]
    size = (48, 40)
    K = torch.stack([_K(size, fov_y=0.7 + 0.1 * i, fx_ratio=1.0 + 0.05 * i, skew=0.0) for i in range(3)])
    w2c = torch.stack([_w2c(e) for e in eyes])

    def build(device):
        verts = _leaf(spot.verts, device, dtype)
        tex = _leaf(spot.texture[..., :3], device, dtype)
        cam, cam_leaves = _camera(device, dtype, size=size, K=K, w2c=w2c)
        frags, image = _raster_pipeline(spot, verts, spot.faces.to(device), cam, device, dtype, tex=tex)
        return dict(frags=frags, out={"image": image}, inputs={"verts": verts, "texture": tex, **cam_leaves})

    ref, dev = _both(build)
    assert ref["out"]["image"].shape == (3, 40, 48, 3)
    agree = _id_agreement("batched views", ref["frags"].face_ids, dev["frags"].face_ids)
    clean = _away_from(~agree)
    _assert_images("batched-views", dev["out"]["image"], ref["out"]["image"], dtype, clean)
    cot = {"image": _cotangent(ref["out"]["image"].shape, 110, clean)}
    grads = [_backward(r["out"], cot, r["inputs"]) for r in (ref, dev)]
    _assert_grads("batched views pipeline", grads[1], grads[0], dtype)


# ================================================================================== scene rendering
def _pbr_scene(device, dtype):
    """A textured, normal-mapped PBR sphere under point, spot, directional, area, environment and SH lights,
    seen through a film with exposure, white balance, vignetting, tone mapping and sRGB encoding."""
    verts, faces = _sphere(10, 0.9)
    uv, uv_faces = _corner_uv(verts, faces)
    to = lambda t: t.to(device, dtype)  # noqa: E731
    normal_map = torch.cat([0.5 + 0.15 * _rand(8, 8, 2, seed=121, lo=-1, hi=1), torch.ones(8, 8, 1, dtype=F64)], -1)
    material = lg.shading.Material(
        base_color_factor=to(torch.tensor([0.9, 0.8, 0.7, 1.0])), metallic_factor=to(torch.tensor(0.3)),
        roughness_factor=to(torch.tensor(0.6)), base_color_texture=to(_rand(16, 16, 3, seed=120, lo=0.2, hi=1.0)),
        metallic_roughness_texture=to(_rand(8, 8, 3, seed=122, lo=0.2, hi=0.9)), normal_texture=to(normal_map),
        normal_scale=to(torch.tensor(0.8)), occlusion_texture=to(_rand(8, 8, 1, seed=123, lo=0.6, hi=1.0)),
        occlusion_strength=to(torch.tensor(0.7)), emissive_factor=to(torch.tensor([0.05, 0.02, 0.0])),
        emissive_texture=to(_rand(8, 8, 3, seed=124)), ior=to(torch.tensor(1.45)))
    scene = lg.Scene()
    scene.add_mesh("ball", lg.SceneMesh(to(verts), faces.to(device), material, uv=to(uv), uv_faces=uv_faces.to(device),
                                        double_sided=True))
    scene.add_light("point", lg.PointLight(to(torch.tensor([2.0, 2.0, -2.0])), to(torch.tensor(6.0)),
                                           to(torch.tensor([1.0, 0.9, 0.8]))))
    scene.add_light("spot", lg.SpotLight(to(torch.tensor([-1.5, 1.5, -2.0])), to(torch.tensor([0.6, -0.5, 0.7])),
                                         to(torch.tensor(8.0)), to(torch.tensor([0.7, 0.8, 1.0])),
                                         to(torch.tensor(0.2)), to(torch.tensor(0.7))))
    scene.add_light("sun", lg.DirectionalLight(to(torch.tensor([-0.3, -1.0, 0.5])), to(torch.tensor(1.5)),
                                               to(torch.tensor([1.0, 0.95, 0.9]))))
    s = 0.3
    lamp = torch.tensor([[-s, 1.6, -s], [s, 1.6, -s], [s, 1.6, s], [-s, 1.6, s]], dtype=F64)
    scene.add_light("lamp", lg.AreaLight(to(lamp), torch.tensor([[0, 1, 2], [0, 2, 3]], device=device),
                                         to(torch.tensor([3.0, 2.5, 2.0])), samples_per_face=4))
    scene.add_light("env", lg.EnvironmentLight(to(_rand(8, 16, 3, seed=125, lo=0.1, hi=1.0)), to(torch.tensor(0.8)),
                                               prefilter_size=(8, 16), roughness_levels=(0.0, 0.5, 1.0)))
    scene.add_light("sky", lg.SHLight(to(0.1 * _rand(9, 3, seed=126))))
    scene.film = lg.Film(exposure=to(torch.tensor(0.3)), white_balance=to(torch.tensor([1.0, 0.95, 1.05])),
                         vignetting=to(torch.tensor([-0.1])), tone="reinhard", encode="srgb")
    return scene


def _scene_build(dtype, camera_kw):
    def build(device):
        scene = _pbr_scene(device, dtype)
        params = scene.trainable("meshes.*", "lights.*", "film.*")
        # The raster renderer shades transmissive surfaces as opaque (Material.transmission_factor's docs):
        # nothing of the image depends on that factor.
        params = {k: v for k, v in params.items() if not k.endswith(".transmission_factor")}
        cam, cam_leaves = _camera(device, dtype, **camera_kw)
        image = lg.render(scene, cam)
        return dict(out={"image": image}, inputs={**params, **{f"camera.{k}": v for k, v in cam_leaves.items()}})
    return build


@pytest.mark.parametrize("dtype", DTYPES)
def test_scene_render_agrees(dtype):
    """lg.render of the PBR scene for two batched views; grads wrt every scene parameter (geometry, uv,
    transform, material factors and textures, every light's parameters, environment texels, film) and the
    cameras."""
    size = (40, 36)
    K = torch.stack([_K(size), _K(size, fov_y=0.9, skew=0.0)])
    w2c = torch.stack([_w2c((0.5, 0.6, -3.0), (0, 0, 0)), _w2c((-2.5, 1.0, -1.5), (0, 0, 0))])
    _compare_pipeline("render(scene)", _both(_scene_build(dtype, dict(size=size, K=K, w2c=w2c))), dtype, seed=130)


def test_scene_render_through_lens_agrees():
    """lg.render of the PBR scene through an OpenCV lens (float32); grads include the distortion."""
    kw = dict(size=(36, 32), eye=(0.5, 0.6, -3.0), target=(0.0, 0.0, 0.0),
              distortion=[-0.15, 0.03, 0.002, -0.001, 0.0])
    _compare_pipeline("render(scene, lens)", _both(_scene_build(F32, kw)), F32, seed=140)


@pytest.mark.parametrize("dtype", DTYPES)
def test_render_geometry_agrees(dtype):
    """lumigrad.render_geometry: antialiased depth, normal and coverage buffers."""
    from lumigrad.integrators.geometry_buffers import render_geometry

    def build(device):
        verts, faces = _sphere(10)
        scene = lg.Scene()
        scene.add_mesh("ball", lg.SceneMesh(verts.to(device, dtype), faces.to(device)))
        params = scene.trainable("meshes.*.verts", "meshes.*.to_world")
        cam, cam_leaves = _camera(device, dtype, size=(40, 36), eye=(0.5, 0.6, -3.0), target=(0.0, 0.0, 0.0))
        return dict(out=render_geometry(scene, cam), inputs={**params, **cam_leaves})

    _compare_pipeline("render_geometry", _both(build), dtype, seed=150)


# ================================================================================== losses
def _img(seed, shape=(2, 48, 48, 3)):
    """Smooth structure plus noise, in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(shape[0], shape[-1], 6, 6, generator=g, dtype=F64)
    base = F.interpolate(coarse, size=shape[1:3], mode="bicubic", align_corners=False).permute(0, 2, 3, 1)
    return (0.7 * base + 0.3 * torch.rand(shape, generator=g, dtype=F64)).clamp(0, 1)


def _loss_case(name: str, device, dtype):
    """Inputs (leaves) and the loss for case ``name`` on ``device``."""
    L = lg.losses
    x = lambda t: _leaf(t, device, dtype)  # noqa: E731
    c = lambda t: t.to(device, dtype)  # noqa: E731
    mask = (_rand(48, 48, seed=203) < 0.8).to(device)
    if name in ("mse", "l1", "psnr", "ssim", "ms_ssim", "perceptual_pyramid"):
        inputs = {"pred": x(_img(200))}
        target = c(_img(201))
        fn = {"mse": lambda p: L.mse_loss(p, target, mask), "l1": lambda p: L.l1_loss(p, target, mask),
              "psnr": lambda p: L.psnr(p, target, mask=mask), "ssim": lambda p: L.ssim_loss(p, target),
              "ms_ssim": lambda p: L.ms_ssim_loss(p, target, weights=(0.3, 0.3, 0.4)),
              "perceptual_pyramid": lambda p: L.perceptual_loss(p, target, "pyramid", levels=3)}[name]
        return inputs, fn(inputs["pred"])
    if name.startswith("silhouette"):
        inputs = {"pred": x(_rand(2, 32, 32, seed=204, lo=0.01, hi=0.99))}
        target = c((_rand(2, 32, 32, seed=205) > 0.5).double())
        fn = L.silhouette_iou_loss if name == "silhouette_iou" else L.silhouette_bce_loss
        return inputs, fn(inputs["pred"], target)
    if name.startswith("depth"):
        inputs = {"pred": x(_rand(2, 48, 48, seed=206, lo=1.0, hi=4.0))}
        target = c(_rand(2, 48, 48, seed=207, lo=1.0, hi=4.0))
        kind, si = {"depth_l1": ("l1", False), "depth_l2": ("l2", False),
                    "depth_log_l1_scale_invariant": ("log_l1", True)}[name]
        return inputs, L.depth_loss(inputs["pred"], target, mask, kind=kind, scale_invariant=si)
    if name.startswith("normal"):
        inputs = {"pred": x(_rand(2, 48, 48, 3, seed=208, lo=-1, hi=1))}
        target = c(_rand(2, 48, 48, 3, seed=209, lo=-1, hi=1))
        return inputs, L.normal_loss(inputs["pred"], target, mask, kind=name.split("_")[1])
    if name == "multiview_consistency":
        size = (32, 28)
        K = torch.stack([_K(size, skew=0.0), _K(size, fov_y=0.85, skew=0.0)])
        w2c = torch.stack([_w2c((0.3, 0.2, -3.0), (0, 0, 0)), _w2c((-0.4, 0.1, -3.0), (0, 0, 0))])
        cam, cam_leaves = _camera(device, dtype, size=size, K=K, w2c=w2c)
        inputs = {"images": x(_img(210, (2, 28, 32, 3))), "depths": x(_rand(2, 28, 32, seed=211, lo=2.9, hi=3.1)),
                  **cam_leaves}
        return inputs, L.multiview_consistency_loss(inputs["images"], inputs["depths"], cam, occlusion_tolerance=0.2,
                                                    depth_weight=0.5)
    if name.startswith("gan"):
        torch.manual_seed(0)
        disc = L.PatchDiscriminator(channels=3, width=8, layers=2).to(F64)
        disc = copy.deepcopy(disc).to(device=device, dtype=dtype)
        inputs = {"fake": x(_img(212, (2, 32, 32, 3)))}
        inputs.update({f"disc.{k}": p for k, p in disc.named_parameters()})
        fake_logits = disc(inputs["fake"])
        if name == "gan_generator":
            return inputs, L.gan_generator_loss(fake_logits, "nonsaturating")
        real_logits = disc(c(_img(213, (2, 32, 32, 3))))
        return inputs, L.gan_discriminator_loss(real_logits, fake_logits)
    verts, faces = _sphere(6)
    points = _rand(300, 3, seed=214, lo=-1.1, hi=1.1)
    inputs = {"points": x(points), "verts": x(verts)}
    if name == "chamfer":
        return inputs, L.chamfer_distance(inputs["points"], inputs["verts"])
    if name == "point_mesh_distance":
        return inputs, L.point_mesh_distance(inputs["points"], inputs["verts"], faces.to(device)).sum()
    return inputs, L.points_to_mesh_loss(inputs["points"], inputs["verts"], faces.to(device))


LOSSES = ["mse", "l1", "psnr", "ssim", "ms_ssim", "perceptual_pyramid", "silhouette_iou", "silhouette_bce",
          "depth_l1", "depth_l2", "depth_log_l1_scale_invariant", "normal_cosine", "normal_angle",
          "multiview_consistency", "gan_generator", "gan_discriminator", "chamfer", "point_mesh_distance",
          "points_to_mesh"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", LOSSES)
def test_loss_agrees(name, dtype):
    """Every loss in lumigrad.losses (but the VGG one, which needs a weights file): value and grads wrt the
    prediction (and cameras, depths, discriminator weights, mesh vertices where the loss takes them)."""
    def build(device):
        inputs, loss = _loss_case(name, device, dtype)
        assert loss.dim() == 0, f"{name}: the loss is not a scalar"
        return dict(out={"loss": loss}, inputs=inputs)

    ref, dev = _both(build)
    _assert_values(f"loss.{name}", dev["out"]["loss"], ref["out"]["loss"], dtype,
                   scale=max(1e-3, abs(float(ref["out"]["loss"].detach()))))
    cot = {"loss": torch.ones((), dtype=F64)}
    grads = [_backward(r["out"], cot, r["inputs"]) for r in (ref, dev)]
    # the hinge loss's real and fake terms cancel in the last layer's bias
    zero = ("disc.net.4.bias",) if name == "gan_discriminator" else ()
    _assert_grads(f"loss.{name}", grads[1], grads[0], dtype, may_be_zero=zero)


def test_ssim_float32_under_default_tf32_stays_close():
    """SSIM in float32 with cuDNN's default math (TF32 convolutions on Ampere and later): the value within 1e-3
    and the gradient's direction (cosine > 0.99) of the CPU's. A failure here means SSIM-based fits on CUDA see a
    noticeably different loss than on the CPU."""
    torch.backends.cudnn.allow_tf32 = True  # the autouse fixture restores the previous setting

    def build(device):
        pred = _leaf(_img(200), device, F32)
        return dict(out={"loss": lg.losses.ssim_loss(pred, _img(201).to(device, F32))}, inputs={"pred": pred})

    ref, dev = _both(build)
    a, b = float(dev["out"]["loss"].detach()), float(ref["out"]["loss"].detach())
    assert abs(a - b) < 1e-3, f"ssim_loss float32 with TF32 ({PAIR}): {a:.6f} vs {b:.6f}"
    grads = [_backward(r["out"], {"loss": torch.ones((), dtype=F64)}, r["inputs"]) for r in (ref, dev)]
    assert _cos(grads[1]["pred"], grads[0]["pred"]) > 0.99


# ================================================================================== mesh regularizers
REGULARIZERS = ["laplacian_uniform", "laplacian_cotangent", "normal_consistency", "edge_length",
                "cotangent_laplacian", "loop_subdivide", "from_differential_cholesky", "from_differential_cg"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", REGULARIZERS)
def test_mesh_regularizer_agrees(spot, name, dtype):
    """Mesh regularizers and the geometry ops under them: values and grads wrt the vertices."""
    from lumigrad import geometry, optim

    def build(device):
        if name.startswith("from_differential"):
            v0, f = geometry.icosphere(2, dtype=F64)
            verts = v0.to(device, dtype)
            faces = f.to(device)
        else:
            verts, faces = spot.verts.to(device, dtype), spot.faces.to(device)
        v = verts.detach().clone().requires_grad_(True)
        L = lg.losses
        if name == "laplacian_uniform":
            out = L.laplacian_smoothing(v, faces, "uniform")
        elif name == "laplacian_cotangent":
            out = L.laplacian_smoothing(v, faces, "cotangent")
        elif name == "normal_consistency":
            out = L.normal_consistency(v, faces)
        elif name == "edge_length":
            out = L.edge_length_loss(v, faces, target_length=0.02)
        elif name == "cotangent_laplacian":
            out = (geometry.cotangent_laplacian(v, faces) @ v).reshape(-1)
        elif name == "loop_subdivide":
            out = geometry.loop_subdivide(v, faces)[0]
        else:
            M = optim.smoothing_matrix(verts, faces, 10.0)
            solver = optim.SmoothingSolver(M, method=name.rsplit("_", 1)[1], rtol=1e-12, warm_start=False)
            out = optim.from_differential(v, solver)
        return dict(out={"out": out}, inputs={"verts": v})

    ref, dev = _both(build)
    # CG stops at a relative residual of 1e-12, after a number of iterations that rounding may change by one
    tol = Tol(1e-8, 1e-8, 0.0, 1e-6, 1 - 1e-9) if name.endswith("_cg") and dtype == F64 else None
    scale = max(1e-6, float(ref["out"]["out"].detach().abs().max()))
    _assert_values(name, dev["out"]["out"], ref["out"]["out"], dtype, scale=scale, tol=tol)
    cot = {"out": _cotangent(ref["out"]["out"].shape, 160) if ref["out"]["out"].dim() else torch.ones((), dtype=F64)}
    grads = [_backward(r["out"], cot, r["inputs"]) for r in (ref, dev)]
    _assert_grads(name, grads[1], grads[0], dtype, tol=tol)


# ================================================================================== optimisation
def test_fit_steps_agree():
    """Three steps of lumigrad.optim.Fit on both devices: a large-steps sphere (AdamUniform, sparse CG solver)
    with vertex colours (Adam) and a focal-length scale (SGD with momentum), fitted to soft silhouettes and
    colours of a target; the losses and parameter updates agree."""
    from lumigrad import optim

    verts0, faces = _sphere(8)
    target_verts = verts0 * torch.tensor([1.15, 0.9, 1.0], dtype=F64)
    colours0 = _vertex_colours(verts0)

    def run(device):
        cam_kw = dict(size=(32, 28), eye=(0.4, 0.6, -3.0), target=(0.0, 0.0, 0.0), far=8.0, grad=False)
        cam, _ = _camera(device, F32, **cam_kw)
        f = faces.to(device)
        soft = dict(sigma=2.0, gamma=0.05, faces_per_pixel=24)
        with torch.no_grad():
            target = lg.soft_rasterize(target_verts.to(device, F32), f, cam, (1 - colours0).to(device, F32), **soft)
        ls = optim.LargeSteps(verts0.to(device, F32), f, lambda_=10.0, method="cg", rtol=1e-9)
        colours = colours0.to(device, F32).clone().requires_grad_(True)
        focal = torch.ones((), device=device, dtype=F32, requires_grad=True)
        K0 = cam.K.detach()

        def loss_fn(step):
            scale = torch.stack([focal, focal, torch.ones_like(focal)])[:, None]
            c = lg.Camera(K0 * scale, cam.world_to_cam, cam.width, cam.height, near=cam.near, far=cam.far)
            out = lg.soft_rasterize(ls.verts(), f, c, colours, **soft)
            return ((out.silhouette - target.silhouette) ** 2).mean() + ((out.attrs - target.attrs) ** 2).mean()

        groups = {"shape": optim.ParamGroup([ls.parameter], lr=0.02, optimizer="adam_uniform"),
                  "colours": optim.ParamGroup([colours], lr=0.05),
                  "focal": optim.ParamGroup([focal], lr=0.01, optimizer="sgd", momentum=0.9)}
        result = optim.Fit(loss_fn, groups, steps=3, seed=3, clip_spikes=None).run()
        return dict(losses=result.losses, verts=_cpu(ls.verts()), colours=_cpu(colours), focal=_cpu(focal))

    ref, dev = _both(run)
    assert len(ref["losses"]) == len(dev["losses"]) == 3
    for k, (a, b) in enumerate(zip(dev["losses"], ref["losses"])):
        assert abs(a - b) <= 1e-4 * abs(b) + 1e-7, f"Fit: loss at step {k}: {a:.8g} on {DEV} vs {b:.8g} on {REF}"
    assert ref["losses"][-1] < ref["losses"][0], "Fit: the loss did not decrease; the test problem is wrong"
    start = {"verts": verts0, "colours": colours0, "focal": torch.ones((), dtype=F64)}
    for k in start:
        da, db = dev[k] - start[k], ref[k] - start[k]
        assert float(db.abs().max()) > 0, f"Fit: {k} did not move on {REF}"
        cos, rel = (_cos(da, db) if db.numel() > 1 else 1.0), _rel_l2(da, db)
        assert cos > 0.999 and rel < 1e-2, f"Fit: update of {k} differs ({PAIR}): cosine {cos:.6f}, rel L2 {rel:.3g}"
