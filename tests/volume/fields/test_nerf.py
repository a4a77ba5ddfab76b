"""MLP heads and NerfField: shapes, dtypes, ranges, box cut, reduced precision tolerance, a tiny overfit, bad input."""

import pytest
import torch

from lumigrad.volume.fields import MLP, NerfField, density_activation
from lumigrad.volume.fields.nerf import cpu_has_native_bf16
from lumigrad.volume.occupancy import OccupancyGrid

BOX = [-1.0, -1.0, -1.0, 1.0, 1.0, 1.0]
SMALL = dict(num_levels=6, log2_table_size=12, base_resolution=4, max_resolution=32, hidden_dim=32,
             color_hidden_dim=32)


def _textured_field(precision="fp32", **kw):
    """A small field whose table is not near zero, so every layer's precision matters."""
    torch.manual_seed(0)
    f = NerfField(BOX, precision=precision, **{**SMALL, **kw})
    with torch.no_grad():
        if hasattr(f.encoder, "table"):
            f.encoder.table.normal_(0.0, 0.5)
        else:
            f.encoder.grid.normal_(0.0, 0.5)
    return f


def test_mlp_and_density_activation():
    mlp = MLP(5, 3, hidden_dim=8, num_hidden_layers=2, activation="softplus", output_bias=-1.0)
    assert mlp(torch.zeros(2, 4, 5)).shape == (2, 4, 3)
    assert torch.equal(mlp.net[-1].bias, torch.full((3,), -1.0))
    assert len([m for m in mlp.net if isinstance(m, torch.nn.Linear)]) == 3
    raw = torch.tensor([-2.0, 0.0, 3.0])
    assert density_activation(raw, "relu").tolist() == [0.0, 0.0, 3.0]
    torch.testing.assert_close(density_activation(raw), torch.log1p(torch.exp(raw)))
    with pytest.raises(ValueError, match="x"):
        mlp(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="activation"):
        MLP(2, 2, activation="tanh")
    with pytest.raises(ValueError, match="kind"):
        density_activation(raw, "tanh")
    torch.testing.assert_close(density_activation(raw, "exp"), torch.exp(raw))
    big = torch.tensor([40.0], requires_grad=True)  # truncated: the gradient is exp(15), not exp(40)
    density_activation(big, "exp").backward()
    torch.testing.assert_close(big.grad, torch.exp(torch.tensor([15.0])))
    small = torch.tensor([0.3, -2.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: density_activation(x, "exp"), (small,))


@pytest.mark.parametrize("encoding", ["hash", "dense"])
def test_shapes_dtypes_ranges_and_box_cut(encoding):
    f = _textured_field(encoding=encoding, grid_resolution=8, grid_channels=4)
    gen = torch.Generator().manual_seed(1)
    pts = torch.rand(2, 50, 3, generator=gen) * 2.4 - 1.2  # some outside the box
    dirs = torch.randn(2, 50, 3, generator=gen)
    sigma, rgb = f(pts, dirs)
    assert sigma.shape == (2, 50) and rgb.shape == (2, 50, 3)
    assert sigma.dtype == torch.float32 and rgb.dtype == torch.float32
    assert (sigma >= 0).all() and (rgb >= 0).all() and (rgb <= 1).all()
    outside = (pts.abs() > 1).any(-1)
    assert outside.any() and (sigma[outside] == 0).all() and (sigma[~outside] > 0).all()
    torch.testing.assert_close(f.density(pts), sigma, rtol=0, atol=0)
    # one direction broadcast to all points
    s2, c2 = f(pts, torch.tensor([0.0, 0.0, 1.0]))
    assert c2.shape == (2, 50, 3)


def test_initial_density_is_the_stated_bias():
    f = NerfField(BOX, **SMALL)  # table starts within 1e-4 of zero
    sigma = f.density(torch.zeros(10, 3))
    expected = torch.nn.functional.softplus(torch.tensor(-1.0)).item()  # 0.313
    assert (sigma - expected).abs().max() < 0.1  # the rest is the (zero-input) MLP's own bias noise
    f = NerfField(BOX, density_bias=2.0, density_kind="relu", **SMALL)
    assert (f.density(torch.zeros(10, 3)) - 2.0).abs().max() < 0.3


def test_gradients_reach_every_parameter_and_sparse_split():
    f = _textured_field()
    pts = (torch.rand(64, 3) * 2 - 1).requires_grad_()
    sigma, rgb = f(pts, torch.randn(64, 3))
    (sigma.sum() + rgb.sum()).backward()
    assert f.encoder.table.grad.is_sparse
    assert all(p.grad is not None for p in f.parameters())
    assert pts.grad is not None and pts.grad.abs().sum() > 0
    assert f.sparse_parameters() == [f.encoder.table]
    assert len(f.dense_parameters()) == len(list(f.parameters())) - 1


@pytest.mark.parametrize("precision", ["bf16", pytest.param("fp16", marks=pytest.mark.cuda)])
def test_reduced_precision_within_tolerance_of_fp32(precision):
    """bf16 has an 8-bit significand (relative step 2^-8 = 3.9e-3), fp16 11 bits: after two small MLPs the
    outputs must stay within 2e-2 (sigma, relative to its largest value) and 1e-2 (rgb, absolute)."""
    device = "cuda" if precision == "fp16" else "cpu"
    f = _textured_field().to(device)
    gen = torch.Generator().manual_seed(2)
    pts = (torch.rand(2000, 3, generator=gen) * 2 - 1).to(device)
    dirs = torch.randn(2000, 3, generator=gen).to(device)
    s32, c32 = f(pts, dirs)
    f.precision = precision
    s16, c16 = f(pts, dirs)
    assert s16.dtype == torch.float32 and c16.dtype == torch.float32
    assert f.compute_dtype(pts.device) == (torch.bfloat16 if precision == "bf16" else torch.float16)
    sigma_err = ((s16 - s32).abs().max() / s32.abs().max()).item()
    rgb_err = (c16 - c32).abs().max().item()
    assert sigma_err < 2e-2 and rgb_err < 1e-2, (sigma_err, rgb_err)
    assert sigma_err > 0  # the reduced precision path really ran
    # gradients: the same direction (cosine) as in float32, for the table and the first MLP layer
    grads = {}
    for prec in ("fp32", precision):
        f.precision = prec
        f.zero_grad()
        s, c = f(pts, dirs)
        (s.square().mean() + c.square().mean()).backward()
        grads[prec] = [f.encoder.table.grad.to_dense().flatten(), f.density_net.net[0].weight.grad.flatten()]
    for g32, g16 in zip(grads["fp32"], grads[precision]):
        assert torch.isfinite(g16).all()
        assert torch.nn.functional.cosine_similarity(g32, g16, dim=0) > 0.99


def test_auto_precision_and_float64_field():
    f = NerfField(BOX, **SMALL)
    assert f.compute_dtype(torch.device("cpu")) == (torch.bfloat16 if cpu_has_native_bf16() else torch.float32)
    assert f.compute_dtype(torch.device("cuda")) == torch.float16
    f64 = _textured_field().double()
    sigma, rgb = f64(torch.zeros(3, 3, dtype=torch.float64), torch.ones(3, 3, dtype=torch.float64))
    assert sigma.dtype == torch.float64 and rgb.dtype == torch.float64


def test_overfits_a_ball_density():
    """~100 steps of L2 on density samples of a ball (sigma 10 inside radius 0.5): the held-out loss drops 10x."""
    torch.manual_seed(0)
    f = NerfField(BOX, precision="fp32", **SMALL)
    opt_sparse = torch.optim.SparseAdam(f.sparse_parameters(), lr=3e-2)
    opt_dense = torch.optim.Adam(f.dense_parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(1)

    def target(p):
        return 10.0 * (p.norm(dim=-1) < 0.5).float()

    held_out = torch.rand(4096, 3, generator=gen) * 2 - 1
    with torch.no_grad():
        before = (f.density(held_out) - target(held_out)).square().mean().item()
    for _ in range(100):
        p = torch.rand(2048, 3, generator=gen) * 2 - 1
        loss = (f.density(p) - target(p)).square().mean()
        opt_sparse.zero_grad()
        opt_dense.zero_grad()
        loss.backward()
        opt_sparse.step()
        opt_dense.step()
    with torch.no_grad():
        after = (f.density(held_out) - target(held_out)).square().mean().item()
    assert after < before / 10, (before, after)
    # the fitted field drives an occupancy grid: the ball's centre is kept, the box corners are skipped
    grid = OccupancyGrid(BOX, resolution=16)
    grid.update(0, f.density)
    assert grid.occupied(torch.tensor([[0.0, 0.0, 0.0], [0.9, 0.9, 0.9], [-0.9, 0.9, -0.9]])).tolist() == [
        True, False, False]
    assert 0.05 < grid.fraction_occupied < 0.5  # the ball is 6.5% of the box


@pytest.mark.parametrize("call, match", [
    (lambda f: f(torch.tensor([[0.0, float("nan"), 0.0]]), torch.ones(1, 3)), "points"),
    (lambda f: f(torch.zeros(4, 3), torch.tensor([[float("inf"), 0.0, 0.0]])), "directions"),
    (lambda f: f(torch.zeros(4, 2), torch.ones(4, 3)), "points"),
    (lambda f: f(torch.zeros(4, 3), torch.ones(5, 3)), "directions"),
    (lambda f: f.density(torch.zeros(4)), "points"),
])
def test_bad_input_names_argument(call, match):
    f = NerfField(BOX, **SMALL)
    with pytest.raises((ValueError, TypeError), match=match):
        call(f)


@pytest.mark.parametrize("kwargs, match", [
    (dict(precision="fp8"), "precision"),
    (dict(encoding="tri"), "encoding"),
    (dict(sh_degree=5), "sh_degree"),
    (dict(density_kind="cubic"), "density_kind"),
    (dict(geo_feat_dim=0), "geo_feat_dim"),
    (dict(log2_table_size=40), "log2_table_size"),
])
def test_bad_settings_name_argument(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        NerfField(BOX, **{**SMALL, **kwargs})
