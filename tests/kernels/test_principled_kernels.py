"""The fused path kernel's principled BSDF (:mod:`lumigrad.kernels.principled_kernels`, float32) against its
reference twin, :class:`lumigrad.shading.principled.PrincipledBSDF` in float64: value, density and samples at
random directions, dielectric, metallic and mixed, rough and nearly smooth, with and without the other lobes
(``principled_lobes``: tinted Fresnel, sheen, clearcoat, flatness)."""

import pytest
import torch
import warp as wp

from lumigrad.kernels import principled_kernels as pk
from lumigrad.kernels._runtime import as_warp, ensure_init
from lumigrad.shading.principled import PrincipledBSDF
from lumigrad.shading.surface import SurfaceSample

F64 = torch.float64


@wp.kernel
def _eval(n: wp.array(dtype=wp.vec3), wi: wp.array(dtype=wp.vec3), wo: wp.array(dtype=wp.vec3), base: wp.vec3,
          roughness: float, metallic: float, ior: float, lobes: wp.array(dtype=wp.vec3), code: int,
          tangent: wp.array(dtype=wp.vec3), log_aspect: float,
          out_f: wp.array(dtype=wp.vec3), out_pdf: wp.array(dtype=float)):
    i = wp.tid()
    f, pdf = pk.principled_eval_pdf_wp(n[i], wi[i], wo[i], -1.0, base, roughness, metallic, ior, lobes, code,
                                       tangent[i], log_aspect)
    out_f[i] = f
    out_pdf[i] = pdf


@wp.kernel
def _sample(n: wp.array(dtype=wp.vec3), wo: wp.array(dtype=wp.vec3), u: wp.array(dtype=wp.vec3), base: wp.vec3,
            roughness: float, metallic: float, ior: float, lobes: wp.array(dtype=wp.vec3), code: int,
            tangent: wp.array(dtype=wp.vec3), log_aspect: float,
            out_wi: wp.array(dtype=wp.vec3), out_weight: wp.array(dtype=wp.vec3), out_pdf: wp.array(dtype=float)):
    i = wp.tid()
    wi, weight, pdf = pk.principled_sample_wp(n[i], wo[i], -1.0, base, roughness, metallic, ior, lobes, code,
                                              tangent[i], log_aspect, u[i][0], u[i][1], u[i][2])
    out_wi[i] = wi
    out_weight[i] = weight
    out_pdf[i] = pdf


def _unit(v):
    return v / torch.linalg.vector_norm(v, dim=-1, keepdim=True)


def _case(roughness, metallic, ior, N=4000, seed=0, lobes=None, log_aspect=0.0):
    """Unit normals and views above the surface, directions half near the mirror one, half anywhere (some below
    the surface); float32 values (the kernel's) and their float64 twin (with ``lobes``, the 6 other lobes)."""
    g = torch.Generator().manual_seed(seed)
    n = _unit(torch.randn(N, 3, generator=g, dtype=F64))
    wo = _unit(torch.randn(N, 3, generator=g, dtype=F64))
    wo = torch.where((wo * n).sum(-1, keepdim=True) < 0.05, _unit(wo + 1.5 * n), wo)
    mirror = 2 * (n * wo).sum(-1, keepdim=True) * n - wo
    wi = torch.cat([_unit(mirror[: N // 2] + 0.3 * torch.randn(N // 2, 3, generator=g, dtype=F64)),
                    _unit(torch.randn(N - N // 2, 3, generator=g, dtype=F64))])
    tangent = torch.randn(N, 3, generator=g, dtype=F64) if log_aspect else torch.zeros(N, 3, dtype=F64)
    n, wo, wi, tangent = (v.float().double() for v in (n, wo, wi, tangent))  # the same inputs for both
    aniso = {} if not log_aspect else dict(tangent=torch.cat([tangent, torch.ones(N, 1, dtype=F64)], -1),
                                           log_aspect=torch.full((N, 1), float(log_aspect), dtype=F64))
    base = torch.tensor([0.8, 0.3, 0.05], dtype=F64)
    si = SurfaceSample(position=torch.zeros(N, 3, dtype=F64), normal=n, wo=wo, base_color=base.expand(N, 3),
                       roughness=torch.full((N, 1), roughness, dtype=F64),
                       metallic=torch.full((N, 1), metallic, dtype=F64), ior=torch.full((N, 1), ior, dtype=F64),
                       principled=torch.ones(N, 1, dtype=F64),
                       principled_lobes=None if lobes is None else torch.tensor(lobes, dtype=F64).expand(N, 6),
                       **aniso)
    return n, wo, wi, si, base, tangent


def _lobes_table(lobes):
    """The kernel's ``(lobes, code)``: a two-part table whose part 1 holds ``lobes`` (code 3), or code 1."""
    if lobes is None:
        return as_warp(torch.zeros(1, 3), wp.vec3), 1
    return as_warp(torch.cat([torch.rand(2, 3), torch.tensor(lobes).reshape(2, 3)]).contiguous(), wp.vec3), 3


def _close(a, b, floor):
    return ((a - b).abs() / b.abs().clamp_min(floor)).amax()


_LOBES = (0.3, 0.6, 0.4, 0.8, 0.5, 0.3)


@pytest.mark.parametrize("roughness, metallic, ior, lobes, log_aspect", [
    (0.5, 0.0, 1.5, None, 0.0), (0.4, 1.0, 1.5, None, 0.0), (0.2, 0.3, 1.33, None, 0.0), (0.9, 0.0, 2.0, None, 0.0),
    (0.03, 0.0, 1.5, None, 0.0), (0.4, 0.5, 1.0, None, 0.0), (0.5, 0.0, 1.5, _LOBES, 0.0),
    (0.3, 0.4, 1.33, _LOBES, 0.0), (0.6, 0.0, 1.45, (1.0, 1.0, 1.0, 1.0, 0.2, 1.0), 0.0), (0.4, 0.2, 1.0, _LOBES, 0.0),
    (0.5, 0.1, 1.5, (0.5, 0.3, 0.2, 0.0, 0.0, 0.6), 0.0), (0.5, 0.0, 1.5, (0.0, 0.0, 0.0, 1.0, 1.0, 0.0), 0.0),
    (0.5, 0.6, 1.5, None, -0.8), (0.35, 0.2, 1.4, _LOBES, 0.5)])
def test_the_kernel_evaluates_and_samples_the_principled_bsdf_as_its_twin(roughness, metallic, ior, lobes,
                                                                          log_aspect):
    """Value, density and samples of the kernel are the twin's, with and without the other lobes, isotropic and
    anisotropic (``log_aspect`` not 0: a random tangent per point, ``Material.roughness_aspect``)."""
    ensure_init()
    n, wo, wi, si, base, tangent = _case(roughness, metallic, ior, lobes=lobes, log_aspect=log_aspect)
    N = n.shape[0]
    vec = lambda t: as_warp(t.float().contiguous(), wp.vec3)  # noqa: E731
    settings = [wp.vec3(*base.tolist()), float(roughness), float(metallic), float(ior), *_lobes_table(lobes),
                vec(tangent), float(log_aspect)]
    f, pdf = torch.zeros(N, 3), torch.zeros(N)
    wp.launch(_eval, dim=N, inputs=[vec(n), vec(wi), vec(wo), *settings, as_warp(f, wp.vec3), as_warp(pdf)],
              device="cpu")
    bsdf = PrincipledBSDF()
    f_ref, pdf_ref = bsdf.eval(si, wi), bsdf.pdf(si, wi)[:, 0]
    lit = f_ref.amax(-1) > 0
    assert 0.4 < float(lit.float().mean()) < 0.95  # (some directions are below the surface)
    assert torch.equal(f.amax(-1) > 0, lit) and torch.equal(pdf > 0, pdf_ref > 0)
    assert _close(f.double(), f_ref, 1e-2) < 2e-3
    assert _close(pdf.double(), pdf_ref, 1e-2) < 2e-3
    u = (torch.rand(N, 3, generator=torch.Generator().manual_seed(1), dtype=F64) * 0.999).float()
    wi_k, weight, pdf_k = torch.zeros(N, 3), torch.zeros(N, 3), torch.zeros(N)
    wp.launch(_sample, dim=N, inputs=[vec(n), vec(wo), vec(u), *settings, as_warp(wi_k, wp.vec3),
                                      as_warp(weight, wp.vec3), as_warp(pdf_k)], device="cpu")
    s = bsdf.sample(si, u[:, :1].double(), u[:, 1:].double())
    assert float((s.pdf > 0).float().mean()) > 0.9
    p_spec = bsdf._specular_probability(si, (n * wo).sum(-1, keepdim=True).clamp(1e-6, 1.0))[:, 0]
    q = 0.0 if lobes is None else bsdf._clearcoat_probability(si)[:, 0]
    u_main = ((u[:, 0].double() - q) / (1 - q)).clamp(0, 1)
    specular = (u_main < p_spec) & (s.pdf[:, 0] > 0)  # (both lobes drawn)
    assert bool(specular.any()) and bool((~specular).any())
    if lobes is not None and lobes[3] > 0:
        assert bool((u[:, 0].double() < q).any())  # (and the clearcoat)
    assert float((wi_k.double() - s.wi).abs().amax(-1).max()) < 1e-4
    if roughness < 0.05:  # (a sample of the sharp lobe lands inside it: its value is float32's rounding)
        return
    assert float(_close(weight.double(), s.weight, 1e-2)) < 2e-3
    assert float(_close(pdf_k.double(), s.pdf[:, 0], 1e-2)) < 2e-3


@wp.kernel
def _grads(n: wp.array(dtype=wp.vec3), wi: wp.array(dtype=wp.vec3), wo: wp.array(dtype=wp.vec3), base: wp.vec3,
           roughness: float, metallic: float, ior: float, coef: wp.array(dtype=wp.vec3),
           out: wp.array2d(dtype=float)):
    i = wp.tid()
    gb, gm, gr, gi, gs = pk.principled_param_grads_wp(n[i], wi[i], wo[i], base, roughness, metallic, ior, coef[i])
    for c in range(3):
        out[i, c] = gb[c]
    out[i, 3] = gm
    out[i, 4] = gr
    out[i, 5] = gi
    out[i, 6] = gs


@pytest.mark.parametrize("roughness, metallic, ior", [(0.5, 0.0, 1.5), (0.4, 1.0, 1.5), (0.2, 0.3, 1.33),
                                                       (0.9, 0.6, 2.0), (0.02, 0.1, 1.5), (0.4, 0.5, 1.0)])
def test_the_kernels_parameter_derivatives_are_the_twins(roughness, metallic, ior):
    """``sum_c coef_c d f_c / d theta`` of the fused replay (base colour, metallic, roughness, ior; the glTF
    specular weight's column 0) against autograd of the float64 twin, per direction pair."""
    ensure_init()
    n, wo, wi, si, base, _ = _case(roughness, metallic, ior, N=600)
    N = n.shape[0]
    coef = torch.rand(N, 3, generator=torch.Generator().manual_seed(3), dtype=F64) - 0.3
    vec = lambda t: as_warp(t.float().contiguous(), wp.vec3)  # noqa: E731
    out = torch.zeros(N, 7)
    wp.launch(_grads, dim=N, inputs=[vec(n), vec(wi), vec(wo), wp.vec3(*base.tolist()), float(roughness),
                                     float(metallic), float(ior), vec(coef), as_warp(out)], device="cpu")
    params = [base.clone().requires_grad_(True)] + [torch.tensor(v, dtype=F64, requires_grad=True)
                                                     for v in (metallic, roughness, ior)]
    rows = []
    for i in range(N):  # per row: each pair's own derivative
        s = SurfaceSample(position=torch.zeros(1, 3, dtype=F64), normal=n[i:i + 1], wo=wo[i:i + 1],
                          base_color=params[0].expand(1, 3), metallic=params[1].reshape(1, 1),
                          roughness=params[2].reshape(1, 1), ior=params[3].reshape(1, 1))
        f = PrincipledBSDF().eval(s, wi[i:i + 1])
        g = torch.autograd.grad((f * coef[i:i + 1]).sum(), params, allow_unused=True)
        rows.append(torch.cat([g[0], g[1].reshape(1), g[2].reshape(1), g[3].reshape(1)]))
    ref = torch.stack(rows)
    lit = PrincipledBSDF().eval(si, wi).amax(-1) > 0
    assert float(lit.float().mean()) > 0.4 and float(ref[lit].abs().amax()) > 0
    assert torch.equal(out[~lit], torch.zeros_like(out[~lit]))
    assert torch.equal(out[:, 6], torch.zeros(N))
    # float32 against float64: relative to each column's scale
    scale = ref.abs().amax(0).clamp_min(1e-6)
    err = ((out[:, :6].double() - ref).abs() / scale).amax(0)
    assert float(err.max()) < 2e-3, err
