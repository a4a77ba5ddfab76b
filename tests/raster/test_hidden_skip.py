"""raster_tiles' hidden-triangle skip: the G-buffer is bit for bit the one of drawing every triangle in list order.

``raster_tiles`` draws back-facing triangles in a second pass and skips those whose pixels already hold nearer
depths (``kernels.raster_kernels._depth_floor``); ``visibility.SKIP_HIDDEN_TRIANGLES = False`` is its one-pass twin.
"""

import pytest
import torch

import lumigrad as lg
from lumigrad.cameras.projection import K_orthographic
from lumigrad.kernels import _runtime, visibility

from ..conftest import camera_at, uv_sphere


def _both(monkeypatch, render):
    """``render()`` with the skip and with its one-pass twin."""
    skipped = render()
    monkeypatch.setattr(visibility, "SKIP_HIDDEN_TRIANGLES", False)
    drawn = render()
    monkeypatch.setattr(visibility, "SKIP_HIDDEN_TRIANGLES", True)
    return skipped, drawn


def _assert_same_bits(skipped, drawn, min_covered):
    assert int((drawn.face_ids >= 0).sum()) >= min_covered
    for name in ("face_ids", "zbuf", "bary"):
        assert torch.equal(getattr(skipped, name), getattr(drawn, name)), name


def _spot_cameras(spot):
    return {
        "front": camera_at((0.9, 0.4, 0.9), (0.0, 0.1, 0.0), size=(96, 80), fov_y=1.2),
        "near_clipped": camera_at((0.9, 0.4, 0.9), (0.0, 0.1, 0.0), size=(96, 80), fov_y=1.2, near=1.0),
        "side": camera_at((-1.8, 0.2, 0.3), (0.0, 0.0, 0.0), size=(64, 72), fov_y=0.9),
        "orthographic": camera_at((0.5, 0.6, 2.0), (0.0, 0.1, 0.0), size=(80, 64), projection="orthographic",
                                  K=K_orthographic(1.6, 80, 64, dtype=torch.float64)),
    }


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("cull", ["none", "back"])
@pytest.mark.parametrize("view", ["front", "near_clipped", "side", "orthographic"])
def test_spot_gbuffer_is_the_one_pass_bits(monkeypatch, spot, view, cull, workers):
    cam = _spot_cameras(spot)[view]
    monkeypatch.setattr(_runtime, "num_workers", lambda: workers)
    skipped, drawn = _both(monkeypatch, lambda: lg.rasterize(spot.verts.float(), spot.faces, cam, cull=cull))
    _assert_same_bits(skipped, drawn, min_covered=500)


@pytest.mark.parametrize("flipped_first", [False, True])
def test_coplanar_duplicates_keep_the_face_index_tie_rule(monkeypatch, spot, flipped_first):
    """Every face twice, once wound the other way (a back face at exactly the front face's depth): the skip must
    leave depth ties to the face index, whichever copy has the lower index."""
    faces = spot.faces
    both = torch.cat([faces.flip(-1), faces]) if flipped_first else torch.cat([faces, faces.flip(-1)])
    cam = _spot_cameras(spot)["front"]
    skipped, drawn = _both(monkeypatch, lambda: lg.rasterize(spot.verts.double(), both, cam))
    _assert_same_bits(skipped, drawn, min_covered=1000)
    # Ties go to the lower index, the first copy (the copies' depths differ only where the permuted sum rounds
    # differently), whichever orientation it has: so the skip faced exact ties at most pixels.
    ids = drawn.face_ids[drawn.face_ids >= 0]
    assert float((ids < faces.shape[0]).double().mean()) > 0.9


def test_depth_peeling_layers_are_the_one_pass_bits(monkeypatch, spot):
    cam = _spot_cameras(spot)["side"]
    skipped, drawn = _both(monkeypatch, lambda: lg.depth_peel(spot.verts.float(), spot.faces, cam, 3))
    assert int((drawn[1].face_ids >= 0).sum()) > 100  # back faces lie behind the front: the skip has work
    for a, b in zip(skipped, drawn):
        _assert_same_bits(a, b, min_covered=0)


def test_inside_a_sphere_and_a_triangle_soup(monkeypatch):
    """Seen from inside, every face of a sphere is back-facing (all drawn in the second pass); a random soup of
    overlapping, crossing and sliver triangles of both orientations."""
    verts, faces = uv_sphere(10, 16)
    cam = camera_at((0.1, 0.2, -0.3), (0.0, 0.0, 1.0), size=(48, 40), fov_y=1.5)
    skipped, drawn = _both(monkeypatch, lambda: lg.rasterize(verts, faces, cam))
    _assert_same_bits(skipped, drawn, min_covered=48 * 40)

    g = torch.Generator().manual_seed(3)
    soup = torch.rand(240, 3, generator=g, dtype=torch.float64) * torch.tensor([2.0, 2.0, 1.0], dtype=torch.float64)
    soup = soup - torch.tensor([1.0, 1.0, 0.5], dtype=torch.float64)
    soup[200:] = soup[200:].round(decimals=1)  # equal depths and shared edges among the last triangles
    tri = torch.randint(0, 240, (400, 3), generator=g)
    tri[300:] = torch.randint(200, 240, (100, 3), generator=g)
    cam = camera_at((0.0, 0.0, -3.0), size=(56, 48), fov_y=0.9)
    skipped, drawn = _both(monkeypatch, lambda: lg.rasterize(soup, tri, cam))
    _assert_same_bits(skipped, drawn, min_covered=500)
