"""lit_scene: the mesh, sky and sun of examples 16 and 17, in one library helper (no Newton needed)."""

import pytest
import torch

import lumigrad as lg
from lumigrad.physics import lit_scene


def _tetrahedron(dtype=torch.float32):
    verts = torch.tensor([[0.0, 0, 0], [0.3, 0, 0], [0, 0.3, 0], [0, 0, 0.3]], dtype=dtype)
    faces = torch.tensor([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    return verts, faces


def test_scene_holds_the_mesh_a_sky_brighter_from_above_and_a_sun():
    verts, faces = _tetrahedron()
    scene = lit_scene(verts, faces, (0.3, 0.6, 0.8), name="box")
    mesh = scene.meshes["box"]
    assert mesh.verts is verts and torch.equal(mesh.faces, faces)
    assert mesh.material.base_color_factor.tolist() == pytest.approx([0.3, 0.6, 0.8, 1.0])
    assert float(mesh.material.roughness_factor) == pytest.approx(0.9)
    assert float(mesh.material.metallic_factor) == 0.0
    sky, sun = scene.lights["sky"], scene.lights["sun"]
    expected = torch.zeros(9, 3)
    expected[0], expected[2] = 1.0, 0.3
    assert torch.equal(sky.coeffs, expected)
    assert sun.direction[2] < 0 and float(sun.irradiance) == 2.0  # shining down a +z-up world
    assert lit_scene(verts, faces).meshes["body"].material.base_color_factor.tolist() == pytest.approx(
        [0.8, 0.5, 0.3, 1.0])


def test_render_is_differentiable_in_the_vertices():
    verts, faces = _tetrahedron()
    verts = verts.requires_grad_(True)
    cam = lg.Camera.look_at(torch.tensor([0.1, -0.9, 0.4]), torch.tensor([0.1, 0.1, 0.1]), torch.tensor([0.0, 0, 1]),
                            width=16, height=16, fov_y=0.6, near=0.1, far=3.0)
    image = lg.render(lit_scene(verts, faces), cam, background=0.0).rgba
    assert float(image[..., 3].detach().sum()) > 5  # the body covers pixels
    image[..., :3].sum().backward()
    assert torch.isfinite(verts.grad).all() and float(verts.grad.abs().sum()) > 0


@pytest.mark.parametrize("kwargs, error, needle", [
    ({"color": (0.5, 0.5)}, ValueError, "color"),
    ({"color": (1.5, 0.5, 0.5)}, ValueError, "color"),
    ({"roughness": 2.0}, ValueError, "roughness"),
    ({"sun": -1.0}, ValueError, "sun"),
])
def test_bad_arguments_name_themselves(kwargs, error, needle):
    verts, faces = _tetrahedron()
    with pytest.raises(error, match=needle):
        lit_scene(verts, faces, **kwargs)
