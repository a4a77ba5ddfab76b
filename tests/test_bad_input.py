"""Bad input to the public ops must raise ValueError / TypeError naming the argument, before any kernel runs.

Covers rasterize, depth_peel, interpolate, texture, antialias and Camera: wrong shapes and dtypes, out-of-range
indices, NaN / Inf, empty meshes, geometry behind the camera, mixed devices ('meta' stands in for a second
device), wrong types, unknown option strings. Also: zero-area faces give finite, zero gradients.
"""

import functools
import subprocess
import sys
import textwrap

import pytest
import torch

import lumigrad as lg

from .conftest import camera_at, uv_sphere

DT = torch.float64
META = torch.device("meta")


def _scene():
    verts, faces = uv_sphere(4, 6)
    cam = camera_at((0.0, 0.0, -3.0), size=(8, 8))
    return verts, faces, cam


def _meta_camera(cam):
    """A camera whose tensors live on another device (Camera() itself cannot read meta tensors; see below)."""
    other = camera_at((0.0, 0.0, -3.0), size=(cam.width, cam.height))
    other.K = cam.K.to(META)
    other.world_to_cam = cam.world_to_cam.to(META)
    return other


def _set(t, index, value):
    t = t.clone()
    t[index] = value
    return t


VERTS, FACES, CAM = _scene()
V = VERTS.shape[0]
BEHIND = VERTS - torch.tensor([0.0, 0.0, 10.0], dtype=DT)
FACES_NEG = torch.cat([FACES, torch.tensor([[0, 1, -1]])])
FACES_BIG = torch.cat([FACES, torch.tensor([[0, 1, V]])])

# (id, fn(verts, faces, camera) -> raises, exception, pattern)
MESH_CASES = [
    ("verts_2_columns", lambda: (VERTS[:, :2], FACES, CAM), ValueError, r"verts must have shape \[\.\.\., \?, 3\]"),
    ("verts_flat", lambda: (VERTS.reshape(-1), FACES, CAM), ValueError, "verts must have shape"),
    ("faces_4_columns", lambda: (VERTS, torch.cat([FACES, FACES[:, :1]], 1), CAM), ValueError, "faces must have shape"),
    ("faces_flat", lambda: (VERTS, FACES.reshape(-1), CAM), ValueError, "faces must have shape"),
    ("faces_batched", lambda: (VERTS, FACES[None], CAM), ValueError, "faces must have shape"),
    ("verts_int", lambda: (VERTS.long(), FACES, CAM), TypeError, "verts must have a floating dtype"),
    ("faces_float", lambda: (VERTS, FACES.double(), CAM), TypeError, "faces must have an integer dtype"),
    ("faces_bool", lambda: (VERTS, FACES.bool(), CAM), TypeError, "faces must have an integer dtype"),
    ("verts_list", lambda: (VERTS.tolist(), FACES, CAM), TypeError, "verts must be a torch.Tensor"),
    ("faces_negative", lambda: (VERTS, FACES_NEG, CAM), ValueError, r"faces holds index -1"),
    ("faces_ge_V", lambda: (VERTS, FACES_BIG, CAM), ValueError, rf"faces holds index {V}, outside .*\[0, {V}\)"),
    ("verts_nan", lambda: (_set(VERTS, (3, 1), float("nan")), FACES, CAM), ValueError, "verts contains NaN or Inf"),
    ("verts_inf", lambda: (_set(VERTS, (0, 2), float("-inf")), FACES, CAM), ValueError, "verts contains NaN or Inf"),
    ("verts_empty", lambda: (VERTS[:0], FACES, CAM), ValueError, "verts is empty"),
    ("faces_empty", lambda: (VERTS, FACES[:0], CAM), ValueError, "faces is empty"),
    ("camera_not_camera", lambda: (VERTS, FACES, CAM.K), TypeError, "camera must be a lumigrad.Camera"),
    ("camera_none", lambda: (VERTS, FACES, None), TypeError, "camera must be a lumigrad.Camera"),
    ("faces_other_device", lambda: (VERTS, FACES.to(META), CAM), ValueError, "faces is on meta"),
    ("camera_other_device", lambda: (VERTS, FACES, _meta_camera(CAM)), ValueError, "camera is on meta"),
]


@pytest.mark.parametrize("make, exc, match", [c[1:] for c in MESH_CASES], ids=[c[0] for c in MESH_CASES])
def test_rasterize_bad_mesh(make, exc, match):
    verts, faces, cam = make()
    with pytest.raises(exc, match=match):
        lg.rasterize(verts, faces, cam)


@pytest.mark.parametrize("make, exc, match", [c[1:] for c in MESH_CASES], ids=[c[0] for c in MESH_CASES])
def test_depth_peel_bad_mesh(make, exc, match):
    verts, faces, cam = make()
    with pytest.raises(exc, match=match):
        lg.depth_peel(verts, faces, cam, 2)


@pytest.mark.parametrize("make, exc, match", [c[1:] for c in MESH_CASES], ids=[c[0] for c in MESH_CASES])
def test_antialias_bad_mesh(make, exc, match):
    verts, faces, cam = make()
    frags = _frags()
    color = torch.rand(8, 8, 3, dtype=DT)
    with pytest.raises(exc, match=match):
        lg.antialias(color, frags, verts, faces, cam)


def test_all_vertices_behind_the_camera():
    with pytest.raises(ValueError, match=r"behind the camera.*world_to_cam"):
        lg.rasterize(BEHIND, FACES, CAM)
    with pytest.raises(ValueError, match=r"behind the camera.*world_to_cam"):
        lg.depth_peel(BEHIND, FACES, CAM, 2)
    # One view of a batch is enough to fail, and the message says which.
    cams = lg.Camera.look_at(torch.tensor([[0.0, 0.0, -3.0], [0.0, 0.0, -12.0]], dtype=DT),
                             torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, -20.0]], dtype=DT),
                             torch.tensor([0.0, 1.0, 0.0], dtype=DT), width=8, height=8)
    with pytest.raises(ValueError, match=r"camera.*view 1"):
        lg.rasterize(VERTS, FACES, cams)


def test_geometry_only_partly_behind_or_beyond_far_is_fine():
    # Not errors: a mesh beyond the far plane is simply not drawn.
    cam = camera_at((0.0, 0.0, -3.0), size=(8, 8), far=1.0)
    assert not lg.rasterize(VERTS, FACES, cam).mask.any()


@pytest.mark.parametrize("cull", ["both", "Back", "", None])
def test_unknown_cull(cull):
    with pytest.raises(ValueError, match="cull must be one of"):
        lg.rasterize(VERTS, FACES, CAM, cull=cull)
    with pytest.raises(ValueError, match="cull must be one of"):
        lg.depth_peel(VERTS, FACES, CAM, 2, cull=cull)


@pytest.mark.parametrize("n, exc", [(0, ValueError), (-2, ValueError), (1.5, TypeError), (True, TypeError),
                                    ("2", TypeError), (None, TypeError)])
def test_depth_peel_num_layers(n, exc):
    with pytest.raises(exc, match="num_layers"):
        lg.depth_peel(VERTS, FACES, CAM, n)


@pytest.mark.parametrize("op", ["rasterize", "depth_peel", "antialias"])
def test_verts_on_another_device_than_camera(op):
    verts = VERTS.to(META)
    with pytest.raises((ValueError, TypeError), match="verts|camera"):
        if op == "rasterize":
            lg.rasterize(verts, FACES, CAM)
        elif op == "depth_peel":
            lg.depth_peel(verts, FACES, CAM, 2)
        else:
            lg.antialias(torch.rand(8, 8, 3, dtype=DT), lg.rasterize(VERTS, FACES, CAM), verts, FACES, CAM)


def test_verts_batch_incompatible_with_camera_batch():
    cams = lg.Camera.look_at(torch.tensor([[0.0, 0.0, -3.0], [3.0, 0.0, 0.0], [0.0, 3.0, 0.1]], dtype=DT),
                             torch.zeros(3, 3, dtype=DT), torch.tensor([0.0, 1.0, 0.0], dtype=DT), width=8, height=8)
    with pytest.raises(ValueError, match="verts|camera"):
        lg.rasterize(torch.stack([VERTS, VERTS]), FACES, cams)


# ------------------------------------------------------------------------------------------------ interpolate
@functools.lru_cache(maxsize=1)
def _frags():
    return lg.rasterize(VERTS, FACES, CAM)


ATTRS = torch.rand(V, 2, dtype=DT)

INTERP_CASES = [
    ("attrs_1d", lambda: (ATTRS[:, 0], _frags(), FACES), ValueError, r"attrs must have shape"),
    ("attrs_int", lambda: (ATTRS.long(), _frags(), FACES), TypeError, "attrs must have a floating dtype"),
    ("attrs_list", lambda: (ATTRS.tolist(), _frags(), FACES), TypeError, "attrs must be a torch.Tensor"),
    ("attrs_batch_mismatch", lambda: (ATTRS.expand(2, V, 2), _frags(), FACES), ValueError, "attrs has batch dims"),
    ("faces_float", lambda: (ATTRS, _frags(), FACES.float()), TypeError, "faces must have an integer dtype"),
    ("faces_4_columns", lambda: (ATTRS, _frags(), FACES[:, [0, 1, 2, 2]]), ValueError, "faces must have shape"),
    ("faces_batched", lambda: (ATTRS, _frags(), FACES[None]), ValueError, "faces must have shape"),
    ("faces_negative", lambda: (ATTRS, _frags(), FACES - 1), ValueError, "faces holds index -1"),
    ("faces_ge_A", lambda: (ATTRS[:5], _frags(), FACES), ValueError, r"faces holds index \d+, outside .*\[0, 5\)"),
    ("attrs_empty", lambda: (ATTRS[:0], _frags(), FACES), ValueError, r"faces holds index .*\[0, 0\)"),
    ("frags_dict", lambda: (ATTRS, {"face_ids": _frags().face_ids}, FACES), TypeError,
     "frags must be lumigrad Fragments"),
    ("frags_tuple", lambda: (ATTRS, (_frags(),), FACES), TypeError, "frags must be lumigrad Fragments"),
    ("frags_tensor", lambda: (ATTRS, _frags().bary, FACES), TypeError, "frags must be lumigrad Fragments"),
    ("attrs_other_device", lambda: (ATTRS.to(META), _frags(), FACES), ValueError, "attrs is on meta"),
    ("faces_other_device", lambda: (ATTRS, _frags(), FACES.to(META)), ValueError, "faces is on meta"),
]


@pytest.mark.parametrize("make, exc, match", [c[1:] for c in INTERP_CASES], ids=[c[0] for c in INTERP_CASES])
def test_interpolate_bad_input(make, exc, match):
    attrs, frags, faces = make()
    with pytest.raises(exc, match=match):
        lg.interpolate(attrs, frags, faces)


def test_interpolate_derivatives_without_bary_derivs():
    with pytest.raises(ValueError, match="return_derivatives"):
        lg.interpolate(ATTRS, _frags(), FACES, return_derivatives=True)


@pytest.mark.parametrize("rows", [0, 3])
def test_interpolate_faces_fewer_than_rasterized(rows):
    assert int(_frags().face_ids.max()) >= 3
    with pytest.raises(ValueError, match="faces"):
        lg.interpolate(ATTRS, _frags(), FACES[:rows])


# ---------------------------------------------------------------------------------------------------- texture
TEX = torch.rand(4, 5, 3, dtype=DT)
UV = torch.rand(2, 3, 2, dtype=DT)
DUV = torch.full((2, 3, 2, 2), 0.1, dtype=DT)

TEX_CASES = [
    ("tex_int", lambda: (TEX.long(), UV, {}), TypeError, "tex must have a floating dtype"),
    ("uv_int", lambda: (TEX, UV.long(), {}), TypeError, "uv must have a floating dtype"),
    ("uv_list", lambda: (TEX, UV.tolist(), {}), TypeError, "uv must be a torch.Tensor"),
    ("tex_list", lambda: (TEX.tolist(), UV, {}), TypeError, "tex must be a torch.Tensor"),
    ("uv_3_channels", lambda: (TEX, torch.rand(2, 3, 3, dtype=DT), {}), ValueError, "uv must have shape"),
    ("uv_2d", lambda: (TEX, UV[0], {}), ValueError, "uv must have shape"),
    ("tex_2d", lambda: (TEX[0], UV, {}), ValueError, "tex must have shape"),
    ("tex_no_rows", lambda: (TEX[:0], UV, {}), ValueError, "tex must have at least one texel"),
    ("tex_no_cols", lambda: (TEX[:, :0], UV, {}), ValueError, "tex must have at least one texel"),
    ("tex_batch_mismatch", lambda: (TEX.expand(2, 4, 5, 3), UV, {}), ValueError, "tex has batch dims"),
    ("tex_nan", lambda: (_set(TEX, (1, 2, 0), float("nan")), UV, {}), ValueError, "tex contains NaN or Inf"),
    ("tex_inf", lambda: (_set(TEX, (0, 0, 2), float("inf")), UV, {}), ValueError, "tex contains NaN or Inf"),
    ("uv_nan", lambda: (TEX, _set(UV, (1, 1, 0), float("nan")), {}), ValueError, "uv contains NaN or Inf"),
    ("uv_derivs_nan", lambda: (TEX, UV, {"uv_derivs": _set(DUV, (0, 0, 0, 0), float("nan"))}), ValueError,
     "uv_derivs contains NaN or Inf"),
    ("uv_derivs_shape", lambda: (TEX, UV, {"uv_derivs": DUV[..., 0]}), ValueError, "uv_derivs must have shape"),
    ("uv_derivs_lead", lambda: (TEX, UV, {"uv_derivs": DUV[:1]}), ValueError, "uv_derivs must have shape"),
    ("uv_derivs_int", lambda: (TEX, UV, {"uv_derivs": DUV.long()}), TypeError, "uv_derivs must have a floating"),
    ("filter_unknown", lambda: (TEX, UV, {"filter": "cubic"}), ValueError, "filter must be one of"),
    ("filter_case", lambda: (TEX, UV, {"filter": "Bilinear"}), ValueError, "filter must be one of"),
    ("wrap_unknown", lambda: (TEX, UV, {"wrap": "border"}), ValueError, "wrap must be one of"),
    ("wrap_none", lambda: (TEX, UV, {"wrap": None}), ValueError, "wrap must be one of"),
    ("trilinear_without_derivs", lambda: (TEX, UV, {"filter": "trilinear"}), ValueError, "uv_derivs"),
    ("tex_other_device", lambda: (TEX.to(META), UV, {}), ValueError, "tex is on meta"),
    ("uv_derivs_other_device", lambda: (TEX, UV, {"uv_derivs": DUV.to(META)}), ValueError, "uv_derivs is on meta"),
]


@pytest.mark.parametrize("make, exc, match", [c[1:] for c in TEX_CASES], ids=[c[0] for c in TEX_CASES])
def test_texture_bad_input(make, exc, match):
    tex, uv, kw = make()
    with pytest.raises(exc, match=match):
        lg.texture(tex, uv, **kw)


def test_texture_uv_on_another_device():
    with pytest.raises(ValueError, match="uv|tex"):
        lg.texture(TEX, UV.to(META))


# -------------------------------------------------------------------------------------------------- antialias
COLOR = torch.rand(8, 8, 3, dtype=DT)
AA_CASES = [
    ("color_int", lambda: (COLOR.long(), _frags(), CAM), TypeError, "color must have a floating dtype"),
    ("color_shape", lambda: (COLOR[:4], _frags(), CAM), ValueError, "color must have shape"),
    ("color_2d", lambda: (COLOR[..., 0], _frags(), CAM), ValueError, "color must have shape"),
    ("color_list", lambda: (COLOR.tolist(), _frags(), CAM), TypeError, "color must be a torch.Tensor"),
    ("color_other_device", lambda: (COLOR.to(META), _frags(), CAM), ValueError, "color is on meta"),
    ("frags_dict", lambda: (COLOR, {"face_ids": _frags().face_ids}, CAM), TypeError,
     "frags must be lumigrad Fragments"),
    ("frags_tensor", lambda: (COLOR, _frags().face_ids, CAM), TypeError, "frags must be lumigrad Fragments"),
    ("camera_other_size", lambda: (COLOR, _frags(), camera_at((0.0, 0.0, -3.0), size=(9, 8))), ValueError,
     r"frags are 8x8 but camera is 8x9"),
    ("frags_batch_mismatch", lambda: (COLOR.expand(2, 8, 8, 3), lg.rasterize(torch.stack([VERTS, VERTS]), FACES, CAM),
                                      CAM), ValueError, "frags have batch dims"),
]


@pytest.mark.parametrize("make, exc, match", [c[1:] for c in AA_CASES], ids=[c[0] for c in AA_CASES])
def test_antialias_bad_input(make, exc, match):
    color, frags, cam = make()
    with pytest.raises(exc, match=match):
        lg.antialias(color, frags, VERTS, FACES, cam)


_AA_FOREIGN_FRAGS = textwrap.dedent("""
    import torch, lumigrad as lg
    cam = lg.Camera.look_at(torch.tensor([0., 0., -3.]).double(), torch.zeros(3).double(),
                            torch.tensor([0., 1., 0.]).double(), width=16, height=16)
    g = torch.Generator().manual_seed(0)
    verts = torch.rand(60, 3, generator=g, dtype=torch.float64) * 2 - 1
    faces = torch.arange(60).reshape(20, 3)
    frags = lg.rasterize(verts, faces, cam)
    assert int(frags.face_ids.max()) > 0
    one_face = faces[:1]
    try:
        lg.antialias(torch.rand(16, 16, 3, dtype=torch.float64), frags, verts, one_face, cam)
    except ValueError as exc:
        print("RAISED", exc)
    else:
        print("NO ERROR")
""")


def test_antialias_frags_from_a_bigger_mesh():
    # Run in a child process: the current behaviour is an out-of-bounds read that can kill the interpreter.
    proc = subprocess.run([sys.executable, "-c", _AA_FOREIGN_FRAGS], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"child exited with {proc.returncode} (negative = killed by a signal)"
    assert "RAISED" in proc.stdout and ("frags" in proc.stdout or "faces" in proc.stdout)


# ----------------------------------------------------------------------------------------------------- Camera
K0 = torch.tensor([[20.0, 0, 4], [0, 20.0, 4], [0, 0, 1]], dtype=DT)
E0 = torch.eye(4, dtype=DT)
CAM_CASES = [
    ("K_3x4", lambda: dict(K=torch.eye(3, 4, dtype=DT), world_to_cam=E0), ValueError, "K must have shape"),
    ("K_vector", lambda: dict(K=torch.ones(9, dtype=DT), world_to_cam=E0), ValueError, "K must have shape"),
    ("w2c_4x3", lambda: dict(K=K0, world_to_cam=torch.eye(4, 3, dtype=DT)), ValueError, "world_to_cam must have shape"),
    ("w2c_2x4", lambda: dict(K=K0, world_to_cam=E0[:2]), ValueError, "world_to_cam must have shape"),
    ("K_int", lambda: dict(K=K0.long(), world_to_cam=E0), TypeError, "K must have a floating dtype"),
    ("w2c_int", lambda: dict(K=K0, world_to_cam=E0.int()), TypeError, "world_to_cam must have a floating dtype"),
    ("K_nan", lambda: dict(K=_set(K0, (0, 2), float("nan")), world_to_cam=E0), ValueError, "K contains NaN or Inf"),
    ("w2c_inf", lambda: dict(K=K0, world_to_cam=_set(E0, (0, 3), float("inf"))), ValueError,
     "world_to_cam contains NaN or Inf"),
    ("fx_zero", lambda: dict(K=_set(K0, (0, 0), 0.0), world_to_cam=E0), ValueError, "K must have positive focal"),
    ("fy_negative", lambda: dict(K=_set(K0, (1, 1), -2.0), world_to_cam=E0), ValueError, "K must have positive focal"),
    ("near_eq_far", lambda: dict(K=K0, world_to_cam=E0, near=2.0, far=2.0), ValueError, "near and far"),
    ("near_negative", lambda: dict(K=K0, world_to_cam=E0, near=-1.0), ValueError, "near and far"),
    ("width_zero", lambda: dict(K=K0, world_to_cam=E0, width=0), ValueError, "width must be positive"),
    ("height_float", lambda: dict(K=K0, world_to_cam=E0, height=8.0), TypeError, "height must be an int"),
    ("w2c_other_device", lambda: dict(K=K0, world_to_cam=E0.to(META)), ValueError, "world_to_cam is on meta"),
]


@pytest.mark.parametrize("make, exc, match", [c[1:] for c in CAM_CASES], ids=[c[0] for c in CAM_CASES])
def test_camera_bad_input(make, exc, match):
    kw = dict(width=8, height=8)
    kw.update(make())
    with pytest.raises(exc, match=match):
        lg.Camera(**kw)


def test_camera_K_on_another_device():
    with pytest.raises(ValueError, match="K|world_to_cam"):
        lg.Camera(K=K0.to(META), world_to_cam=E0, width=8, height=8)


def test_camera_batch_mismatch():
    with pytest.raises(ValueError, match="K|world_to_cam"):
        lg.Camera(K=K0.expand(2, 3, 3), world_to_cam=E0.expand(3, 4, 4), width=8, height=8)


# ------------------------------------------------------------------------------------------- zero-area faces
def test_zero_area_faces_give_finite_zero_gradients():
    # A real square plus zero-area faces: a point (all corners equal), a collinear sliver and a face repeating
    # an edge of the square. Vertices 4..7 are used by the zero-area faces only.
    verts = torch.tensor([[-1.0, -1.0, 0.0], [1.0, -1.0, 0.0], [1.0, 1.0, 0.0], [-1.0, 1.0, 0.0],
                          [0.2, 0.1, -0.5],
                          [-0.5, 0.0, -0.3], [0.0, 0.0, -0.3], [0.5, 0.0, -0.3]], dtype=DT, requires_grad=True)
    faces = torch.tensor([[0, 2, 1], [0, 3, 2], [4, 4, 4], [5, 6, 7], [0, 1, 1]])
    cam = camera_at((0.1, 0.05, -2.5), size=(14, 12), fov_y=1.2)
    uv = torch.rand(8, 2, generator=torch.Generator().manual_seed(0), dtype=DT, requires_grad=True)
    tex = torch.rand(4, 4, 3, generator=torch.Generator().manual_seed(1), dtype=DT)
    frags = lg.rasterize(verts, faces, cam, return_bary_derivs=True)
    assert set(frags.face_ids.unique().tolist()) <= {-1, 0, 1} and frags.mask.any() and not frags.mask.all()
    tuv, duv = lg.interpolate(uv, frags, faces, return_derivatives=True)
    color = lg.texture(tex, tuv, uv_derivs=duv) * frags.mask[..., None]
    image = lg.antialias(color, frags, verts, faces, cam)
    weights = torch.randn(image.shape, generator=torch.Generator().manual_seed(2), dtype=DT)
    (image * weights).sum().backward()
    assert torch.isfinite(verts.grad).all() and torch.isfinite(uv.grad).all()
    assert verts.grad[:4].abs().sum() > 0, "the square's silhouette and interior do get gradients"
    assert (verts.grad[4:] == 0).all()
    assert (uv.grad[4:] == 0).all()
    # The same through depth peeling.
    layers = lg.depth_peel(verts, faces, cam, 2)
    verts.grad = None
    sum(lay.bary.sum() + lay.depth.sum() for lay in layers).backward()
    assert torch.isfinite(verts.grad).all() and (verts.grad[4:] == 0).all()
