"""``lumigrad.raytrace`` intersection: trace_closest / trace_occluded against the float64 brute-force twin,
special rays (inside, backfaces, degenerate triangles, t_max), gradients of the differentiable replay, input
validation, and self-intersection avoidance on a mesh far from the origin."""

from __future__ import annotations

import math

import pytest
import torch

import lumigrad as lg
from lumigrad.kernels.bvh import clear_bvh_cache
from lumigrad.raytrace import (RayHit, intersect_faces, intersect_reference, offset_ray_origin, trace_closest,
                               trace_occluded)

from ..conftest import central_fd, uv_sphere
from .scenes import rays_at, triangle_soup


@pytest.fixture(autouse=True)
def fresh_cache():
    clear_bvh_cache()
    yield
    clear_bvh_cache()


def assert_same_hits(hit: RayHit, ref: RayHit, tol: float = 1e-4, max_ties: float = 0.005):
    """Equal face ids except at a few near-ties; where equal, equal t and bary (both are replayed in PyTorch)."""
    same = hit.face == ref.face
    assert float((~same).double().mean()) <= max_ties
    h = same & ref.hit
    assert torch.allclose(hit.t[h].double(), ref.t[h], atol=tol, rtol=0)
    assert torch.allclose(hit.bary[h].double(), ref.bary[h], atol=tol, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_trace_closest_matches_the_reference_and_follows_the_dtype(dtype):
    verts, faces = triangle_soup(150, seed=21)
    o, d = rays_at(verts, faces, 1200, seed=22)
    hit = trace_closest(verts.to(dtype), faces, o.to(dtype), d.to(dtype))
    assert hit.t.dtype == dtype and hit.bary.dtype == dtype and hit.face.dtype == torch.int64
    ref = intersect_reference(verts, faces, o, d)
    assert_same_hits(hit, ref, tol=1e-4 if dtype == torch.float64 else 1e-3)
    assert bool((hit.t[~hit.hit] == math.inf).all()) and bool((hit.bary[~hit.hit] == 0).all())
    x = (hit.bary[hit.hit, :, None] * verts.to(dtype)[faces[hit.face[hit.hit]]]).sum(1)
    assert torch.allclose(x, (o + hit.t[:, None] * d).to(dtype)[hit.hit], atol=1e-4)  # o + t d = sum bary v


def test_batch_dims_and_per_ray_t_max():
    verts, faces = triangle_soup(60, seed=23)
    o, d = rays_at(verts, faces, 24, seed=24)
    t_max = torch.linspace(0.5, 5.0, 24, dtype=torch.float64)
    flat = trace_closest(verts, faces, o, d, t_max)
    batched = trace_closest(verts, faces, o.reshape(2, 3, 4, 3), d.reshape(2, 3, 4, 3), t_max.reshape(2, 3, 4))
    assert batched.face.shape == (2, 3, 4) and batched.bary.shape == (2, 3, 4, 3)
    assert torch.equal(batched.face.reshape(-1), flat.face) and torch.equal(batched.t.reshape(-1), flat.t)
    occ = trace_occluded(verts, faces, o.reshape(4, 6, 3), d.reshape(4, 6, 3), t_max.reshape(4, 6))
    assert occ.shape == (4, 6) and occ.dtype == torch.bool


def test_occluded_agrees_with_closest_and_t_max_is_honoured():
    verts, faces = triangle_soup(120, seed=25)
    o, d = rays_at(verts, faces, 1500, seed=26)
    closest = trace_closest(verts, faces, o, d)
    assert bool(closest.hit.any())
    for scale in (0.5, 1.0 - 1e-3, 1.0 + 1e-3, 2.0):
        limit = torch.where(closest.hit, closest.t * scale, torch.full_like(closest.t, 10.0))
        occ = trace_occluded(verts, faces, o, d, limit)
        bounded = trace_closest(verts, faces, o, d, limit)
        assert torch.equal(occ, bounded.hit)
        assert bool((bounded.t[bounded.hit] < limit[bounded.hit] * (1 + 1e-5)).all())
        if scale > 1:
            assert torch.equal(occ, closest.hit)
    # A scalar limit: the first hits of the unbounded query closer than it, and nothing farther.
    occ = trace_occluded(verts, faces, o, d, 2.0)
    assert torch.equal(occ[(closest.t - 2.0).abs() > 1e-4], (closest.t < 2.0)[(closest.t - 2.0).abs() > 1e-4])


def test_rays_from_inside_a_closed_mesh_hit_it_once_from_the_back():
    verts, faces = uv_sphere(12, 24)
    g = torch.Generator().manual_seed(27)
    o = 0.5 * (torch.rand(300, 3, generator=g, dtype=torch.float64) - 0.5)
    d = torch.randn(300, 3, generator=g, dtype=torch.float64)
    hit = trace_closest(verts, faces, o, d)
    assert bool(hit.hit.all())  # closed: every ray from inside leaves through some face
    assert_same_hits(hit, intersect_reference(verts, faces, o, d))
    n = torch.linalg.cross(*(verts[faces[hit.face, k]] - verts[faces[hit.face, 0]] for k in (1, 2)))
    assert bool(((n * d).sum(-1) > 0).all())  # outward normals: each hit is on a backface (no culling)
    x = o + hit.t[:, None] * d
    assert torch.allclose(x.norm(dim=-1), torch.ones(300, dtype=torch.float64), atol=0.05)


def test_backfaces_are_hit_and_degenerate_triangles_never():
    verts = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0],  # a triangle in z = 0
                          [0.0, 0.0, 1.0], [1.0, 0.0, 1.0], [2.0, 0.0, 1.0],  # collinear: zero area, z = 1
                          [0.3, 0.3, 2.0]], dtype=torch.float64)
    faces = torch.tensor([[0, 1, 2], [3, 4, 5], [6, 6, 6]])  # and a point-triangle
    o = torch.tensor([[0.2, 0.0, 3.0], [0.2, 0.0, -3.0], [0.3, 0.3, 3.0], [0.5, 0.0, 1.0]], dtype=torch.float64)
    d = torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.0, 1.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]], dtype=torch.float64)
    hit = trace_closest(verts, faces, o, d)
    # Ray 0 passes the zero-area face at z = 1 and hits face 0 from its front, ray 1 from its back; ray 2 passes
    # the point-triangle; ray 3 runs along the zero-area face: a miss.
    assert hit.face.tolist() == [0, 0, 0, -1]
    assert torch.allclose(hit.t[:3], torch.tensor([3.0, 3.0, 3.0], dtype=torch.float64))
    assert torch.equal(intersect_reference(verts, faces, o, d).face, hit.face)
    t, bary = intersect_faces(verts, faces, o, d, torch.tensor([1, 1, 2, 1]))  # replays on degenerate faces
    assert bool((t == math.inf).all()) and bool((bary == 0).all())


def test_empty_mesh_and_no_rays():
    verts, faces = torch.zeros(0, 3), torch.zeros(0, 3, dtype=torch.int64)
    hit = trace_closest(verts, faces, torch.zeros(5, 3), torch.ones(5, 3))
    assert hit.face.tolist() == [-1] * 5 and bool((hit.t == math.inf).all())
    assert not bool(trace_occluded(verts, faces, torch.zeros(5, 3), torch.ones(5, 3), 1.0).any())
    v, f = triangle_soup(3)
    assert trace_closest(v, f, torch.zeros(0, 3, dtype=v.dtype), torch.zeros(0, 3, dtype=v.dtype)).t.shape == (0,)


# --------------------------------------------------------------------------------------------------- gradients
def _small_scene():
    verts, faces = triangle_soup(6, seed=28, size=0.8)
    o, d = rays_at(verts, faces, 40, seed=29, spread=0.0)
    ref = intersect_reference(verts, faces, o, d)
    keep = ref.hit & (ref.bary.min(-1).values > 0.05)  # well inside their faces: smooth there
    return verts, faces, o[keep][:8], d[keep][:8], ref.face[keep][:8]


def test_gradcheck_of_the_replay_wrt_verts_origins_and_directions():
    verts, faces, o, d, face = _small_scene()
    assert face.numel() >= 4
    inputs = tuple(x.clone().requires_grad_(True) for x in (verts, o, d))
    assert torch.autograd.gradcheck(lambda v, oo, dd: intersect_faces(v, faces, oo, dd, face), inputs)


def test_misses_have_zero_finite_gradients():
    verts, faces, o, d, face = _small_scene()
    face = face.clone()
    face[::2] = -1
    v, oo, dd = (x.clone().requires_grad_(True) for x in (verts, o, d))
    t, bary = intersect_faces(v, faces, oo, dd, face)
    (torch.where(face >= 0, t, 0.0).sum() + bary.sum()).backward()
    for g in (v.grad, oo.grad, dd.grad):
        assert bool(torch.isfinite(g).all())
    assert bool((oo.grad[::2] == 0).all()) and bool((dd.grad[::2] == 0).all())


def test_finite_differences_of_t_wrt_a_vertex_through_the_bvh():
    verts, faces, o, d, face = _small_scene()
    corner = int(faces[face[0], 1])
    v = verts.clone().requires_grad_(True)
    weights = torch.linspace(0.5, 1.5, o.shape[0], dtype=torch.float64)

    def loss(x):
        hit = trace_closest(x, faces, o, d)
        assert torch.equal(hit.face, face)  # the BVH (refit for every step) still finds the same faces
        return (weights * hit.t).sum()

    loss(v).backward()
    fd = central_fd(loss, verts.clone(), 1e-5)
    assert torch.allclose(v.grad[corner], fd[corner], rtol=1e-5, atol=1e-7)
    assert torch.allclose(v.grad, fd, rtol=1e-5, atol=1e-7)


# ------------------------------------------------------------------------------------------------- validation
@pytest.mark.parametrize("case, error, match", [
    ("nan_origin", ValueError, "origins contains NaN or Inf"),
    ("inf_direction", ValueError, "directions contains NaN or Inf"),
    ("nan_verts", ValueError, "verts contains NaN or Inf"),
    ("nan_t_max", ValueError, "t_max contains NaN"),
    ("origin_shape", ValueError, r"origins must have shape \[\.\.\., 3\]"),
    ("direction_shape", ValueError, "origins and directions must have the same shape"),
    ("t_max_shape", ValueError, "t_max must be a number or have the rays' shape"),
    ("t_max_type", TypeError, "t_max must be a number or a float tensor"),
    ("face_range", ValueError, r"faces holds index 99, outside the valid range \[0, 18\)"),
    ("face_negative", ValueError, r"faces holds index -1"),
    ("face_shape", ValueError, r"faces must have shape \[\?, 3\]"),
    ("face_dtype", TypeError, "faces must have an integer dtype"),
    ("int_origins", TypeError, "origins must have a floating dtype"),
    ("not_a_tensor", TypeError, "directions must be a torch.Tensor"),
    ("mixed_devices", ValueError, "origins is on meta but the other inputs are on cpu"),
])
def test_bad_inputs_raise_naming_the_argument(case, error, match):
    verts, faces = triangle_soup(6)
    o, d = torch.zeros(4, 3, dtype=verts.dtype), torch.ones(4, 3, dtype=verts.dtype)
    t_max = torch.ones(4, dtype=verts.dtype)
    if case == "nan_origin":
        o[1, 2] = math.nan
    elif case == "inf_direction":
        d[0, 0] = math.inf
    elif case == "nan_verts":
        verts = verts.clone()
        verts[3, 1] = math.nan
    elif case == "nan_t_max":
        t_max[2] = math.nan
    elif case == "origin_shape":
        o = torch.zeros(4, 2, dtype=verts.dtype)
    elif case == "direction_shape":
        d = torch.ones(5, 3, dtype=verts.dtype)
    elif case == "t_max_shape":
        t_max = torch.ones(3, dtype=verts.dtype)
    elif case == "t_max_type":
        t_max = "far"
    elif case == "face_range":
        faces = faces.clone()
        faces[2, 1] = 99
    elif case == "face_negative":
        faces = faces.clone()
        faces[0, 0] = -1
    elif case == "face_shape":
        faces = faces[:, :2]
    elif case == "face_dtype":
        faces = faces.double()
    elif case == "int_origins":
        o = o.long()
    elif case == "not_a_tensor":
        d = d.tolist()
    elif case == "mixed_devices":
        o = o.to("meta")
    with pytest.raises(error, match=match):
        trace_closest(verts, faces, o, d, t_max)
    with pytest.raises(error, match=match):
        trace_occluded(verts, faces, o, d, t_max)


def test_intersect_faces_and_offset_validate_too():
    verts, faces = triangle_soup(6)
    o, d = torch.zeros(4, 3, dtype=verts.dtype), torch.ones(4, 3, dtype=verts.dtype)
    with pytest.raises(ValueError, match=r"face holds ids outside \[-1, 6\)"):
        intersect_faces(verts, faces, o, d, torch.tensor([0, 1, 6, -1]))
    with pytest.raises(ValueError, match="must have shapes"):
        intersect_faces(verts, faces, o, d, torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="face must have an integer dtype"):
        intersect_faces(verts, faces, o, d, torch.zeros(4))
    with pytest.raises(ValueError, match="n contains NaN"):
        offset_ray_origin(o, torch.full_like(o, math.nan), d)
    with pytest.raises(ValueError, match="p, n and d must have the same shape"):
        offset_ray_origin(o, d[:2], d)


# ------------------------------------------------------------------------------------------- self-intersection
def test_offset_ray_origin_example_and_gradient():
    p = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64, requires_grad=True)
    out = offset_ray_origin(p, torch.tensor([[2.0, 0.0, 0.0]]), torch.tensor([[-1.0, 0.5, 0.0]]))
    assert out.dtype == torch.float64 and out.tolist() == [[1.0 - 256 * 2.0 ** -24, 0.0, 0.0]]
    out.sum().backward()
    assert torch.equal(p.grad, torch.ones_like(p))


@pytest.mark.parametrize("centre", [(0.0, 0.0, 0.0), (3.0e3, -2.0e4, 5.0e4)])
def test_offset_ray_origin_prevents_self_hits_far_from_the_origin(centre):
    """Rays leave surface points of a sphere (radius 50, possibly 5e4 from the origin, where a float32 ULP is
    0.004): outward rays must escape the convex mesh, inward ones must reach another face. Without the offset,
    many of them hit the face they start on."""
    verts, faces = lg.geometry.icosphere(3, radius=50.0)
    verts = verts + torch.tensor(centre)
    g = torch.Generator().manual_seed(30)
    R = 4000
    start_face = torch.randint(0, faces.shape[0], (R,), generator=g)
    w = -torch.rand(R, 3, generator=g).log()
    bary = w / w.sum(-1, keepdim=True)
    p = (bary[:, :, None] * verts[faces[start_face]]).sum(1)  # float32, from the barycentrics
    tri = verts[faces[start_face]]
    n = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n = n / n.norm(dim=-1, keepdim=True)
    d = torch.randn(R, 3, generator=g)
    outward = (d * n).sum(-1) > 0

    naive = trace_closest(verts, faces, p, d)
    self_hits = (naive.face == start_face) & naive.hit
    assert int(self_hits.sum()) > 0.05 * R  # the problem exists here

    hit = trace_closest(verts, faces, offset_ray_origin(p, n, d), d)
    assert not bool(hit.hit[outward].any())  # a convex mesh: leaving outward, nothing to hit
    assert bool(hit.hit[~outward].all()) and not bool((hit.face == start_face).any())
    occ = trace_occluded(verts, faces, offset_ray_origin(p, n, d), d, 1e6)
    assert torch.equal(occ, ~outward)
