"""Mitsuba's ``mask`` BSDF: its nested BSDF's material with glTF's ``"BLEND"`` alpha = ``opacity`` (a number,
default 0.5, or a texture's values in the base colour texture's alpha channel); refusals. The renders against
Mitsuba itself are in ``tests/integrators/test_path_vs_mitsuba.py``."""

import pytest
import torch

import lumigrad as lg
from lumigrad.io import MitsubaXmlError
from lumigrad.shading.image_formation import srgb_decode

from .test_mitsuba_float_textures import _bitmap, _gray
from .test_mitsuba_xml import _read, _write

LUMINANCE = torch.tensor([0.212671, 0.715160, 0.072169], dtype=torch.float64)


def test_a_constant_opacity_is_the_base_colours_alpha(tmp_path):
    scene, warned = _read(_write(tmp_path, '''
        <shape type="rectangle" id="half"><bsdf type="mask"><float name="opacity" value="0.25"/>
            <bsdf type="diffuse"><rgb name="reflectance" value="0.2, 0.4, 0.6"/></bsdf></bsdf></shape>
        <shape type="rectangle" id="default"><bsdf type="mask"><bsdf type="roughconductor"/></bsdf></shape>
        <shape type="rectangle" id="opaque"><bsdf type="mask"><float name="opacity" value="1"/>
            <bsdf type="diffuse"/></bsdf></shape>'''), dtype=torch.float64)
    half = scene.meshes["half"].material
    assert half.alpha_mode == "BLEND"
    torch.testing.assert_close(half.base_color_factor, torch.tensor([0.2, 0.4, 0.6, 0.25], dtype=torch.float64))
    assert float(half.specular_factor) == 0.0 and half.base_color_texture is None  # still the diffuse
    default = scene.meshes["default"].material
    assert default.alpha_mode == "BLEND" and float(default.base_color_factor[3]) == 0.5  # Mitsuba's default
    assert float(default.metallic_factor) == 1.0
    assert scene.meshes["opaque"].material.alpha_mode == "OPAQUE"
    assert any("mask" in w and "shadow rays" in w for w in warned)


def test_a_mask_keeps_its_bsdfs_two_sidedness_inside_or_outside(tmp_path):
    scene = _read(_write(tmp_path, '''
        <shape type="rectangle" id="outside"><bsdf type="twosided"><bsdf type="mask"><float name="opacity"
            value="0.5"/><bsdf type="diffuse"/></bsdf></bsdf></shape>
        <shape type="rectangle" id="inside"><bsdf type="mask"><float name="opacity" value="0.5"/>
            <bsdf type="twosided"><bsdf type="diffuse"/></bsdf></bsdf></shape>
        <shape type="rectangle" id="one"><bsdf type="mask"><float name="opacity" value="0.5"/>
            <bsdf type="diffuse"/></bsdf></shape>'''))[0]
    for name, two in (("outside", True), ("inside", True), ("one", False)):
        mesh = scene.meshes[name]
        assert mesh.double_sided is two and mesh.material.alpha_mode == "BLEND", name


def test_a_textured_opacity_is_the_alpha_channel_as_mitsuba_reads_it(tmp_path):
    stored = _gray(tmp_path, "opacity.png", [[0.0, 0.3], [0.7, 1.0]])
    colour = torch.tensor([[[0.9, 0.1, 0.1], [0.1, 0.9, 0.1]], [[0.1, 0.1, 0.9], [0.5, 0.5, 0.5]]],
                          dtype=torch.float64)
    lg.io.write_image(tmp_path / "rgb.png", colour)
    rgb = lg.io.read_image(tmp_path / "rgb.png").double()
    scene, _ = _read(_write(tmp_path, f'''
        <shape type="rectangle" id="white"><bsdf type="mask">{_bitmap("opacity", "opacity.png")}
            <bsdf type="diffuse"><rgb name="reflectance" value="0.3, 0.5, 0.7"/></bsdf></bsdf></shape>
        <shape type="rectangle" id="srgb"><bsdf type="mask">{_bitmap("opacity", "opacity.png", raw=False)}
            <bsdf type="diffuse">{_bitmap("reflectance", "rgb.png", raw=False)}</bsdf></bsdf></shape>'''),
        dtype=torch.float64)
    white = scene.meshes["white"].material
    assert white.alpha_mode == "BLEND" and white.base_color_texture.shape == (2, 2, 4)
    torch.testing.assert_close(white.base_color_texture[..., 3], stored)  # raw: as stored
    assert torch.equal(white.base_color_texture[..., :3], torch.ones(2, 2, 3, dtype=torch.float64))
    torch.testing.assert_close(white.base_color_factor, torch.tensor([0.3, 0.5, 0.7, 1.0], dtype=torch.float64))
    srgb = scene.meshes["srgb"].material
    torch.testing.assert_close(srgb.base_color_texture[..., :3], rgb)  # the colour texture, still sRGB-encoded
    torch.testing.assert_close(srgb.base_color_texture[..., 3], srgb_decode(stored[..., None].expand(-1, -1, 3))
                               @ LUMINANCE)  # decoded, its luminance: Mitsuba's eval_1


def test_textures_of_different_sizes_are_resampled_and_to_uv_carried(tmp_path):
    _gray(tmp_path, "opacity.png", torch.linspace(0, 1, 16).reshape(4, 4))
    lg.io.write_image(tmp_path / "rgb.png", torch.full((2, 2, 3), 0.5, dtype=torch.float64))
    scale = '<transform name="to_uv"><scale x="2" y="3"/></transform>'
    scene, warned = _read(_write(tmp_path, f'''
        <shape type="rectangle" id="card"><bsdf type="mask">{_bitmap("opacity", "opacity.png", extra=scale)}
            <bsdf type="diffuse">{_bitmap("reflectance", "rgb.png", extra=scale)}</bsdf></bsdf></shape>'''))
    card = scene.meshes["card"]
    assert card.material.base_color_texture.shape == (4, 4, 4)
    assert any("different sizes" in w for w in warned)
    plain = _read(_write(tmp_path, '<shape type="rectangle" id="card"/>', name="plain.xml"))[0].meshes["card"]
    torch.testing.assert_close(card.uv, plain.uv * torch.tensor([2.0, 3.0]))  # the to_uv moved the coordinates


def test_the_opacity_textures_wrap_mode_is_the_materials(tmp_path):
    _gray(tmp_path, "o.png", [[0.5, 1.0]])
    clamp = '<string name="wrap_mode" value="clamp"/>'
    scene, _ = _read(_write(tmp_path, f"""
        <shape type="rectangle" id="card"><bsdf type="mask">{_bitmap("opacity", "o.png", extra=clamp)}
            <bsdf type="diffuse"/></bsdf></shape>"""))
    assert scene.meshes["card"].material.wrap == "clamp"


def test_textures_of_transposed_shapes_keep_both_resolutions(tmp_path):
    _gray(tmp_path, "wide.png", torch.rand(1, 16, dtype=torch.float64))
    lg.io.write_image(tmp_path / "tall.png", torch.rand(16, 1, 3, dtype=torch.float64))
    scene, _ = _read(_write(tmp_path, f"""
        <shape type="rectangle" id="card"><bsdf type="mask">{_bitmap("opacity", "wide.png")}
            <bsdf type="diffuse">{_bitmap("reflectance", "tall.png")}</bsdf></bsdf></shape>"""))
    texture = scene.meshes["card"].material.base_color_texture
    assert texture.shape == (16, 16, 4)
    assert texture[..., 3].std(1).min() > 0 and texture[..., 0].std(0).min() > 0  # detail along both axes kept


def test_a_mask_on_a_medium_boundary_is_refused_when_read(tmp_path):
    with pytest.raises(MitsubaXmlError, match="bounds a medium with a mask") as info:
        _read(_write(tmp_path, """
            <shape type="sphere" id="ball"><bsdf type="mask"><float name="opacity" value="0.5"/>
                <bsdf type="dielectric"/></bsdf>
                <medium type="homogeneous" name="interior"><rgb name="albedo" value="0.5"/></medium></shape>"""))
    assert "ball" in str(info.value)


@pytest.mark.parametrize("body, message", [
    ('<bsdf type="mask"><float name="opacity" value="0.5"/></bsdf>', "needs one nested <bsdf>"),
    ('<bsdf type="mask"><float name="opacity" value="1.5"/><bsdf type="diffuse"/></bsdf>', "opacity must be in"),
    ('<bsdf type="mask"><bsdf type="mask"><bsdf type="diffuse"/></bsdf></bsdf>', "a mask around a mask"),
    ('<bsdf type="mask"><texture type="bitmap" name="opacity"><string name="filename" value="o.png"/>'
     '</texture><bsdf type="diffuse"><texture type="bitmap" name="reflectance"><string name="filename" '
     'value="o.png"/><string name="wrap_mode" value="clamp"/></texture></bsdf></bsdf>', "wrap_mode differs"),
    ('<bsdf type="mask"><texture type="bitmap" name="opacity"><string name="filename" value="o.png"/>'
     '<transform name="to_uv"><scale x="2"/></transform></texture><bsdf type="diffuse"><texture type="bitmap" '
     'name="reflectance"><string name="filename" value="o.png"/></texture></bsdf></bsdf>', "different to_uv"),
])
def test_bad_masks_are_refused_naming_the_element(tmp_path, body, message):
    _gray(tmp_path, "o.png", [[0.5, 1.0]])
    with pytest.raises(MitsubaXmlError, match=message) as info:
        _read(_write(tmp_path, f'<shape type="rectangle" id="card">{body}</shape>'))
    assert "mask" in str(info.value) or "diffuse" in str(info.value)
