"""OccupancyGrid: a ball's cells marked, empty cells skipped, schedule, cascade, decay, reproducibility, bad input."""

import itertools

import pytest
import torch

from lumigrad.volume.occupancy import OccupancyGrid

BOX = [-1.0, -1.0, -1.0, 1.0, 1.0, 1.0]
RADIUS = 0.5


def ball(p):
    return 10.0 * (p.norm(dim=-1) < RADIUS).float()


def _cell_classes(R, half=1.0):
    """For every cell of an R^3 grid over [-half, half]^3 ([z, y, x] order): centre, fully inside, fully outside."""
    edges = torch.linspace(-half, half, R + 1, dtype=torch.float64)
    lo, hi = edges[:-1], edges[1:]
    centres, inside, outside = [], [], []
    for k, j, i in itertools.product(range(R), range(R), range(R)):
        box_lo = torch.stack([lo[i], lo[j], lo[k]])
        box_hi = torch.stack([hi[i], hi[j], hi[k]])
        far = torch.maximum(box_lo.abs(), box_hi.abs()).norm()
        near = torch.clamp(torch.zeros(3, dtype=torch.float64), box_lo, box_hi).norm()
        centres.append((box_lo + box_hi) / 2)
        inside.append(bool(far < RADIUS))
        outside.append(bool(near > RADIUS))
    return torch.stack(centres).float(), torch.tensor(inside), torch.tensor(outside)


def test_marks_a_balls_cells_and_skips_empty_ones():
    R = 12
    grid = OccupancyGrid(BOX, resolution=R, update_every=1, warmup_steps=100)
    assert grid.fraction_occupied == 1.0  # untrained: nothing is skipped
    for step in range(8):
        assert grid.update(step, ball)
    centres, inside, outside = _cell_classes(R)
    occ = grid.occupied(centres)
    assert inside.sum() > 0 and outside.sum() > 0
    assert occ[inside].all()  # every cell wholly inside the ball
    assert not occ[outside].any()  # no cell wholly outside it
    assert inside.float().mean() <= grid.fraction_occupied <= (~outside).float().mean()
    # points: kept if well inside the ball, dropped if well outside it (margin: one cell diagonal, twice)
    pts = torch.rand(2000, 3, generator=torch.Generator().manual_seed(0)) * 2 - 1
    kept = grid.occupied(pts)
    assert kept[pts.norm(dim=-1) < RADIUS - 2 * 3 ** 0.5 / R].all()
    assert not kept[pts.norm(dim=-1) > RADIUS + 2 * 3 ** 0.5 / R].any()


def test_empty_field_occupies_nothing_and_points_outside_are_empty():
    grid = OccupancyGrid(BOX, resolution=8, update_every=1)
    grid.update(0, lambda p: torch.zeros(p.shape[0]))
    assert grid.fraction_occupied == 0.0
    full = OccupancyGrid(BOX, resolution=8, update_every=1)
    full.update(0, lambda p: torch.full((p.shape[0],), 5.0))
    assert full.fraction_occupied == 1.0
    assert full.occupied(torch.tensor([[0.0, 0.0, 0.0], [1.5, 0.0, 0.0]])).tolist() == [True, False]


def test_schedule_warmup_then_half_the_cells():
    R = 8
    calls = []

    def counting(p):
        calls.append(p.shape[0])
        return ball(p)

    grid = OccupancyGrid(BOX, resolution=R, update_every=4, warmup_steps=8)
    updated = [grid.update(step, counting) for step in range(13)]
    assert updated == [s % 4 == 0 for s in range(13)]
    assert calls == [R ** 3, R ** 3, R ** 3 // 4 + R ** 3 // 4, R ** 3 // 4 + R ** 3 // 4]  # steps 0, 4 | 8, 12
    assert int(grid.num_updates) == 4


def test_decayed_maximum_estimate():
    grid = OccupancyGrid(BOX, resolution=4, update_every=1, ema_decay=0.5, warmup_steps=10)
    grid.update(0, lambda p: torch.full((p.shape[0],), 8.0))
    grid.update(1, lambda p: torch.zeros(p.shape[0]))
    grid.update(2, lambda p: torch.full((p.shape[0],), 3.0))
    assert torch.equal(grid.density, torch.full_like(grid.density, 3.0))  # max(8 * 0.25, 3)
    grid.update(3, lambda p: torch.full((p.shape[0],), 1.0))
    assert torch.equal(grid.density, torch.full_like(grid.density, 1.5))  # max(3 * 0.5, 1)


def test_cascade_levels_double_the_extent():
    big = lambda p: 10.0 * (p.norm(dim=-1) < 2.5).float()
    grid = OccupancyGrid(BOX, resolution=8, levels=3, update_every=1)
    for step in range(4):
        grid.update(step, big)
    fractions = grid.fraction_occupied_per_level()
    assert fractions[0] == 1.0 and 0 < fractions[2] < fractions[1] < 1.0
    pts = torch.tensor([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [3.9, 3.9, 3.9], [9.0, 0.0, 0.0]])
    assert grid.occupied(pts).tolist() == [True, True, False, False]


def test_generator_makes_updates_reproducible_and_state_dict_round_trips():
    grids = []
    for _ in range(2):
        g = OccupancyGrid(BOX, resolution=8, update_every=1, warmup_steps=1)
        gen = torch.Generator().manual_seed(7)
        for step in range(4):
            g.update(step, ball, generator=gen)
        grids.append(g)
    assert torch.equal(grids[0].density, grids[1].density) and torch.equal(grids[0].binary, grids[1].binary)
    fresh = OccupancyGrid(BOX, resolution=8)
    fresh.load_state_dict(grids[0].state_dict())
    assert torch.equal(fresh.binary, grids[0].binary) and int(fresh.num_updates) == 4


@pytest.mark.parametrize("density_fn, match", [
    (lambda p: torch.full((p.shape[0],), float("nan")), "NaN"),
    (lambda p: torch.zeros(p.shape[0], 1), "density_fn must return"),
    (lambda p: -torch.ones(p.shape[0]), "negative"),
    ("not callable", "density_fn"),
])
def test_bad_density_fn(density_fn, match):
    grid = OccupancyGrid(BOX, resolution=4)
    with pytest.raises((ValueError, TypeError), match=match):
        grid.update(0, density_fn)


@pytest.mark.parametrize("call, match", [
    (lambda: OccupancyGrid(BOX, resolution=0), "resolution"),
    (lambda: OccupancyGrid(BOX, levels=0), "levels"),
    (lambda: OccupancyGrid(BOX, ema_decay=1.5), "ema_decay"),
    (lambda: OccupancyGrid(BOX, threshold=-1.0), "threshold"),
    (lambda: OccupancyGrid(BOX, warmup_steps=-1), "warmup_steps"),
    (lambda: OccupancyGrid([1, 1, 1, 0, 0, 0]), "aabb"),
    (lambda: OccupancyGrid(BOX, resolution=4).update(-1, ball), "step"),
    (lambda: OccupancyGrid(BOX, resolution=4).occupied(torch.tensor([[float("nan"), 0.0, 0.0]])), "points"),
    (lambda: OccupancyGrid(BOX, resolution=4).occupied(torch.zeros(3, 4)), "points"),
])
def test_bad_input_names_argument(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
