"""Mitsuba scene files with textured float properties: a rough BSDF's ``alpha`` and the principled's
``roughness`` and ``metallic`` become glTF's ``metallic_roughness_texture`` (G roughness, B metallic) with the
values Mitsuba reads (sRGB-decoded unless ``raw``, an RGB image's luminance); refusals. The renders against
Mitsuba itself are in ``tests/integrators/test_path_vs_mitsuba.py``."""

import numpy as np
import pytest
import torch

import lumigrad as lg
from lumigrad.io import MitsubaXmlError
from lumigrad.shading.image_formation import srgb_decode

from .test_mitsuba_xml import _read, _scene, _write


def _gray(folder, name, values) -> torch.Tensor:
    """Write ``values [H, W]`` in [0, 1] as an 8-bit grey PNG; return what it stores (the 8-bit levels / 255)."""
    image = torch.as_tensor(values, dtype=torch.float64)[..., None].expand(-1, -1, 3)
    lg.io.write_image(folder / name, image)
    return lg.io.read_image(folder / name)[..., 0].double()


def _bitmap(name, file, raw=True, extra=""):
    return (f'<texture type="bitmap" name="{name}"><string name="filename" value="{file}"/>'
            f'<boolean name="raw" value="{str(raw).lower()}"/>{extra}</texture>')


def test_a_textured_alpha_becomes_a_roughness_texture_of_its_square_root(tmp_path):
    alpha = _gray(tmp_path, "alpha.png", [[0.04, 0.25], [0.64, 1.0]])
    scene, warned = _read(_write(tmp_path, f'''
        <shape type="rectangle" id="metal"><bsdf type="roughconductor">{_bitmap("alpha", "alpha.png")}</bsdf></shape>
        <shape type="rectangle" id="glass"><bsdf type="roughdielectric">{_bitmap("alpha", "alpha.png", raw=False)}
            </bsdf></shape>'''), dtype=torch.float64)
    metal, glass = scene.meshes["metal"].material, scene.meshes["glass"].material
    assert float(metal.roughness_factor) == 1.0 and float(metal.metallic_factor) == 1.0
    mr = metal.metallic_roughness_texture
    assert mr.shape == (2, 2, 3)
    torch.testing.assert_close(mr[..., 1], alpha.sqrt())  # lumigrad's alpha is roughness^2
    assert torch.equal(mr[..., 2], torch.ones(2, 2, dtype=torch.float64))  # metallic: its factor, 1
    torch.testing.assert_close(glass.metallic_roughness_texture[..., 1], srgb_decode(alpha).sqrt())  # (not raw)
    assert float(glass.metallic_factor) == 0.0 and float(glass.transmission_factor) == 1.0
    assert any("textured alpha" in w for w in warned)


def test_principled_roughness_and_metallic_textures_share_one_texture(tmp_path):
    rough = _gray(tmp_path, "rough.png", np.linspace(0.0, 1.0, 16).reshape(4, 4))
    metal = _gray(tmp_path, "metal.png", [[0.0, 1.0], [1.0, 0.0]])
    colour = torch.tensor([[[0.9, 0.1, 0.1], [0.1, 0.9, 0.1]]], dtype=torch.float64).repeat(2, 1, 1)
    lg.io.write_image(tmp_path / "rgb.png", colour)
    stored = lg.io.read_image(tmp_path / "rgb.png").double()
    scene, warned = _read(_write(tmp_path, f'''
        <shape type="rectangle" id="both"><bsdf type="principled">{_bitmap("roughness", "rough.png")}
            {_bitmap("metallic", "metal.png")}</bsdf></shape>
        <shape type="rectangle" id="rough"><bsdf type="principled">{_bitmap("roughness", "rough.png")}
            <float name="metallic" value="0.3"/></bsdf></shape>
        <shape type="rectangle" id="rgb"><bsdf type="principled">{_bitmap("metallic", "rgb.png")}</bsdf></shape>'''),
        dtype=torch.float64)
    both = scene.meshes["both"].material
    assert both.principled and both.metallic_roughness_texture.shape == (4, 4, 3)
    torch.testing.assert_close(both.metallic_roughness_texture[..., 1], rough)
    expected = torch.nn.functional.interpolate(metal[None, None], size=(4, 4), mode="bilinear",
                                               align_corners=False)[0, 0]
    torch.testing.assert_close(both.metallic_roughness_texture[..., 2], expected)  # the smaller one resampled
    assert any("different sizes" in w for w in warned)
    only = scene.meshes["rough"].material
    assert float(only.metallic_factor) == pytest.approx(0.3) and float(only.roughness_factor) == 1.0
    assert torch.equal(only.metallic_roughness_texture[..., 2], torch.ones(4, 4, dtype=torch.float64))
    luminance = stored @ torch.tensor([0.212671, 0.715160, 0.072169], dtype=torch.float64)  # Mitsuba's eval_1
    torch.testing.assert_close(scene.meshes["rgb"].material.metallic_roughness_texture[..., 2], luminance)
    out = lg.render(scene, lg.Camera.look_at([0.0, 0.0, -3.0], [0.0, 0.0, 0.0], fov_y=0.8, width=8, height=8),
                    integrator="path", spp=1, max_depth=2)
    assert torch.isfinite(out.rgb).all()


WRAP_CLAMP = "<string name='wrap_mode' value='clamp'/>"
TO_UV = "<transform name='to_uv'><scale value='2'/></transform>"


@pytest.mark.parametrize("bsdf, match", [
    (f'<bsdf type="roughplastic">{_bitmap("alpha", "a.png")}</bsdf>', "textured alpha is not supported on a plastic"),
    (f'<bsdf type="roughconductor">{_bitmap("alpha", "a.png")}<float name="alpha_u" value="0.1"/></bsdf>',
     "sets alpha and alpha_u"),
    (f'<bsdf type="roughconductor">{_bitmap("alpha_u", "a.png")}</bsdf>', "a texture for 'alpha_u' is not supported"),
    (f'<bsdf type="principled">{_bitmap("roughness", "a.png")}'
     f'{_bitmap("metallic", "a.png", extra=WRAP_CLAMP)}</bsdf>', "wrap_modes differ"),
    (f'<bsdf type="principled">{_bitmap("roughness", "a.png")}{_bitmap("metallic", "a.png", extra=TO_UV)}</bsdf>',
     "different to_uv"),
    (f'<bsdf type="principled">{_bitmap("spec_trans", "a.png")}</bsdf>', "a texture for 'spec_trans' is not supported"),
])
def test_textures_lumigrad_cannot_hold_are_refused(tmp_path, bsdf, match):
    _gray(tmp_path, "a.png", [[0.2, 0.4]])
    with pytest.raises(MitsubaXmlError, match=match):
        _scene(tmp_path, f'<shape type="rectangle">{bsdf}</shape>')


def test_a_roughness_texture_with_another_to_uv_than_the_base_colours_is_refused(tmp_path):
    _gray(tmp_path, "a.png", [[0.2, 0.4]])
    with pytest.raises(MitsubaXmlError, match="different to_uv transforms"):
        _scene(tmp_path, f'''<shape type="rectangle"><bsdf type="principled">{_bitmap("roughness", "a.png")}
            {_bitmap("base_color", "a.png", extra=TO_UV)}
            </bsdf></shape>''')
