"""soft_rasterize: candidate kernel vs brute force, values and gradients vs the float64 twin, gradcheck,
finite differences of image losses, batched cameras, degenerate faces and bad input."""

from dataclasses import dataclass

import pytest
import torch

import lumigrad as lg
from lumigrad.raster.soft import pair_terms
from lumigrad.raster.soft_reference import soft_rasterize_ref

from ..conftest import camera_at, central_fd, cosine, save_failure_images, uv_sphere


def _scene(dtype=torch.float64):
    """Two overlapping triangles at different depths and a small one in front of both."""
    verts = torch.tensor([[-1.0, -1.0, 0.0], [1.0, -1.0, 0.0], [0.0, 1.0, 0.0],
                          [-0.5, -0.2, -0.5], [1.2, 0.0, -0.5], [0.2, 1.3, -0.5],
                          [0.3, 0.35, -0.9], [0.75, 0.3, -0.8], [0.55, 0.8, -0.85]], dtype=dtype)
    faces = torch.tensor([[0, 2, 1], [3, 5, 4], [6, 8, 7]])
    return verts, faces


def _attrs(V, C=3, seed=0, dtype=torch.float64):
    return torch.rand(V, C, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# tol = 1e-20 puts the cutoff at 6.8 px (sigma = 1): the dropped terms are below 1e-20 (times exp(1 / gamma) in
# the attribute weights), so the fast op and the brute-force twin agree to rounding; K = 8 covers every face.
EXACT = dict(sigma=1.0, gamma=0.05, tol=1e-20, faces_per_pixel=8)


def _ref_kwargs(kw):
    return {k: v for k, v in kw.items() if k in ("sigma", "gamma", "eps", "background")}


def _compare(name, got, want, atol):
    err = float((got - want).detach().abs().max())
    if err > atol:
        save_failure_images(name, got=got, want=want, diff=(got - want).detach().abs())
    assert err <= atol, f"{name}: max error {err:.3g} > {atol:g}"
    return err


@pytest.mark.parametrize("projection", ["perspective", "orthographic"])
def test_matches_reference_values_and_gradients(projection):
    verts, faces = _scene()
    if projection == "perspective":
        cam = camera_at((0.1, 0.2, -3.0), size=(14, 12), fov_y=1.0, far=10.0)
    else:
        cam = lg.Camera.orthographic(2.6, 14, 12, camera_at((0.1, 0.2, -3.0)).world_to_cam, far=10.0)
    attrs = _attrs(verts.shape[0])
    bg = torch.tensor([0.2, 0.3, 0.4], dtype=torch.float64)
    ins = [t.clone().requires_grad_(True) for t in (verts, attrs, bg)]
    refs = [t.clone().requires_grad_(True) for t in (verts, attrs, bg)]
    out = lg.soft_rasterize(ins[0], faces, cam, ins[1], background=ins[2], **EXACT)
    ref = soft_rasterize_ref(refs[0], faces, cam, refs[1], background=refs[2], **_ref_kwargs(EXACT))
    _compare(f"soft_ref_sil_{projection}", out.silhouette, ref.silhouette, 1e-10)
    _compare(f"soft_ref_attrs_{projection}", out.attrs, ref.attrs, 1e-10)
    assert int((out.face_ids >= 0).sum(-1).max()) == 3
    g = torch.Generator().manual_seed(1)
    w_sil = torch.randn(out.silhouette.shape, generator=g, dtype=torch.float64)
    w_img = torch.randn(out.attrs.shape, generator=g, dtype=torch.float64)
    grads = torch.autograd.grad((out.silhouette * w_sil).sum() + (out.attrs * w_img).sum(), ins)
    grads_ref = torch.autograd.grad((ref.silhouette * w_sil).sum() + (ref.attrs * w_img).sum(), refs)
    for name, a, b in zip(("verts", "attrs", "background"), grads, grads_ref):
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-8 * float(b.abs().max()), msg=name)
        assert cosine(a, b) > 1 - 1e-12
        assert float((a - b).norm() / b.norm()) < 1e-8, name


def test_default_tolerance_and_truncation_are_bounded():
    """With the default tol the silhouette differs from the twin by at most about (faces) x tol."""
    verts, faces = _scene()
    cam = camera_at((0.1, 0.2, -3.0), size=(14, 12), fov_y=1.0, far=10.0)
    out = lg.soft_rasterize(verts, faces, cam, sigma=2.0)
    ref = soft_rasterize_ref(verts, faces, cam, sigma=2.0)
    _compare("soft_default_tol", out.silhouette, ref.silhouette, 3 * 1e-4)


def test_batched_cameras_match_reference():
    verts, faces = _scene()
    cams = [camera_at(eye, size=(10, 9), fov_y=1.0, far=10.0) for eye in ((0.1, 0.2, -3.0), (1.0, -0.5, -2.5))]
    cam = lg.Camera(torch.stack([c.K for c in cams]), torch.stack([c.world_to_cam for c in cams]), 10, 9, far=10.0)
    attrs = _attrs(verts.shape[0])
    out = lg.soft_rasterize(verts, faces, cam, attrs, **EXACT)
    assert out.silhouette.shape == (2, 9, 10) and out.attrs.shape == (2, 9, 10, 3)
    assert out.face_ids.shape == (2, 9, 10, 8) and out.face_ids.dtype == torch.int32
    ref = soft_rasterize_ref(verts, faces, cam, attrs, **_ref_kwargs(EXACT))
    _compare("soft_batched_sil", out.silhouette, ref.silhouette, 1e-10)
    _compare("soft_batched_attrs", out.attrs, ref.attrs, 1e-10)
    for n in range(2):  # each view as its own call
        single = lg.soft_rasterize(verts, faces, cams[n], attrs, **EXACT)
        torch.testing.assert_close(out.attrs[n], single.attrs, rtol=0, atol=1e-12)


def _brute_candidates(verts, faces, cam, cutoff):
    """Every (pixel, face) pair within ``cutoff`` pixels: ``[H*W, F]`` mask and clamped depth."""
    uv, z = cam.project(verts)
    H, W = cam.height, cam.width
    F = faces.shape[0]
    vv, uu = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    p = torch.stack([uu, vv], -1).reshape(-1, 1, 2).expand(-1, F, 2).reshape(-1, 2).double()
    tri_uv = uv[faces].expand(H * W, F, 3, 2).reshape(-1, 3, 2)
    tri_z = z[faces].expand(H * W, F, 3).reshape(-1, 3)
    x, _, depth = pair_terms(tri_uv, tri_z, p, 1.0, False)
    d2_region = torch.where(x > 0, torch.zeros_like(x), -x)
    ok = (d2_region <= cutoff ** 2) & ~(z[faces] < cam.near).any(-1).repeat(H * W)
    return ok.reshape(H * W, F), depth.reshape(H * W, F)


@pytest.mark.parametrize("k", [1, 3, 64])
def test_candidates_are_the_k_nearest_within_the_cutoff(k):
    verts, faces = uv_sphere(6, 10)
    cam = camera_at((0.4, 0.3, -2.6), size=(40, 33), fov_y=0.8)
    sigma, tol = 2.0, 1e-3
    out = lg.soft_rasterize(verts, faces, cam, sigma=sigma, tol=tol, faces_per_pixel=k)
    cutoff = (sigma * torch.log(torch.tensor(1 / tol))).sqrt().item()
    ok, depth = _brute_candidates(verts, faces, cam, cutoff)
    ids = out.face_ids.reshape(-1, k).long()
    count = ok.sum(-1)
    assert int(count.max()) > 1 and bool((count == 0).any())
    assert torch.equal((ids >= 0).sum(-1), count.clamp(max=k))
    key = torch.where(ok, depth, torch.full_like(depth, float("inf")))
    want = key.sort(dim=-1, stable=True).indices[:, :k]  # ties (none here) would go to the lower face id
    want = torch.where(torch.arange(k)[None] < count[:, None], want, torch.full_like(want, -1))
    assert torch.equal(ids, want)


def test_faces_behind_the_near_plane_are_skipped():
    verts = torch.tensor([[-1.0, -1.0, 1.0], [1.0, -1.0, 1.0], [0.0, 1.0, 1.0],
                          [-1.0, 0.0, 0.5], [1.0, 0.0, 0.5], [0.0, 0.5, -0.5]], dtype=torch.float64)
    faces = torch.tensor([[0, 1, 2], [3, 4, 5]])
    cam = lg.Camera(torch.tensor([[8.0, 0, 8], [0, 8.0, 8], [0, 0, 1]], dtype=torch.float64),
                    torch.eye(4, dtype=torch.float64), 16, 16, near=0.1)
    out = lg.soft_rasterize(verts, faces, cam)
    assert not (out.face_ids == 1).any()
    assert (out.face_ids == 0).any()


def test_gradcheck_tiny_mesh():
    verts = torch.tensor([[-0.8, -0.7, 0.1], [0.7, -0.6, 0.0], [0.0, 0.75, 0.05],
                          [-0.3, -0.1, -0.4], [0.85, 0.2, -0.45], [0.1, 0.9, -0.5]], dtype=torch.float64)
    faces = torch.tensor([[0, 2, 1], [3, 5, 4]])
    cam = camera_at((0.05, 0.1, -2.5), size=(8, 8), fov_y=0.9, far=5.0)
    attrs = _attrs(6, 2)
    w = torch.randn(8, 8, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)

    def fn(v, a):
        out = lg.soft_rasterize(v, faces, cam, a, sigma=1.5, gamma=0.1, faces_per_pixel=4)
        return out.silhouette, out.attrs * w

    torch.autograd.gradcheck(fn, (verts.requires_grad_(True), attrs.requires_grad_(True)), eps=1e-6, atol=1e-6)


@dataclass
class FDConfig:
    """One finite-difference scene: sphere resolution, image size, soft parameters, step and tolerance."""

    size: tuple = (24, 20)
    sigma: float = 2.0
    gamma: float = 0.02
    step: float = 1e-5
    rtol: float = 1e-5


@pytest.mark.parametrize("cfg", [FDConfig(), FDConfig(size=(16, 16), sigma=0.5, gamma=0.005)],
                         ids=["smooth", "sharp"])
def test_finite_differences_image_loss(cfg):
    verts, faces = uv_sphere(5, 8, radius=0.8)
    cam = camera_at((0.3, 0.5, -2.5), size=cfg.size, fov_y=0.8, far=6.0)
    attrs = verts.abs() + 0.1  # any smooth colour
    g = torch.Generator().manual_seed(4)
    target_sil = torch.rand(cfg.size[::-1], generator=g, dtype=torch.float64)
    target_img = torch.rand(cfg.size[::-1] + (3,), generator=g, dtype=torch.float64)

    def loss(v, w2c):
        c = lg.Camera(cam.K, w2c, cam.width, cam.height, far=cam.far)
        out = lg.soft_rasterize(v, faces, c, attrs, sigma=cfg.sigma, gamma=cfg.gamma, faces_per_pixel=32)
        return ((out.silhouette - target_sil) ** 2).sum() + ((out.attrs - target_img) ** 2).sum()

    v = verts.clone().requires_grad_(True)
    w2c = cam.world_to_cam.clone().requires_grad_(True)
    g_v, g_c = torch.autograd.grad(loss(v, w2c), (v, w2c))
    fd_v = central_fd(lambda x: loss(x, cam.world_to_cam), verts.clone(), cfg.step)

    def with_translation(t):
        m = cam.world_to_cam.clone()
        m[:3, 3] = t
        return m

    fd_t = central_fd(lambda t: loss(verts, with_translation(t)), cam.world_to_cam[:3, 3].clone(), cfg.step)
    err_v = float((g_v - fd_v).norm() / fd_v.norm())
    err_t = float((g_c[:3, 3] - fd_t).norm() / fd_t.norm())
    assert err_v < cfg.rtol and err_t < cfg.rtol, (err_v, err_t)


def test_zero_area_faces_stay_finite():
    verts = torch.tensor([[-1.0, -1.0, 0.0], [1.0, -1.0, 0.0], [0.0, 1.0, 0.0],  # a proper triangle
                          [-0.5, 0.5, -0.2], [0.5, 0.5, -0.2], [0.0, 0.5, -0.2],  # collinear
                          [0.2, -0.3, -0.3]], dtype=torch.float64)  # a point (three equal corners)
    faces = torch.tensor([[0, 2, 1], [3, 4, 5], [6, 6, 6]])
    cam = camera_at((0.0, 0.0, -3.0), size=(16, 16), fov_y=1.0, far=10.0)
    v = verts.clone().requires_grad_(True)
    a = _attrs(7).requires_grad_(True)
    out = lg.soft_rasterize(v, faces, cam, a, gamma=0.05)
    assert (out.face_ids == 1).any() and (out.face_ids == 2).any()
    assert torch.isfinite(out.silhouette).all() and torch.isfinite(out.attrs).all()
    (out.silhouette.sum() + out.attrs.sum()).backward()
    assert torch.isfinite(v.grad).all() and torch.isfinite(a.grad).all()
    assert v.grad[6].abs().sum() > 0  # the point face's soft footprint moves with it
    # A lone point face: silhouette sigmoid(-d^2 / sigma) around its projection, at most 1/2.
    point = lg.soft_rasterize(verts, faces[2:], cam)
    assert 0 < float(point.silhouette.max()) < 0.5


def test_float32_runs_and_agrees_with_float64():
    verts, faces = _scene()
    cam = camera_at((0.1, 0.2, -3.0), size=(14, 12), fov_y=1.0, far=10.0)
    attrs = _attrs(verts.shape[0])
    out64 = lg.soft_rasterize(verts, faces, cam, attrs, gamma=0.05)
    out32 = lg.soft_rasterize(verts.float(), faces, cam.to(dtype=torch.float32), attrs.float(), gamma=0.05)
    assert out32.silhouette.dtype == torch.float32 and out32.attrs.dtype == torch.float32
    torch.testing.assert_close(out32.silhouette.double(), out64.silhouette, atol=1e-5, rtol=0)
    torch.testing.assert_close(out32.attrs.double(), out64.attrs, atol=1e-4, rtol=0)


def test_background_only_where_nothing_is_near():
    verts, faces = _scene()
    cam = camera_at((0.1, 0.2, -3.0), size=(40, 30), fov_y=1.0, far=10.0)
    bg = torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64)
    out = lg.soft_rasterize(verts, faces, cam, _attrs(9), background=bg)
    empty = (out.face_ids < 0).all(-1)
    assert empty.any()
    assert torch.equal(out.attrs[empty], bg.expand(int(empty.sum()), 3))
    assert torch.equal(out.silhouette[empty], torch.zeros(int(empty.sum()), dtype=torch.float64))


@pytest.mark.parametrize("kwargs, match", [
    (dict(sigma=0.0), "sigma"), (dict(sigma=-1.0), "sigma"), (dict(gamma=0.0), "gamma"),
    (dict(tol=0.0), "tol"), (dict(tol=1.0), "tol"), (dict(faces_per_pixel=0), "faces_per_pixel"),
])
def test_bad_parameters(kwargs, match):
    verts, faces = _scene()
    with pytest.raises(ValueError, match=match):
        lg.soft_rasterize(verts, faces, camera_at((0.0, 0.0, -3.0)), **kwargs)


def test_bad_tensors():
    verts, faces = _scene()
    cam = camera_at((0.0, 0.0, -3.0), size=(8, 8))
    bad_verts = verts.clone()
    bad_verts[2, 1] = float("nan")
    with pytest.raises(ValueError, match="verts"):
        lg.soft_rasterize(bad_verts, faces, cam)
    with pytest.raises(ValueError, match="verts"):
        lg.soft_rasterize(verts[:, :2], faces, cam)
    with pytest.raises(ValueError, match="faces"):
        lg.soft_rasterize(verts, faces[:, :2], cam)
    with pytest.raises(ValueError, match="faces"):
        lg.soft_rasterize(verts, faces + 1, cam)
    with pytest.raises(ValueError, match="faces"):
        lg.soft_rasterize(verts, faces - 1, cam)
    with pytest.raises(ValueError, match="faces is empty"):
        lg.soft_rasterize(verts, faces[:0], cam)
    with pytest.raises(ValueError, match="attrs"):
        lg.soft_rasterize(verts, faces, cam, _attrs(5))
    with pytest.raises(ValueError, match="attrs"):
        lg.soft_rasterize(verts, faces, cam, _attrs(9)[:, 0])
    nan_attrs = _attrs(9)
    nan_attrs[0, 0] = float("inf")
    with pytest.raises(ValueError, match="attrs"):
        lg.soft_rasterize(verts, faces, cam, nan_attrs)
    with pytest.raises(ValueError, match="background"):
        lg.soft_rasterize(verts, faces, cam, _attrs(9), background=torch.zeros(4, dtype=torch.float64))


# ---- fused kernel backend (float32) vs the PyTorch backend ----

def _backend_run(backend, verts, faces, cam, attrs, bg, seed=1, **kw):
    """Values and gradients (verts, attrs, background, K, world_to_cam) of a random-cotangent loss."""
    ins = [t.clone().requires_grad_(True) for t in (verts, attrs, bg, cam.K, cam.world_to_cam)]
    c = lg.Camera(ins[3], ins[4], cam.width, cam.height, near=cam.near, far=cam.far, projection=cam.projection)
    out = lg.soft_rasterize(ins[0], faces, c, ins[1], background=ins[2], backend=backend, **kw)
    g = torch.Generator().manual_seed(seed)
    w_sil = torch.randn(out.silhouette.shape, generator=g)
    w_img = torch.randn(out.attrs.shape, generator=g)
    loss = (out.silhouette * w_sil).sum() + (out.attrs * w_img).sum()
    return (out.silhouette.detach(), out.attrs.detach()), torch.autograd.grad(loss, ins), out.face_ids


def _check_backends_agree(verts, faces, cam, attrs, bg, atol=1e-5, rtol=1e-4, **kw):
    (sil_t, img_t), grads_t, ids_t = _backend_run("torch", verts, faces, cam, attrs, bg, **kw)
    (sil_k, img_k), grads_k, ids_k = _backend_run("kernel", verts, faces, cam, attrs, bg, **kw)
    assert torch.equal(ids_t, ids_k)
    _compare("soft_kernel_sil", sil_k, sil_t, atol)
    _compare("soft_kernel_attrs", img_k, img_t, atol)
    for name, a, b in zip(("verts", "attrs", "background", "K", "world_to_cam"), grads_k, grads_t):
        assert torch.isfinite(a).all(), name
        assert float(b.norm()) > 0, name
        assert float((a - b).norm() / b.norm()) < rtol, (name, float((a - b).norm() / b.norm()))


@pytest.mark.parametrize("projection", ["perspective", "orthographic"])
def test_kernel_backend_matches_torch_tiny(projection):
    verts, faces = _scene(torch.float32)
    cam = camera_at((0.1, 0.2, -3.0), size=(14, 12), fov_y=1.0, far=10.0, dtype=torch.float32)
    if projection == "orthographic":
        cam = lg.Camera.orthographic(2.6, 14, 12, cam.world_to_cam, far=10.0)
    attrs = _attrs(9, dtype=torch.float32)
    bg = torch.tensor([0.2, 0.3, 0.4])
    _check_backends_agree(verts, faces, cam, attrs, bg, gamma=0.05)


@pytest.mark.parametrize("gamma", [1e-2, 1e-4])
def test_kernel_backend_matches_torch_spot(spot, gamma):
    """Spot at 192^2 (several CPU partitions of the backward), default K, sigma and tol."""
    verts = spot.verts.float()
    cam = camera_at((2.0, 0.5, 2.0), (0.0, 0.1, 0.0), size=(192, 192), fov_y=0.7, far=6.0, dtype=torch.float32)
    attrs = (verts - verts.min(0).values) / (verts.max(0).values - verts.min(0).values)
    bg = torch.tensor([0.1, 0.2, 0.3])
    _check_backends_agree(verts, spot.faces, cam, attrs, bg, gamma=gamma)


def test_kernel_backend_silhouette_only_and_auto():
    verts, faces = _scene(torch.float32)
    cam = camera_at((0.1, 0.2, -3.0), size=(14, 12), fov_y=1.0, far=10.0, dtype=torch.float32)
    outs = []
    for backend in ("torch", "kernel", "auto"):
        v = verts.clone().requires_grad_(True)
        out = lg.soft_rasterize(v, faces, cam, backend=backend)
        assert out.attrs is None
        (g,) = torch.autograd.grad((out.silhouette ** 2).sum(), v)
        outs.append((out.silhouette.detach(), g))
    for sil, g in outs[1:]:
        torch.testing.assert_close(sil, outs[0][0], atol=1e-6, rtol=0)
        torch.testing.assert_close(g, outs[0][1], atol=1e-5 * float(outs[0][1].abs().max()), rtol=1e-4)
    # auto picks the PyTorch path in float64; backend='kernel' refuses it
    verts64, _ = _scene()
    cam64 = camera_at((0.1, 0.2, -3.0), size=(14, 12), fov_y=1.0, far=10.0)
    assert lg.soft_rasterize(verts64, faces, cam64, backend="auto").silhouette.dtype == torch.float64
    with pytest.raises(TypeError, match="float32"):
        lg.soft_rasterize(verts64, faces, cam64, backend="kernel")
    with pytest.raises(ValueError, match="backend"):
        lg.soft_rasterize(verts, faces, cam, backend="warp")


def test_kernel_backend_zero_area_faces_stay_finite():
    verts = torch.tensor([[-1.0, -1.0, 0.0], [1.0, -1.0, 0.0], [0.0, 1.0, 0.0],
                          [-0.5, 0.5, -0.2], [0.5, 0.5, -0.2], [0.0, 0.5, -0.2],
                          [0.2, -0.3, -0.3]])
    faces = torch.tensor([[0, 2, 1], [3, 4, 5], [6, 6, 6]])
    cam = camera_at((0.0, 0.0, -3.0), size=(16, 16), fov_y=1.0, far=10.0, dtype=torch.float32)
    attrs = _attrs(7, dtype=torch.float32)
    (sil, img), grads, ids = _backend_run("kernel", verts, faces, cam, attrs, torch.zeros(3), gamma=0.05)
    assert (ids == 1).any() and (ids == 2).any()
    assert torch.isfinite(sil).all() and torch.isfinite(img).all()
    assert all(torch.isfinite(g).all() for g in grads)
    assert grads[0][6].abs().sum() > 0
    _check_backends_agree(verts, faces, cam, attrs, torch.zeros(3), gamma=0.05)


def test_kernel_backend_batched_cameras():
    verts, faces = _scene(torch.float32)
    cams = [camera_at(eye, size=(10, 9), fov_y=1.0, far=10.0, dtype=torch.float32)
            for eye in ((0.1, 0.2, -3.0), (1.0, -0.5, -2.5))]
    cam = lg.Camera(torch.stack([c.K for c in cams]), torch.stack([c.world_to_cam for c in cams]), 10, 9, far=10.0)
    _check_backends_agree(verts, faces, cam, _attrs(9, dtype=torch.float32), torch.tensor([0.2, 0.3, 0.4]),
                          gamma=0.05)


@pytest.mark.parametrize("channels", [1, 4, 6])
def test_kernel_backend_channel_counts(channels):
    """The forward sums channels 0-3 in registers and the rest in the output buffer: 1, 4 and 6 channels agree
    with the PyTorch backend (values and gradients); the image border has pixels without candidates."""
    verts, faces = _scene(torch.float32)
    cam = camera_at((0.1, 0.2, -3.0), size=(18, 16), fov_y=1.0, far=10.0, dtype=torch.float32)
    bg = torch.linspace(0.1, 0.6, channels)
    out = lg.soft_rasterize(verts, faces, cam, _attrs(9, C=channels, dtype=torch.float32), background=bg)
    assert bool((out.face_ids[..., 0] < 0).any())
    assert torch.equal(out.attrs[out.face_ids[..., 0] < 0], bg.expand(int((out.face_ids[..., 0] < 0).sum()), -1))
    _check_backends_agree(verts, faces, cam, _attrs(9, C=channels, dtype=torch.float32), bg, gamma=0.05)
