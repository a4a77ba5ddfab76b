"""The integrator seam: the registry (names, settings, errors), ``lumigrad.render``'s checks, ``RenderOutput`` and
its deprecated tensor behaviour (one FutureWarning per calling line, values of the old packed tensor)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import lumigrad as lg
from lumigrad.integrators import (Integrator, RasterIntegrator, RenderOutput, get_integrator, integrator_names,
                                  integrator_settings, register_integrator, unregister_integrator)


def _scene():
    scene = lg.Scene()
    verts, faces = lg.geometry.icosphere(1)
    scene.add_mesh("ball", lg.SceneMesh(verts, faces))
    scene.add_light("key", lg.PointLight([1.0, 2.0, -2.0], 5.0))
    scene.add_camera("main", lg.Camera.look_at([0.0, 0.0, -3.0], [0.0, 0.0, 0.0], width=12, height=10))
    return scene


class Flat(Integrator):
    """Constant colour ``level`` where the camera looks; coverage 1 everywhere."""

    aov_names = ("mask",)

    def __init__(self, *, level: float = 1.0):
        self.level = level

    def render(self, scene, camera, *, aovs=(), spp=1, seed=0):
        shape = camera.batch_shape + (camera.height, camera.width)
        alpha = torch.ones(shape + (1,), dtype=camera.dtype)
        return RenderOutput(torch.full(shape + (3,), float(self.level), dtype=camera.dtype), alpha,
                            {a: alpha for a in aovs})


@pytest.fixture
def flat():
    register_integrator("flat", Flat)
    yield
    unregister_integrator("flat")


# ------------------------------------------------------------------------------------------------ registry
def test_raster_is_registered_with_its_settings():
    assert "raster" in integrator_names()
    assert integrator_settings("raster") == {"background": "environment", "use_antialias": True,
                                             "use_aov_antialias": None, "lens_supersample": 1.0, "lens_samples": 1,
                                             "shadows": False, "max_layers": 4,
                                             "checkpoint_shading": False, "fused_lights": True}
    integrator = get_integrator("raster", use_antialias=False, lens_samples=2)
    assert isinstance(integrator, RasterIntegrator) and not integrator.use_antialias
    assert integrator.use_aov_antialias is False  # follows use_antialias unless set
    assert RasterIntegrator.aov_names == ("depth", "normal", "position", "uv", "albedo", "mask", "face_id")


def test_unknown_names_and_settings_are_errors_that_list_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown integrator 'bidir'; registered: .*raster"):
        get_integrator("bidir")
    with pytest.raises(ValueError, match=r"unknown integrator 'bidir'; registered: .*raster"):
        lg.render(_scene(), integrator="bidir")
    with pytest.raises(ValueError, match=r"unknown integrator int"):
        integrator_settings(3)
    with pytest.raises(ValueError, match=r"integrator 'raster' has no setting 'antialias'; its settings are: "
                                         r"background, use_antialias, use_aov_antialias, lens_supersample, "
                                         r"lens_samples, shadows"):
        lg.render(_scene(), antialias=False)
    with pytest.raises(TypeError, match="use_antialias must be a bool; got int"):
        get_integrator("raster", use_antialias=1)
    with pytest.raises(ValueError, match="lens_supersample must be"):
        get_integrator("raster", lens_supersample=0.0)
    with pytest.raises(ValueError, match="lens_samples must be"):
        get_integrator("raster", lens_samples=0)
    with pytest.raises(ValueError, match="background must be 'environment', a colour tensor or a float"):
        get_integrator("raster", background="sky")
    with pytest.raises(ValueError, match="unknown integrator 'nope'"):
        unregister_integrator("nope")


def test_register_as_decorator_or_call_with_checks(flat):
    assert "flat" in integrator_names() and integrator_settings("flat") == {"level": 1.0}
    out = lg.render(_scene(), integrator="flat", level=0.25, aovs=("mask",))
    assert torch.equal(out.rgb, torch.full((10, 12, 3), 0.25)) and out.aovs["mask"].shape == (10, 12, 1)
    with pytest.raises(ValueError, match=r"an integrator named 'flat' is already registered \(Flat\); pass "
                                         r"replace=True"):
        register_integrator("flat", type("Other", (Flat,), {}))
    register_integrator("flat", Flat)  # the same class again: a no-op
    with pytest.raises(TypeError, match="needs a subclass of lumigrad.integrators.Integrator"):
        register_integrator("plain", object)
    for bad in ("", "2d", "a b", "x" * 65, None):
        with pytest.raises(ValueError, match="integrator name must be"):
            register_integrator(bad, Flat)

    @register_integrator("flat2")
    class Flat2(Flat):
        pass

    try:
        assert isinstance(get_integrator("flat2"), Flat2)
        register_integrator("flat2", Flat, replace=True)
        assert type(get_integrator("flat2")) is Flat
    finally:
        unregister_integrator("flat2")
    assert "flat2" not in integrator_names()


def test_an_integrator_instance_can_be_passed_but_not_with_settings(flat):
    scene = _scene()
    out = lg.render(scene, integrator=Flat(level=0.5))
    assert float(out.rgb.mean()) == 0.5
    with pytest.raises(ValueError, match=r"settings \(level\) go with an integrator name"):
        lg.render(scene, integrator=Flat(), level=0.5)
    with pytest.raises(ValueError, match="integrator 'Flat' has no AOV 'depth'"):
        lg.render(scene, integrator=Flat(), aovs=("depth",))


def test_render_checks_the_shared_arguments():
    scene = _scene()
    with pytest.raises(TypeError, match="scene must be a lumigrad.Scene"):
        lg.render("scene.gltf")
    with pytest.raises(TypeError, match=r"aovs must be a tuple or list of AOV names"):
        lg.render(scene, aovs="depth")
    with pytest.raises(TypeError, match="aovs must hold strings"):
        lg.render(scene, aovs=(1,))
    with pytest.raises(ValueError, match=r"integrator 'raster' has no AOV 'z'; its AOVs are: depth, normal, "
                                         r"position, uv, albedo, mask, face_id"):
        lg.render(scene, aovs=("z",))
    with pytest.raises(ValueError, match="spp must be a positive number"):
        lg.render(scene, spp=0)
    with pytest.raises(TypeError, match="spp must be an int"):
        lg.render(scene, spp=1.0)
    with pytest.raises(ValueError, match="the raster integrator takes one sample per pixel centre: spp must be 1"):
        lg.render(scene, spp=4)
    with pytest.raises(ValueError, match=r"seed must be in \[0, 2\^63\)"):
        lg.render(scene, seed=-1)
    with pytest.raises(TypeError, match="seed must be an int"):
        lg.render(scene, seed=True)
    out = lg.render(scene, aovs=["depth", "mask", "depth"], seed=7)
    assert list(out.aovs) == ["depth", "mask"]  # in the order asked for, once each


# ------------------------------------------------------------------------------------------- RenderOutput
def test_render_output_holds_named_buffers_and_the_packed_tensor():
    out = lg.render(_scene(), aovs=("depth", "normal", "face_id"))
    assert out.rgb.shape == (10, 12, 3) and out.alpha.shape == (10, 12, 1)
    assert out.rgba is out.rgba and torch.equal(out.rgba, torch.cat([out.rgb, out.alpha], -1))
    assert out["depth"] is out.aovs["depth"] and out.aovs["face_id"].dtype == torch.int32
    with pytest.raises(KeyError, match=r"no AOV named 'albedo' in this render; it has: 'depth', 'normal', "
                                       r"'face_id'"):
        out["albedo"]
    assert repr(out).startswith("RenderOutput(rgb: (10, 12, 3), alpha: (10, 12, 1), aovs: {depth: (10, 12, 1)")
    with pytest.raises(AttributeError, match="has no attribute 'colour'"):
        out.colour
    with pytest.raises(ValueError, match=r"rgb must be \[\.\.\., H, W, C\] and alpha \[\.\.\., H, W, 1\]"):
        RenderOutput(torch.zeros(4, 4, 3), torch.zeros(4, 4, 2))
    with pytest.raises(TypeError, match="aovs must map names to tensors"):
        RenderOutput(torch.zeros(4, 4, 3), torch.zeros(4, 4, 1), {"depth": 1.0})


def test_using_the_output_as_a_tensor_still_works_and_warns_once_per_line():
    out = lg.render(_scene())
    rgba = out.rgba
    target = torch.rand_like(rgba)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        for _ in range(3):
            sliced = out[..., :3]  # one line, three times: one warning
    assert len(caught) == 1 and caught[0].category is FutureWarning and caught[0].filename == __file__
    assert "use .rgb and .alpha (or .rgba for the packed tensor)" in str(caught[0].message)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        values = [out.shape, out.sum(), out * 2, 2 * out, out - target, target - out, out ** 2, -out, out / 2,
                  out > 0.5, out == rgba, torch.cat([out, target], -1), torch.isfinite(out), out.detach(),
                  len(out), float(out[0, 0, 0]), np.asarray(out)]
    assert torch.equal(sliced, rgba[..., :3])
    expected = [rgba.shape, rgba.sum(), rgba * 2, 2 * rgba, rgba - target, target - rgba, rgba ** 2, -rgba,
                rgba / 2, rgba > 0.5, rgba == rgba, torch.cat([rgba, target], -1), torch.isfinite(rgba), rgba,
                len(rgba), float(rgba[0, 0, 0]), rgba.numpy()]
    for got, want in zip(values, expected):
        if isinstance(want, torch.Tensor):
            assert isinstance(got, torch.Tensor) and torch.equal(got, want)
        elif isinstance(want, np.ndarray):
            assert np.array_equal(got, want)
        else:
            assert got == want
    assert {w.category for w in caught} == {FutureWarning}
    assert {w.filename for w in caught} == {__file__}  # attributed to the caller, not to lumigrad or torch
    lines = [w.lineno for w in caught]
    assert len(lines) == len(set(lines))  # once per line


def test_lumigrad_ops_that_need_a_tensor_say_which_field_to_pass():
    out = lg.render(_scene())
    with pytest.raises(TypeError, match=r"pred must be a torch.Tensor; got RenderOutput \(lumigrad.render's result: "
                                        r"pass its .rgb, .alpha or .rgba\)"):
        lg.losses.mse_loss(out, out.rgba)


def test_gradients_flow_through_the_deprecated_path():
    scene = _scene()
    verts = scene.meshes["ball"].verts.clone().requires_grad_(True)
    scene.meshes["ball"].verts = verts
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        (old,) = torch.autograd.grad(lg.render(scene)[..., :3].sum(), verts)
    (new,) = torch.autograd.grad(lg.render(scene).rgb.sum(), verts)
    assert torch.equal(old, new)


def test_copy_and_pickle_keep_it_a_render_output():
    import copy
    import pickle

    out = lg.render(_scene(), aovs=("depth",))
    for clone in (copy.deepcopy(out), pickle.loads(pickle.dumps(out))):
        assert isinstance(clone, RenderOutput) and torch.equal(clone.rgb, out.rgb)
        assert torch.equal(clone.aovs["depth"], out.aovs["depth"])
