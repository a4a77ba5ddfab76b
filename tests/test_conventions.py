"""Tests for ``lumigrad.conventions``: round trips, and semantic checks that do not reuse the module's formulas.

Everything runs in float64 on random inputs with leading batch dims ``[2, 3]``. The reference models
(Rodrigues, OpenGL look-at + clip pipeline, PyTorch3D's row-vector / NDC camera, NeRF's field of view, Blender's
camera object) are written out here independently of ``conventions.py``.
"""

from __future__ import annotations

import math

import pytest
import torch

from lumigrad import conventions as cv

DT = torch.float64
BATCH = (2, 3)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _close(actual, expected, atol=1e-10, rtol=1e-10):
    torch.testing.assert_close(actual, expected, atol=atol, rtol=rtol)


# ------------------------------------------------------------------------------------------ reference helpers
def _random_rotation(shape, g) -> torch.Tensor:
    """Uniform-ish random rotations via QR, independent of the quaternion code."""
    A = torch.randn(tuple(shape) + (3, 3), generator=g, dtype=DT)
    Q, Rr = torch.linalg.qr(A)
    Q = Q * torch.sign(torch.diagonal(Rr, dim1=-2, dim2=-1))[..., None, :]
    det = torch.linalg.det(Q)
    return torch.cat([Q[..., :1] * det[..., None, None], Q[..., 1:]], dim=-1)


def _random_quaternion(shape, g) -> torch.Tensor:
    q = torch.randn(tuple(shape) + (4,), generator=g, dtype=DT)
    return q / q.norm(dim=-1, keepdim=True)


def _skew(v: torch.Tensor) -> torch.Tensor:
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], -1).reshape(v.shape[:-1] + (3, 3))


def _rodrigues(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """R = I + sin(a) [k]x + (1 - cos(a)) [k]x^2 for a unit axis k."""
    k = axis / axis.norm(dim=-1, keepdim=True)
    Kx = _skew(k)
    a = angle[..., None, None]
    eye = torch.eye(3, dtype=DT).expand(Kx.shape)
    return eye + torch.sin(a) * Kx + (1 - torch.cos(a)) * (Kx @ Kx)


def _normalize(v):
    return v / v.norm(dim=-1, keepdim=True)


def _look_at_gl(eye, target, up):
    """OpenGL camera-to-world pose (gluLookAt inverted): columns right, up, -forward, eye."""
    f = _normalize(target - eye)
    r = _normalize(torch.linalg.cross(f, up.expand_as(f)))
    u = torch.linalg.cross(r, f)
    c2w = torch.zeros(f.shape[:-1] + (4, 4), dtype=DT)
    c2w[..., :3, 0] = r
    c2w[..., :3, 1] = u
    c2w[..., :3, 2] = -f
    c2w[..., :3, 3] = eye
    c2w[..., 3, 3] = 1
    return c2w, r, u, f


def _random_K(shape, g, W, H, skew=True):
    def rnd(lo, hi):
        return lo + (hi - lo) * torch.rand(tuple(shape), generator=g, dtype=DT)

    fx, fy = rnd(200, 600), rnd(200, 600)
    cx, cy = W / 2 + rnd(-20, 20), H / 2 + rnd(-20, 20)
    s = rnd(-5, 5) if skew else torch.zeros_like(fx)
    o, i = torch.zeros_like(fx), torch.ones_like(fx)
    return torch.stack([fx, s, cx, o, fy, cy, o, o, i], -1).reshape(tuple(shape) + (3, 3))


def _project(world_to_cam, K, X):
    """Our pinhole model written out: x_c = R X + t; u = fx x/z + s y/z + cx; v = fy y/z + cy.

    world_to_cam [..., 4, 4], K [..., 3, 3], X [..., N, 3] -> (uv [..., N, 2], depth [..., N]).
    """
    R, t = world_to_cam[..., :3, :3], world_to_cam[..., :3, 3]
    xc = X @ R.transpose(-1, -2) + t[..., None, :]
    x, y, z = xc.unbind(-1)
    fx, fy = K[..., 0, 0, None], K[..., 1, 1, None]
    cx, cy, s = K[..., 0, 2, None], K[..., 1, 2, None], K[..., 0, 1, None]
    u = fx * x / z + s * y / z + cx
    v = fy * y / z + cy
    return torch.stack([u, v], -1), z


# --------------------------------------------------------------------------------------------- pixel centres
def test_pixel_centers_corners_and_layout():
    H, W = 4, 7
    pc = cv.pixel_centers(H, W, dtype=DT)
    assert pc.shape == (H, W, 2) and pc.dtype == DT
    _close(pc[0, 0], torch.tensor([0.5, 0.5], dtype=DT))
    _close(pc[0, W - 1], torch.tensor([W - 0.5, 0.5], dtype=DT))
    _close(pc[H - 1, 0], torch.tensor([0.5, H - 0.5], dtype=DT))
    _close(pc[H - 1, W - 1], torch.tensor([W - 0.5, H - 0.5], dtype=DT))
    # u follows the column, v follows the row.
    _close(pc[2, 5], torch.tensor([5.5, 2.5], dtype=DT))
    assert torch.all(pc[..., 0] == pc[0:1, :, 0]) and torch.all(pc[..., 1] == pc[:, 0:1, 1])


def test_pixel_centers_default_dtype():
    assert cv.pixel_centers(2, 3).dtype == torch.float32


# ----------------------------------------------------------------------------------------------- rotations
def test_quaternion_to_matrix_orthonormal_det_one():
    q = torch.randn(BATCH + (4,), generator=_gen(0), dtype=DT) * 3  # unnormalised on purpose
    R = cv.quaternion_to_matrix(q)
    assert R.shape == BATCH + (3, 3) and R.dtype == DT
    _close(R @ R.transpose(-1, -2), torch.eye(3, dtype=DT).expand(R.shape))
    _close(torch.linalg.det(R), torch.ones(BATCH, dtype=DT))
    # Normalisation: scale and sign of q do not matter.
    _close(cv.quaternion_to_matrix(2.5 * q), R)
    _close(cv.quaternion_to_matrix(-q), R)


def test_quaternion_known_values_wxyz_right_handed():
    _close(cv.quaternion_to_matrix(torch.tensor([1.0, 0, 0, 0], dtype=DT)), torch.eye(3, dtype=DT))
    theta = 0.7
    for axis in range(3):
        q = torch.zeros(4, dtype=DT)
        q[0] = math.cos(theta / 2)
        q[1 + axis] = math.sin(theta / 2)
        e = torch.zeros(3, dtype=DT)
        e[axis] = 1
        _close(cv.quaternion_to_matrix(q), _rodrigues(e, torch.tensor(theta, dtype=DT)))
    # Rotation by +90 deg about z maps x to y (column vectors, right-handed).
    q = torch.tensor([math.cos(math.pi / 4), 0, 0, math.sin(math.pi / 4)], dtype=DT)
    _close(cv.quaternion_to_matrix(q) @ torch.tensor([1.0, 0, 0], dtype=DT), torch.tensor([0.0, 1, 0], dtype=DT))


def test_quaternion_matrix_round_trip_from_quaternion():
    q = _random_quaternion(BATCH, _gen(1))
    q2 = cv.matrix_to_quaternion(cv.quaternion_to_matrix(q))
    assert q2.shape == BATCH + (4,)
    assert torch.all(q2[..., 0] >= 0)
    # Equal up to sign.
    sign = torch.sign((q * q2).sum(-1, keepdim=True))
    _close(q2 * sign, q)


def test_quaternion_matrix_round_trip_from_matrix():
    R = _random_rotation(BATCH, _gen(2))
    q = cv.matrix_to_quaternion(R)
    _close(q.norm(dim=-1), torch.ones(BATCH, dtype=DT))
    _close(cv.quaternion_to_matrix(q), R)


@pytest.mark.parametrize(
    "axis",
    [(1.0, 0, 0), (0, 1.0, 0), (0, 0, 1.0), (1.0, 1.0, 0), (1.0, -2.0, 3.0), (0, 0.3, -1.0)],
)
@pytest.mark.parametrize("angle", [0.0, 1e-9, 1e-4, 0.5, 2.0, math.pi - 1e-7, math.pi])
def test_matrix_to_quaternion_all_branches(axis, angle):
    """Identity, tiny, large and half-turn rotations exercise all four Shepperd branches."""
    R = _rodrigues(torch.tensor(axis, dtype=DT), torch.tensor(angle, dtype=DT))
    q = cv.matrix_to_quaternion(R)
    _close(cv.quaternion_to_matrix(q), R, atol=1e-12, rtol=0)
    k = _normalize(torch.tensor(axis, dtype=DT))
    expected = torch.cat([torch.tensor([math.cos(angle / 2)], dtype=DT), math.sin(angle / 2) * k])
    sign = 1.0 if float((q * expected).sum()) >= 0 else -1.0
    _close(sign * q, expected, atol=1e-12, rtol=0)


def test_quaternion_multiply_matches_matrix_product():
    g = _gen(3)
    a, b = _random_quaternion(BATCH, g), _random_quaternion(BATCH, g)
    ab = cv.quaternion_multiply(a, b)
    _close(ab.norm(dim=-1), torch.ones(BATCH, dtype=DT))
    _close(cv.quaternion_to_matrix(ab), cv.quaternion_to_matrix(a) @ cv.quaternion_to_matrix(b))
    # Identity and conjugate.
    one = torch.tensor([1.0, 0, 0, 0], dtype=DT).expand(BATCH + (4,))
    _close(cv.quaternion_multiply(one, a), a)
    _close(cv.quaternion_multiply(a, one), a)
    conj = a * torch.tensor([1.0, -1, -1, -1], dtype=DT)
    _close(cv.quaternion_multiply(a, conj), one)
    # Associativity, and non-commutativity in general.
    c = _random_quaternion(BATCH, g)
    _close(cv.quaternion_multiply(cv.quaternion_multiply(a, b), c), cv.quaternion_multiply(a, cv.quaternion_multiply(b, c)))
    assert not torch.allclose(cv.quaternion_multiply(a, b), cv.quaternion_multiply(b, a))


def test_quaternion_multiply_hamilton_units():
    e = torch.eye(4, dtype=DT)
    one, i, j, k = e.unbind(0)
    _close(cv.quaternion_multiply(i, j), k)
    _close(cv.quaternion_multiply(j, k), i)
    _close(cv.quaternion_multiply(k, i), j)
    _close(cv.quaternion_multiply(i, i), -one)


def test_axis_angle_to_matrix_vs_rodrigues_random():
    g = _gen(4)
    axis = _normalize(torch.randn(BATCH + (3,), generator=g, dtype=DT))
    angle = torch.rand(BATCH, generator=g, dtype=DT) * math.pi
    R = cv.axis_angle_to_matrix(axis * angle[..., None])
    assert R.shape == BATCH + (3, 3)
    _close(R, _rodrigues(axis, angle))


@pytest.mark.parametrize(
    "angle",
    [1e-12, 1e-9, 1e-6, 9.9e-5, 1e-4, 1.01e-4, 1e-3, math.pi / 2, math.pi - 1e-6, math.pi - 1e-9, math.pi],
)
def test_axis_angle_to_matrix_near_zero_and_pi(angle):
    axis = _normalize(torch.randn(BATCH + (3,), generator=_gen(5), dtype=DT))
    a = torch.full(BATCH, angle, dtype=DT)
    _close(cv.axis_angle_to_matrix(axis * angle), _rodrigues(axis, a), atol=1e-13, rtol=0)


def test_axis_angle_zero_is_identity():
    R = cv.axis_angle_to_matrix(torch.zeros(BATCH + (3,), dtype=DT))
    _close(R, torch.eye(3, dtype=DT).expand(BATCH + (3, 3)))


def test_matrix_to_axis_angle_round_trip():
    g = _gen(6)
    axis = _normalize(torch.randn(BATCH + (3,), generator=g, dtype=DT))
    angle = torch.rand(BATCH, generator=g, dtype=DT) * (math.pi - 1e-3)
    aa = axis * angle[..., None]
    aa2 = cv.matrix_to_axis_angle(cv.axis_angle_to_matrix(aa))
    assert aa2.shape == BATCH + (3,)
    _close(aa2, aa)
    # And from random matrices.
    R = _random_rotation(BATCH, g)
    aa3 = cv.matrix_to_axis_angle(R)
    assert torch.all(aa3.norm(dim=-1) <= math.pi + 1e-12)
    _close(_rodrigues(aa3, aa3.norm(dim=-1)), R)


@pytest.mark.parametrize("angle", [0.0, 1e-10, 1e-7, 1e-5, 1e-3, math.pi - 1e-5])
def test_matrix_to_axis_angle_small_and_near_pi(angle):
    axis = _normalize(torch.tensor([0.3, -1.2, 0.8], dtype=DT))
    aa = axis * angle
    R = _rodrigues(axis, torch.tensor(angle, dtype=DT)) if angle > 0 else torch.eye(3, dtype=DT)
    _close(cv.matrix_to_axis_angle(R), aa, atol=1e-11, rtol=0)


def test_matrix_to_axis_angle_half_turn():
    axis = _normalize(torch.tensor([1.0, 2.0, -0.5], dtype=DT))
    R = _rodrigues(axis, torch.tensor(math.pi, dtype=DT))
    aa = cv.matrix_to_axis_angle(R)
    _close(aa.norm(), torch.tensor(math.pi, dtype=DT))
    # Either sign of the axis is the same rotation.
    _close(torch.abs((aa / aa.norm()) @ axis), torch.tensor(1.0, dtype=DT))
    _close(cv.axis_angle_to_matrix(aa), R, atol=1e-12, rtol=0)


def test_gradcheck_quaternion_to_matrix():
    q = torch.randn((2, 4), generator=_gen(7), dtype=DT).requires_grad_(True)
    assert torch.autograd.gradcheck(cv.quaternion_to_matrix, (q,))


@pytest.mark.parametrize("scale", [1.0, 1e-5])
def test_gradcheck_axis_angle_to_matrix(scale):
    aa = (scale * torch.randn((2, 3), generator=_gen(8), dtype=DT)).requires_grad_(True)
    assert torch.autograd.gradcheck(cv.axis_angle_to_matrix, (aa,))


def test_axis_angle_gradient_at_zero_is_finite_and_correct():
    aa = torch.zeros(BATCH + (3,), dtype=DT, requires_grad=True)
    assert torch.autograd.gradcheck(cv.axis_angle_to_matrix, (aa,))
    # dR/d(omega_k) at 0 is the generator [e_k]x; check through a random cotangent.
    cot = torch.randn(BATCH + (3, 3), generator=_gen(9), dtype=DT)
    (grad,) = torch.autograd.grad((cv.axis_angle_to_matrix(aa) * cot).sum(), aa)
    assert torch.isfinite(grad).all()
    gens = _skew(torch.eye(3, dtype=DT))  # [3, 3, 3]: generator of each axis
    expected = (cot[..., None, :, :] * gens).sum((-1, -2))
    _close(grad, expected)


def test_gradcheck_matrix_to_quaternion_and_axis_angle():
    R = _random_rotation((2,), _gen(10)).requires_grad_(True)
    assert torch.autograd.gradcheck(cv.matrix_to_quaternion, (R,))
    assert torch.autograd.gradcheck(cv.matrix_to_axis_angle, (R,))


# --------------------------------------------------------------------------------------------- rigid poses
def test_compose_world_to_cam_broadcasts():
    g = _gen(11)
    R = _random_rotation((3,), g)
    t = torch.randn(BATCH + (3,), generator=g, dtype=DT)
    T = cv.compose_world_to_cam(R, t)
    assert T.shape == BATCH + (4, 4) and T.dtype == DT
    _close(T[..., :3, :3], R.expand(BATCH + (3, 3)))
    _close(T[..., :3, 3], t)
    _close(T[..., 3, :], torch.tensor([0.0, 0, 0, 1], dtype=DT).expand(BATCH + (4,)))


def test_invert_rigid_matches_linalg_inv():
    g = _gen(12)
    T = cv.compose_world_to_cam(_random_rotation(BATCH, g), 5 * torch.randn(BATCH + (3,), generator=g, dtype=DT))
    Ti = cv.invert_rigid(T)
    _close(Ti, torch.linalg.inv(T))
    _close(T @ Ti, torch.eye(4, dtype=DT).expand(BATCH + (4, 4)))
    _close(cv.invert_rigid(Ti), T)


# ------------------------------------------------------------------------------------ OpenGL / Blender / NeRF
def _random_c2w(g):
    return cv.compose_world_to_cam(_random_rotation(BATCH, g), 3 * torch.randn(BATCH + (3,), generator=g, dtype=DT))


def test_opengl_round_trips():
    g = _gen(13)
    c2w = _random_c2w(g)
    w2c = cv.opengl_c2w_to_world_to_cam(c2w)
    assert w2c.shape == BATCH + (4, 4)
    _close(cv.world_to_cam_to_opengl_c2w(w2c), c2w)
    w2c_b = _random_c2w(g)
    _close(cv.opengl_c2w_to_world_to_cam(cv.world_to_cam_to_opengl_c2w(w2c_b)), w2c_b)
    # The camera centre is the same point in both conventions.
    _close(cv.invert_rigid(w2c)[..., :3, 3], c2w[..., :3, 3])
    # Blender uses the same converters.
    _close(cv.blender_c2w_to_world_to_cam(c2w), w2c)
    _close(cv.world_to_cam_to_blender_c2w(w2c), c2w)


def test_opengl_look_at_semantics():
    """A GL camera looking at a target: target at the centre, 'up' above (smaller row), 'right' to the right."""
    g = _gen(14)
    W, H = 640, 480
    eye = 4 * torch.randn(BATCH + (3,), generator=g, dtype=DT)
    target = torch.randn(BATCH + (3,), generator=g, dtype=DT)
    world_up = torch.tensor([0.0, 0.0, 1.0], dtype=DT)
    c2w, right, up, fwd = _look_at_gl(eye, target, world_up)
    w2c = cv.opengl_c2w_to_world_to_cam(c2w)
    K = _random_K(BATCH, g, W, H, skew=False)
    cx, cy = K[..., 0, 2], K[..., 1, 2]
    pts = torch.stack([target, target + 0.3 * up, target + 0.3 * right, target + 0.3 * world_up, eye - fwd], -2)
    uv, z = _project(w2c, K, pts)
    dist = (target - eye).norm(dim=-1)
    # Target on the optical axis, depth = distance.
    _close(uv[..., 0, 0], cx)
    _close(uv[..., 0, 1], cy)
    _close(z[..., 0], dist)
    # Camera up -> same column, smaller row (row 0 is the top).
    _close(uv[..., 1, 0], cx)
    assert torch.all(uv[..., 1, 1] < cy - 1)
    # Camera right -> larger column, same row.
    _close(uv[..., 2, 1], cy)
    assert torch.all(uv[..., 2, 0] > cx + 1)
    # World up (z) is never below the target for a look-at camera with that up vector.
    assert torch.all(uv[..., 3, 1] < cy)
    # Points in front have positive depth; a point behind the camera negative.
    assert torch.all(z[..., :4] > 0) and torch.all(z[..., 4] < 0)


def test_blender_camera_object_semantics():
    """Blender: camera at (0, -5, 1), rotation_euler (90 deg, 0, 0) looks along +Y with +Z up."""
    c, s = math.cos(math.pi / 2), math.sin(math.pi / 2)
    matrix_world = torch.tensor(
        [[1, 0, 0, 0.0], [0, c, -s, -5.0], [0, s, c, 1.0], [0, 0, 0, 1]], dtype=DT
    )
    w2c = cv.blender_c2w_to_world_to_cam(matrix_world)
    K = torch.tensor([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]], dtype=DT)
    pts = torch.tensor([[0, 0, 1.0], [0, 0, 2.0], [1, 0, 1.0], [0, -10, 1.0]], dtype=DT)
    uv, z = _project(w2c, K, pts)
    _close(uv[0], torch.tensor([320.0, 240], dtype=DT))
    _close(z[0], torch.tensor(5.0, dtype=DT))
    _close(uv[1], torch.tensor([320.0, 240 - 500 / 5], dtype=DT))  # world +Z is up in the image
    _close(uv[2], torch.tensor([320.0 + 500 / 5, 240], dtype=DT))  # world +X is to the right
    assert z[3] < 0  # behind the camera
    # Default Blender camera (no rotation) looks down world -Z with +Y up.
    w2c0 = cv.blender_c2w_to_world_to_cam(torch.eye(4, dtype=DT))
    uv0, z0 = _project(w2c0, K, torch.tensor([[0, 0, -3.0], [0, 1, -3.0], [1, 0, -3.0]], dtype=DT))
    assert torch.all(z0 > 0)
    assert uv0[1, 1] < 240 and uv0[2, 0] > 320


def test_nerf_focal_from_camera_angle_x():
    W, H = 800, 600
    angle = 0.6911112070083618  # the Blender "lego" scene
    c2w = _random_c2w(_gen(15))
    K, w2c = cv.nerf_to_camera_params(c2w, angle, W, H)
    assert K.shape == (3, 3) and K.dtype == DT and w2c.shape == BATCH + (4, 4)
    _close(K[0, 0], torch.tensor(0.5 * W / math.tan(0.5 * angle), dtype=DT))
    _close(K[0, 0], K[1, 1])
    _close(K[:2, 2], torch.tensor([W / 2, H / 2], dtype=DT))
    _close(w2c, cv.opengl_c2w_to_world_to_cam(c2w))
    # camera_angle_x is the full horizontal field of view: the edges of the image sit at +-angle/2.
    d = 2.0
    x = d * math.tan(angle / 2)
    cam_pts = torch.tensor([[x, 0, -d, 1], [-x, 0, -d, 1]], dtype=DT)  # GL camera frame (looks down -z)
    world = (c2w[..., None, :, :] @ cam_pts[..., None])[..., :3, 0]
    uv, z = _project(w2c, K.expand(BATCH + (3, 3)), world)
    _close(uv[..., 0, 0], torch.full(BATCH, float(W), dtype=DT))
    _close(uv[..., 1, 0], torch.zeros(BATCH, dtype=DT), atol=1e-9, rtol=0)
    _close(uv[..., :, 1], torch.full(BATCH + (2,), H / 2, dtype=DT))
    _close(z, torch.full(BATCH + (2,), d, dtype=DT))
    # Round trip.
    c2w2, angle2 = cv.camera_params_to_nerf(K, w2c, W)
    _close(c2w2, c2w)
    assert abs(angle2 - angle) < 1e-12


def test_nerf_pixel_centre_rays():
    """The ray through pixel (i, j) built the nerfstudio way (GL frame, +0.5 centres) hits pixel centre (j+.5, i+.5)."""
    W, H = 6, 4
    angle = 0.9
    c2w = _random_c2w(_gen(16))
    K, w2c = cv.nerf_to_camera_params(c2w, angle, W, H)
    focal = 0.5 * W / math.tan(0.5 * angle)
    jj, ii = torch.meshgrid(torch.arange(W, dtype=DT), torch.arange(H, dtype=DT), indexing="xy")
    dirs = torch.stack([(jj + 0.5 - W / 2) / focal, -(ii + 0.5 - H / 2) / focal, -torch.ones_like(jj)], -1)
    pts_world = c2w[..., None, None, :3, 3] + 3.0 * (c2w[..., None, None, :3, :3] @ dirs[..., None])[..., 0]
    uv, z = _project(w2c, K.expand(BATCH + (3, 3)), pts_world.reshape(BATCH + (H * W, 3)))
    _close(uv, cv.pixel_centers(H, W, dtype=DT).reshape(H * W, 2).expand(BATCH + (H * W, 2)))
    _close(z, torch.full(BATCH + (H * W,), 3.0, dtype=DT))
    # The two central columns are symmetric about the principal point.
    pc = cv.pixel_centers(H, W, dtype=DT)
    _close(pc[0, W // 2 - 1, 0] + pc[0, W // 2, 0], 2 * K[0, 2])


# ---------------------------------------------------------------------------------------- OpenGL projection
def test_opengl_projection_matches_pinhole():
    g = _gen(17)
    W, H = 640, 400
    near, far = 0.1, 50.0
    K = _random_K(BATCH, g, W, H, skew=True)
    P = cv.opengl_projection_from_K(K, W, H, near, far)
    assert P.shape == BATCH + (4, 4) and P.dtype == DT
    c2w_gl = _random_c2w(g)
    # Random points in front of the GL camera (z_gl in [-far, -near]), within roughly the view.
    N = 32
    depth = near + (far - near) * torch.rand(BATCH + (N,), generator=g, dtype=DT)
    xy = (torch.rand(BATCH + (N, 2), generator=g, dtype=DT) - 0.5) * depth[..., None]
    cam_gl = torch.cat([xy, -depth[..., None], torch.ones_like(depth)[..., None]], -1)
    X = (c2w_gl[..., None, :, :] @ cam_gl[..., None])[..., 0]  # [..., N, 4] world, homogeneous
    # The GL pipeline.
    w2c_gl = torch.linalg.inv(c2w_gl)
    clip = (P @ w2c_gl)[..., None, :, :] @ X[..., None]
    clip = clip[..., 0]
    ndc = clip[..., :3] / clip[..., 3:]
    u_gl = (ndc[..., 0] + 1) / 2 * W
    v_gl = (1 - ndc[..., 1]) / 2 * H
    # Our pipeline.
    uv, z = _project(cv.opengl_c2w_to_world_to_cam(c2w_gl), K, X[..., :3])
    _close(u_gl, uv[..., 0], atol=1e-8, rtol=1e-10)
    _close(v_gl, uv[..., 1], atol=1e-8, rtol=1e-10)
    _close(clip[..., 3], z)  # w_clip is our depth
    _close(z, depth)
    assert torch.all(ndc[..., 2] >= -1 - 1e-12) and torch.all(ndc[..., 2] <= 1 + 1e-12)


def test_opengl_projection_near_far_to_ndc_z():
    g = _gen(18)
    W, H = 320, 240
    near, far = 0.5, 20.0
    K = _random_K(BATCH, g, W, H)
    P = cv.opengl_projection_from_K(K, W, H, near, far)
    xy = torch.randn(BATCH + (2,), generator=g, dtype=DT)
    for z_gl, expected in [(-near, -1.0), (-far, 1.0)]:
        p = torch.cat([xy, torch.full(BATCH + (1,), z_gl, dtype=DT), torch.ones(BATCH + (1,), dtype=DT)], -1)
        clip = (P @ p[..., None])[..., 0]
        _close(clip[..., 2] / clip[..., 3], torch.full(BATCH, expected, dtype=DT))


def test_opengl_projection_round_trip():
    g = _gen(19)
    W, H = 500, 300
    K = _random_K(BATCH, g, W, H, skew=True)
    P = cv.opengl_projection_from_K(K, W, H, 0.01, 100.0)
    _close(cv.K_from_opengl_projection(P, W, H), K)
    # Centred principal point and no skew give the textbook symmetric frustum.
    K0 = torch.tensor([[400.0, 0, W / 2], [0, 400.0, H / 2], [0, 0, 1]], dtype=DT)
    P0 = cv.opengl_projection_from_K(K0, W, H, 0.01, 100.0)
    _close(P0[0, 1:3], torch.zeros(2, dtype=DT))
    _close(P0[1, 2], torch.tensor(0.0, dtype=DT))
    _close(P0[3], torch.tensor([0.0, 0, -1, 0], dtype=DT))


# ------------------------------------------------------------------------------------------------- PyTorch3D
def _pytorch3d_pixels(R, T, focal, principal, X, W, H):
    """PyTorch3D's documented model: X_cam = X_world @ R + T (row vectors), x_ndc = f * X / Z + p,
    NDC +x left / +y up with the shorter side spanning [-1, 1], then NDC -> pixel (origin top-left)."""
    Xc = X @ R + T[..., None, :]
    x_ndc = focal[..., None, 0] * Xc[..., 0] / Xc[..., 2] + principal[..., None, 0]
    y_ndc = focal[..., None, 1] * Xc[..., 1] / Xc[..., 2] + principal[..., None, 1]
    s = min(W, H) / 2.0
    u = W / 2.0 - x_ndc * s
    v = H / 2.0 - y_ndc * s
    return torch.stack([u, v], -1), Xc[..., 2]


@pytest.mark.parametrize("W,H", [(320, 200), (200, 320), (256, 256)])
def test_pytorch3d_matches_pinhole(W, H):
    g = _gen(20)
    R = _random_rotation(BATCH, g)
    T = torch.randn(BATCH + (3,), generator=g, dtype=DT)
    K = _random_K(BATCH, g, W, H, skew=False)
    focal, principal = cv.K_to_pytorch3d_ndc(K, W, H)
    assert focal.shape == BATCH + (2,) and principal.shape == BATCH + (2,)
    # Points in front of the camera, placed in PyTorch3D's camera frame, then mapped to world.
    N = 16
    Xc = torch.randn(BATCH + (N, 3), generator=g, dtype=DT)
    Xc[..., 2] = 1 + 5 * Xc[..., 2].abs()
    X = (Xc - T[..., None, :]) @ R.transpose(-1, -2)
    uv_p3d, z_p3d = _pytorch3d_pixels(R, T, focal, principal, X, W, H)
    uv, z = _project(cv.pytorch3d_to_world_to_cam(R, T), K, X)
    _close(uv, uv_p3d)
    _close(z, z_p3d)


def test_pytorch3d_ndc_corners_non_square():
    """PyTorch3D NDC (+1, +1) is the top-left; for W > H the long side spans [-W/H, W/H]."""
    W, H = 300, 150
    K = torch.tensor([[100.0, 0, W / 2], [0, 100.0, H / 2], [0, 0, 1]], dtype=DT)
    focal, principal = cv.K_to_pytorch3d_ndc(K, W, H)
    _close(focal, torch.tensor([100.0 / 75, 100.0 / 75], dtype=DT))
    _close(principal, torch.zeros(2, dtype=DT))
    # Shift the principal point to the top-left image corner: NDC (+W/H, +1).
    K2 = K.clone()
    K2[0, 2], K2[1, 2] = 0.0, 0.0
    _, p2 = cv.K_to_pytorch3d_ndc(K2, W, H)
    _close(p2, torch.tensor([W / H, 1.0], dtype=DT))


def test_pytorch3d_look_at_semantics():
    """PyTorch3D's look_at_view_transform, written out: target at centre, up above, right to the right."""
    g = _gen(21)
    W, H = 400, 240
    eye = 4 * torch.randn(BATCH + (3,), generator=g, dtype=DT)
    target = torch.randn(BATCH + (3,), generator=g, dtype=DT)
    up = torch.tensor([0.0, 1.0, 0.0], dtype=DT).expand_as(eye)
    z_axis = _normalize(target - eye)
    x_axis = _normalize(torch.linalg.cross(up, z_axis))
    y_axis = _normalize(torch.linalg.cross(z_axis, x_axis))
    R = torch.stack([x_axis, y_axis, z_axis], -1)  # columns are the camera axes in world
    T = -(eye[..., None, :] @ R)[..., 0, :]
    K = _random_K(BATCH, g, W, H, skew=False)
    right = torch.linalg.cross(z_axis, y_axis)  # viewer's right = forward x up
    pts = torch.stack([target, target + 0.3 * y_axis, target + 0.3 * right, target + 0.3 * x_axis], -2)
    uv, z = _project(cv.pytorch3d_to_world_to_cam(R, T), K, pts)
    cx, cy = K[..., 0, 2], K[..., 1, 2]
    _close(uv[..., 0, 0], cx)
    _close(uv[..., 0, 1], cy)
    _close(z[..., 0], (target - eye).norm(dim=-1))
    assert torch.all(uv[..., 1, 1] < cy - 1)  # PyTorch3D +Y (up) is towards row 0
    assert torch.all(uv[..., 2, 0] > cx + 1)  # viewer's right -> larger column
    assert torch.all(uv[..., 3, 0] < cx - 1)  # PyTorch3D +X points left
    # PyTorch3D's default camera (R = I, T = (0, 0, 3)): world +x appears on the left, +y at the top.
    uv0, z0 = _project(
        cv.pytorch3d_to_world_to_cam(torch.eye(3, dtype=DT), torch.tensor([0.0, 0, 3], dtype=DT)),
        K[0, 0],
        torch.tensor([[1.0, 0, 0], [0, 1.0, 0]], dtype=DT),
    )
    assert uv0[0, 0] < K[0, 0, 0, 2] and uv0[1, 1] < K[0, 0, 1, 2] and torch.all(z0 == 3)


def test_pytorch3d_round_trips():
    g = _gen(22)
    R = _random_rotation(BATCH, g)
    T = torch.randn(BATCH + (3,), generator=g, dtype=DT)
    w2c = cv.pytorch3d_to_world_to_cam(R, T)
    assert w2c.shape == BATCH + (4, 4)
    R2, T2 = cv.world_to_cam_to_pytorch3d(w2c)
    _close(R2, R)
    _close(T2, T)
    w2c_b = _random_c2w(g)
    _close(cv.pytorch3d_to_world_to_cam(*cv.world_to_cam_to_pytorch3d(w2c_b)), w2c_b)
    for W, H in [(320, 200), (200, 320)]:
        K = _random_K(BATCH, g, W, H, skew=False)
        K2 = cv.K_from_pytorch3d_ndc(*cv.K_to_pytorch3d_ndc(K, W, H), W, H)
        _close(K2, K)


# ------------------------------------------------------------------------------------ winding, grads, dtypes
def test_ccw_front_face_has_negative_signed_area_in_pixels():
    """A triangle counter-clockwise as seen by an OpenGL camera has (x1-x0)(y2-y0)-(x2-x0)(y1-y0) < 0 in pixels."""
    c2w = _random_c2w(_gen(23))
    tri_cam_gl = torch.tensor([[-1.0, -1, -5, 1], [1, -1, -5, 1], [0, 1, -5, 1]], dtype=DT)  # CCW in GL eye space
    tri = (c2w[..., None, :, :] @ tri_cam_gl[..., None])[..., :3, 0]
    K = torch.tensor([[300.0, 0, 160], [0, 300, 120], [0, 0, 1]], dtype=DT).expand(BATCH + (3, 3))
    uv, _ = _project(cv.opengl_c2w_to_world_to_cam(c2w), K, tri)
    (x0, y0), (x1, y1), (x2, y2) = uv[..., 0, :].unbind(-1), uv[..., 1, :].unbind(-1), uv[..., 2, :].unbind(-1)
    area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
    assert torch.all(area < 0)


def test_gradcheck_pose_and_projection_converters():
    g = _gen(24)
    c2w = cv.compose_world_to_cam(_random_rotation((2,), g), torch.randn((2, 3), generator=g, dtype=DT))
    c2w.requires_grad_(True)
    assert torch.autograd.gradcheck(cv.opengl_c2w_to_world_to_cam, (c2w,))
    assert torch.autograd.gradcheck(cv.invert_rigid, (c2w,))
    R = _random_rotation((2,), g).requires_grad_(True)
    T = torch.randn((2, 3), generator=g, dtype=DT, requires_grad=True)
    assert torch.autograd.gradcheck(cv.pytorch3d_to_world_to_cam, (R, T))
    K = _random_K((2,), g, 64, 48).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda k: cv.opengl_projection_from_K(k, 64, 48, 0.1, 10.0), (K,))
    assert torch.autograd.gradcheck(lambda k: cv.K_to_pytorch3d_ndc(k, 64, 48), (K,))


def test_outputs_follow_input_dtype():
    for dtype in (torch.float32, torch.float64):
        q = torch.randn(BATCH + (4,), dtype=dtype)
        assert cv.quaternion_to_matrix(q).dtype == dtype
        assert cv.matrix_to_quaternion(cv.quaternion_to_matrix(q)).dtype == dtype
        assert cv.axis_angle_to_matrix(torch.randn(3, dtype=dtype)).dtype == dtype
        T = torch.eye(4, dtype=dtype).expand(BATCH + (4, 4))
        assert cv.opengl_c2w_to_world_to_cam(T).dtype == dtype
        assert cv.world_to_cam_to_pytorch3d(T)[0].dtype == dtype
        K = torch.eye(3, dtype=dtype)
        assert cv.opengl_projection_from_K(K, 4, 3, 0.1, 1.0).dtype == dtype
        assert cv.K_to_pytorch3d_ndc(K, 4, 3)[0].dtype == dtype


# ------------------------------------------------------------------------------------ 6D rotations
def test_rotation_6d_round_trip_and_gradcheck():
    from lumigrad.conventions import matrix_to_rotation_6d, quaternion_to_matrix, rotation_6d_to_matrix

    g = torch.Generator().manual_seed(11)
    R = quaternion_to_matrix(torch.randn(4, 3, 4, generator=g, dtype=torch.float64))
    torch.testing.assert_close(rotation_6d_to_matrix(matrix_to_rotation_6d(R)), R)
    r6 = torch.randn(5, 6, generator=g, dtype=torch.float64)
    M = rotation_6d_to_matrix(r6)
    torch.testing.assert_close(M @ M.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand(5, 3, 3))
    assert torch.allclose(torch.linalg.det(M), torch.ones(5, dtype=torch.float64))
    torch.autograd.gradcheck(rotation_6d_to_matrix, (r6.requires_grad_(),))
