"""The fused path kernel's plastic (:mod:`lumigrad.kernels.plastic_kernels`, float32) against its reference twin,
:class:`lumigrad.shading.plastic.PlasticBSDF` in float64: value, density and samples at random directions, GGX and
Beckmann, rough and smooth, the table read as the kernel reads it."""

import pytest
import torch
import warp as wp

from lumigrad.kernels import plastic_kernels as pk
from lumigrad.kernels._runtime import as_warp, ensure_init
from lumigrad.shading.plastic import PlasticBSDF, plastic_table
from lumigrad.shading.surface import SurfaceSample

F64 = torch.float64


@wp.kernel
def _eval(table: wp.array(dtype=float), n: wp.array(dtype=wp.vec3), wi: wp.array(dtype=wp.vec3),
          wo: wp.array(dtype=wp.vec3), base: wp.vec3, roughness: float, ior: float, beckmann: int,
          out_f: wp.array(dtype=wp.vec3), out_pdf: wp.array(dtype=float)):
    i = wp.tid()
    f, pdf = pk.plastic_eval_pdf_wp(table, 1, n[i], wi[i], wo[i], -1.0, base, roughness, ior, beckmann)
    out_f[i] = f
    out_pdf[i] = pdf


@wp.kernel
def _diffuse(table: wp.array(dtype=float), n: wp.array(dtype=wp.vec3), wi: wp.array(dtype=wp.vec3),
             wo: wp.array(dtype=wp.vec3), base: wp.vec3, roughness: float, ior: float, out_f: wp.array(dtype=wp.vec3)):
    i = wp.tid()
    out_f[i] = pk.plastic_diffuse_wp(table, 1, n[i], wi[i], wo[i], base, roughness, ior)


@wp.kernel
def _sample(table: wp.array(dtype=float), n: wp.array(dtype=wp.vec3), wo: wp.array(dtype=wp.vec3),
            u: wp.array(dtype=wp.vec3), base: wp.vec3, roughness: float, ior: float, beckmann: int,
            out_wi: wp.array(dtype=wp.vec3), out_weight: wp.array(dtype=wp.vec3), out_pdf: wp.array(dtype=float)):
    i = wp.tid()
    wi, weight, pdf = pk.plastic_sample_wp(table, 1, n[i], wo[i], -1.0, base, roughness, ior, beckmann, u[i][0],
                                           u[i][1], u[i][2])
    out_wi[i] = wi
    out_weight[i] = weight
    out_pdf[i] = pdf


def _unit(v):
    return v / torch.linalg.vector_norm(v, dim=-1, keepdim=True)


def _case(roughness, ior, beckmann, N=4000, seed=0):
    """Unit normals and views above the surface, directions half near the mirror one (not at it: float32's
    ``1 - cos^2`` of a sharp highlight is rounding), half anywhere (some below the surface); float32 values
    (the kernel's) and their float64 twin."""
    g = torch.Generator().manual_seed(seed)
    n = _unit(torch.randn(N, 3, generator=g, dtype=F64))
    wo = _unit(torch.randn(N, 3, generator=g, dtype=F64))
    wo = torch.where((wo * n).sum(-1, keepdim=True) < 0.05, _unit(wo + 1.5 * n), wo)
    mirror = 2 * (n * wo).sum(-1, keepdim=True) * n - wo
    wi = torch.cat([_unit(mirror[: N // 2] + 0.3 * torch.randn(N // 2, 3, generator=g, dtype=F64)),
                    _unit(torch.randn(N - N // 2, 3, generator=g, dtype=F64))])
    n, wo, wi = (v.float().double() for v in (n, wo, wi))  # the same inputs for both
    table = plastic_table(torch.tensor(roughness, dtype=F64), torch.tensor(ior, dtype=F64), beckmann)
    base = torch.tensor([0.8, 0.3, 0.05], dtype=F64)
    si = SurfaceSample(position=torch.zeros(N, 3, dtype=F64), normal=n, wo=wo, base_color=base.expand(N, 3),
                       roughness=torch.full((N, 1), roughness, dtype=F64), metallic=torch.zeros(N, 1, dtype=F64),
                       ior=torch.full((N, 1), ior, dtype=F64), beckmann=torch.full((N, 1), float(beckmann), dtype=F64),
                       plastic=table.expand(N, table.shape[0]))
    # the kernel reads row 1 of a two-row table (row 0 another material's), as a scene's second plastic part
    rows = torch.cat([torch.zeros_like(table), table]).float().contiguous()
    return n, wo, wi, si, rows, base


def _close(a, b, floor):
    return ((a - b).abs() / b.abs().clamp_min(floor)).amax()


@pytest.mark.parametrize("beckmann", [False, True])
@pytest.mark.parametrize("roughness, ior", [(0.3, 1.5), (0.7, 1.33), (0.15, 2.2), (0.0, 1.5)])
def test_the_kernel_evaluates_and_samples_the_plastic_as_its_twin(roughness, ior, beckmann):
    ensure_init()
    n, wo, wi, si, rows, base = _case(roughness, ior, beckmann)
    N = n.shape[0]
    vec = lambda t: as_warp(t.float().contiguous(), wp.vec3)  # noqa: E731
    args = [as_warp(rows), vec(n)]
    settings = [wp.vec3(*base.tolist()), float(roughness), float(ior), int(beckmann)]
    f, pdf = torch.zeros(N, 3), torch.zeros(N)
    wp.launch(_eval, dim=N, inputs=[*args, vec(wi), vec(wo), *settings, as_warp(f, wp.vec3), as_warp(pdf)],
              device="cpu")
    bsdf = PlasticBSDF()
    f_ref, pdf_ref = bsdf.eval(si, wi), bsdf.pdf(si, wi)[:, 0]
    assert float((f_ref.amax(-1) > 0).float().mean()) > 0.4  # (half the directions are below the surface)
    lit = f_ref.amax(-1) > 0
    assert torch.equal(f.amax(-1) > 0, lit) and torch.equal(pdf > 0, pdf_ref > 0)
    smooth = roughness == 0.0
    keep = torch.ones(N, dtype=torch.bool)
    if smooth:  # a lobe of width 1e-3: inside it float32's 1 - cos_h^2 is rounding; compare beside it
        h = _unit(wi + wo)
        keep = 1 - ((n * h).sum(-1)) ** 2 > 1e-4
        assert float(keep.float().mean()) > 0.9
    assert _close(f.double()[keep], f_ref[keep], 1e-2) < 2e-3
    assert _close(pdf.double()[keep], pdf_ref[keep], 1e-2) < 2e-3
    u = (torch.rand(N, 3, generator=torch.Generator().manual_seed(1), dtype=F64) * 0.999).float()
    wi_k, weight, pdf_k = torch.zeros(N, 3), torch.zeros(N, 3), torch.zeros(N)
    wp.launch(_sample, dim=N, inputs=[*args, vec(wo), vec(u), *settings, as_warp(wi_k, wp.vec3),
                                      as_warp(weight, wp.vec3), as_warp(pdf_k)], device="cpu")
    s = bsdf.sample(si, u[:, :1].double(), u[:, 1:].double())
    assert float((s.pdf > 0).float().mean()) > 0.9
    specular = (u[:, 0].double() < 0.5) & (s.pdf[:, 0] > 0)  # (both lobes drawn)
    assert bool(specular.any()) and bool((~specular).any())
    near = (wi_k.double() - s.wi).abs().amax(-1)
    assert float(near.max()) < 1e-4
    if smooth:  # (a sample of the sharp lobe lands inside it: its value is float32's rounding)
        return
    assert float(_close(weight.double(), s.weight, 1e-2)) < 2e-3
    assert float(_close(pdf_k.double(), s.pdf[:, 0], 1e-2)) < 2e-3


@pytest.mark.parametrize("roughness, ior", [(0.0, 1.5), (0.0, 1.9), (0.3, 1.5)])
def test_the_kernels_diffuse_base_is_the_twins_and_the_value_less_its_coat(roughness, ior):
    """What a delta light sees of a smooth plastic (``Material.delta_specular``): the diffuse base alone, as
    ``PlasticBSDF.eval_diffuse``, below the whole value and far below it at the mirror direction."""
    ensure_init()
    n, wo, wi, si, rows, base = _case(roughness, ior, False)
    N = n.shape[0]
    vec = lambda t: as_warp(t.float().contiguous(), wp.vec3)  # noqa: E731
    f = torch.zeros(N, 3)
    wp.launch(_diffuse, dim=N, inputs=[as_warp(rows), vec(n), vec(wi), vec(wo), wp.vec3(*base.tolist()),
                                       float(roughness), float(ior), as_warp(f, wp.vec3)], device="cpu")
    bsdf = PlasticBSDF()
    ref = bsdf.eval_diffuse(si, wi)
    lit = ref.amax(-1) > 0
    assert float(lit.float().mean()) > 0.4 and torch.equal(f.amax(-1) > 0, lit)
    assert _close(f.double(), ref, 1e-2) < 2e-3
    whole = bsdf.eval(si, wi)
    assert bool((whole >= ref - 1e-12).all())
    if roughness == 0.0:  # in the mirror direction the coat is most of the value
        mirror = 2 * (n * wo).sum(-1, keepdim=True) * n - wo
        assert bool((bsdf.eval(si, mirror) > 10 * bsdf.eval_diffuse(si, mirror)).all())


@wp.kernel
def _grads(table: wp.array(dtype=float), n: wp.array(dtype=wp.vec3), wi: wp.array(dtype=wp.vec3),
           wo: wp.array(dtype=wp.vec3), base: wp.vec3, roughness: float, ior: float, beckmann: int, coat: float,
           coef: wp.array(dtype=wp.vec3), out: wp.array2d(dtype=float), g_table: wp.array2d(dtype=wp.float64)):
    i = wp.tid()
    gb, gm, gr, gi, gs = pk.plastic_param_grads_wp(table, 1, n[i], wi[i], wo[i], base, roughness, ior, beckmann,
                                                   coat, coef[i], g_table)
    for c in range(3):
        out[i, c] = gb[c]
    out[i, 3] = gm
    out[i, 4] = gr
    out[i, 5] = gi
    out[i, 6] = gs


@pytest.mark.parametrize("beckmann, coat", [(False, 1.0), (True, 1.0), (False, 0.0)])
@pytest.mark.parametrize("roughness, ior", [(0.3, 1.5), (0.7, 1.33), (0.0, 1.6)])
def test_the_kernels_parameter_derivatives_are_the_twins(roughness, ior, beckmann, coat):
    """``sum_c coef_c d f_c / d theta`` of the fused replay with the table held (base colour, roughness, ior;
    metallic's and the specular weight's columns 0) and its table entries' derivatives, against autograd of the
    float64 twin with the table a leaf: per direction pair, and summed over the pairs for the table. ``coat`` 0:
    of the diffuse base alone (``eval_diffuse``: a delta light at a smooth plastic)."""
    ensure_init()
    n, wo, wi, si, rows, base = _case(roughness, ior, beckmann, N=400)
    N = n.shape[0]
    coef = torch.rand(N, 3, generator=torch.Generator().manual_seed(3), dtype=F64) - 0.3
    vec = lambda t: as_warp(t.float().contiguous(), wp.vec3)  # noqa: E731
    out = torch.zeros(N, 7)
    g_table = torch.zeros(2, 66, dtype=F64)
    wp.launch(_grads, dim=N, inputs=[as_warp(rows), vec(n), vec(wi), vec(wo), wp.vec3(*base.tolist()),
                                     float(roughness), float(ior), int(beckmann), coat, vec(coef), as_warp(out),
                                     as_warp(g_table)], device="cpu")
    table = si.plastic[0].clone().requires_grad_(True)
    params = [base.clone().requires_grad_(True), torch.tensor(roughness, dtype=F64, requires_grad=True),
              torch.tensor(ior, dtype=F64, requires_grad=True)]
    rows_ref, g_table_ref = [], torch.zeros(66, dtype=F64)
    bsdf = PlasticBSDF()
    for i in range(N):
        s = si.replace(position=si.position[i:i + 1], normal=n[i:i + 1], wo=wo[i:i + 1],
                       base_color=params[0].expand(1, 3), roughness=params[1].reshape(1, 1),
                       ior=params[2].reshape(1, 1), beckmann=si.beckmann[i:i + 1], metallic=si.metallic[i:i + 1],
                       plastic=table.expand(1, 66))
        f = bsdf.eval(s, wi[i:i + 1]) if coat else bsdf.eval_diffuse(s, wi[i:i + 1])
        g = torch.autograd.grad((f * coef[i:i + 1]).sum(), params + [table], allow_unused=True)
        g = [torch.zeros_like(p) if x is None else x for x, p in zip(g, params + [table])]
        rows_ref.append(torch.cat([g[0], g[1].reshape(1), g[2].reshape(1)]))
        g_table_ref += g[3]
    ref = torch.stack(rows_ref)
    got = torch.cat([out[:, :3], out[:, 4:6]], 1).double()
    assert torch.equal(out[:, 3], torch.zeros(N)) and torch.equal(out[:, 6], torch.zeros(N))
    assert float(ref.abs().amax()) > 0 and torch.equal(g_table[0], torch.zeros(66, dtype=F64))
    keep = torch.ones(N, dtype=torch.bool)
    if roughness == 0.0:  # (the sharp lobe's float32 values: compare beside it, as above)
        h = _unit(wi + wo)
        keep = 1 - ((n * h).sum(-1)) ** 2 > 1e-4
    scale = ref[keep].abs().amax(0).clamp_min(1e-6)
    err = ((got[keep] - ref[keep]).abs() / scale).amax(0)
    assert float(err.max()) < 2e-3, err
    if roughness > 0:  # the table's entries (at roughness 0 its t is 1 - F, not read): R_int and the taps
        t_scale = g_table_ref.abs().amax()
        assert float(t_scale) > 0
        assert float((g_table[1] - g_table_ref).abs().max() / t_scale) < 2e-3
    else:
        assert float((g_table[1, 64] - g_table_ref[64]).abs() / g_table_ref[64].abs()) < 2e-3
