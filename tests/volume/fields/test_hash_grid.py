"""HashGridEncoding: layout, a per-point Python twin of the hash, float64 gradcheck, finite differences w.r.t.
one table entry, dense coarse levels == DenseGrid, row-sparse gradients and SparseAdam, bad input."""

import math

import pytest
import torch

from lumigrad.volume.fields import HashGridEncoding, hash_grid_encode, hash_level_layout, trilinear_interpolate

BOX = [-1.0, -1.0, -1.0, 1.0, 1.0, 1.0]


def _small(sparse=True, dtype=torch.float64, seed=0):
    """3 levels (2, 5, 12 cells): level 0 dense (27 rows), levels 1 and 2 hashed into T = 64 rows."""
    torch.manual_seed(seed)
    enc = HashGridEncoding(BOX, num_levels=3, features_per_level=2, log2_table_size=6, base_resolution=2,
                           max_resolution=12, sparse=sparse).to(dtype)
    with torch.no_grad():
        enc.table.normal_()
    return enc


def _reference_encode(unit, table, layout):
    """Per-point, per-corner Python loop with the instant-ngp hash on Python ints (uint32 wrap-around)."""
    out = []
    for p in unit.tolist():
        feats = []
        for res, offset, rows, dense in layout:
            pos = [min(max(c, 0.0), 1.0) * res for c in p]
            cell = [min(int(math.floor(c)), res - 1) for c in pos]
            frac = [pos[a] - cell[a] for a in range(3)]
            acc = torch.zeros(table.shape[1], dtype=table.dtype)
            for dz in (0, 1):
                for dy in (0, 1):
                    for dx in (0, 1):
                        x, y, z = cell[0] + dx, cell[1] + dy, cell[2] + dz
                        if dense:
                            row = x + (res + 1) * (y + (res + 1) * z)
                        else:
                            row = ((x * 1) ^ (y * 2654435761) ^ (z * 805459861)) % (1 << 32) % rows
                        w = ((frac[0] if dx else 1 - frac[0]) * (frac[1] if dy else 1 - frac[1])
                             * (frac[2] if dz else 1 - frac[2]))
                        acc += w * table[offset + row]
            feats.append(acc)
        out.append(torch.cat(feats))
    return torch.stack(out)


def test_layout_geometric_resolutions_and_dense_levels():
    layout = hash_level_layout(16, 2 ** 19, 16, 2048)
    res = [lvl[0] for lvl in layout]
    assert res[0] == 16 and res[-1] == 2048
    growth = math.exp(math.log(2048 / 16) / 15)
    assert res == [int(math.floor(16 * growth ** k + 1e-9)) for k in range(16)]
    for r, offset, rows, dense in layout:
        assert dense == ((r + 1) ** 3 <= 2 ** 19)
        assert rows == ((r + 1) ** 3 if dense else 2 ** 19)
    assert [lvl[1] for lvl in layout[1:]] == [o + n for _, o, n, _ in layout[:-1]]
    assert hash_level_layout(1, 8, 4, 4) == [(4, 0, 8, False)]


def test_forward_matches_python_twin_float64():
    enc = _small()
    gen = torch.Generator().manual_seed(1)
    pts = torch.rand(9, 3, generator=gen, dtype=torch.float64) * 2 - 1
    pts[0] = torch.tensor([1.0, -1.0, 1.0])  # corners of the box: the last cell's upper face
    unit = (pts + 1) / 2
    ref = _reference_encode(unit, enc.table.detach(), enc.layout)
    torch.testing.assert_close(enc(pts), ref, rtol=0, atol=1e-12)
    assert [lvl[3] for lvl in enc.layout] == [True, False, False]


def test_gradcheck_table_and_points_float64():
    enc = _small(sparse=False)
    gen = torch.Generator().manual_seed(2)
    unit = torch.rand(6, 3, generator=gen, dtype=torch.float64).requires_grad_()  # inside cells w.p. 1
    table = enc.table.detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda u, t: hash_grid_encode(u, t, enc.layout, sparse=False), (unit, table))


def test_sparse_gradient_equals_dense_and_holds_only_touched_rows():
    gen = torch.Generator().manual_seed(3)
    unit = torch.rand(5, 3, generator=gen, dtype=torch.float64)
    enc = _small()
    cot = torch.randn(5, enc.output_dim, generator=gen, dtype=torch.float64)
    grads = {}
    for sparse in (True, False):
        table = enc.table.detach().clone().requires_grad_()
        (hash_grid_encode(unit, table, enc.layout, sparse) * cot).sum().backward()
        grads[sparse] = table.grad
    assert grads[True].is_sparse and not grads[False].is_sparse
    torch.testing.assert_close(grads[True].to_dense(), grads[False], rtol=0, atol=1e-14)
    # the touched rows, from the Python twin's indexing: a row is touched iff its one-hot table changes output
    touched = set()
    for row in range(enc.table.shape[0]):
        basis = torch.zeros_like(enc.table.detach())
        basis[row, 0] = 1.0
        if _reference_encode(unit, basis, enc.layout).abs().sum() > 0:
            touched.add(row)
    rows = grads[True].coalesce().indices()[0].tolist()
    assert set(rows) == touched and len(rows) == len(touched)
    assert len(touched) < enc.table.shape[0]


def test_finite_difference_of_one_hashed_table_entry():
    enc = _small(sparse=True)
    gen = torch.Generator().manual_seed(4)
    pts = torch.rand(40, 3, generator=gen, dtype=torch.float64) * 2 - 1
    weights = torch.randn(40, enc.output_dim, generator=gen, dtype=torch.float64)

    def loss(table):
        enc.table.data.copy_(table)
        return (torch.tanh(enc(pts)) * weights).sum()  # a non-linear scalar of the features

    table0 = enc.table.detach().clone()
    enc.table.grad = None
    loss(table0).backward()
    grad = enc.table.grad.to_dense()
    offset = enc.layout[2][1]  # finest level: hashed
    row = offset + int(grad[offset:, 1].abs().argmax())
    h = 1e-6
    plus, minus = table0.clone(), table0.clone()
    plus[row, 1] += h
    minus[row, 1] -= h
    with torch.no_grad():
        fd = (loss(plus) - loss(minus)) / (2 * h)
    assert grad[row, 1].abs() > 1e-3
    assert fd.item() == pytest.approx(grad[row, 1].item(), rel=1e-7, abs=1e-9)


def test_dense_coarse_level_equals_dense_grid():
    enc = _small()
    res, offset, rows, dense = enc.layout[0]
    assert dense
    side = res + 1
    grid = enc.table.detach()[offset:offset + rows].reshape(side, side, side, 2)  # [z, y, x, F]
    gen = torch.Generator().manual_seed(5)
    pts = torch.rand(50, 3, generator=gen, dtype=torch.float64) * 2 - 1
    torch.testing.assert_close(enc(pts)[:, :2], trilinear_interpolate(grid, pts, BOX), rtol=0, atol=1e-14)


def test_sparse_adam_updates_only_touched_rows():
    enc = _small(dtype=torch.float32)
    opt = torch.optim.SparseAdam([enc.table], lr=1e-2)
    before = enc.table.detach().clone()
    pts = torch.rand(4, 3, generator=torch.Generator().manual_seed(6)) * 2 - 1
    enc(pts).square().sum().backward()
    touched = enc.table.grad.coalesce().indices()[0]
    opt.step()
    mask = torch.zeros(enc.table.shape[0], dtype=torch.bool)
    mask[touched] = True
    after = enc.table.detach()
    assert torch.equal(after[~mask], before[~mask])  # bit-identical
    assert (after[mask] != before[mask]).any(dim=1).all()
    state = opt.state[enc.table]
    assert state["exp_avg"][~mask].abs().sum() == 0  # lazy moments: untouched rows never updated


def test_default_config_float32_shapes():
    enc = HashGridEncoding(BOX, num_levels=4, log2_table_size=12, max_resolution=64)
    out = enc(torch.zeros(2, 5, 3))
    assert out.shape == (2, 5, 8) and out.dtype == torch.float32
    assert enc.table.abs().max() <= 1e-4


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_levels=0), "num_levels"),
    (dict(log2_table_size=0), "log2_table_size"),
    (dict(log2_table_size=31), "log2_table_size"),
    (dict(base_resolution=32, max_resolution=16), "max_resolution"),
    (dict(base_resolution=0), "base_resolution"),
    (dict(features_per_level=0), "features_per_level"),
    (dict(num_levels=2.5), "num_levels"),
])
def test_bad_settings_name_argument(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        HashGridEncoding(BOX, **kwargs)


def test_bad_points_name_argument():
    enc = _small(dtype=torch.float32)
    with pytest.raises(ValueError, match="points"):
        enc(torch.tensor([[0.0, float("nan"), 0.0]]))
    with pytest.raises(ValueError, match="points"):
        enc(torch.zeros(3, 2))
    with pytest.raises(TypeError, match="points"):
        enc(torch.zeros(3, 3, dtype=torch.long))


def _both_implementations(enc, unit, cot, device="cpu"):
    results = {}
    for impl in ("warp", "torch"):
        table = enc.table.detach().to(device).clone().requires_grad_()
        u = unit.to(device).clone().requires_grad_()
        out = hash_grid_encode(u, table, enc.layout, True, impl)
        (out * cot.to(device)).sum().backward()
        results[impl] = (out.cpu(), table.grad.coalesce().cpu(), u.grad.cpu())
    return results


def test_warp_kernels_match_pytorch_and_float64_twin():
    enc = _small(dtype=torch.float32)
    gen = torch.Generator().manual_seed(8)
    unit = torch.rand(300, 3, generator=gen)
    unit[0] = torch.tensor([1.0, 0.0, 1.0])  # the last cell's upper faces
    cot = torch.randn(300, enc.output_dim, generator=gen)
    r = _both_implementations(enc, unit, cot)
    torch.testing.assert_close(r["warp"][0], r["torch"][0], rtol=0, atol=1e-6)
    assert torch.equal(r["warp"][1].indices(), r["torch"][1].indices())  # same touched rows
    torch.testing.assert_close(r["warp"][1].values(), r["torch"][1].values(), rtol=1e-5, atol=1e-5)
    # against the float64 twin: float32 rounding only (points scaled by up to 12 cells per unit)
    t64 = enc.table.detach().double().requires_grad_()
    u64 = unit.double().requires_grad_()
    out64 = hash_grid_encode(u64, t64, enc.layout, True, "torch")
    (out64 * cot.double()).sum().backward()
    torch.testing.assert_close(r["warp"][0].double(), out64, rtol=0, atol=1e-5)
    torch.testing.assert_close(r["warp"][2].double(), u64.grad, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(r["warp"][1].to_dense().double(), t64.grad.to_dense(), rtol=0, atol=1e-5)


def test_implementation_choice_and_errors():
    enc = _small(dtype=torch.float32)
    with pytest.raises(TypeError, match="implementation"):
        hash_grid_encode(torch.rand(3, 3, dtype=torch.float64), enc.table.detach().double(), enc.layout,
                         implementation="warp")
    with pytest.raises(ValueError, match="implementation"):
        HashGridEncoding(BOX, implementation="cuda")
    table = enc.table.detach()
    with pytest.raises(ValueError, match="layout"):
        hash_grid_encode(torch.rand(3, 3), table[:-1], enc.layout)
    with pytest.raises(ValueError, match="unit"):
        hash_grid_encode(torch.rand(3, 2), table, enc.layout)
    with pytest.raises(ValueError, match="unit"):
        hash_grid_encode(torch.full((3, 3), float("nan")), table, enc.layout)
    with pytest.raises(TypeError, match="dtype"):
        hash_grid_encode(torch.rand(3, 3, dtype=torch.float64), table, enc.layout)


@pytest.mark.cuda
def test_warp_kernels_on_cuda_match_pytorch():
    enc = _small(dtype=torch.float32)
    gen = torch.Generator().manual_seed(9)
    unit = torch.rand(1000, 3, generator=gen)
    cot = torch.randn(1000, enc.output_dim, generator=gen)
    r = _both_implementations(enc, unit, cot, device="cuda")
    torch.testing.assert_close(r["warp"][0], r["torch"][0], rtol=0, atol=1e-6)
    assert torch.equal(r["warp"][1].indices(), r["torch"][1].indices())
    torch.testing.assert_close(r["warp"][1].values(), r["torch"][1].values(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(r["warp"][2], r["torch"][2], rtol=1e-4, atol=1e-4)


def test_table_size_not_a_power_of_two_matches_twin():
    layout = hash_level_layout(2, 100, 3, 9)  # 64 dense rows, then 100 hashed rows (mod 100)
    assert [lvl[3] for lvl in layout] == [True, False]
    gen = torch.Generator().manual_seed(10)
    table = torch.randn(164, 3, generator=gen, dtype=torch.float64)
    unit = torch.rand(20, 3, generator=gen, dtype=torch.float64)
    ref = _reference_encode(unit, table, layout)
    torch.testing.assert_close(hash_grid_encode(unit, table, layout), ref, rtol=0, atol=1e-12)
    out32 = hash_grid_encode(unit.float(), table.float(), layout, implementation="warp")
    torch.testing.assert_close(out32.double(), ref, rtol=0, atol=1e-5)
