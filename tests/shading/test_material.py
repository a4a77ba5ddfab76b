"""glTF metallic-roughness materials: factors, textures and their channel packing, normal mapping frames."""

import math

import pytest
import torch

from lumigrad.shading.image_formation import srgb_decode
from lumigrad.shading.material import Material, sample_material
from lumigrad.shading.tangents import perturb_normal, vertex_tangents

DT = torch.float64


def _uv(h=4, w=5):
    g = torch.Generator().manual_seed(0)
    return torch.rand(h, w, 2, generator=g, dtype=DT)


def test_factor_only_material_gives_constants_with_gltf_defaults():
    out = sample_material(Material(base_color_factor=torch.tensor([0.5, 0.25, 1.0, 0.8], dtype=DT),
                                   roughness_factor=torch.tensor(0.3, dtype=DT)), shape=(4, 5))
    assert out["base_color"].shape == (4, 5, 3) and out["alpha"].shape == (4, 5, 1)
    torch.testing.assert_close(out["base_color"][2, 3], torch.tensor([0.5, 0.25, 1.0], dtype=DT))
    assert float(out["alpha"][0, 0]) == 0.8
    assert float(out["metallic"][1, 1]) == 1.0  # glTF's default metallic factor
    assert float(out["roughness"][1, 1]) == 0.3
    assert float(out["occlusion"].min()) == 1.0 and float(out["emission"].abs().max()) == 0.0
    assert "normal_tangent" not in out


def test_textures_follow_gltf_channels_and_colour_spaces():
    g = torch.Generator().manual_seed(1)
    base = torch.rand(8, 8, 4, generator=g, dtype=DT)
    mr = torch.rand(8, 8, 3, generator=g, dtype=DT)
    occ = torch.rand(8, 8, 3, generator=g, dtype=DT)
    emis = torch.rand(8, 8, 3, generator=g, dtype=DT)
    mat = Material(base_color_factor=torch.tensor([1.0, 0.5, 1.0, 1.0], dtype=DT), base_color_texture=base,
                   metallic_roughness_texture=mr, metallic_factor=torch.tensor(0.5, dtype=DT),
                   occlusion_texture=occ, occlusion_strength=torch.tensor(0.5, dtype=DT),
                   emissive_factor=torch.tensor([2.0, 2.0, 2.0], dtype=DT), emissive_texture=emis)
    # uv at texel centres reads texels exactly (bilinear filter).
    uv = torch.tensor([[[(3 + 0.5) / 8, (5 + 0.5) / 8]]], dtype=DT)
    out = sample_material(mat, uv)
    texel = (5, 3)
    torch.testing.assert_close(out["base_color"][0, 0], srgb_decode(base[texel][:3]) * torch.tensor([1, 0.5, 1],
                                                                                                    dtype=DT))
    assert float(out["alpha"][0, 0]) == pytest.approx(float(base[texel][3]))
    assert float(out["roughness"][0, 0]) == pytest.approx(float(mr[texel][1]))
    assert float(out["metallic"][0, 0]) == pytest.approx(0.5 * float(mr[texel][2]))
    assert float(out["occlusion"][0, 0]) == pytest.approx(1 + 0.5 * (float(occ[texel][0]) - 1))
    torch.testing.assert_close(out["emission"][0, 0], 2 * srgb_decode(emis[texel]))


def test_gradients_reach_factors_and_texels():
    mat = Material(base_color_texture=torch.rand(4, 4, 3, dtype=DT).requires_grad_(True),
                   roughness_factor=torch.tensor(0.4, dtype=DT, requires_grad=True),
                   metallic_roughness_texture=torch.rand(4, 4, 3, dtype=DT).requires_grad_(True))
    out = sample_material(mat, _uv())
    (out["base_color"].sum() + out["roughness"].sum() + out["metallic"].sum()).backward()
    for name in ("base_color_texture", "roughness_factor", "metallic_roughness_texture"):
        grad = getattr(mat, name).grad
        assert grad is not None and float(grad.abs().sum()) > 0, name
    assert set(mat.parameters()) >= {"base_color_factor", "roughness_factor", "base_color_texture", "ior"}


def test_flat_normal_map_keeps_the_geometric_normal_and_tangent_frame_on_a_plane():
    # A quad in the xy-plane facing +z, u along +x, v (down the texture) along -y.
    verts = torch.tensor([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], dtype=DT)
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    uv = torch.tensor([[0, 1], [1, 1], [1, 0], [0, 0]], dtype=DT)
    normals = torch.tensor([0.0, 0.0, 1.0], dtype=DT).expand(2, 3, 3)
    tangents = vertex_tangents(verts, faces, uv, faces, normals)
    torch.testing.assert_close(tangents[..., :3], torch.tensor([1.0, 0.0, 0.0], dtype=DT).expand(2, 3, 3))
    # B = w (N x T) must point to decreasing v, i.e. +y here: N x T = z x x = +y, so w = +1.
    assert bool((tangents[..., 3] == 1).all())
    n = perturb_normal(normals[0, 0], tangents[0, 0], torch.tensor([0.0, 0.0, 1.0], dtype=DT))
    torch.testing.assert_close(n, torch.tensor([0.0, 0.0, 1.0], dtype=DT))
    # A normal-map texel tilted towards its green (+Y) axis tilts the world normal towards +y (up the texture).
    tilted = perturb_normal(normals[0, 0], tangents[0, 0], torch.tensor([0.0, 0.5, 1.0], dtype=DT))
    assert float(tilted[1]) > 0.4 and abs(float(tilted.norm()) - 1) < 1e-12
    # Mirrored uv (u decreasing along +x) flips the handedness.
    mirrored = vertex_tangents(verts, faces, uv * torch.tensor([-1.0, 1.0], dtype=DT), faces, normals)
    assert bool((mirrored[..., 3] == -1).all())


def test_perturb_normal_gradcheck_and_normal_map_decode():
    N = torch.tensor([[0.1, 0.2, 0.97]], dtype=DT, requires_grad=True)
    T = torch.tensor([[0.9, 0.1, -0.1, 1.0]], dtype=DT, requires_grad=True)
    t = torch.tensor([[0.2, -0.3, 0.9]], dtype=DT, requires_grad=True)
    torch.autograd.gradcheck(perturb_normal, (N, T, t))
    flat = torch.tensor([0.5, 0.75, 1.0], dtype=DT).expand(2, 2, 3).contiguous()  # (0, 0.5, 1) encoded
    mat = Material(normal_texture=flat, normal_scale=torch.tensor(2.0, dtype=DT))
    out = sample_material(mat, _uv(2, 2))
    # (2 t - 1) * (scale, scale, 1): the scale multiplies x and y only (glTF normalTexture.scale).
    torch.testing.assert_close(out["normal_tangent"], torch.tensor([0.0, 1.0, 1.0], dtype=DT).expand(2, 2, 3))


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="metallic_factor"):
        Material(metallic_factor=torch.tensor(1.5))
    with pytest.raises(ValueError, match="roughness_factor"):
        Material(roughness_factor=torch.tensor(-0.1))
    with pytest.raises(ValueError, match="base_color_factor"):
        Material(base_color_factor=torch.ones(3))
    with pytest.raises(ValueError, match="ior"):
        Material(ior=torch.tensor(0.5))
    with pytest.raises(ValueError, match="normal_texture"):
        Material(normal_texture=torch.ones(4, 4, 2))
    with pytest.raises(ValueError, match="base_color_texture"):
        Material(base_color_texture=torch.full((2, 2, 3), math.nan))
    with pytest.raises(ValueError, match="uv"):
        sample_material(Material(base_color_texture=torch.ones(2, 2, 3)), shape=(2, 2))


def test_alpha_mode_and_cutoff_default_to_gltf_and_are_validated():
    m = Material()
    assert (m.alpha_mode, m.alpha_cutoff) == ("OPAQUE", 0.5)
    assert "alpha_mode" not in m.parameters() and "alpha_cutoff" not in m.parameters()  # settings, not tensors
    assert Material(alpha_mode="MASK", alpha_cutoff=torch.tensor(0.25)).alpha_cutoff == 0.25
    with pytest.raises(ValueError, match="alpha_mode must be one of 'OPAQUE', 'MASK', 'BLEND'; got 'blend'"):
        Material(alpha_mode="blend")
    with pytest.raises(ValueError, match=r"alpha_cutoff must be a finite number in \[0.0, inf\]; got -0.5"):
        Material(alpha_mode="MASK", alpha_cutoff=-0.5)
    with pytest.raises(ValueError, match="alpha_cutoff"):
        Material(alpha_cutoff=math.nan)
    with pytest.raises(TypeError, match="alpha_cutoff must be a real number; got str"):
        Material(alpha_cutoff="0.5")
