"""SkinnedMesh in a Scene: parameters, posing, Scene.at, every triangle integrator, gradients of an image loss."""

import copy
import math
import pickle

import pytest
import torch

import lumigrad as lg
from lumigrad.animation import (Animation, Channel, KeyframeTrack, axis_angle_to_matrix, matrix_to_quaternion,
                                matrix_to_rotation_6d)
from lumigrad.scene import SkinnedMesh
from lumigrad.shading import Material

from ..animation._helpers import chain_skeleton, cylinder

D = torch.float64


def _skinned(dtype=D, skinning="linear", morph=False):
    sk = chain_skeleton(2, dtype=dtype)
    verts, faces = cylinder(segments=8, rings=9, length=2.0, radius=0.3, dtype=dtype)
    verts = verts - torch.tensor([1.0, 0, 0], dtype=dtype)  # centred on the origin
    sk.rest_translation = sk.rest_translation.clone()
    sk.rest_translation[0, 0] = -1.0
    sk.inverse_bind = torch.linalg.inv(lg.animation.forward_kinematics(sk))
    s = ((verts[:, 0] + 0.5) / 1.0).clamp(0, 1)
    joints = torch.tensor([[0, 1]]).expand(verts.shape[0], 2).contiguous()
    weights = torch.stack([1 - s, s], -1)
    extra = {}
    if morph:
        extra = dict(morph_deltas=torch.stack([torch.zeros_like(verts), verts * torch.tensor([0, 1.0, 1.0], dtype=dtype)]),
                     morph_weights=torch.zeros(2, dtype=dtype))
    material = Material(base_color_factor=torch.tensor([0.8, 0.5, 0.3, 1.0], dtype=dtype), roughness_factor=0.6,
                        metallic_factor=0.0)
    return SkinnedMesh(verts, faces, material, skeleton=sk, joints=joints, skin_weights=weights,
                       skinning=skinning, node="arm", **extra)


def _scene(mesh):
    scene = lg.Scene()
    scene.add_mesh("arm", mesh)
    scene.add_light("key", lg.PointLight(torch.tensor([1.0, 3.0, -4.0], dtype=mesh.verts.dtype), 20.0))
    return scene


def _camera(size=24, dtype=D):
    return lg.Camera.look_at(torch.tensor([0.0, 0.5, -5.0]), torch.zeros(3), torch.tensor([0.0, 1.0, 0.0]),
                             width=size, height=size, fov_y=math.radians(45)).to(dtype=dtype)


def _bend(mesh, degrees):
    R = axis_angle_to_matrix(torch.tensor([0.0, 0, math.radians(degrees)], dtype=mesh.verts.dtype))
    rot = mesh.joint_rotation.detach().clone()
    rot[1] = matrix_to_rotation_6d(R)
    return rot


def test_parameters_kinds_and_rest_pose():
    mesh = _skinned(morph=True)
    scene = _scene(mesh)
    params = scene.parameters()
    for name, kind in [("joint_rotation", "joint_rotation"), ("root_translation", "joint_translation"),
                       ("morph_weights", "morph_weights"), ("skin_weights", "skin_weights"), ("verts", "vertices")]:
        assert f"meshes.arm.{name}" in params
        info = scene.param_info(f"meshes.arm.{name}")
        assert info.kind == kind and info.owner_kind == "skinned_mesh"
    assert torch.allclose(mesh.world_verts(), mesh.verts, atol=1e-12)  # rest pose = bind pose
    trained = scene.trainable("meshes.arm.joint_rotation")
    assert trained["meshes.arm.joint_rotation"].requires_grad


def test_render_without_at_draws_the_current_pose_for_every_triangle_integrator():
    mesh = _skinned(dtype=torch.float32)
    mesh.joint_rotation = _bend(mesh, 60)
    scene = _scene(mesh)
    cam = _camera(16, torch.float32)
    posed = scene.at(0.0)  # no animation: posed from the pose parameters
    assert type(posed.meshes["arm"]) is lg.SceneMesh
    rest = _scene(_skinned(dtype=torch.float32)).at(0.0)
    for integrator, kw in [("raster", {}), ("direct", dict(spp=2, seed=3)), ("path", dict(spp=2, seed=3))]:
        a = lg.render(scene, cam, integrator=integrator, **kw).rgb
        b = lg.render(posed, cam, integrator=integrator, **kw).rgb
        c = lg.render(rest, cam, integrator=integrator, **kw).rgb
        assert torch.equal(a, b), integrator
        assert float((a - c).abs().max()) > 0.1, integrator  # the bend is visible


def test_at_plays_an_animation_and_clamps():
    mesh = _skinned()
    q = matrix_to_quaternion(axis_angle_to_matrix(torch.tensor([[0.0, 0, 0], [0, 0, math.pi / 2]], dtype=D)))
    track = KeyframeTrack(torch.tensor([0.0, 2.0], dtype=D), q, "LINEAR", "rotation")
    scene = _scene(mesh)
    scene.animations["bend"] = Animation("bend", [Channel("j1", track)])
    by_param = mesh.posed()
    mesh.joint_rotation = _bend(mesh, 45)
    at_1 = scene.at(1.0).meshes["arm"].verts  # 45 degrees through slerp, whatever the pose parameter
    mesh.joint_rotation = _bend(mesh, 10)
    assert torch.allclose(scene.at(1.0).meshes["arm"].verts, at_1)
    mesh.joint_rotation = _bend(mesh, 45)
    assert torch.allclose(mesh.posed().verts, at_1, atol=1e-12)
    assert not torch.allclose(by_param.verts, at_1)
    assert torch.equal(scene.at(2.0).meshes["arm"].verts, scene.at(7.0, "bend").meshes["arm"].verts)
    with pytest.raises(KeyError, match="no animation named 'run'"):
        scene.at(1.0, "run")
    with pytest.raises(ValueError, match="t must be a finite"):
        scene.at(float("nan"))
    posed = scene.at(1.0)
    assert posed.lights["key"] is scene.lights["key"] and posed.film is scene.film
    assert posed.meshes["arm"].material is mesh.material and posed.animations["bend"] is scene.animations["bend"]


def test_at_is_differentiable_wrt_pose_and_keyframes():
    mesh = _skinned(morph=True)
    scene = _scene(mesh)
    values = torch.tensor([[0.0, 0.0], [0.0, 1.0]], dtype=D, requires_grad=True)
    scene.animations["grow"] = Animation("grow", [Channel("arm", KeyframeTrack(torch.tensor([0.0, 1.0], dtype=D),
                                                                               values, "LINEAR", "weights"))])
    rot = scene.trainable("meshes.arm.joint_rotation", "meshes.arm.skin_weights", "meshes.arm.root_translation")
    out = scene.at(0.5).meshes["arm"].verts
    out.square().sum().backward()
    assert values.grad is not None and float(values.grad.abs().sum()) > 0
    for t in rot.values():
        assert t.grad is not None and torch.isfinite(t.grad).all()
    assert float(rot["meshes.arm.root_translation"].grad.abs().sum()) > 0


def test_gradcheck_pose_through_skinned_mesh():
    mesh = _skinned()
    mesh.verts = mesh.verts[:30].contiguous()
    mesh.faces = torch.tensor([[0, 1, 2]])
    mesh.joints, mesh.skin_weights = mesh.joints[:30], mesh.skin_weights[:30]
    for skinning in ("linear", "dual_quaternion"):
        mesh.skinning = skinning

        def f(rot, trans):
            mesh.joint_rotation, mesh.root_translation = rot, trans
            return mesh.pose()[0]

        rot = _bend(mesh, 30).requires_grad_(True)
        trans = torch.tensor([0.1, -0.2, 0.3], dtype=D, requires_grad=True)
        assert torch.autograd.gradcheck(f, (rot, trans))


def test_image_loss_gradient_wrt_joint_rotation_matches_finite_differences():
    mesh = _skinned()
    scene = _scene(mesh)
    cam = _camera(24)
    weights = torch.rand(24, 24, 3, generator=torch.Generator().manual_seed(1), dtype=D)
    base = _bend(mesh, 40)

    def loss(delta):
        rot = base.clone()
        rot = rot + torch.zeros_like(rot).index_put((torch.tensor([1, 1]), torch.tensor([0, 1])), delta)
        scene["meshes.arm.joint_rotation"] = rot
        return (lg.render(scene, cam, background=0.1).rgb * weights).sum()

    delta = torch.zeros(2, dtype=D, requires_grad=True)
    (grad,) = torch.autograd.grad(loss(delta), delta)
    h = 1e-4
    with torch.no_grad():
        fd = torch.stack([(loss(h * e) - loss(-h * e)) / (2 * h) for e in torch.eye(2, dtype=D)])
    assert float(fd.abs().max()) > 1e-3
    assert torch.allclose(grad, fd, rtol=2e-3, atol=1e-3 * float(fd.abs().max())), (grad, fd)


def test_dual_quaternion_option_and_morph_weights():
    lbs, dqs = _skinned(), _skinned(skinning="dual_quaternion")
    assert torch.allclose(lbs.posed().verts, dqs.posed().verts, atol=1e-12)  # rest pose
    lbs.joint_rotation = dqs.joint_rotation = _bend(lbs, 90)
    assert not torch.allclose(lbs.posed().verts, dqs.posed().verts, atol=1e-3)
    m = _skinned(morph=True)
    m.morph_weights = torch.tensor([0.0, 1.0], dtype=D)
    v = m.posed().verts
    assert torch.allclose(v[:, 1:], 2 * m.verts[:, 1:], atol=1e-12) and torch.allclose(v[:, 0], m.verts[:, 0])


def test_copies_and_pickles_keep_animations():
    scene = _scene(_skinned())
    track = KeyframeTrack(torch.tensor([0.0], dtype=D), torch.tensor([[1.0, 0, 0, 0]], dtype=D), "STEP", "rotation")
    scene.animations["still"] = Animation("still", [Channel("j1", track)])
    for other in (copy.deepcopy(scene), pickle.loads(pickle.dumps(scene))):
        assert list(other.animations) == ["still"]
        assert torch.allclose(other.at(0.0).meshes["arm"].verts, scene.at(0.0).meshes["arm"].verts)


def test_bad_skinned_meshes():
    good = _skinned()
    kw = dict(skeleton=good.skeleton, joints=good.joints, skin_weights=good.skin_weights)
    with pytest.raises(ValueError, match="joints holds index 2"):
        SkinnedMesh(good.verts, good.faces, **dict(kw, joints=good.joints + 1))
    with pytest.raises(ValueError, match="skin_weights must be non-negative"):
        SkinnedMesh(good.verts, good.faces, **dict(kw, skin_weights=-good.skin_weights))
    with pytest.raises(TypeError, match="skeleton must be"):
        SkinnedMesh(good.verts, good.faces, **dict(kw, skeleton="arm"))
    with pytest.raises(ValueError, match="needs joints"):
        SkinnedMesh(good.verts, good.faces, skeleton=good.skeleton)
    with pytest.raises(ValueError, match="joint_rotation"):
        SkinnedMesh(good.verts, good.faces, joint_rotation=torch.zeros(3, 6, dtype=D), **kw)
    with pytest.raises(ValueError, match="skinning must be one of"):
        SkinnedMesh(good.verts, good.faces, skinning="spline", **kw)
    with pytest.raises(ValueError, match="morph_weights"):
        SkinnedMesh(good.verts, good.faces, morph_deltas=torch.zeros(2, good.verts.shape[0], 3, dtype=D),
                    morph_weights=torch.zeros(3, dtype=D))


def test_pose_at_a_batch_of_times_equals_one_time_at_a_time():
    mesh = _skinned(morph=True)
    q = matrix_to_quaternion(axis_angle_to_matrix(torch.tensor([[0.0, 0, 0], [0, 0, math.pi / 2]], dtype=D)))
    times = torch.tensor([0.0, 2.0], dtype=D)
    anim = Animation("a", [Channel("j1", KeyframeTrack(times, q, "LINEAR", "rotation")),
                           Channel("arm", KeyframeTrack(times, torch.tensor([[0.0, 0], [1, 0.5]], dtype=D),
                                                        "LINEAR", "weights"))])
    ts = torch.tensor([0.3, 1.1, 1.9], dtype=D)
    verts, normals = mesh.pose(anim.sample(ts))
    assert verts.shape == (3,) + mesh.verts.shape
    for k, t in enumerate(ts.tolist()):
        assert torch.allclose(verts[k], mesh.pose(anim.sample(t))[0], atol=1e-12)


def test_static_scene_at_any_time_is_the_same_scene():
    scene = lg.Scene()
    verts, faces = cylinder(segments=6, rings=3)
    scene.add_mesh("rod", lg.SceneMesh(verts, faces))
    scene.add_light("key", lg.PointLight(torch.tensor([1.0, 3.0, -4.0], dtype=D), 20.0))
    later = scene.at(3.0)
    assert later.meshes["rod"] is scene.meshes["rod"] and later.lights["key"] is scene.lights["key"]
    assert sorted(later.parameters()) == sorted(scene.parameters())


def test_morph_tangent_deltas_move_xyz_keep_w_and_are_skinned():
    m = _skinned(morph=True)
    V = m.verts.shape[0]
    g = torch.Generator().manual_seed(3)
    m.tangents = torch.cat([torch.randn(V, 3, generator=g, dtype=D), torch.ones(V, 1, dtype=D)], -1)
    m.tangents[::2, 3] = -1
    m.morph_tangent_deltas = torch.randn(2, V, 3, generator=g, dtype=D) * 0.1
    m.morph_weights = torch.tensor([0.3, -0.5], dtype=D)
    morphed = m.tangents[:, :3] + 0.3 * m.morph_tangent_deltas[0] - 0.5 * m.morph_tangent_deltas[1]
    rest = m.posed().tangents  # rest pose: skinning is the identity, the direction is renormalised
    assert torch.allclose(rest[:, :3], morphed / morphed.norm(dim=-1, keepdim=True), atol=1e-12)
    assert torch.equal(rest[:, 3], m.tangents[:, 3])
    m.joint_rotation = _bend(m, 60)

    def tangents(deltas, weights):
        m.morph_tangent_deltas, m.morph_weights = deltas, weights
        return m.posed().tangents

    deltas = m.morph_tangent_deltas.clone().requires_grad_(True)
    weights = m.morph_weights.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(tangents, (deltas, weights))
    with pytest.raises(ValueError, match="morph_tangent_deltas given without tangents"):
        SkinnedMesh(m.verts, m.faces, morph_deltas=m.morph_deltas, morph_tangent_deltas=m.morph_tangent_deltas)
