"""Mitsuba's normal maps (``Material.mitsuba_normal_map``, :mod:`lumigrad.shading.normal_shadowing`): the
shadowing of grazing light and the flip of normals facing away from the viewer, against values recorded from
Mitsuba 3.9.1's ``normalmap`` around a white ``diffuse`` (and against Mitsuba itself when it is installed), the
BSDF wrapper's consistency, the material's flag and the Mitsuba reader."""

import math

import pytest
import torch

import lumigrad as lg
from lumigrad.shading import Material
from lumigrad.shading.normal_shadowing import (ShadowedNormalMapBSDF, flip_invalid_normal, normal_map_shadowing,
                                               shadowing_mask)
from lumigrad.shading.surface import SurfaceSample
from lumigrad.shading.transmission import bsdf_for

F64 = torch.float64
Z = torch.tensor([[0.0, 0.0, 1.0]], dtype=F64)


def _unit(v):
    v = torch.as_tensor(v, dtype=F64).reshape(-1, 3)
    return v / v.norm(dim=-1, keepdim=True)


def _dir(theta, phi):
    t, p = math.radians(theta), math.radians(phi)
    return _unit([math.sin(t) * math.cos(p), math.sin(t) * math.sin(p), math.cos(t)])


#: Mitsuba 3.9.1 (``scalar_rgb``), ``normalmap`` of the constant normal (0.4, 0.1, 0.9) / |.| around a white
#: ``diffuse``, viewed along the unmapped normal: its value over the diffuse value of the mapped frame, per light
#: direction (theta from the unmapped normal, phi 0).
RECORDED = {30: 0.9978231, 60: 0.9810622, 75: 0.9222949, 85: 0.6442987}


@pytest.mark.parametrize("theta", sorted(RECORDED))
def test_the_shadowing_is_mitsubas(theta):
    n = _unit([0.4, 0.1, 0.9])
    assert float(normal_map_shadowing(Z, n, _dir(theta, 0))) == pytest.approx(RECORDED[theta], rel=1e-6)
    # Conty Estevez et al.'s form: alpha^2 = min(tan^2(n, n0) / 8, 1), Smith's masking of the light
    tan2_p = (1 - float(n[0, 2]) ** 2) / float(n[0, 2]) ** 2
    alpha2 = min(tan2_p / 8, 1.0)
    expected = 2 / (1 + math.sqrt(1 + alpha2 * math.tan(math.radians(theta)) ** 2))
    assert float(normal_map_shadowing(Z, n, _dir(theta, 180))) == pytest.approx(expected, rel=1e-12)


def test_no_bend_no_shadowing_and_the_view_plays_no_part():
    assert float(normal_map_shadowing(Z, Z, _dir(80, 30))) == pytest.approx(1.0, abs=1e-12)
    n = _unit([0.8, 0.0, 0.6])
    assert float(normal_map_shadowing(Z, n, Z)) == pytest.approx(1.0, abs=1e-12)
    assert float(normal_map_shadowing(Z, n, 3.0 * _dir(60, 0))) == pytest.approx(
        float(normal_map_shadowing(Z, n, _dir(60, 0))), rel=1e-12)  # (any length)


def test_a_normal_facing_away_from_the_viewer_is_mirrored_about_the_unmapped_one():
    """Mitsuba 3.9.1: normal (0.8, 0, 0.6) seen from theta 60, phi 180 (n . wo = -0.39): its diffuse value at light
    (30, 0) is 0.0373946 and at (60, 180) 0.2758841, the diffuse of the mirrored normal (-0.8, 0, 0.6) times the
    shadowing; unmirrored the first would be 0.2927 and the second 0."""
    n, wo = _unit([0.8, 0.0, 0.6]), _dir(60, 180)
    flipped = flip_invalid_normal(Z, n, wo)
    assert torch.allclose(flipped, _unit([-0.8, 0.0, 0.6]), atol=1e-12)
    assert torch.equal(flip_invalid_normal(Z, n, _dir(60, 0)), n)  # (facing the viewer: unchanged)
    # Mitsuba flips where the viewer is on different sides of the two normals, (n0 . wo)(n . wo) <= 0: seen from
    # behind both (the back of a one-sided surface, the inside of glass) the normal stays
    bent = _unit([-0.3, 0.0, 0.95])
    assert torch.equal(flip_invalid_normal(Z, bent, _unit([1.0, 0.0, -0.1])), bent)
    assert torch.allclose(flip_invalid_normal(Z, bent, _unit([-1.0, 0.0, -0.1])), _unit([0.3, 0.0, 0.95]))
    for light, recorded in (((30, 0), 0.0373946), ((60, 180), 0.2758841)):
        wi = _dir(*light)
        value = (flipped * wi).sum().clamp_min(0) / math.pi * normal_map_shadowing(Z, flipped, wi)
        assert float(value) == pytest.approx(recorded, rel=1e-5)


def _si(n, wo, shadowing=True, unmapped=Z):
    N = n.shape[0]
    return SurfaceSample(position=torch.zeros(N, 3, dtype=F64), normal=n, wo=wo.expand(N, 3),
                         base_color=torch.full((N, 3), 0.6, dtype=F64), roughness=torch.full((N, 1), 0.4, dtype=F64),
                         metallic=torch.zeros(N, 1, dtype=F64), unmapped_normal=unmapped.expand(N, 3),
                         shadowing=torch.full((N, 1), float(shadowing), dtype=F64))


def test_the_wrapper_shadows_values_and_sample_weights_not_densities():
    g = torch.Generator().manual_seed(0)
    n = _unit(torch.tensor([[0.5, 0.2, 0.8]]).expand(64, 3) + 0.05 * torch.randn(64, 3, generator=g))
    si = _si(n, _dir(10, 40))
    bsdf = bsdf_for(si)
    assert isinstance(bsdf, ShadowedNormalMapBSDF) and bool(shadowing_mask(si).all())
    inner = bsdf.other
    wi = _unit(torch.randn(64, 3, generator=g, dtype=F64).abs() + torch.tensor([0.0, 0.0, 0.2]))
    s = normal_map_shadowing(si.unmapped_normal, si.normal, wi)
    assert bool((s < 1).any()) and bool((s <= 1).all())
    torch.testing.assert_close(bsdf.eval(si, wi), inner.eval(si, wi) * s)
    torch.testing.assert_close(bsdf.pdf(si, wi), inner.pdf(si, wi))
    torch.testing.assert_close(bsdf.delta_coefficient(si, wi), torch.zeros_like(si.base_color))  # (no delta lobe)
    u1, u2 = torch.rand(64, 1, generator=g, dtype=F64), torch.rand(64, 2, generator=g, dtype=F64)
    a, b = bsdf.sample(si, u1, u2), inner.sample(si, u1, u2)
    torch.testing.assert_close(a.wi, b.wi)
    torch.testing.assert_close(a.weight, b.weight * normal_map_shadowing(si.unmapped_normal, si.normal, b.wi))
    off = _si(n, _dir(10, 40), shadowing=False)  # marked 0: the wrapper leaves the values alone
    torch.testing.assert_close(bsdf_for(off).eval(off, wi), inner.eval(off, wi))
    assert shadowing_mask(si.replace(unmapped_normal=None)) is None


def test_the_material_flag_marks_points_only_with_a_normal_map():
    texture = torch.full((2, 2, 3), 0.5)
    texture[..., 2] = 1.0
    on = lg.shading.sample_material(Material(normal_texture=texture, mitsuba_normal_map=True),
                                    uv=torch.zeros(1, 1, 2))
    assert "shadowing" in on and bool((on["shadowing"] == 1).all())
    assert "shadowing" not in lg.shading.sample_material(Material(mitsuba_normal_map=True), shape=(1, 1))
    assert "shadowing" not in lg.shading.sample_material(Material(normal_texture=texture), uv=torch.zeros(1, 1, 2))
    with pytest.raises(TypeError, match="mitsuba_normal_map must be a bool"):
        Material(mitsuba_normal_map=1)


def test_the_mitsuba_reader_marks_normalmaps(tmp_path):
    """A ``normalmap`` is Mitsuba's (shadowed, flipped) unless the file turns both switches off; one switch off
    alone reads as the shadowing switch, with a note."""
    import warnings

    lg.io.write_image(tmp_path / "n.png", torch.full((4, 4, 3), 0.5))

    def read(extra=""):
        (tmp_path / "s.xml").write_text(f"""<scene version="3.0.0"><shape type="rectangle" id="r">
<bsdf type="normalmap"><texture type="bitmap" name="normalmap"><string name="filename" value="n.png"/>
<boolean name="raw" value="true"/></texture>{extra}<bsdf type="diffuse"/></bsdf></shape></scene>""")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            material = lg.io.load(tmp_path / "s.xml").meshes["r"].material
        notes = [str(w.message) for w in caught if issubclass(w.category, lg.io.MitsubaXmlWarning)]
        return material, notes

    material, notes = read()
    assert material.mitsuba_normal_map and material.normal_texture is not None and not notes
    material, notes = read('<boolean name="use_shadowing_function" value="false"/>'
                           '<boolean name="flip_invalid_normals" value="false"/>')
    assert not material.mitsuba_normal_map and not notes
    material, notes = read('<boolean name="use_shadowing_function" value="false"/>')
    assert not material.mitsuba_normal_map and any("flip_invalid_normals=true" in n for n in notes)


def test_the_shadowing_and_the_flip_pass_gradcheck():
    """float64 gradcheck of the shadowing in both normals and the light direction, and of the flip in the normals
    (away from its switch), at bent normals and grazing lights."""
    g = torch.Generator().manual_seed(3)
    n0 = _unit(torch.tensor([[0.0, 0.0, 1.0]]) + 0.1 * torch.randn(4, 3, generator=g, dtype=F64))
    n = _unit(n0 + torch.tensor([[0.4, -0.2, 0.0]], dtype=F64))
    wi = _unit(torch.tensor([[0.9, 0.3, 0.3]], dtype=F64) + 0.1 * torch.randn(4, 3, generator=g, dtype=F64))
    args = [t.clone().requires_grad_(True) for t in (n0, n, wi)]
    assert torch.autograd.gradcheck(normal_map_shadowing, args)
    assert bool((normal_map_shadowing(n0, n, wi) < 0.99).all())  # (grazing and bent: the shadowing matters)
    wo = _unit(torch.tensor([[-0.8, 0.4, 0.3]], dtype=F64)).expand(4, 3)
    flipped = flip_invalid_normal(n0, n, wo)
    assert not torch.equal(flipped, n)  # (some normals face away from this viewer: mirrored)
    assert torch.autograd.gradcheck(lambda a, b: flip_invalid_normal(a, b, wo), args[:2])
