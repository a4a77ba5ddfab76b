"""glTF 2.0 metallic-roughness materials: every parameter a constant factor, a texture, or both.

A :class:`Material` only holds tensors; :func:`sample_material` turns it into per-pixel shading inputs with
:func:`lumigrad.texture`, following the glTF 2.0 specification (section 3.9):

* ``base_color = base_color_factor * srgb_decode(base_color_texture)`` (RGBA; the texture is sRGB-encoded);
* ``metallic = metallic_factor * metallic_roughness_texture.B``, ``roughness = roughness_factor * ...G``
  (the texture is linear);
* ``normal``: the tangent-space normal ``(2 t - 1) * (scale, scale, 1)`` from ``normal_texture``;
* ``occlusion = 1 + strength * (occlusion_texture.R - 1)``;
* ``emission = emissive_factor * srgb_decode(emissive_texture)``;
* ``specular = specular_factor`` (``KHR_materials_specular``'s ``specularFactor``: the weight of the dielectric
  layer's GGX coat, see :func:`lumigrad.shading.metallic_roughness`; 0 with ``metallic = 0`` is Lambertian).

The sRGB-encoded textures are decoded texel by texel *before* they are filtered (bilinear, mip maps), as GPU
sRGB textures and Mitsuba's ``bitmap`` do: filtering the encoded values and decoding after would darken
every texture whose neighbouring texels differ (the decode is convex). The decode is passed to the texture
op as its elementwise ``texel_transform``, so a texture is decoded and mip-mapped once per texel update
(cached by the tensor's version), trainable or not; see :func:`lumigrad.texture`.

Every factor and texel is differentiable; ``Material.parameters()`` names them for optimisers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Dict, Optional

import torch

from .._checks import PerVersion, check_choice, check_number, check_tensor, check_texture_layout
from ..raster.texture import texture, texture_unchecked
from .brdf import MICROFACETS
from .conductor import CONDUCTOR_VALUES, MIN_HEAD_ON
from .image_formation import srgb_decode, srgb_decode_unchecked
from .medium import HomogeneousMedium
from .plastic import PLASTIC_TABLE, material_plastic_table


#: The glTF texture slots of a :class:`Material`, in glTF's order.
TEXTURE_SLOTS = ("base_color_texture", "metallic_roughness_texture", "normal_texture", "occlusion_texture",
                 "emissive_texture")

#: The glTF ``alphaMode`` values a :class:`Material` takes.
ALPHA_MODES = ("OPAQUE", "MASK", "BLEND")


@dataclass
class Material:
    """A glTF metallic-roughness material (``None`` textures mean "factor only").

    Attributes:
        base_color_factor: ``[4]`` linear RGBA (default white, opaque).
        metallic_factor, roughness_factor: ``[]`` in [0, 1].
        base_color_texture: ``[Ht, Wt, 3 or 4]`` sRGB-encoded values in [0, 1].
        metallic_roughness_texture: ``[Ht, Wt, >= 3]`` linear; G = roughness, B = metallic.
        normal_texture: ``[Ht, Wt, 3]`` tangent-space normals encoded as ``(n + 1) / 2``; ``normal_scale``.
        occlusion_texture: ``[Ht, Wt, >= 1]`` (R channel); ``occlusion_strength``.
        emissive_factor: ``[3]`` linear; emissive_texture: ``[Ht, Wt, 3]`` sRGB-encoded.
        ior: index of refraction of the dielectric layer (glTF default 1.5, ``KHR_materials_ior``).
        transmission_factor: ``[]`` in [0, 1], the fraction of the dielectric base that transmits light
            instead of scattering it diffusely (glTF ``KHR_materials_transmission``; 1 with ``metallic = 0``
            is glass, rough by ``roughness``). Renderers that trace rays refract through it; the raster
            renderer does not (it shades such a surface as if opaque).
        wrap: how every texture is addressed outside [0, 1]: ``"repeat"`` (glTF's default), ``"clamp"`` or
            ``"mirror"``.
        alpha_mode: glTF ``alphaMode``, how the raster renderer reads alpha (``base_color_factor.a`` times the
            base colour texture's alpha): ``"OPAQUE"`` ignores it (the default); ``"MASK"`` discards the
            fragments whose alpha is below ``alpha_cutoff`` and shows what lies behind (foliage, fences);
            ``"BLEND"`` composites the surface over what lies behind with that alpha (glass, decals).
            Renderers that trace rays ignore it. See :class:`lumigrad.integrators.RasterIntegrator`.
        alpha_cutoff: glTF ``alphaCutoff``, a number >= 0 (default 0.5), read in ``"MASK"`` mode only.
        specular_factor: ``[]`` in [0, 1] (default 1), glTF ``KHR_materials_specular``'s ``specularFactor``: the
            strength of the dielectric layer's specular coat. The dielectric is
            ``(1 - specular_factor * F) * base_color / pi + specular_factor * F * GGX`` (Schlick ``F`` of
            ``f0 = ((ior - 1) / (ior + 1))^2``), so 0 with ``metallic = 0`` is exactly Lambertian (Mitsuba's
            ``diffuse``); the metallic lobe is untouched. ``specularColorFactor`` and the extension's textures
            are not modelled (a white specular colour; :func:`lumigrad.io.read_gltf` names them in its warning).
        interior: the :class:`~lumigrad.shading.HomogeneousMedium` that fills the closed mesh this material
            bounds (subsurface scattering; Mitsuba's shape ``interior``), or None (vacuum). The path tracer enters
            it where a path refracts through a transmitting surface against the face winding (into the mesh)
            and leaves it where it refracts out; other renderers ignore it. A number ``g`` becomes a tensor of
            the material's dtype (a copy of the medium is kept, one per medium:
            :meth:`~lumigrad.shading.HomogeneousMedium.with_tensor_g`), so that ``interior.g`` is a parameter. Its
            tensors are not in :meth:`parameters` (the glTF factors and textures only); scenes name them
            ``material.interior.sigma_a`` / ``sigma_s`` / ``g`` (:meth:`interior_parameters`).
        exterior: the medium on the outside of the mesh (Mitsuba's shape ``exterior``), or None: the scene's
            medium (``Scene.medium``; vacuum when it has none). A path refracting out of the mesh (along the face
            winding) enters it; the tags are trusted, as Mitsuba trusts them: a path leaving the mesh enters
            ``exterior`` whatever medium it came from. Converted and named like ``interior``
            (``material.exterior.sigma_a`` ..., :meth:`media_parameters`). A material with neither ``interior``
            nor ``exterior`` is no medium boundary: paths crossing it keep their medium (Mitsuba's rule).
        microfacet: the specular lobes' microfacet distribution, ``"ggx"`` (glTF's, the default) or
            ``"beckmann"`` (Mitsuba's default for ``roughconductor``, ``roughplastic`` and ``roughdielectric``),
            both of width ``alpha = roughness^2``; Beckmann gets its height-correlated Smith visibility (Walter et
            al. 2007's ``Lambda``; Mitsuba's conductor and plastic use the separable ``G1 G1``, about 0.3 % darker
            on a white rough metal) and is sampled by ``D (n.h)``. Checked whenever it is set. The path tracer's
            PyTorch transport and the raster's per-light shading honour it (the fused kernels run GGX materials
            only); the raster's split-sum environment lighting is GGX's for both (:mod:`lumigrad.shading.deferred`).
        thin_dielectric: the transmitting fraction (``transmission_factor``) is a thin sheet of dielectric
            (Mitsuba's ``thindielectric``: a window pane modelled by one surface) instead of the boundary of a
            solid: it reflects ``R' = R + T^2 R / (1 - R^2)`` about the normal and lets the rest pass straight
            through, tinted by the base colour, both delta lobes whatever the roughness
            (:class:`~lumigrad.shading.MetallicRoughnessTransmissionBSDF`; the path replay differentiates the
            lobes' weights through their coefficients, so the tint and the ior get gradients). The path tracer honours
            it (the PyTorch transport and the fused kernel's primal; its gradients replay on PyTorch); the rasterizer
            shades transmission as opaque anyway. A sheet is one-sided like every glTF surface: seen from behind only
            its transmitting fraction exists (make it ``double_sided``, or ``transmission_factor`` 1, for a pane seen
            from both sides); an ``interior`` or ``exterior`` medium on it is still entered and left as on a solid.
        plastic: the surface is Mitsuba's ``plastic`` / ``roughplastic`` (:mod:`lumigrad.shading.plastic`) instead of
            the glTF model: a diffuse base of reflectance ``base_color`` under a dielectric interface of ``ior`` and
            ``roughness`` (``microfacet``), with the interface's exact Fresnel reflection, its transmittance on the
            way in and out, and the light it reflects back inside; ``metallic_factor`` and ``transmission_factor``
            are not used, and ``roughness`` must be a factor (no ``metallic_roughness_texture``: the interface's
            tables are per material). The path tracer (fused kernel and its replay, PyTorch transport) and the
            raster's per-light shading honour it (the raster's split-sum environment light is the glTF model's).
        principled: the surface is Mitsuba's ``principled`` BSDF (Burley's Disney model, what Blender's
            Principled BSDF exports to; :mod:`lumigrad.shading.principled`) in its opaque form instead of the glTF
            model: GGX reflection with the exact dielectric Fresnel of ``ior`` mixed with ``metallic``'s Schlick
            curve, and Burley's diffuse with its retro-reflection, not scaled by ``1 - F``; ``transmission_factor``,
            ``specular_factor`` and ``microfacet`` are not used, and it cannot also be ``plastic``. The path
            tracer (fused kernel and its replay, PyTorch transport) and the raster's per-light shading honour it (the
            raster's split-sum environment light is the glTF model's).
        principled_lobes: ``[6]`` in [0, 1] or None (all 0): a ``principled`` material's other lobes, Mitsuba's
            ``spec_tint``, ``sheen``, ``sheen_tint``, ``clearcoat``, ``clearcoat_gloss`` and ``flatness``
            (:data:`lumigrad.shading.principled.PRINCIPLED_LOBES`): the dielectric specular tinted towards the base
            colour, a sheen at grazing angles (tinted), a second, glossy GGX-like coat (Burley's GTR1; Mitsuba
            evaluates it without the microfacet lobe's ``1 / (4 n.wo n.wi)``) and the diffuse lobe flattened towards
            Hanrahan-Krueger's fake subsurface. Differentiable; read only where ``principled`` is set. The path
            tracer (PyTorch transport and fused kernel; their derivatives replay on PyTorch) and the raster's
            per-light shading honour them.
        conductor_eta, conductor_k: ``[3]`` each, set together (``eta >= 0``, ``k >= 0``), or None: the surface is
            Mitsuba's ``conductor`` / ``roughconductor`` (:mod:`lumigrad.shading.conductor`), a metal of complex
            index of refraction ``eta + i k`` per channel, instead of the glTF model: a GGX or Beckmann
            (``microfacet``) reflection of ``roughness`` with the metal's exact Fresnel curve, scaled so that
            ``base_color`` is its reflectance head-on (where glTF's metal follows Schlick's curve from the base
            colour); separable Smith shadowing, as Mitsuba's. A base colour above ``F(1)`` (Mitsuba's
            ``specular_reflectance`` above 1) lifts the curve above 1 towards grazing light: the surface then
            reflects more than it receives. ``metallic_factor`` (read as 1), ``ior``, ``specular_factor`` and
            ``transmission_factor`` are not used, and it cannot also be ``plastic`` or ``principled``; a channel
            must reflect at least ``MIN_CONDUCTOR_REFLECTANCE`` (1e-4) head-on when the material is made (renderers
            divide by at least that). Each is checked when set, the pair when rendered. Both
            are parameters (differentiable). The path tracer (fused kernel and its replay, PyTorch transport) and
            the raster's per-light shading honour it (the raster's split-sum environment light is the glTF
            model's, Schlick's curve from the base colour).
        mitsuba_normal_map: the normal map is Mitsuba's ``normalmap`` with its defaults
            (:mod:`lumigrad.shading.normal_shadowing`): light grazing the unmapped surface is shadowed by the bent
            facets (Conty Estevez et al. 2019's shadowing function), a mapped normal facing away from the viewer
            is mirrored about the unmapped one instead of leaving the point black, and on the back of a
            double-sided part (Mitsuba's ``twosided``) the map's frame keeps the front's bitangent (glTF's turns
            with the flipped normal). Read only where the material has a ``normal_texture``; the path tracer
            (fused kernel, both replays) and the raster's per-light shading honour it (the raster's environment
            light, split-sum and SH, is not shadowed).
        delta_specular: where its roughness is 0, the specular lobes are ideal (Dirac) lobes, as in Mitsuba's smooth
            ``conductor``, ``plastic``, ``dielectric`` and ``thindielectric``: a delta light (point, spot,
            directional) is never reflected or refracted by them, since a path cannot meet a single point or direction
            through a single direction (Mitsuba's images show neither the light's glint in a mirror nor its caustic
            through glass). At such a point a delta light's next-event sample evaluates the BSDF without its specular
            lobes: nothing for a conductor or glass, the diffuse base for a plastic. Everything else renders the lobes
            as before (GGX of ``alpha = ALPHA_MIN``: area lights, the environment and indirect light reach them by
            both strategies), and where the roughness is above 0 (a fit moving it, a texture) they are ordinary lobes.
            Only for a conductor (``conductor_eta`` set), a ``plastic``, or glass (``transmission_factor`` 1,
            ``metallic_factor`` 0), checked when the material is made and when the flag or one of those attributes is
            set (points whose values have moved off those models, in place, are ordinary). The raster's lights (area
            lights' point samples included) are all deltas to it, and its glass, shaded as an opaque surface, keeps
            its lobes. The path tracer (fused kernel, its replay, PyTorch transport, shadow-edge terms) and the
            raster's per-light shading honour it.
        roughness_aspect: ``[]`` > 0 or None (isotropic): the specular lobe's aspect, for Mitsuba's anisotropic
            ``roughconductor`` and ``roughdielectric`` (``sqrt(alpha_v / alpha_u)``) and ``principled`` (``sqrt(1 -
            0.9 anisotropic)``): widths ``alpha / aspect`` along the surface's tangent and ``alpha aspect`` across it,
            ``alpha = roughness^2`` their geometric mean (:mod:`lumigrad.shading.anisotropy`). The tangent is the
            mesh's (``SceneMesh.tangents``), else each triangle's ``dp/du`` of its texture coordinates, else its
            first edge (Mitsuba's frames). Only for a conductor (``conductor_eta`` set), a ``principled`` material or
            a transmitting one (``transmission_factor`` not 0, neither a ``plastic`` nor a ``thin_dielectric``
            sheet, whose lobes are deltas: the aspect shapes the rough dielectric interface of its transmitting
            fraction, glTF's opaque lobes beside it stay isotropic),
            checked when the material is made and when it is shaded; renderers clamp it to ``[1e-3, 1e3]``
            (``ASPECT_MIN``), as they clamp the other factors. A parameter (differentiable). The path tracer (fused
            kernel, PyTorch transport; its derivatives replay on PyTorch) and the raster's per-light shading honour it
            (the raster's split-sum environment light is isotropic; it shades glass as an opaque surface, with no
            transmitting fraction for an aspect to shape).
    """

    base_color_factor: torch.Tensor = None
    metallic_factor: torch.Tensor = None
    roughness_factor: torch.Tensor = None
    base_color_texture: Optional[torch.Tensor] = None
    metallic_roughness_texture: Optional[torch.Tensor] = None
    normal_texture: Optional[torch.Tensor] = None
    normal_scale: torch.Tensor = None
    occlusion_texture: Optional[torch.Tensor] = None
    occlusion_strength: torch.Tensor = None
    emissive_factor: torch.Tensor = None
    emissive_texture: Optional[torch.Tensor] = None
    ior: torch.Tensor = None
    transmission_factor: torch.Tensor = None
    wrap: str = "repeat"
    interior: Optional[HomogeneousMedium] = None
    alpha_mode: str = "OPAQUE"
    alpha_cutoff: float = 0.5
    specular_factor: torch.Tensor = None
    exterior: Optional[HomogeneousMedium] = None
    microfacet: str = "ggx"
    thin_dielectric: bool = False
    plastic: bool = False
    principled: bool = False
    mitsuba_normal_map: bool = False
    conductor_eta: Optional[torch.Tensor] = None
    conductor_k: Optional[torch.Tensor] = None
    principled_lobes: Optional[torch.Tensor] = None
    delta_specular: bool = False
    roughness_aspect: Optional[torch.Tensor] = None

    def __setattr__(self, name, value):
        if name == "microfacet":  # checked whenever it is set, so every renderer reads a known distribution
            check_choice(value, "microfacet", MICROFACETS)
        elif name in ("thin_dielectric", "plastic", "principled", "mitsuba_normal_map",
                      "delta_specular") and not isinstance(value, bool):
            raise TypeError(f"{name} must be a bool; got {type(value).__name__}")
        if name == "roughness_aspect" and value is not None:  # (its value checked whenever it is set)
            value = _aspect_value(value, getattr(self, "base_color_factor", None))
        if name in ("conductor_eta", "conductor_k") and value is not None:  # (checked whenever either is set)
            value = _conductor_values(name, value, getattr(self, "base_color_factor", None))
        if name in _MODELS and _is_set(value):  # (one model a material; checked whenever one is set)
            for other in _MODELS:
                if other != name and _is_set(getattr(self, other, None)):
                    raise ValueError(f"a material has one model: setting {name} while {other} is set (plastic, "
                                     "principled and a conductor's eta exclude each other)")
        if name == "delta_specular" or name in _SMOOTH_FIELDS:
            old = getattr(self, name, None)
            super().__setattr__(name, value)
            if getattr(self, "delta_specular", False) and all(
                    isinstance(getattr(self, f, None), torch.Tensor)
                    for f in ("roughness_factor", "metallic_factor", "transmission_factor")):
                try:  # (on a made material: at construction __post_init__ checks it once)
                    self._check_delta_specular()
                except ValueError:
                    super().__setattr__(name, old)
                    raise
            return
        super().__setattr__(name, value)

    def __post_init__(self):
        check_choice(self.wrap, "wrap", ("repeat", "clamp", "mirror"))
        check_choice(self.alpha_mode, "alpha_mode", ALPHA_MODES)
        self.alpha_cutoff = check_number(self.alpha_cutoff, "alpha_cutoff", lo=0.0)
        for side in ("interior", "exterior"):
            medium = getattr(self, side)
            if medium is not None and not isinstance(medium, HomogeneousMedium):
                raise TypeError(f"{side} must be a HomogeneousMedium or None; got {type(medium).__name__}")
        defaults = {"base_color_factor": [1.0, 1.0, 1.0, 1.0], "metallic_factor": 1.0, "roughness_factor": 1.0,
                    "normal_scale": 1.0, "occlusion_strength": 1.0, "emissive_factor": [0.0, 0.0, 0.0],
                    "ior": 1.5, "transmission_factor": 0.0, "specular_factor": 1.0}
        ref = next(iter(self.parameters().values()), None)
        dtype = ref.dtype if ref is not None and ref.is_floating_point() else torch.get_default_dtype()
        device = ref.device if ref is not None else None
        for name, value in defaults.items():
            current = getattr(self, name)
            if current is None:
                setattr(self, name, torch.tensor(value, dtype=dtype, device=device))
            elif not isinstance(current, torch.Tensor):
                setattr(self, name, torch.tensor(current, dtype=dtype, device=device))
        check_tensor(self.base_color_factor, "base_color_factor", trailing=(4,), floating=True, finite=True)
        check_tensor(self.emissive_factor, "emissive_factor", trailing=(3,), floating=True, finite=True)
        for name in ("metallic_factor", "roughness_factor", "transmission_factor", "specular_factor"):
            value = getattr(self, name)
            check_tensor(value, name, floating=True, finite=True)
            if bool(((value < 0) | (value > 1)).any()):
                raise ValueError(f"{name} must lie in [0, 1]; got {value.tolist()}")
        for name in ("normal_scale", "occlusion_strength", "ior"):
            check_tensor(getattr(self, name), name, floating=True, finite=True)
        if float(self.ior.detach().min()) < 1.0:
            raise ValueError(f"ior must be >= 1; got {self.ior.tolist()}")
        for name, channels in (("base_color_texture", (3, 4)), ("metallic_roughness_texture", None),
                               ("normal_texture", (3,)), ("occlusion_texture", None), ("emissive_texture", (3,))):
            tex = getattr(self, name)
            if tex is not None:
                check_tensor(tex, name, trailing=(None, None, None), floating=True, finite=True)
                check_texture_layout(tex, name)
                if channels is not None and tex.shape[-1] not in channels:
                    raise ValueError(f"{name} must have {' or '.join(map(str, channels))} channels; got "
                                     f"{tex.shape[-1]}")
        if self.metallic_roughness_texture is not None and self.metallic_roughness_texture.shape[-1] < 3:
            raise ValueError("metallic_roughness_texture needs 3 channels (G = roughness, B = metallic)")
        for side in ("interior", "exterior"):
            if getattr(self, side) is not None:
                setattr(self, side, getattr(self, side).with_tensor_g(dtype))
        self._check_conductor()  # (eta and k keep the tensors given: renderers take them in the shading's dtype)
        if self.principled_lobes is not None:
            if not isinstance(self.principled_lobes, torch.Tensor):
                self.principled_lobes = torch.tensor(self.principled_lobes, dtype=dtype, device=device)
            check_tensor(self.principled_lobes, "principled_lobes", trailing=(6,), floating=True, finite=True)
            lobes = self.principled_lobes.detach()
            if lobes.dim() != 1 or bool(((lobes < 0) | (lobes > 1)).any()):
                raise ValueError(f"principled_lobes must be 6 values in [0, 1] (spec_tint, sheen, sheen_tint, "
                                 f"clearcoat, clearcoat_gloss, flatness); got {lobes.tolist()}")
        if self.delta_specular:
            self._check_delta_specular()
        check_aspect_model(self)
        has_specular_weight(self)  # read now, with the checks above: renderers ask per frame

    def _check_delta_specular(self) -> None:
        """A ``delta_specular`` material is a conductor, plastic or glass (the attribute's doc)."""
        glass = (not self.principled and not self.plastic and self.conductor_eta is None
                 and bool((self.transmission_factor.detach() == 1).all())
                 and bool((self.metallic_factor.detach() == 0).all()))
        if not (self.plastic or self.conductor_eta is not None or glass):
            raise ValueError("delta_specular is for Mitsuba's smooth models: a conductor (conductor_eta set), a "
                             "plastic, or glass (transmission_factor 1, metallic_factor 0)")

    def _check_conductor(self) -> None:
        """``conductor_eta`` and ``conductor_k`` both set or neither (each is checked when it is set), the pair
        reflecting at least :data:`MIN_CONDUCTOR_REFLECTANCE` head-on (checked here, at construction: set later
        one at a time, a pair passes through others; a renderer takes the reflectance head-on as at least that)."""
        check_conductor_pair(self)
        if self.conductor_eta is not None:
            _check_head_on(self.conductor_eta, self.conductor_k)

    def has_textures(self) -> bool:
        """Whether any texture slot is set (then :func:`sample_material` needs ``uv``)."""
        return any(getattr(self, slot) is not None for slot in TEXTURE_SLOTS)

    def parameters(self) -> Dict[str, torch.Tensor]:
        """Named tensors of this material (factors and textures that are set), for optimisers and reports."""
        return {f.name: getattr(self, f.name) for f in fields(self) if isinstance(getattr(self, f.name), torch.Tensor)}

    def interior_parameters(self) -> Dict[str, torch.Tensor]:
        """The interior medium's tensors as ``{"interior.sigma_a": ..., "interior.sigma_s": ...,
        "interior.g": ...}`` (empty without a medium)."""
        if self.interior is None:
            return {}
        return {f"interior.{k}": v for k, v in self.interior.parameters().items()}

    def media_parameters(self) -> Dict[str, torch.Tensor]:
        """The tensors of both media, ``interior.*`` (:meth:`interior_parameters`) then ``exterior.sigma_a`` /
        ``sigma_s`` / ``g`` (empty without media)."""
        out = self.interior_parameters()
        if self.exterior is not None:
            out.update({f"exterior.{k}": v for k, v in self.exterior.parameters().items()})
        return out


#: The attributes that ``Material.delta_specular`` depends on (rechecked when one is set on a flagged material).
_SMOOTH_FIELDS = ("metallic_factor", "transmission_factor", "plastic", "principled", "conductor_eta")

#: The attributes that choose a material's model other than glTF's; at most one is set.
_MODELS = ("plastic", "principled", "conductor_eta")


def _is_set(value) -> bool:
    """Whether a model attribute (a bool, or a conductor's ``eta``, a tensor or None) chooses its model."""
    return value is not None and value is not False


#: The least reflectance head-on, ``((eta - 1)^2 + k^2) / ((eta + 1)^2 + k^2)``, of a conductor's channel: below it
#: (``eta`` near 1 and ``k`` near 0: hardly an interface) the curve ``F(cos) / F(1)`` is float32 rounding. A material
#: is refused below it when made; renderers divide by at least it (an optimiser may step there).
MIN_CONDUCTOR_REFLECTANCE = MIN_HEAD_ON


def _conductor_values(name: str, value, like: Optional[torch.Tensor]) -> torch.Tensor:
    """``value`` as a conductor's ``eta`` or ``k``: a floating tensor ``[3]`` (from a list in ``like``'s dtype and
    device), finite, ``>= 0``."""
    if not isinstance(value, torch.Tensor):  # (a list of ints too: a floating tensor)
        value = torch.tensor(value, dtype=like.dtype if isinstance(like, torch.Tensor) else torch.get_default_dtype(),
                             device=like.device if isinstance(like, torch.Tensor) else None)
    check_tensor(value, name, trailing=(3,), floating=True, finite=True)
    if value.dim() != 1:
        raise ValueError(f"{name} must have shape [3] (one value per RGB channel); got {tuple(value.shape)}")
    if bool((value.detach() < 0).any()):
        raise ValueError(f"{name} must be >= 0; got {value.detach().tolist()}")
    return value


def _check_head_on(eta: torch.Tensor, k: torch.Tensor) -> None:
    """A conductor's reflectance head-on at least :data:`MIN_CONDUCTOR_REFLECTANCE` in every channel."""
    eta, k = eta.detach(), k.detach().to(eta)
    head_on = ((eta - 1) ** 2 + k * k) / ((eta + 1) ** 2 + k * k)
    if bool((head_on < MIN_CONDUCTOR_REFLECTANCE).any()):
        raise ValueError(f"a conductor of conductor_eta {eta.tolist()} and conductor_k {k.tolist()} reflects "
                         f"{head_on.tolist()} head-on, below {MIN_CONDUCTOR_REFLECTANCE} in some channel (eta near 1 "
                         "with k near 0 is hardly an interface; its Fresnel curve would be float32 rounding)")


def _aspect_value(value, like: Optional[torch.Tensor]) -> torch.Tensor:
    """``roughness_aspect`` as a tensor (of ``like``'s dtype and device where it is not one), checked: one finite
    number > 0."""
    if not isinstance(value, torch.Tensor):
        floating = isinstance(like, torch.Tensor) and like.is_floating_point()
        kw = {"dtype": like.dtype, "device": like.device} if floating else {"dtype": torch.get_default_dtype()}
        value = torch.tensor(value, **kw)
    check_tensor(value, "roughness_aspect", floating=True, finite=True)
    if value.numel() != 1 or float(value.detach().reshape(-1)[0]) <= 0:
        raise ValueError(f"roughness_aspect must be one number > 0 (the lobe's sqrt(alpha_v / alpha_u)); got "
                         f"{value.detach().tolist()}")
    return value


def check_aspect_model(material: Material) -> None:
    """A ``roughness_aspect`` is on a conductor, a principled material or a transmitting one (the attribute's doc);
    renderers ask per frame, as the model may change after the aspect is set (a transmitting material's
    ``transmission_factor`` is read)."""
    if getattr(material, "roughness_aspect", None) is None or material.conductor_eta is not None or \
            material.principled:
        return
    if material.plastic or material.thin_dielectric or not bool((material.transmission_factor.detach() != 0).any()):
        raise ValueError("roughness_aspect (an anisotropic lobe) is for Mitsuba's models: a conductor (conductor_eta "
                         "set), a principled material or a rough dielectric (transmission_factor not 0, not a "
                         "plastic or a thin sheet: the transmitting fraction's rough interface)")


def check_conductor_pair(material: Material) -> None:
    """``material``'s ``conductor_eta`` and ``conductor_k`` are set together or not at all (renderers ask per
    frame: reads no values)."""
    eta, k = material.conductor_eta, material.conductor_k
    if (eta is None) != (k is None):
        raise ValueError("conductor_eta and conductor_k are set together (a conductor's complex index of refraction); "
                         f"got conductor_eta {'unset' if eta is None else 'set'} and conductor_k "
                         f"{'unset' if k is None else 'set'}")


def mitsuba_model(material: Material) -> Optional[str]:
    """The Mitsuba model ``material`` is instead of glTF's: ``"plastic"``, ``"principled"`` or ``"conductor"``
    (``conductor_eta`` set), or None (what writers of glTF and MTL, which hold glTF's model only, warn about)."""
    for attribute in _MODELS:
        if _is_set(getattr(material, attribute, None)):
            return "conductor" if attribute == "conductor_eta" else attribute
    return None


#: The aspects renderers take a ``roughness_aspect`` within (``[ASPECT_MIN, 1 / ASPECT_MIN]``, clamped as they clamp
#: the other factors): widths up to a thousand times apart.
ASPECT_MIN = 1e-3
_LOG_ASPECT_MAX = -math.log(ASPECT_MIN)


def clamped_log_aspect(aspect: torch.Tensor) -> torch.Tensor:
    """The log of a ``roughness_aspect`` as every renderer takes it: clamped to ``[ASPECT_MIN, 1 / ASPECT_MIN]``, as
    the other factors are clamped (an optimiser's step may leave the valid range; gradients stop there)."""
    return aspect.clamp_min(ASPECT_MIN).log().clamp(-_LOG_ASPECT_MAX, _LOG_ASPECT_MAX)

#: Whether each ``specular_factor`` tensor, as it is now, differs from 1 (read once per tensor version).
_SPECULAR_NOT_ONE = PerVersion(capacity=1 << 16)  # one per material of a scene, asked every frame


#: Values :func:`sample_material` gives only for materials of a model other than glTF's (``microfacet``,
#: ``thin_dielectric``, ``plastic``, ``principled``, ``conductor_eta``, ``delta_specular``, ``roughness_aspect``),
#: with their channels;
#: zeros mean the glTF model.
MODEL_VALUES = {"beckmann": 1, "thin": 1, "plastic": PLASTIC_TABLE, "principled": 1, "principled_lobes": 6,
                "conductor": CONDUCTOR_VALUES, "shadowing": 1, "delta_specular": 1, "log_aspect": 1}


def has_principled_lobes(material) -> bool:
    """Whether ``material`` is Mitsuba's principled with its other lobes (``principled_lobes`` set): what the fused
    replay and the replay kernels leave to PyTorch."""
    return getattr(material, "principled", False) and getattr(material, "principled_lobes", None) is not None


def model_values_of(materials) -> set:
    """The keys of :data:`MODEL_VALUES` that some of ``materials`` gives."""
    keys = set()
    for m in materials:
        if getattr(m, "microfacet", "ggx") == "beckmann":
            keys.add("beckmann")
        if getattr(m, "thin_dielectric", False):
            keys.add("thin")
        if getattr(m, "plastic", False):
            keys.add("plastic")
        if getattr(m, "principled", False):
            keys.add("principled")
            if getattr(m, "principled_lobes", None) is not None:
                keys.add("principled_lobes")
        if getattr(m, "conductor_eta", None) is not None:
            keys.add("conductor")
        if getattr(m, "mitsuba_normal_map", False) and getattr(m, "normal_texture", None) is not None:
            keys.add("shadowing")
        if getattr(m, "delta_specular", False):
            keys.add("delta_specular")
        if getattr(m, "roughness_aspect", None) is not None:
            keys.add("log_aspect")
    return keys


def align_model_values(values: Dict[str, torch.Tensor], wanted, rows: int,
                       like: torch.Tensor) -> Dict[str, torch.Tensor]:
    """One part's ``values`` (``[rows, c]``) made alike over a renderer's parts: each key of :data:`MODEL_VALUES`
    in ``wanted`` present (zeros, the glTF model, where this part's material lacks it), the others dropped."""
    for key, channels in MODEL_VALUES.items():
        if key not in wanted:
            values.pop(key, None)
        elif key not in values:
            values[key] = like.new_zeros(rows, channels)
    return values


def has_specular_weight(material: Material) -> bool:
    """Whether ``material.specular_factor`` changes its BSDF from the core glTF one: it requires a gradient or is
    not 1. Its value is read once per tensor version (at construction, then after an in-place change), so
    renderers may ask every frame without a host sync (where it is False, the raster's fused point-light kernels
    run without the weight's terms)."""
    factor = material.specular_factor
    if factor.requires_grad:
        return True
    not_one = _SPECULAR_NOT_ONE.recall(factor, "not_one")
    if not_one is None:
        not_one = bool((factor.detach() != 1).any())
        _SPECULAR_NOT_ONE.keep(factor, "not_one", not_one)
    return not_one


def sample_material(material: Material, uv: Optional[torch.Tensor] = None, *,
                    uv_derivs: Optional[torch.Tensor] = None, mask: Optional[torch.Tensor] = None,
                    shape: Optional[torch.Size] = None) -> Dict[str, torch.Tensor]:
    """Per-pixel shading inputs of ``material`` at texture coordinates ``uv [..., H, W, 2]``.

    Args:
        material: the :class:`Material`.
        uv: texture coordinates (needed when the material has textures); ``uv_derivs`` selects mip levels
            (trilinear filtering) and ``mask`` skips background pixels, as in :func:`lumigrad.texture`.
        shape: the pixel shape ``[..., H, W]`` when ``uv`` is not given (factor-only materials).

    Returns:
        dict with ``base_color [..., 3]``, ``alpha [..., 1]``, ``metallic [..., 1]``, ``roughness [..., 1]``,
        ``occlusion [..., 1]``, ``emission [..., 3]``, ``transmission [..., 1]`` (``transmission_factor``;
        read by :class:`lumigrad.shading.MetallicRoughnessTransmissionBSDF` only), ``specular [..., 1]``
        (``specular_factor`` clamped to [0, 1], as renderers clamp the other factors), ``beckmann [..., 1]`` (ones)
        for a ``microfacet = "beckmann"`` material, ``thin [..., 1]`` (ones) for a ``thin_dielectric`` one,
        ``conductor [..., 7]`` (``eta``, ``k``, 1) for a conductor (``conductor_eta`` set), ``principled_lobes
        [..., 6]`` for a principled one that has them,
        ``plastic [..., 66]`` (:mod:`lumigrad.shading.plastic`'s table) for a ``plastic`` one, ``principled
        [..., 1]`` (ones) for a ``principled`` one, ``delta_specular [..., 1]`` (ones) for a ``delta_specular`` one,
        ``log_aspect [..., 1]`` (the log of ``roughness_aspect``) for an anisotropic one and, with a normal texture,
        ``normal_tangent [..., 3]`` (unnormalized tangent-space normal; see
        :func:`lumigrad.shading.perturb_normal`).

    **Differentiability:** w.r.t. every factor and texel, and ``uv`` (through the texture filter).
    """
    return _sample_material(material, uv, uv_derivs, mask, shape, texture, _linear_colour)


def sample_material_unchecked(material: Material, uv: Optional[torch.Tensor] = None, *,
                              uv_derivs: Optional[torch.Tensor] = None, mask: Optional[torch.Tensor] = None,
                              shape: Optional[torch.Size] = None) -> Dict[str, torch.Tensor]:
    """:func:`sample_material` without the texture ops' checks, for renderers that validated the material's
    textures and ``uv`` once per frame (its textures were checked when the material was built)."""
    return _sample_material(material, uv, uv_derivs, mask, shape, texture_unchecked, _linear_colour_unchecked)


def _sample_material(material, uv, uv_derivs, mask, shape, texture, linear_colour) -> Dict[str, torch.Tensor]:
    if uv is None and shape is None:
        raise ValueError("sample_material needs uv (or, for a factor-only material, the pixel shape)")
    pixels = tuple(uv.shape[:-1]) if uv is not None else tuple(shape)

    def tex(t, transform=None):
        if uv is None:
            raise ValueError("material has textures: pass uv")
        return texture(t, uv, uv_derivs=uv_derivs, mask=mask, wrap=m.wrap, texel_transform=transform)

    def const(value, channels):
        return value.reshape(-1)[:channels].expand(pixels + (channels,)) if value.numel() > 1 else \
            value.reshape(1).expand(pixels + (1,))

    m = material
    base = const(m.base_color_factor, 4)
    if m.base_color_texture is not None:
        t = tex(m.base_color_texture, linear_colour)
        rgb = t[..., :3]
        alpha = t[..., 3:4] if t.shape[-1] == 4 else torch.ones_like(t[..., :1])
        base = base * torch.cat([rgb, alpha], -1)
    out = {"base_color": base[..., :3], "alpha": base[..., 3:4]}
    metallic = const(m.metallic_factor, 1)
    roughness = const(m.roughness_factor, 1)
    if m.metallic_roughness_texture is not None:
        t = tex(m.metallic_roughness_texture)
        roughness = roughness * t[..., 1:2]
        metallic = metallic * t[..., 2:3]
    out["metallic"], out["roughness"] = metallic, roughness
    occlusion = torch.ones(pixels + (1,), dtype=base.dtype, device=base.device)
    if m.occlusion_texture is not None:
        occlusion = 1 + m.occlusion_strength * (tex(m.occlusion_texture)[..., :1] - 1)
    out["occlusion"] = occlusion
    emission = const(m.emissive_factor, 3)
    if m.emissive_texture is not None:
        emission = emission * tex(m.emissive_texture, linear_colour)
    out["emission"] = emission
    out["transmission"] = const(m.transmission_factor, 1)
    out["specular"] = const(m.specular_factor.clamp(0.0, 1.0), 1)
    if m.microfacet == "beckmann":
        out["beckmann"] = torch.ones(pixels + (1,), dtype=base.dtype, device=base.device)
    if m.thin_dielectric:
        out["thin"] = torch.ones(pixels + (1,), dtype=base.dtype, device=base.device)
    if m.mitsuba_normal_map and m.normal_texture is not None:
        out["shadowing"] = torch.ones(pixels + (1,), dtype=base.dtype, device=base.device)
    if m.delta_specular:
        out["delta_specular"] = torch.ones(pixels + (1,), dtype=base.dtype, device=base.device)
    if m.principled:
        out["principled"] = torch.ones(pixels + (1,), dtype=base.dtype, device=base.device)
        if m.principled_lobes is not None:
            out["principled_lobes"] = m.principled_lobes.clamp(0.0, 1.0).to(base).expand(pixels + (6,))
    check_conductor_pair(m)
    if m.roughness_aspect is not None:
        check_aspect_model(m)
        out["log_aspect"] = clamped_log_aspect(m.roughness_aspect).reshape(1).to(base).expand(pixels + (1,))
    if m.conductor_eta is not None:
        values = torch.cat([m.conductor_eta, m.conductor_k, torch.ones_like(m.conductor_k[:1])]).to(base)
        out["conductor"] = values.expand(pixels + values.shape)
    if m.plastic:
        if m.metallic_roughness_texture is not None:
            raise ValueError("a plastic material's roughness must be a factor: it has a metallic_roughness_texture")
        table = material_plastic_table(m.roughness_factor, m.ior, m.microfacet == "beckmann")
        out["plastic"] = table.to(base).expand(pixels + table.shape)
    if m.normal_texture is not None:
        n = tex(m.normal_texture) * 2 - 1
        scale = torch.stack([m.normal_scale, m.normal_scale, torch.ones_like(m.normal_scale)])
        out["normal_tangent"] = n * scale
    return out


def _linear_colour(texels: torch.Tensor) -> torch.Tensor:
    """``texels [..., Ht, Wt, 3 or 4]`` (sRGB-encoded colour, linear alpha) with the colour decoded to linear;
    elementwise, so :func:`lumigrad.texture` caches it with the mip pyramid (once per texel update)."""
    return _decode_colour(texels, srgb_decode)


def _linear_colour_unchecked(texels: torch.Tensor) -> torch.Tensor:
    """:func:`_linear_colour` without the decode's checks."""
    return _decode_colour(texels, srgb_decode_unchecked)


def _decode_colour(texels: torch.Tensor, decode) -> torch.Tensor:
    rgb = decode(texels[..., :3])
    return rgb if texels.shape[-1] == 3 else torch.cat([rgb, texels[..., 3:]], -1)
