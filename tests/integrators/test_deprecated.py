"""The renderer-level names that moved from ``lumigrad.scene`` to the integrators: the old names still work for
one release, each with a FutureWarning naming the replacement, and give what the new names give."""

import importlib
import warnings

import pytest
import torch

import lumigrad as lg
from lumigrad.integrators import geometry_buffers, gradient_check

from ..conftest import uv_sphere


def _scene():
    verts, faces = uv_sphere(6, 12, dtype=torch.float32)
    scene = lg.Scene()
    scene.add_mesh("ball", lg.SceneMesh(verts, faces))
    scene.add_light("key", lg.PointLight([2.0, 2.0, -3.0], 10.0))
    cam = lg.Camera.look_at([0.0, 0.3, -3.0], [0.0, 0.0, 0.0], width=12, height=10, fov_y=0.8)
    return scene, cam


def test_old_functions_warn_and_match_the_new_ones():
    scene, cam = _scene()
    with pytest.warns(FutureWarning, match=r"lumigrad\.scene\.render is deprecated.*use lumigrad\.render instead"):
        old = lg.scene.render(scene, cam)
    assert torch.equal(old.rgba, lg.render(scene, cam).rgba)
    with pytest.warns(FutureWarning, match=r"use lumigrad\.render_geometry instead") as caught:
        old = lg.scene.render_geometry(scene, cam, use_antialias=False)
    assert caught[0].filename == __file__  # points at the caller
    new = lg.render_geometry(scene, cam, use_antialias=False)
    assert old.keys() == new.keys() and all(torch.equal(old[k], new[k]) for k in new)
    assert lg.scene.render_geometry.__doc__.startswith("Deprecated: use :func:`lumigrad.render_geometry`")


@pytest.mark.parametrize("module", [geometry_buffers, gradient_check])
def test_old_modules_import_and_warn_per_name(module):
    old = "lumigrad.scene." + module.__name__.rsplit(".", 1)[1]
    alias = importlib.import_module(old)
    assert getattr(lg.scene, old.rsplit(".", 1)[1]) is alias
    for name in module.__all__:
        with pytest.warns(FutureWarning, match=f"use {module.__name__}.{name} instead"):
            assert getattr(alias, name) is getattr(module, name)
    with pytest.raises(AttributeError):
        alias.nope


def test_from_import_of_an_old_module_warns_at_the_import_line():
    with pytest.warns(FutureWarning, match="lumigrad.integrators.gradient_check.check_scene_gradient") as caught:
        from lumigrad.scene.gradient_check import check_scene_gradient
    assert check_scene_gradient is gradient_check.check_scene_gradient and caught[0].filename == __file__


def test_the_new_names_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        from lumigrad import render_geometry  # noqa: F401
        from lumigrad.integrators.gradient_check import GradientCheck, check_scene_gradient  # noqa: F401
        import lumigrad.scene  # noqa: F401
