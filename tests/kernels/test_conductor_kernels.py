"""The fused path kernel's conductor (:mod:`lumigrad.kernels.conductor_kernels`, float32) against its reference
twin, :class:`lumigrad.shading.conductor.ConductorBSDF` in float64: value, density, samples and the parameter
derivatives the fused replay takes, at random directions, GGX and Beckmann, rough and near-smooth, the metal's
``eta`` and ``k`` read from the second row of a table as a scene's second conductor part's."""

import pytest
import torch
import warp as wp

from lumigrad.kernels import conductor_kernels as ck
from lumigrad.kernels._runtime import as_warp, ensure_init
from lumigrad.shading.conductor import ConductorBSDF, fresnel_conductor
from lumigrad.shading.surface import SurfaceSample

F64 = torch.float64
METALS = {"Cr": ((4.36968, 2.91650, 1.65490), (5.20652, 4.23133, 3.75470)),
          "Au": ((0.14303, 0.37527, 1.44204), (3.98302, 2.38558, 1.60340)),
          "AlSb": ((0.0, 4.13937, 4.66925), (0.0, 0.09401, 1.30057))}


@wp.kernel
def _fresnel(cos: wp.array(dtype=float), eta: float, k: float, out: wp.array(dtype=float)):
    i = wp.tid()
    out[i] = ck.fresnel_conductor_wp(cos[i], eta, k)


@wp.kernel
def _eval(table: wp.array(dtype=wp.vec3), n: wp.array(dtype=wp.vec3), wi: wp.array(dtype=wp.vec3),
          wo: wp.array(dtype=wp.vec3), base: wp.vec3, roughness: float, beckmann: int,
          tangent: wp.array(dtype=wp.vec3), log_aspect: float,
          out_f: wp.array(dtype=wp.vec3), out_pdf: wp.array(dtype=float)):
    i = wp.tid()
    f, pdf = ck.conductor_eval_pdf_wp(table, 1, n[i], wi[i], wo[i], base, roughness, beckmann, tangent[i], log_aspect)
    out_f[i] = f
    out_pdf[i] = pdf


@wp.kernel
def _sample(table: wp.array(dtype=wp.vec3), n: wp.array(dtype=wp.vec3), wo: wp.array(dtype=wp.vec3),
            u: wp.array(dtype=wp.vec3), base: wp.vec3, roughness: float, beckmann: int,
            tangent: wp.array(dtype=wp.vec3), log_aspect: float,
            out_wi: wp.array(dtype=wp.vec3), out_weight: wp.array(dtype=wp.vec3), out_pdf: wp.array(dtype=float)):
    i = wp.tid()
    wi, weight, pdf = ck.conductor_sample_wp(table, 1, n[i], wo[i], base, roughness, beckmann, tangent[i], log_aspect,
                                             u[i][1], u[i][2])
    out_wi[i] = wi
    out_weight[i] = weight
    out_pdf[i] = pdf


@wp.kernel
def _grads(table: wp.array(dtype=wp.vec3), n: wp.array(dtype=wp.vec3), wi: wp.array(dtype=wp.vec3),
           wo: wp.array(dtype=wp.vec3), base: wp.vec3, roughness: float, beckmann: int,
           coef: wp.array(dtype=wp.vec3), out: wp.array2d(dtype=float)):
    i = wp.tid()
    gb, gm, gr, gi, gs = ck.conductor_param_grads_wp(table, 1, n[i], wi[i], wo[i], base, roughness, beckmann, coef[i])
    for c in range(3):
        out[i, c] = gb[c]
    out[i, 3] = gm
    out[i, 4] = gr
    out[i, 5] = gi
    out[i, 6] = gs


def _unit(v):
    return v / torch.linalg.vector_norm(v, dim=-1, keepdim=True)


def _case(metal, roughness, beckmann, N=4000, seed=0, log_aspect=0.0):
    """Unit normals and views above the surface, directions half near the mirror one, half anywhere (some below
    the surface); float32 inputs for both, the float64 twin's sample, and the kernel's table: row 1 of two
    (``eta`` in entry 2, ``k`` in entry 3; row 0 another part's)."""
    g = torch.Generator().manual_seed(seed)
    n = _unit(torch.randn(N, 3, generator=g, dtype=F64))
    wo = _unit(torch.randn(N, 3, generator=g, dtype=F64))
    wo = torch.where((wo * n).sum(-1, keepdim=True) < 0.05, _unit(wo + 1.5 * n), wo)
    mirror = 2 * (n * wo).sum(-1, keepdim=True) * n - wo
    wi = torch.cat([_unit(mirror[: N // 2] + 0.3 * torch.randn(N // 2, 3, generator=g, dtype=F64)),
                    _unit(torch.randn(N - N // 2, 3, generator=g, dtype=F64))])
    tangent = torch.randn(N, 3, generator=g, dtype=F64) if log_aspect else torch.zeros(N, 3, dtype=F64)
    n, wo, wi, tangent = (v.float().double() for v in (n, wo, wi, tangent))
    eta, k = (torch.tensor(v, dtype=torch.float32).double() for v in METALS[metal])
    aniso = {} if not log_aspect else dict(tangent=torch.cat([tangent, torch.ones(N, 1, dtype=F64)], -1),
                                           log_aspect=torch.full((N, 1), float(log_aspect), dtype=F64))
    base = torch.tensor([0.8, 0.5, 0.3], dtype=F64)
    si = SurfaceSample(position=torch.zeros(N, 3, dtype=F64), normal=n, wo=wo, base_color=base.expand(N, 3),
                       roughness=torch.full((N, 1), roughness, dtype=F64), metallic=torch.ones(N, 1, dtype=F64),
                       beckmann=torch.full((N, 1), float(beckmann), dtype=F64),
                       conductor=torch.cat([eta, k, torch.ones(1, dtype=F64)]).expand(N, 7), **aniso)
    table = torch.stack([torch.full((3,), 0.5), torch.ones(3), eta.float(), k.float()]).contiguous()
    return n, wo, wi, si, table, base, tangent


def _close(a, b, floor):
    return ((a - b).abs() / b.abs().clamp_min(floor)).amax()


def test_the_kernels_fresnel_is_the_twins():
    ensure_init()
    cos = torch.linspace(0.0, 1.0, 257)
    for eta, k in list(zip(*METALS["Cr"])) + list(zip(*METALS["AlSb"])) + [(1.5, 0.0), (0.6, 0.0)]:
        out = torch.zeros(257)
        wp.launch(_fresnel, dim=257, inputs=[as_warp(cos), float(eta), float(k), as_warp(out)], device="cpu")
        ref = fresnel_conductor(cos.double(), torch.tensor(float(torch.tensor(eta).float()), dtype=F64),
                                torch.tensor(float(torch.tensor(k).float()), dtype=F64))
        assert float((out.double() - ref).abs().max()) < 2e-6, (eta, k)


@pytest.mark.parametrize("beckmann", [False, True])
@pytest.mark.parametrize("metal, roughness, log_aspect", [("Cr", 0.3, 0.0), ("Au", 0.7, 0.0), ("AlSb", 0.15, 0.0),
                                                          ("Au", 0.0, 0.0), ("Cr", 0.4, 0.9), ("Au", 0.6, -1.2)])
def test_the_kernel_evaluates_and_samples_the_conductor_as_its_twin(metal, roughness, log_aspect, beckmann):
    """Value, density and samples of the kernel are the twin's, isotropic and anisotropic (``log_aspect`` not 0:
    a random tangent per point, ``Material.roughness_aspect``)."""
    ensure_init()
    n, wo, wi, si, table, base, tangent = _case(metal, roughness, beckmann, log_aspect=log_aspect)
    N = n.shape[0]
    vec = lambda t: as_warp(t.float().contiguous(), wp.vec3)  # noqa: E731
    settings = [wp.vec3(*base.tolist()), float(roughness), int(beckmann), vec(tangent), float(log_aspect)]
    f, pdf = torch.zeros(N, 3), torch.zeros(N)
    wp.launch(_eval, dim=N, inputs=[vec(table), vec(n), vec(wi), vec(wo), *settings, as_warp(f, wp.vec3),
                                    as_warp(pdf)], device="cpu")
    bsdf = ConductorBSDF()
    f_ref, pdf_ref = bsdf.eval(si, wi), bsdf.pdf(si, wi)[:, 0]
    lit = f_ref.amax(-1) > 0
    assert float(lit.float().mean()) > (0.4 if roughness > 0 else 0.005)  # (Beckmann's exp underflows off-peak)
    # the same points lit, but where float32 underflows (Beckmann's D far from its peak; float64 goes on)
    assert float(torch.cat([f_ref[(f.amax(-1) > 0) != lit].reshape(-1), torch.zeros(1, dtype=F64)]).max()) < 1e-20
    assert float(torch.cat([pdf_ref[(pdf > 0) != (pdf_ref > 0)], torch.zeros(1, dtype=F64)]).max()) < 1e-20
    keep = torch.ones(N, dtype=torch.bool)
    if roughness == 0.0:  # a lobe of width 1e-3: inside it float32's 1 - cos_h^2 is rounding; compare beside it
        h = _unit(wi + wo)
        keep = 1 - ((n * h).sum(-1)) ** 2 > 1e-4
        assert float(keep.float().mean()) > 0.9
    assert _close(f.double()[keep], f_ref[keep], 1e-2) < 2e-3
    assert _close(pdf.double()[keep], pdf_ref[keep], 1e-2) < 2e-3
    u = (torch.rand(N, 3, generator=torch.Generator().manual_seed(1), dtype=F64) * 0.999).float()
    wi_k, weight, pdf_k = torch.zeros(N, 3), torch.zeros(N, 3), torch.zeros(N)
    wp.launch(_sample, dim=N, inputs=[vec(table), vec(n), vec(wo), vec(u), *settings, as_warp(wi_k, wp.vec3),
                                      as_warp(weight, wp.vec3), as_warp(pdf_k)], device="cpu")
    s = bsdf.sample(si, u[:, :1].double(), u[:, 1:].double())
    assert float((s.pdf > 0).float().mean()) > 0.6  # (a rough lobe's reflections may leave below the surface)
    assert float((wi_k.double() - s.wi).abs().amax(-1).max()) < 1e-4
    if roughness == 0.0:  # (a sample of the sharp lobe lands inside it: its value is float32's rounding)
        return
    assert float(_close(weight.double(), s.weight, 1e-2)) < 2e-3
    assert float(_close(pdf_k.double(), s.pdf[:, 0], 1e-2)) < 2e-3


@pytest.mark.parametrize("beckmann", [False, True])
@pytest.mark.parametrize("metal, roughness", [("Cr", 0.3), ("Au", 0.7), ("Au", 0.0)])
def test_the_kernels_parameter_derivatives_are_the_twins(metal, roughness, beckmann):
    """``sum_c coef_c d f_c / d theta`` of the fused replay (base colour and roughness; the glTF model's metallic,
    ior and specular columns 0) against autograd of the float64 twin, per direction pair."""
    ensure_init()
    n, wo, wi, si, table, base, _ = _case(metal, roughness, beckmann, N=400)
    N = n.shape[0]
    coef = torch.rand(N, 3, generator=torch.Generator().manual_seed(3), dtype=F64) - 0.3
    vec = lambda t: as_warp(t.float().contiguous(), wp.vec3)  # noqa: E731
    out = torch.zeros(N, 7)
    wp.launch(_grads, dim=N, inputs=[vec(table), vec(n), vec(wi), vec(wo), wp.vec3(*base.tolist()), float(roughness),
                                     int(beckmann), vec(coef), as_warp(out)], device="cpu")
    base_p = base.clone().requires_grad_(True)
    rough_p = torch.tensor(roughness, dtype=F64, requires_grad=True)
    f = ConductorBSDF().eval(si.replace(base_color=base_p.expand(N, 3), roughness=rough_p.expand(N, 1)), wi)
    ref = []
    for i in range(N):  # (per pair: the rows' own derivatives)
        g = torch.autograd.grad((f[i] * coef[i]).sum(), (base_p, rough_p), retain_graph=True)
        ref.append(torch.cat([g[0], g[1].reshape(1)]))
    ref = torch.stack(ref)
    got = torch.cat([out[:, :3], out[:, 4:5]], 1).double()
    assert torch.equal(out[:, 3], torch.zeros(N)) and torch.equal(out[:, 5:], torch.zeros(N, 2))
    assert float(ref[:, 3].abs().amax()) > 0 or roughness == 0.0
    keep = torch.ones(N, dtype=torch.bool)
    if roughness == 0.0:  # (the sharp lobe's float32 values: compare beside it, as above; no roughness slope)
        h = _unit(wi + wo)
        keep = 1 - ((n * h).sum(-1)) ** 2 > 1e-4
    scale = ref[keep].abs().amax(0).clamp_min(1e-6)
    err = ((got[keep] - ref[keep]).abs() / scale).amax(0)
    assert float(err.max()) < 2e-3, err
