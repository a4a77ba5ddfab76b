"""interpolate: kernel vs the float64 loop twin, gradients, batching, separate uv faces, screen-space derivatives."""

import pytest
import torch

import lumigrad as lg
from lumigrad.raster.fragments import Fragments
from lumigrad.raster.reference import interpolate_ref

from ..conftest import camera_at, cosine, save_failure_images, uv_sphere

DT = torch.float64


def _scene(size=(16, 12), eye=(0.4, 0.3, -3.0), n_lat=6, n_lon=10):
    verts, faces = uv_sphere(n_lat, n_lon)
    cam = camera_at(eye, size=size)
    return verts, faces, cam


def _attrs(n, c, seed=0):
    return torch.randn(n, c, generator=torch.Generator().manual_seed(seed), dtype=DT)


def test_docstring_example_by_hand():
    # One covered pixel of face 0 with barycentrics (0.2, 0.3, 0.5): 0.2 * 0 + 0.3 * 1 + 0.5 * 2 = 1.3.
    frags = Fragments(face_ids=torch.tensor([[0, -1]], dtype=torch.int32), covered=torch.tensor([0]),
                      bary_covered=torch.tensor([[0.2, 0.3, 0.5]], dtype=DT), depth_covered=torch.tensor([1.0], dtype=DT))
    attrs = torch.tensor([[0.0, 10.0], [1.0, 20.0], [2.0, 40.0]], dtype=DT)
    out = lg.interpolate(attrs, frags, torch.tensor([[0, 1, 2]]))
    assert out.shape == (1, 2, 2)
    torch.testing.assert_close(out[0, 0], torch.tensor([1.3, 28.0], dtype=DT), rtol=0, atol=1e-15)
    assert torch.equal(out[0, 1], torch.zeros(2, dtype=DT))


@pytest.mark.parametrize("eye", [(0.4, 0.3, -3.0), (2.0, -1.5, 1.0)])
def test_forward_matches_reference(eye):
    verts, faces, cam = _scene(eye=eye)
    frags = lg.rasterize(verts, faces, cam)
    attrs = _attrs(verts.shape[0], 4)
    out = lg.interpolate(attrs, frags, faces)
    ref = interpolate_ref(attrs, frags, faces)
    assert out.shape == (12, 16, 4) and out.dtype == DT
    assert frags.mask.sum() > 40
    try:
        torch.testing.assert_close(out, ref, rtol=1e-13, atol=1e-13)
    except AssertionError:
        save_failure_images(f"interpolate_{eye}", actual=out[..., :3], expected=ref[..., :3], diff=(out - ref).abs())
        raise
    assert torch.equal(out[~frags.mask], torch.zeros_like(out[~frags.mask]))


def test_interpolating_positions_gives_the_surface_point():
    # Interpolating the vertex positions themselves gives the ray-surface hit: its camera-frame z is the depth
    # and it projects back to the pixel centre.
    verts, faces, cam = _scene()
    frags = lg.rasterize(verts, faces, cam)
    p = lg.interpolate(verts, frags, faces)[frags.mask]
    uv, z = cam.project(p)
    torch.testing.assert_close(z, frags.depth[..., 0][frags.mask], rtol=1e-12, atol=1e-12)
    rows, cols = frags.mask.nonzero(as_tuple=True)
    torch.testing.assert_close(uv, torch.stack([cols, rows], -1).to(DT) + 0.5, rtol=0, atol=1e-9)


def test_backward_matches_reference():
    verts, faces, cam = _scene()
    attrs = _attrs(verts.shape[0], 3).requires_grad_()
    v = verts.clone().requires_grad_()
    frags = lg.rasterize(v, faces, cam)
    cot = torch.randn(12, 16, 3, generator=torch.Generator().manual_seed(1), dtype=DT)
    g_attrs, g_verts = torch.autograd.grad((lg.interpolate(attrs, frags, faces) * cot).sum(), (attrs, v),
                                          retain_graph=True)
    r_attrs, r_verts = torch.autograd.grad((interpolate_ref(attrs, frags, faces) * cot).sum(), (attrs, v))
    assert g_attrs.abs().sum() > 0 and g_verts.abs().sum() > 0
    torch.testing.assert_close(g_attrs, r_attrs, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g_verts, r_verts, rtol=1e-11, atol=1e-11)
    assert cosine(g_attrs, r_attrs) > 1 - 1e-12
    assert cosine(g_verts, r_verts) > 1 - 1e-12
    # Vertices seen by no pixel get no gradient.
    seen = torch.zeros(verts.shape[0], dtype=torch.bool)
    seen[faces[frags.face_ids[frags.mask].long()].reshape(-1)] = True
    assert (g_attrs[~seen] == 0).all() and (g_attrs[seen].abs().sum(-1) > 0).all()


def test_gradcheck_attrs_and_vertex_positions():
    verts = torch.tensor([[-1.0, -1.0, 0.0], [1.0, -1.0, 0.1], [0.0, 1.0, -0.1], [1.3, 0.9, 0.2]], dtype=DT)
    faces = torch.tensor([[0, 2, 1], [1, 2, 3]])
    cam = camera_at((0.15, 0.05, -3.0), size=(6, 5), fov_y=1.0)
    frags0 = lg.rasterize(verts, faces, cam)
    assert (frags0.face_ids == 0).sum() >= 3 and (frags0.face_ids == 1).sum() >= 3

    def fn(attrs, v):
        f = lg.rasterize(v, faces, cam, return_bary_derivs=True)
        out, d = lg.interpolate(attrs, f, faces, return_derivatives=True)
        return out, d

    attrs = _attrs(4, 2).requires_grad_()
    torch.autograd.gradcheck(fn, (attrs, verts.clone().requires_grad_()), eps=1e-7, atol=1e-7, rtol=1e-6)


def test_batched_views_with_per_view_and_shared_attrs():
    verts, faces = uv_sphere(6, 10)
    eyes = torch.tensor([[0.3, 0.2, -3.0], [2.5, 0.5, 1.0]], dtype=DT)
    cams = lg.Camera.look_at(eyes, torch.zeros(2, 3, dtype=DT), torch.tensor([0.0, 1.0, 0.0], dtype=DT),
                             fov_y=0.9, width=10, height=9)
    frags = lg.rasterize(verts, faces, cams)
    per_view = torch.stack([_attrs(verts.shape[0], 2, seed=3), _attrs(verts.shape[0], 2, seed=4)])
    out = lg.interpolate(per_view, frags, faces)
    shared = lg.interpolate(per_view[1], frags, faces)
    assert out.shape == (2, 9, 10, 2) and shared.shape == (2, 9, 10, 2)
    for k in range(2):
        single = lg.rasterize(verts, faces, cams[k])
        assert torch.equal(single.face_ids, frags.face_ids[k])
        torch.testing.assert_close(out[k], interpolate_ref(per_view[k], single, faces), rtol=1e-13, atol=1e-13)
        torch.testing.assert_close(shared[k], interpolate_ref(per_view[1], single, faces), rtol=1e-13, atol=1e-13)
    # The views really differ, so a mix-up of the per-view tables would show.
    assert not torch.allclose(out[0][frags.mask[0]], shared[0][frags.mask[0]])


def test_two_batch_dims():
    verts, faces = uv_sphere(5, 8)
    eyes = torch.tensor([[[0.3, 0.2, -3.0], [2.5, 0.5, 1.0]], [[0.0, 3.0, 0.5], [-2.0, -1.0, -2.0]]], dtype=DT)
    cams = lg.Camera.look_at(eyes, torch.zeros(2, 2, 3, dtype=DT), torch.tensor([0.0, 1.0, 0.0], dtype=DT),
                             width=7, height=6)
    frags = lg.rasterize(verts, faces, cams)
    attrs = torch.randn(2, 2, verts.shape[0], 3, generator=torch.Generator().manual_seed(5), dtype=DT)
    out = lg.interpolate(attrs, frags, faces)
    assert out.shape == (2, 2, 6, 7, 3)
    for i in range(2):
        for j in range(2):
            single = lg.rasterize(verts, faces, cams[i, j])
            torch.testing.assert_close(out[i, j], interpolate_ref(attrs[i, j], single, faces), rtol=1e-13, atol=1e-13)


def test_separate_uv_faces():
    # OBJ-style texture coordinates: T != V entries, indexed per face corner by uv_faces.
    verts, faces, cam = _scene()
    F = faces.shape[0]
    T = verts.shape[0] + 7
    g = torch.Generator().manual_seed(6)
    uv = torch.rand(T, 2, generator=g, dtype=DT)
    uv_faces = torch.randint(0, T, (F, 3), generator=g)
    frags = lg.rasterize(verts, faces, cam)
    out = lg.interpolate(uv, frags, uv_faces)
    torch.testing.assert_close(out, interpolate_ref(uv, frags, uv_faces), rtol=1e-13, atol=1e-13)
    # Same as unwelding: one attribute row per face corner, faces = arange(3F).
    corner_attrs = uv[uv_faces].reshape(3 * F, 2)
    unwelded = lg.interpolate(corner_attrs, frags, torch.arange(3 * F).reshape(F, 3))
    torch.testing.assert_close(out, unwelded, rtol=0, atol=1e-15)


def test_spot_uv_faces(spot):
    cam = lg.Camera.look_at([2.0, 0.5, 2.0], [0.0, 0.1, 0.0], fov_y=0.7, width=12, height=12)
    frags = lg.rasterize(spot.verts, spot.faces, cam)
    uv = lg.interpolate(spot.uv, frags, spot.uv_faces)
    torch.testing.assert_close(uv, interpolate_ref(spot.uv, frags, spot.uv_faces), rtol=1e-6, atol=1e-6)
    assert uv.dtype == torch.float32
    inside = uv[frags.mask]  # convex combinations of the table's entries
    assert (inside >= spot.uv.min(0).values - 1e-6).all() and (inside <= spot.uv.max(0).values + 1e-6).all()


@pytest.mark.parametrize("skew", [0.0, 2.5])
def test_derivatives_match_principal_point_shift(skew):
    # Shifting cx by +h moves the image content right by h: d out / du = - d out / d cx; likewise v and cy.
    verts, faces = uv_sphere(6, 10)
    base = camera_at((0.4, 0.3, -3.0), size=(16, 16))
    K = base.K.clone()
    K[0, 1] = skew
    cam = lg.Camera(K=K, world_to_cam=base.world_to_cam, width=16, height=16)
    attrs = _attrs(verts.shape[0], 3, seed=7)
    frags = lg.rasterize(verts, faces, cam, return_bary_derivs=True)
    out, derivs = lg.interpolate(attrs, frags, faces, return_derivatives=True)
    assert derivs.shape == (16, 16, 3, 2)
    assert torch.equal(out, lg.interpolate(attrs, frags, faces))
    h = 1e-6
    for axis, (r, c) in enumerate([(0, 2), (1, 2)]):
        shifted = []
        for s in (h, -h):
            Ks = K.clone()
            Ks[r, c] += s
            f = lg.rasterize(verts, faces, lg.Camera(K=Ks, world_to_cam=cam.world_to_cam, width=16, height=16))
            shifted.append((f.face_ids, lg.interpolate(attrs, f, faces)))
        same = (shifted[0][0] == shifted[1][0]) & (shifted[0][0] == frags.face_ids) & frags.mask
        assert same.sum() > 0.9 * frags.mask.sum()
        fd = -(shifted[0][1] - shifted[1][1]) / (2 * h)
        torch.testing.assert_close(derivs[..., axis][same], fd[same], rtol=1e-6, atol=1e-7)
    assert (derivs[~frags.mask] == 0).all()


def test_derivatives_of_a_screen_linear_attribute():
    # The attribute "camera-frame x / z" is exactly (u - cx) / fx on a plane (no skew), so d/du = 1 / fx, d/dv = 0.
    verts = torch.tensor([[-1.0, -1.0, 0.5], [1.0, -1.0, 0.0], [0.0, 1.0, 0.3]], dtype=DT)
    faces = torch.tensor([[0, 2, 1]])
    cam = camera_at((0.0, 0.0, -3.0), size=(9, 9), fov_y=1.0)
    frags = lg.rasterize(verts, faces, cam, return_bary_derivs=True)
    # x/z is not linear in bary, but perspective-correct barycentrics interpolate camera-frame points exactly.
    pc = cam.transform(verts)
    _, d = lg.interpolate(pc, frags, faces, return_derivatives=True)
    m = frags.mask
    assert m.sum() > 10
    z = frags.depth[..., 0][m]
    fx = cam.K[0, 0]
    # d(point)/du = z * d(ray)/du + ray * dz/du; the x/z combination removes the dz term: d(x/z)/du = 1/fx.
    p = lg.interpolate(pc, frags, faces)[m]
    dxz_du = (d[m][:, 0, 0] * p[:, 2] - p[:, 0] * d[m][:, 2, 0]) / z ** 2
    dxz_dv = (d[m][:, 0, 1] * p[:, 2] - p[:, 0] * d[m][:, 2, 1]) / z ** 2
    torch.testing.assert_close(dxz_du, torch.full_like(dxz_du, 1 / float(fx)), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(dxz_dv, torch.zeros_like(dxz_dv), rtol=0, atol=1e-12)


def test_derivatives_need_bary_derivs():
    verts, faces, cam = _scene(size=(6, 6))
    frags = lg.rasterize(verts, faces, cam)
    assert frags.bary_derivs is None
    with pytest.raises(ValueError, match=r"return_derivatives.*return_bary_derivs"):
        lg.interpolate(_attrs(verts.shape[0], 2), frags, faces, return_derivatives=True)


def test_float32_attrs_on_float64_fragments_follow_attrs_dtype():
    verts, faces, cam = _scene(size=(8, 8))
    frags = lg.rasterize(verts, faces, cam)
    attrs = _attrs(verts.shape[0], 2)
    out32 = lg.interpolate(attrs.float(), frags, faces)
    assert out32.dtype == torch.float32
    torch.testing.assert_close(out32.double(), lg.interpolate(attrs, frags, faces), rtol=1e-6, atol=1e-6)
