"""The fused path kernel's BSDF functions (:mod:`lumigrad.kernels.path_kernels`) sample by sample against the
float64 PyTorch twin (:mod:`lumigrad.shading.brdf`), on glossy lobes where the float32 form of the GGX terms
matters: ``alpha = roughness^2`` from 2e-3 to 1e-2, directions near the highlight."""

import math

import pytest
import torch
import warp as wp

from lumigrad.kernels import path_kernels as pk
from lumigrad.kernels._runtime import as_warp, ensure_init
from lumigrad.shading.brdf import (metallic_roughness_pdf_unchecked, metallic_roughness_sample_unchecked,
                                   metallic_roughness_unchecked)

#: Per-sample relative error allowed against float64: float32 rounding of a handful of operations (PyTorch's
#: float32 twin stays within it on these lobes too, see the test).
RTOL = 1e-4


@wp.kernel
def _eval_pdf(n: wp.array(dtype=wp.vec3), wi: wp.array(dtype=wp.vec3), wo: wp.array(dtype=wp.vec3),
              base: wp.array(dtype=wp.vec3), roughness: wp.array(dtype=float), metallic: wp.array(dtype=float),
              ior: wp.array(dtype=float), specular: wp.array(dtype=float), out_f: wp.array(dtype=wp.vec3),
              out_pdf: wp.array(dtype=float)):
    i = wp.tid()
    f, pdf = pk.bsdf_eval_pdf_wp(n[i], wi[i], wo[i], base[i], roughness[i], metallic[i], ior[i], specular[i])
    out_f[i] = f
    out_pdf[i] = pdf


@wp.kernel
def _sample(n: wp.array(dtype=wp.vec3), wo: wp.array(dtype=wp.vec3), base: wp.array(dtype=wp.vec3),
            roughness: wp.array(dtype=float), metallic: wp.array(dtype=float), ior: wp.array(dtype=float),
            specular: wp.array(dtype=float), u: wp.array(dtype=wp.vec3), out_wi: wp.array(dtype=wp.vec3),
            out_weight: wp.array(dtype=wp.vec3), out_pdf: wp.array(dtype=float)):
    i = wp.tid()
    wi, weight, pdf = pk.bsdf_sample_wp(n[i], wo[i], base[i], roughness[i], metallic[i], ior[i], specular[i], 0,
                                        u[i][0], u[i][1], u[i][2])
    out_wi[i] = wi
    out_weight[i] = weight
    out_pdf[i] = pdf


def _unit(v):
    return v / torch.linalg.vector_norm(v, dim=-1, keepdim=True)


def _glossy(N, seed):
    """``N`` shading points (float32) of glossy materials: alpha in [2e-3, 1e-2], metal, coat and both."""
    g = torch.Generator().manual_seed(seed)
    n = _unit(torch.randn(N, 3, generator=g))
    wo = _unit(n + 0.9 * _unit(torch.randn(N, 3, generator=g)))
    wo = torch.where((n * wo).sum(-1, keepdim=True) > 0.05, wo, n)
    alpha = 2e-3 + 8e-3 * torch.rand(N, 1, generator=g)
    material = {"base": 0.05 + 0.9 * torch.rand(N, 3, generator=g), "roughness": alpha.sqrt(),
                "metallic": torch.tensor([0.0, 0.5, 1.0])[torch.randint(0, 3, (N, 1), generator=g)],
                "ior": 1.3 + 0.4 * torch.rand(N, 1, generator=g),
                "specular": torch.tensor([1.0, 0.5])[torch.randint(0, 2, (N, 1), generator=g)]}
    return n, wo, material, g


def _torch(fn, n, wo, m, *args):
    return fn(n, *args[:1], wo, m["base"], m["roughness"], m["metallic"], *args[1:], ior=m["ior"],
              specular=m["specular"])


def _as_rows(m):
    return [as_warp(m["base"].contiguous(), wp.vec3)] + [as_warp(m[k].reshape(-1).contiguous())
                                                         for k in ("roughness", "metallic", "ior", "specular")]


def _double(m):
    return {k: v.double() for k, v in m.items()}


def _rel(x, ref):
    """Per-sample relative error, max over channels."""
    scale = ref.abs().amax(-1).clamp_min(1e-30)
    return (x.double() - ref).abs().amax(-1) / scale


def test_glossy_eval_and_pdf_match_float64_near_the_highlight():
    ensure_init()
    N = 4096
    n, wo, m, g = _glossy(N, 3)
    # wi within a few lobe widths of the mirror direction (where 1 - (n.h)^2 ~ alpha^2 and float32 n.h cancels)
    mirror = 2 * (n * wo).sum(-1, keepdim=True) * n - wo
    wi = _unit(mirror + 3.0 * m["roughness"] ** 2 * torch.randn(N, 3, generator=g))
    keep = ((n * wi).sum(-1) > 0.05)
    n, wo, wi, m = n[keep], wo[keep], wi[keep], {k: v[keep] for k, v in m.items()}
    f, pdf = torch.zeros(n.shape[0], 3), torch.zeros(n.shape[0])
    wp.launch(_eval_pdf, dim=n.shape[0], inputs=[as_warp(n, wp.vec3), as_warp(wi.contiguous(), wp.vec3),
                                                  as_warp(wo, wp.vec3), *_as_rows(m), as_warp(f, wp.vec3),
                                                  as_warp(pdf)], device="cpu")
    m64, n64, wi64, wo64 = _double(m), n.double(), wi.double(), wo.double()
    f64 = _torch(metallic_roughness_unchecked, n64, wo64, m64, wi64)
    pdf64 = _torch(metallic_roughness_pdf_unchecked, n64, wo64, m64, wi64)[:, 0]
    assert float((pdf64 > 10.0).float().mean()) > 0.5  # most samples in the sharp peak
    # PyTorch's float32 keeps this tolerance (the same inputs, rounded to float32)
    pdf32 = _torch(metallic_roughness_pdf_unchecked, n, wo, m, wi)[:, 0]
    assert float(_rel(pdf32[:, None], pdf64[:, None]).max()) < RTOL
    assert float(_rel(f, f64).max()) < RTOL
    assert float(_rel(pdf[:, None], pdf64[:, None]).max()) < RTOL


@pytest.mark.parametrize("seed", [1, 2])
def test_glossy_samples_match_float64(seed):
    """The kernel's sample: the float64 twin's direction (to float32 rounding), and its weight and density are
    float64's of that direction."""
    ensure_init()
    N = 4096
    n, wo, m, g = _glossy(N, seed)
    u = torch.rand(N, 3, generator=g)
    wi, weight, pdf = torch.zeros(N, 3), torch.zeros(N, 3), torch.zeros(N)
    wp.launch(_sample, dim=N, inputs=[as_warp(n, wp.vec3), as_warp(wo, wp.vec3), *_as_rows(m),
                                      as_warp(u, wp.vec3), as_warp(wi, wp.vec3), as_warp(weight, wp.vec3),
                                      as_warp(pdf)], device="cpu")
    m64, n64, wo64, u64 = _double(m), n.double(), wo.double(), u.double()
    s64 = metallic_roughness_sample_unchecked(n64, wo64, m64["base"], m64["roughness"], m64["metallic"],
                                              u64[:, :1], u64[:, 1:], ior=m64["ior"], specular=m64["specular"])
    same = (wi.double() - s64.wi).abs().amax(-1) < 1e-5  # a lobe choice at a float32 tie apart
    assert float((~same).float().mean()) < 1e-3
    live = same & (s64.pdf[:, 0] > 0)
    assert float(live.float().mean()) > 0.9
    # the densities and weights of the kernel's own direction, in float64
    wi_k = wi.double()[live]
    sub = {k: v[live] for k, v in m64.items()}
    pdf_ref = _torch(metallic_roughness_pdf_unchecked, n64[live], wo64[live], sub, wi_k)[:, 0]
    f_ref = _torch(metallic_roughness_unchecked, n64[live], wo64[live], sub, wi_k)
    cos = (_unit(n64[live]) * wi_k).sum(-1, keepdim=True).clamp_min(0.0)
    weight_ref = f_ref * cos / pdf_ref[:, None]
    glossy = pdf_ref > 10.0
    assert float(glossy.float().mean()) > 0.3  # many samples from the sharp specular lobe
    assert float(_rel(pdf[live][:, None], pdf_ref[:, None]).max()) < RTOL
    assert float(_rel(weight[live], weight_ref).max()) < RTOL
    assert math.isfinite(float(weight.sum()))
