"""Parameter maps of ``lumigrad fit``: each starts at its value, has gradients that agree with central
differences in float64, keeps its constraint, and refuses parameters it does not suit; ``init`` forms."""

import pytest
import torch

from lumigrad.conventions import axis_angle_to_matrix, compose_world_to_cam
from lumigrad.fitting.parameterize import apply_init, make_parameterization
from lumigrad.scene import ParamInfo

F64 = torch.float64


def _pose(n=2):
    g = torch.Generator().manual_seed(0)
    R = axis_angle_to_matrix(torch.randn(n, 3, generator=g, dtype=F64))
    return compose_world_to_cam(R, torch.randn(n, 3, generator=g, dtype=F64))


def _K(n=None):
    K = torch.tensor([[100.0, 0.5, 31.0], [0.0, 90.0, 25.0], [0.0, 0.0, 1.0]], dtype=F64)
    if n is None:
        return K
    varies = (K != 0) & (torch.arange(3)[:, None] < 2)  # focal lengths, skew, principal point
    return K.expand(n, 3, 3) + torch.arange(n, dtype=F64)[:, None, None] * 0.1 * varies


def _info(name, kind):
    """What the scene would say the parameter is (maps read the kind, not the name)."""
    return ParamInfo(name, kind, group="test", owner="test", owner_kind="test", attr="test", shape=())


KINDS = {"lights.key.position": "light_position", "meshes.m.material.roughness_factor": "factor",
         "lights.key.intensity": "light_intensity", "cameras.views.world_to_cam": "world_to_cam",
         "cameras.views.K": "intrinsics", "cameras.v.world_to_cam": "world_to_cam", "cameras.v.K": "intrinsics",
         "animations.walk.hip.rotation": "keyframe_rotation"}

CASES = [("identity", "lights.key.position", torch.tensor([0.3, -1.0, 2.0], dtype=F64)),
         ("sigmoid", "meshes.m.material.roughness_factor", torch.tensor([0.2, 0.7], dtype=F64)),
         ("exp", "lights.key.intensity", torch.tensor([0.5, 4.0], dtype=F64)),
         ("pose", "cameras.views.world_to_cam", _pose()),
         ("intrinsics", "cameras.views.K", _K()),
         ("unit", "animations.walk.hip.rotation", torch.nn.functional.normalize(_K()[:2, :2].reshape(1, 4), dim=-1))]


@pytest.mark.parametrize("kind, name, start", CASES, ids=[c[0] for c in CASES])
def test_each_map_starts_at_its_value_with_exact_gradients(kind, name, start):
    p = make_parameterization(kind, [name], start, "optimize[0]", size=(64, 48), info=_info(name, KINDS[name]))
    assert torch.allclose(p.value(), start, atol=1e-12)
    weights = torch.rand(start.shape, generator=torch.Generator().manual_seed(1), dtype=F64)

    def loss():
        return (p.value() * weights).sum()

    grads = torch.autograd.grad(loss(), p.leaves)
    eps = 1e-6
    for leaf, grad in zip(p.leaves, grads):
        assert leaf.is_leaf and leaf.requires_grad
        fd = torch.zeros_like(leaf)
        for i in range(leaf.numel()):
            with torch.no_grad():
                leaf.view(-1)[i] += eps
                up = loss()
                leaf.view(-1)[i] -= 2 * eps
                down = loss()
                leaf.view(-1)[i] += eps
            fd.view(-1)[i] = (up - down) / (2 * eps)
        assert torch.allclose(grad, fd, rtol=1e-6, atol=1e-7)


def test_maps_keep_their_constraints_far_from_the_start():
    sig = make_parameterization("sigmoid", ["a"], torch.tensor([0.0, 1.0], dtype=F64), "g")
    assert 0 < float(sig.value().detach().min()) and float(sig.value().detach().max()) < 1  # clamped start, open interval
    pose = make_parameterization("pose", ["cameras.v.world_to_cam"], _pose(), "g",
                                 info=_info("cameras.v.world_to_cam", "world_to_cam"))
    with torch.no_grad():
        for leaf in pose.leaves:
            leaf.add_(torch.randn(leaf.shape, generator=torch.Generator().manual_seed(2), dtype=F64))
    R = pose.value()[..., :3, :3]
    assert torch.allclose(R @ R.transpose(-1, -2), torch.eye(3, dtype=F64).expand_as(R), atol=1e-12)
    assert torch.allclose(torch.linalg.det(R), torch.ones(2, dtype=F64))
    K = make_parameterization("intrinsics", ["cameras.v.K"], _K(3), "g", size=(64, 48), shared=True,
                              info=_info("cameras.v.K", "intrinsics"))
    assert sum(leaf.numel() for leaf in K.leaves) == 4 and K.value().shape == (3, 3, 3)
    assert torch.allclose(K.value()[0], _K(3).mean(0)) and torch.equal(K.value()[0], K.value()[2])
    assert float(K.value().detach()[0, 0, 1]) == pytest.approx(float(_K(3)[:, 0, 1].mean()))  # skew kept
    name = "animations.walk.hip.rotation"
    unit = make_parameterization("unit", [name], torch.tensor([[2.0, 0, 0, 0], [1, 1, 1, 1]], dtype=F64), "g",
                                 info=_info(name, "keyframe_rotation"))
    assert torch.allclose(unit.value(), torch.tensor([[1.0, 0, 0, 0], [0.5, 0.5, 0.5, 0.5]], dtype=F64))
    with torch.no_grad():
        unit.leaves[0].add_(torch.randn(2, 4, generator=torch.Generator().manual_seed(3), dtype=F64))
    assert torch.allclose(unit.value().norm(dim=-1), torch.ones(2, dtype=F64))
    with pytest.raises(ValueError, match=r"for LINEAR / STEP keyframe rotations \[N, 4\]; .* shape \(2, 3, 4\)"):
        make_parameterization("unit", [name], torch.ones(2, 3, 4, dtype=F64), "g", info=_info(name, "keyframe_rotation"))
    with pytest.raises(ValueError, match="has 1 of length 0; set init to rotations"):
        make_parameterization("unit", [name], torch.zeros(1, 4, dtype=F64), "g", info=_info(name, "keyframe_rotation"))


@pytest.mark.parametrize("kind, name, match", [
    ("large_steps", "lights.key.position", "large_steps' is for mesh vertices"),
    ("pose", "lights.key.position", "map 'pose' is for rigid transforms"),
    ("intrinsics", "lights.key.position", "map 'intrinsics' is for camera matrices"),
    ("unit", "lights.key.position", "map 'unit' is for keyframe rotations"),
    ("tanh", "lights.key.position", "unknown map 'tanh'"),
])
def test_maps_refuse_parameters_they_do_not_suit(kind, name, match):
    with pytest.raises(ValueError, match=match):
        make_parameterization(kind, [name], torch.zeros(3, dtype=F64), "optimize[2]",
                              info=_info(name, KINDS[name]))


def test_init_forms_and_their_errors():
    x = torch.tensor([1.0, 2.0], dtype=F64)
    assert torch.equal(apply_init(x, None, "w"), x)
    assert torch.equal(apply_init(x, 0.5, "w"), torch.tensor([0.5, 0.5], dtype=F64))
    assert torch.equal(apply_init(x, [3.0, 4.0], "w"), torch.tensor([3.0, 4.0], dtype=F64))
    assert torch.equal(apply_init(x, {"scale": 2.0, "add": [1.0, 0.0]}, "w"), torch.tensor([3.0, 4.0], dtype=F64))
    noisy = apply_init(x, {"noise": 0.1, "seed": 3}, "w")
    assert torch.equal(noisy, apply_init(x, {"noise": 0.1, "seed": 3}, "w")) and not torch.equal(noisy, x)
    for init, match in (({"jitter": 1}, "w.init has unknown key 'jitter'"), ([1.0, 2.0, 3.0], "does not broadcast"),
                        ("big", "must be a number or a nested list"), ({"noise": -1}, "noise must be a finite number >= 0"),
                        (float("nan"), "must be finite")):
        with pytest.raises(ValueError, match=match):
            apply_init(x, init, "w")
