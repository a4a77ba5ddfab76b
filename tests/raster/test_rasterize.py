"""rasterize: kernel vs the brute-force float64 twin, clipping, culling, watertightness, peeling, gradients."""

import math

import pytest
import torch

import lumigrad as lg
from lumigrad.raster.reference import rasterize_ref

from ..conftest import camera_at, save_failure_images, uv_sphere


def _outward_normals_ok(verts, faces):
    v0, v1, v2 = verts[faces].unbind(1)
    n = torch.linalg.cross(v1 - v0, v2 - v0)
    return bool(((n * (v0 + v1 + v2)).sum(-1) > 0).all())


def _two_overlapping_triangles(dtype=torch.float64):
    verts = torch.tensor([[-1.0, -1.0, 0.0], [1.0, -1.0, 0.0], [0.0, 1.0, 0.0],
                          [-0.5, -0.2, -0.5], [1.2, 0.0, -0.5], [0.2, 1.3, -0.5]], dtype=dtype)
    faces = torch.tensor([[0, 2, 1], [3, 5, 4]])
    return verts, faces


def _compare_ids(kernel, ref, name, max_mismatch=0):
    bad = (kernel.face_ids != ref.face_ids)
    if int(bad.sum()) > max_mismatch:
        save_failure_images(name, kernel=kernel.face_ids.double(), ref=ref.face_ids.double(), diff=bad.double())
    assert int(bad.sum()) <= max_mismatch, f"{int(bad.sum())} pixels differ from the reference"


def test_sphere_winding_is_outward():
    assert _outward_normals_ok(*uv_sphere())


@pytest.mark.parametrize("eye", [(0.3, 0.4, -3.0), (2.5, -1.0, 1.5), (0.0, 3.0, 0.01)])
def test_matches_reference_sphere(eye):
    verts, faces = uv_sphere(10, 16)
    cam = camera_at(eye, size=(40, 30))
    frags = lg.rasterize(verts, faces, cam)
    ref = rasterize_ref(verts, faces, cam)
    # Pixels whose centre lies within float rounding of an edge may differ; there are none in practice.
    _compare_ids(frags, ref, f"rasterize_sphere_{eye}", max_mismatch=1)
    same = (frags.face_ids == ref.face_ids) & (ref.face_ids >= 0)
    torch.testing.assert_close(frags.bary[same], ref.bary[same], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(frags.depth[same], ref.depth[same], rtol=1e-9, atol=1e-9)
    assert torch.allclose(frags.bary.sum(-1)[same], torch.ones(()).double())


def test_overlap_takes_nearest_and_depth_is_camera_z():
    verts, faces = _two_overlapping_triangles()
    cam = camera_at((0.0, 0.0, -3.0), size=(24, 24), fov_y=1.0)
    frags = lg.rasterize(verts, faces, cam)
    _compare_ids(frags, rasterize_ref(verts, faces, cam), "overlap")
    assert (frags.face_ids == 1).any() and (frags.face_ids == 0).any()
    # Face 1 is nearer (z = -0.5 in world, camera at z = -3): its depth is 2.5 everywhere.
    assert torch.allclose(frags.depth[frags.face_ids == 1], torch.tensor(2.5, dtype=torch.float64))


def test_near_plane_clipping_keeps_the_visible_part():
    # A long floor strip from behind the camera to far in front; a naive projection would wrap it around.
    # (Offsets keep pixel centres off the edges, where the twin's strict test and the tie rule differ.)
    verts = torch.tensor([[-1.03, 1.0, -2.0], [0.97, 1.0, -2.0], [0.97, 1.0, 8.1], [-1.03, 1.0, 8.1]],
                         dtype=torch.float64)
    faces = torch.tensor([[0, 2, 1], [0, 3, 2]])
    K = torch.tensor([[20.0, 0, 16], [0, 20.0, 16], [0, 0, 1]], dtype=torch.float64)
    cam = lg.Camera(K=K, world_to_cam=torch.eye(4, dtype=torch.float64), width=32, height=32, near=0.1)
    frags = lg.rasterize(verts, faces, cam)
    ref = rasterize_ref(verts, faces, cam)
    _compare_ids(frags, ref, "clip_floor")
    assert frags.mask[-1, 1:-2].all(), "the floor must reach the bottom row (the clipped part near the camera)"
    assert not frags.mask[:16].any(), "nothing above the horizon"
    assert float(frags.depth[frags.mask].min()) >= 0.1 - 1e-9


@pytest.mark.parametrize("seed", range(4))
def test_random_triangles_crossing_near_plane(seed):
    g = torch.Generator().manual_seed(seed)
    verts = torch.rand(30, 3, generator=g, dtype=torch.float64) * torch.tensor([4.0, 4.0, 3.0]) - \
        torch.tensor([2.0, 2.0, 0.5])
    faces = torch.randint(0, 30, (12, 3), generator=g)
    faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])]
    K = torch.tensor([[15.0, 0.3, 14], [0, 16.0, 12], [0, 0, 1]], dtype=torch.float64)
    cam = lg.Camera(K=K, world_to_cam=torch.eye(4, dtype=torch.float64), width=28, height=24, near=0.3)
    frags = lg.rasterize(verts, faces, cam)
    _compare_ids(frags, rasterize_ref(verts, faces, cam), f"clip_random_{seed}", max_mismatch=2)


def test_back_face_culling():
    verts, faces = uv_sphere(8, 12)
    cam = camera_at((0.0, 0.0, -3.0), size=(24, 24))
    for cull in ("back", "front"):
        frags = lg.rasterize(verts, faces, cam, cull=cull)
        _compare_ids(frags, rasterize_ref(verts, faces, cam, cull=cull), f"cull_{cull}", max_mismatch=1)
    front = lg.rasterize(verts, faces, cam, cull="back")
    none = lg.rasterize(verts, faces, cam)
    assert torch.equal(front.face_ids, none.face_ids)  # a closed convex mesh shows only front faces


def test_watertight_shared_edges():
    # A square of 2 triangles whose diagonal passes exactly through pixel centres: each centre is
    # covered exactly once, so the union covers the square with no holes.
    verts = torch.tensor([[-1.0, -1.0, 0.0], [1.0, -1.0, 0.0], [1.0, 1.0, 0.0], [-1.0, 1.0, 0.0]],
                         dtype=torch.float64)
    faces = torch.tensor([[0, 2, 1], [0, 3, 2]])
    K = torch.tensor([[8.0, 0, 8.0], [0, 8.0, 8.0], [0, 0, 1]], dtype=torch.float64)
    w2c = torch.eye(4, dtype=torch.float64)
    w2c[2, 3] = 1.0
    cam = lg.Camera(K=K, world_to_cam=w2c, width=16, height=16)
    frags = lg.rasterize(verts, faces, cam)
    assert frags.mask.all()
    # Each face alone covers disjoint pixel sets whose union is everything.
    a = lg.rasterize(verts, faces[:1], cam).mask
    b = lg.rasterize(verts, faces[1:], cam).mask
    assert not (a & b).any() and (a | b).all()


def test_closed_mesh_has_no_holes(spot):
    cam = lg.Camera.look_at([2.0, 0.5, 2.0], [0.0, 0.1, 0.0], fov_y=0.7, width=96, height=96)
    frags = lg.rasterize(spot.verts, spot.faces, cam)
    ref = rasterize_ref(spot.verts.double(), spot.faces, cam.to(dtype=torch.float64))
    # Inside the silhouette every pixel is covered (no cracks between faces).
    assert int((ref.mask & ~frags.mask).sum()) <= 2
    assert int((frags.face_ids != ref.face_ids).sum()) <= 0.01 * ref.mask.sum()


def test_batched_views_and_meshes():
    verts, faces = uv_sphere(8, 12)
    eyes = torch.tensor([[0.0, 0.0, -3.0], [3.0, 0.5, 0.0], [0.0, 2.5, 1.0]], dtype=torch.float64)
    cams = lg.Camera.look_at(eyes, torch.zeros(3, 3, dtype=torch.float64), torch.tensor([0.0, 1.0, 0.0]).double(),
                             fov_y=0.9, width=20, height=16)
    frags = lg.rasterize(verts, faces, cams)
    assert frags.face_ids.shape == (3, 16, 20) and frags.bary.shape == (3, 16, 20, 3)
    for k in range(3):
        single = lg.rasterize(verts, faces, cams[k])
        assert torch.equal(frags.face_ids[k], single.face_ids)
        torch.testing.assert_close(frags.bary[k], single.bary)
    # Different meshes per view (batched verts), one shared camera.
    moved = torch.stack([verts, verts + torch.tensor([0.3, 0.0, 0.0], dtype=torch.float64)])
    frags2 = lg.rasterize(moved, faces, cams[0])
    assert frags2.face_ids.shape == (2, 16, 20)
    assert not torch.equal(frags2.face_ids[0], frags2.face_ids[1])


def test_depth_peeling_layers():
    verts, faces = _two_overlapping_triangles()
    cam = camera_at((0.0, 0.0, -3.0), size=(24, 24), fov_y=1.0)
    layers = lg.depth_peel(verts, faces, cam, 3)
    both = (layers[0].face_ids == 1) & (layers[1].face_ids == 0)
    assert both.any(), "where the triangles overlap, layer 1 shows the one behind"
    assert ((layers[1].face_ids >= 0) <= (layers[0].face_ids >= 0)).all()
    assert not layers[2].mask.any(), "two surfaces give at most two layers"
    assert (layers[1].depth[both] > layers[0].depth[both]).all()
    # A closed sphere has exactly two layers wherever it is seen.
    sv, sf = uv_sphere(8, 12)
    sl = lg.depth_peel(sv, sf, camera_at((0.0, 0.0, -3.0), size=(24, 24)), 3)
    assert torch.equal(sl[0].mask, sl[1].mask) and not sl[2].mask.any()


def test_empty_view_is_background():
    verts, faces = uv_sphere(6, 8)
    cam = camera_at((0.0, 0.0, -3.0), target=(0.0, 10.0, -3.0 + 1e-3), size=(8, 8))
    frags = lg.rasterize(verts + torch.tensor([0.0, 0.0, 0.0], dtype=torch.float64), faces, cam)
    assert not frags.mask.any() and frags.bary.abs().sum() == 0


def test_gradcheck_bary_depth_wrt_verts_and_camera():
    verts, faces = _two_overlapping_triangles()
    cam = camera_at((0.2, 0.1, -3.0), size=(7, 6), fov_y=1.0)
    K0, w2c0 = cam.K.clone(), cam.world_to_cam.clone()

    def fn(v, K, w2c):
        c = lg.Camera(K=K, world_to_cam=w2c, width=7, height=6)
        f = lg.rasterize(v, faces, c, return_bary_derivs=True)
        return f.bary, f.depth, f.bary_derivs

    ids = lg.rasterize(verts, faces, cam).face_ids
    assert (ids >= 0).sum() > 10
    torch.autograd.gradcheck(fn, (verts.clone().requires_grad_(), K0.requires_grad_(), w2c0.requires_grad_()),
                             eps=1e-7, atol=1e-6)


def test_bary_derivs_match_principal_point_shift():
    # Shifting cx by +h moves the image content right by h: d bary / du = - d bary / d cx.
    verts, faces = uv_sphere(6, 10)
    cam = camera_at((0.4, 0.3, -3.0), size=(16, 16))
    frags = lg.rasterize(verts, faces, cam, return_bary_derivs=True)
    h = 1e-6
    K = cam.K.clone()
    K[0, 2] += h
    up = lg.rasterize(verts, faces, lg.Camera(K=K, world_to_cam=cam.world_to_cam, width=16, height=16))
    K[0, 2] -= 2 * h
    down = lg.rasterize(verts, faces, lg.Camera(K=K, world_to_cam=cam.world_to_cam, width=16, height=16))
    same = (up.face_ids == down.face_ids) & (up.face_ids == frags.face_ids) & frags.mask
    fd = -(up.bary - down.bary) / (2 * h)
    torch.testing.assert_close(frags.bary_derivs[..., 0][same], fd[same], rtol=1e-5, atol=1e-5)


def test_degenerate_faces_give_zero_gradient_not_nan():
    verts = torch.tensor([[-1.0, -1.0, 0.0], [1.0, -1.0, 0.0], [0.0, 1.0, 0.0], [0.5, 0.5, 0.0]],
                         dtype=torch.float64, requires_grad=True)
    faces = torch.tensor([[0, 2, 1], [0, 1, 1], [3, 3, 3]])  # two zero-area faces
    cam = camera_at((0.0, 0.0, -3.0), size=(12, 12))
    frags = lg.rasterize(verts, faces, cam)
    assert set(frags.face_ids.unique().tolist()) <= {-1, 0}
    (frags.bary.sum() + frags.depth.sum()).backward()
    assert torch.isfinite(verts.grad).all()
    assert verts.grad[3].abs().sum() == 0


def test_float32_spot_matches_float64(spot):
    cam = lg.Camera.look_at([2.0, 0.5, 2.0], [0.0, 0.1, 0.0], fov_y=0.7, width=64, height=64)
    f32 = lg.rasterize(spot.verts, spot.faces, cam)
    f64 = lg.rasterize(spot.verts.double(), spot.faces, cam.to(dtype=torch.float64))
    assert int((f32.face_ids != f64.face_ids).sum()) <= 3
    same = (f32.face_ids == f64.face_ids) & f32.mask
    assert float((f32.depth - f64.depth)[same].abs().max()) < 1e-4
    assert math.isclose(float(f32.mask.float().mean()), float(f64.mask.float().mean()), abs_tol=1e-3)


@pytest.mark.parametrize("workers", [1, 2])
def test_recorded_launches_give_the_bits_of_wp_launch(monkeypatch, workers):
    """Kernels replayed from recorded launches (the default) and launched through ``wp.launch`` give the same
    G-buffer and gradients, bit for bit, in one range or split over threads (near-plane clipping included)."""
    from lumigrad.kernels import _runtime

    mesh = lg.data.load_spot()
    cam = lg.Camera.look_at(eye=[0.9, 0.4, 0.9], target=[0.0, 0.1, 0.0], fov_y=1.2, width=96, height=80, near=1.0)
    monkeypatch.setattr(_runtime, "num_workers", lambda: workers)

    def run():
        verts = mesh.verts.detach().clone().requires_grad_(True)
        frags = lg.rasterize(verts, mesh.faces, cam, return_bary_derivs=True)
        uv, duv = lg.interpolate(mesh.uv, frags, mesh.uv_faces, return_derivatives=True)
        loss = (frags.bary * torch.linspace(0.5, 1.5, 3)).sum() + frags.depth.sum() + duv.sum() + uv.sum()
        loss.backward()
        return frags.face_ids, frags.bary, frags.depth, frags.bary_derivs, uv, verts.grad

    recorded = run()
    monkeypatch.setattr(_runtime, "RECORDED_LAUNCHES", False)
    unrecorded = run()
    assert (recorded[0] >= 0).sum() > 1000
    for a, b in zip(recorded, unrecorded):
        assert torch.equal(a, b)


def test_fixed_camera_inverse_follows_K_in_place_and_gradients():
    """``K^-1`` kept per version of a fixed camera's ``K``: an in-place change of ``K`` is seen at once (the bits
    of a fresh camera), and a ``K`` that requires grad still receives its gradient."""
    verts, faces = uv_sphere(6, 10)
    cam = camera_at((0.4, 0.3, -3.0), size=(16, 12))
    before = lg.rasterize(verts, faces, cam, return_bary_derivs=True)
    assert torch.equal(lg.rasterize(verts, faces, cam, return_bary_derivs=True).bary, before.bary)
    with torch.no_grad():
        cam.K[0, 0] *= 1.25
        cam.K[1, 2] += 0.5
    after = lg.rasterize(verts, faces, cam, return_bary_derivs=True)
    fresh = lg.rasterize(verts, faces, lg.Camera(K=cam.K.clone(), world_to_cam=cam.world_to_cam, width=16,
                                                 height=12), return_bary_derivs=True)
    assert not torch.equal(after.face_ids, before.face_ids)
    for a, b in ((after.face_ids, fresh.face_ids), (after.bary, fresh.bary), (after.depth, fresh.depth),
                 (after.bary_derivs, fresh.bary_derivs)):
        assert torch.equal(a, b)
    K = cam.K.clone().requires_grad_(True)
    graded = lg.Camera(K=K, world_to_cam=cam.world_to_cam, width=16, height=12)
    (lg.rasterize(verts, faces, graded).bary[..., 1].sum()).backward()
    assert K.grad is not None and K.grad[0, 0].abs() > 0
