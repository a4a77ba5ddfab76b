"""Animations' keyframe values are scene parameters: ``animations.NAME.TARGET.PATH``."""

import copy
import pickle

import pytest
import torch

import lumigrad as lg
from lumigrad.animation import Animation, Channel, KeyframeTrack
from lumigrad.scene import PARAM_KINDS

D = torch.float64


def _animation(name="wave"):
    times = torch.tensor([0.0, 1.0], dtype=D)
    rotation = torch.tensor([[1.0, 0, 0, 0], [0.0, 0, 0, 1]], dtype=D)
    return Animation(name, [Channel("arm", KeyframeTrack(times, rotation, "LINEAR", "rotation")),
                            Channel(3, KeyframeTrack(times, torch.zeros(2, 2, dtype=D), "STEP", "weights"))])


def _scene():
    verts = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=D)
    scene = lg.Scene(meshes={"tri": lg.SceneMesh(verts, torch.tensor([[0, 1, 2]]))})
    scene.animations["wave"] = _animation()
    return scene


def test_keyframe_values_are_listed_with_their_kind_and_owner():
    scene = _scene()
    params = scene.parameters()
    assert params["animations.wave.arm.rotation"] is scene.animations["wave"].channels[0].track.values
    assert params["animations.wave.3.weights"].shape == (2, 2)
    info = scene.param_info("animations.wave.arm.rotation")
    assert (info.kind, info.group, info.owner, info.owner_kind, info.shape) == (
        "keyframe_rotation", "animations", "wave", "animation", (2, 4))
    assert info.obj is scene.animations["wave"]
    assert scene.param_info("animations.wave.3.weights").kind == "keyframe_weights"
    assert {"keyframe_rotation", "keyframe_translation", "keyframe_scale", "keyframe_weights"} <= set(PARAM_KINDS)


def test_writing_a_keyframe_parameter_changes_what_the_animation_samples():
    scene = _scene()
    new = torch.tensor([[0.0, 1, 0, 0], [0.0, 1, 0, 0]], dtype=D)
    scene["animations.wave.arm.rotation"] = new
    assert scene.animations["wave"].sample(0.5)["arm"]["rotation"].tolist() == [0.0, 1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match=r"has shape \(2, 4\); got \(3, 4\)"):
        scene["animations.wave.arm.rotation"] = torch.zeros(3, 4, dtype=D)
    trained = scene.trainable("animations.*.rotation")
    assert list(trained) == ["animations.wave.arm.rotation"] and trained["animations.wave.arm.rotation"].requires_grad


def test_the_index_follows_added_replaced_and_removed_animations_and_copies():
    scene = _scene()
    scene.animations["other"] = _animation("other")
    assert "animations.other.arm.rotation" in scene
    del scene.animations["other"]
    assert "animations.other.arm.rotation" not in scene
    scene.animations["wave"].channels[0].track = KeyframeTrack(torch.tensor([0.0], dtype=D),
                                                               torch.tensor([[0.0, 0, 1, 0]], dtype=D),
                                                               "LINEAR", "rotation")
    assert scene["animations.wave.arm.rotation"].shape == (1, 4)  # a replaced track is found, not a stale one
    for other in (copy.deepcopy(scene), pickle.loads(pickle.dumps(scene)), scene.at(0.5)):
        assert sorted(n for n in other.parameters() if n.startswith("animations.")) == [
            "animations.wave.3.weights", "animations.wave.arm.rotation"]
    with pytest.raises(TypeError, match="animation must be a lumigrad.animation.Animation"):
        scene.animations["bad"] = "walk"
    with pytest.raises(ValueError, match="must be non-empty and use only letters"):
        scene.animations["a b"] = _animation()
