"""The soft rasterizer's candidate search with early-out (``find_candidates``) selects exactly what the plain
per-tile scan (``find_candidates_reference``) selects: the same faces in the same order, ties by face id."""

from __future__ import annotations

import math

import pytest
import torch

from lumigrad.kernels import soft_raster
from lumigrad.kernels.soft_raster import find_candidates, find_candidates_reference, sort_tile_lists


def _random_scene(seed: int, views: int, faces: int, width: int, height: int, affine: bool):
    """Projected vertices ``[N, V, 3]`` (u, v, z) of random triangles of mixed sizes, with depth ties built in:
    repeated faces (the same corners: equal depths everywhere), a shared flat layer, slivers and zero-area faces."""
    g = torch.Generator().manual_seed(seed)
    V = 3 * faces
    # faces only on the left 60%: the right of the image has pixels without candidates
    centre = torch.rand(views, faces, 1, 2, generator=g) * torch.tensor([0.6 * width, height + 8.0]) - 4.0
    size = torch.rand(views, faces, 1, 1, generator=g) ** 3 * 0.3 * min(width, height) + 0.2
    uv = centre + (torch.rand(views, faces, 3, 2, generator=g) - 0.5) * size
    z = 1.0 + 4.0 * torch.rand(views, faces, 3, generator=g)
    if affine:
        z = z - 2.5  # orthographic depths may be negative
    flat = torch.rand(views, faces, generator=g) < 0.3
    z = torch.where(flat[..., None], torch.full_like(z, 2.0), z)  # one flat layer: equal depths across faces
    sliver = torch.rand(views, faces, generator=g) < 0.1
    uv[..., 2, :] = torch.where(sliver[..., None], uv[..., 0, :] + 1e-9 * (uv[..., 1, :] - uv[..., 0, :]),
                                uv[..., 2, :])
    zero = torch.rand(views, faces, generator=g) < 0.05
    uv[..., 1, :] = torch.where(zero[..., None], uv[..., 0, :], uv[..., 1, :])
    proj = torch.cat([uv, z[..., None]], -1).reshape(views, V, 3).double().contiguous()
    tri = torch.arange(V, dtype=torch.int32).reshape(faces, 3)
    dup = torch.randint(0, faces, (faces // 4,), generator=g)
    tri[faces - faces // 4:] = tri[dup]  # repeated faces: exact depth ties, decided by face id
    skip = (torch.rand(views * faces, generator=g) < 0.05).to(torch.int8)
    return proj, tri.contiguous(), skip


@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("seed, views, faces, k, far, tile, span", [
    (0, 1, 300, 16, 1e4, 8, None),
    (1, 2, 500, 4, 3.0, 8, 1),
    (2, 1, 800, 1, 4.5, 4, None),
    (3, 2, 200, 7, 1e4, 16, 7),
    (4, 1, 1000, 3, 1e4, 5, None),
    (5, 2, 400, 5, 1e4, 8, None),
])
def test_early_out_search_selects_what_the_plain_scan_selects(affine, seed, views, faces, k, far, tile, span):
    """``span``: pixels per work item (None: the device's default; 1 is the CUDA layout)."""
    width, height = 45, 37
    proj, tri, skip = _random_scene(seed, views, faces, width, height, affine)
    cutoff = math.sqrt(2.0 * math.log(1e3))
    want = find_candidates_reference(proj, tri, skip, width, height, cutoff, far, k, affine_depth=affine)
    got = find_candidates(proj, tri, skip, width, height, cutoff, far, k, affine_depth=affine, tile=tile,
                          pixels_per_item=span)
    full = (want >= 0).all(-1)
    assert bool(full.any()) and bool((~full).any())  # full pixels (early-out) and padded ones
    assert torch.equal(got, want)


def test_tile_scan_in_small_batches(monkeypatch):
    """The CPU tile scan runs its tiles in launches of ``SCAN_TILES_PER_LAUNCH`` (its scratch is per batch): batches
    that do not divide the tile count, over two views, select what the plain scan selects."""
    monkeypatch.setattr(soft_raster, "SCAN_TILES_PER_LAUNCH", 7)
    width, height = 45, 37
    proj, tri, skip = _random_scene(6, 2, 500, width, height, False)
    cutoff = math.sqrt(2.0 * math.log(1e3))
    want = find_candidates_reference(proj, tri, skip, width, height, cutoff, 1e4, 6)
    got = find_candidates(proj, tri, skip, width, height, cutoff, 1e4, 6)
    assert bool((want >= 0).all(-1).any())
    assert torch.equal(got, want)


@pytest.mark.parametrize("affine", [False, True])
def test_tile_walk_that_stops_when_every_pixel_is_full(affine):
    """Large triangles stacked over the whole image at random depths: every pixel fills its K slots within the first
    faces of its tile's list, so the CPU tile walk stops early (every pixel full, the next bound beyond all K-th
    depths); it still selects what the plain scan selects."""
    g = torch.Generator().manual_seed(7)
    faces, width, height = 120, 40, 36
    corners = torch.tensor([[-30.0, -30.0], [120.0, -10.0], [-10.0, 110.0]])
    uv = corners + 8.0 * torch.randn(faces, 3, 2, generator=g)
    z = 1.0 + 3.0 * torch.rand(faces, 1, generator=g) + 0.2 * torch.rand(faces, 3, generator=g)
    proj = torch.cat([uv, z[..., None]], -1).reshape(1, 3 * faces, 3).double().contiguous()
    tri = torch.arange(3 * faces, dtype=torch.int32).reshape(faces, 3)
    skip = torch.zeros(faces, dtype=torch.int8)
    want = find_candidates_reference(proj, tri, skip, width, height, 2.0, 1e4, 3, affine_depth=affine)
    got = find_candidates(proj, tri, skip, width, height, 2.0, 1e4, 3, affine_depth=affine)
    assert bool((want >= 0).all())
    assert torch.equal(got, want)


def test_ties_go_to_the_lower_face_id():
    """Ten copies of one triangle: equal depths at every pixel, so the K kept are the K lowest face ids."""
    proj = torch.tensor([[[2.0, 2.0, 3.0], [30.0, 4.0, 3.0], [6.0, 25.0, 3.0]]], dtype=torch.float64)
    tri = torch.tensor([[0, 1, 2]] * 10, dtype=torch.int32)
    skip = torch.zeros(10, dtype=torch.int8)
    skip[2] = 1
    got = find_candidates(proj, tri, skip, 32, 32, 2.0, 100.0, 4)
    assert torch.equal(got[0, 10, 10], torch.tensor([0, 1, 3, 4], dtype=torch.int32))
    assert torch.equal(got, find_candidates_reference(proj, tri, skip, 32, 32, 2.0, 100.0, 4))
    assert bool((got[0, 31, 31] == -1).all())


def test_tile_lists_filled_in_any_order_are_sorted_by_rank():
    """The CUDA path fills the tile lists with atomics (any order) and sorts each list by rank after."""
    g = torch.Generator().manual_seed(5)
    counts = torch.tensor([3, 0, 5, 1, 4], dtype=torch.int32)
    ranks = torch.cat([torch.randperm(50, generator=g)[:int(c)].sort().values for c in counts]).to(torch.int32)
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), counts.long().cumsum(0)])
    shuffled = torch.cat([ranks[a:b][torch.randperm(int(b - a), generator=g)]
                          for a, b in zip(offsets[:-1], offsets[1:])])
    payload = shuffled.double() * 0.5
    got_rank, got_payload = sort_tile_lists(counts, shuffled, 50, shuffled, payload)
    assert torch.equal(got_rank, ranks)
    assert torch.equal(got_payload, ranks.double() * 0.5)
