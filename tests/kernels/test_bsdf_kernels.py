"""The fused kernels' BSDF derivatives (:func:`lumigrad.kernels.bsdf_kernels.bsdf_param_grads_wp`, the adjoint of
the fused path replay) against PyTorch's autograd of the float64 twin, ``metallic_roughness_unchecked``."""

import pytest
import torch
import warp as wp

from lumigrad.kernels import bsdf_kernels as bk
from lumigrad.kernels._runtime import as_warp, ensure_init
from lumigrad.shading.brdf import metallic_roughness_unchecked

NAMES = ("base", "metallic", "roughness", "ior", "specular")


@wp.kernel
def _grads(n: wp.array(dtype=wp.vec3), wi: wp.array(dtype=wp.vec3), wo: wp.array(dtype=wp.vec3),
           base: wp.array(dtype=wp.vec3), roughness: wp.array(dtype=float), metallic: wp.array(dtype=float),
           ior: wp.array(dtype=float), specular: wp.array(dtype=float), beckmann: int, coef: wp.array(dtype=wp.vec3),
           out_base: wp.array(dtype=wp.vec3), out: wp.array2d(dtype=float)):
    i = wp.tid()
    gb, gm, gr, gi, gs = bk.bsdf_param_grads_wp(bk.unit_wp(n[i]), wi[i], bk.unit_wp(wo[i]), base[i], roughness[i],
                                                metallic[i], ior[i], specular[i], beckmann, coef[i])
    out_base[i] = gb
    out[i, 0] = gm
    out[i, 1] = gr
    out[i, 2] = gi
    out[i, 3] = gs


def _unit(v):
    return v / torch.linalg.vector_norm(v, dim=-1, keepdim=True)


def _points(N, seed, lambertian=False):
    """Shading points (float32): glossy to rough, metal and coat mixed (``lambertian``: metallic and specular 0,
    where the kernel's value takes Lambert's shortcut), some roughness below the ``alpha`` floor, some
    directions below the surface."""
    g = torch.Generator().manual_seed(seed)
    n = _unit(torch.randn(N, 3, generator=g))
    wo = _unit(n + 0.8 * _unit(torch.randn(N, 3, generator=g)))
    mirror = 2 * (n * wo).sum(-1, keepdim=True) * n - wo
    wi = _unit(mirror + 0.6 * torch.randn(N, 3, generator=g))
    roughness = torch.where(torch.rand(N, 1, generator=g) < 0.1, 0.02 * torch.rand(N, 1, generator=g),
                            0.08 + 0.9 * torch.rand(N, 1, generator=g))
    m = {"base": 0.05 + 0.9 * torch.rand(N, 3, generator=g), "roughness": roughness,
         "metallic": torch.rand(N, 1, generator=g), "ior": 1.2 + 0.8 * torch.rand(N, 1, generator=g),
         "specular": torch.rand(N, 1, generator=g)}
    if lambertian:
        m["metallic"] = torch.zeros(N, 1)
        m["specular"] = torch.zeros(N, 1)
    coef = torch.randn(N, 3, generator=g)
    return n, wi, wo, m, coef


def _kernel(n, wi, wo, m, coef, beckmann=False):
    ensure_init()
    N = n.shape[0]
    out_base, out = torch.zeros(N, 3), torch.zeros(N, 4)
    wp.launch(_grads, dim=N, inputs=[as_warp(n, wp.vec3), as_warp(wi.contiguous(), wp.vec3), as_warp(wo, wp.vec3),
                                     as_warp(m["base"].contiguous(), wp.vec3),
                                     *[as_warp(m[k].reshape(-1).contiguous())
                                       for k in ("roughness", "metallic", "ior", "specular")],
                                     int(beckmann), as_warp(coef, wp.vec3), as_warp(out_base, wp.vec3), as_warp(out)], device="cpu")
    return {"base": out_base, "metallic": out[:, :1], "roughness": out[:, 1:2], "ior": out[:, 2:3],
            "specular": out[:, 3:4]}


def _reference(n, wi, wo, m, coef, beckmann=False):
    """``d sum(coef * f) / d theta`` per point by autograd of the float64 twin (Beckmann's where ``beckmann``)."""
    leaves = {k: v.double().clone().requires_grad_(True) for k, v in m.items()}
    mask = torch.full(n.shape[:-1] + (1,), bool(beckmann)) if beckmann else None
    f = metallic_roughness_unchecked(n.double(), wi.double(), wo.double(), leaves["base"], leaves["roughness"],
                                     leaves["metallic"], ior=leaves["ior"], specular=leaves["specular"],
                                     beckmann=mask)
    grads = torch.autograd.grad((f * coef.double()).sum(), [leaves[k] for k in NAMES])
    return dict(zip(NAMES, grads))


@pytest.mark.parametrize("lambertian, beckmann", [(False, False), (True, False), (False, True)])
def test_bsdf_parameter_derivatives_match_float64_autograd(lambertian, beckmann):
    n, wi, wo, m, coef = _points(4096, 5 + int(lambertian), lambertian)
    below = ((n * wi).sum(-1) <= 0) | ((n * wo).sum(-1) <= 0)
    assert 0.05 < float(below.float().mean()) < 0.6  # both sides of the surface are exercised
    got, ref = _kernel(n, wi, wo, m, coef, beckmann), _reference(n, wi, wo, m, coef, beckmann)
    for name in NAMES:
        g, r = got[name].double(), ref[name]
        assert bool((g[below] == 0).all()), name  # no value, no derivative
        if lambertian and name in ("roughness", "ior"):  # no GGX lobe without metal or coat: no dependence
            assert float(r.abs().max()) == 0 and float(g.abs().max()) == 0, name
            continue
        scale = r.abs().amax(-1).clamp_min(1e-3 * float(r.abs().max()))
        err = (g - r).abs().amax(-1) / scale
        assert float(err.max()) < 1e-4, (name, float(err.max()))  # float32 rounding (2e-5 seen)
        assert float(r.abs().max()) > 0, name  # a derivative that is there to check
