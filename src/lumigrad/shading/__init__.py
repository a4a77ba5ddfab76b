"""Shading: BRDFs, lights, materials, environment maps, spherical harmonics and image formation.

Pure functions of directions, normals and parameters, shared by raster (deferred) shading and later ray
tracers; every parameter is differentiable.
"""

from .area_light import AreaLightPoints, area_light, area_light_samples, polygon_irradiance
from .brdf import (ALPHA_MIN, BSDFSample, cook_torrance, f0_from_ior, fresnel_schlick, ggx_distribution, lambert,
                   metallic_roughness, metallic_roughness_pdf, metallic_roughness_sample,
                   smith_ggx_correlated_visibility)
from .bsdf import BSDF, DiffuseBSDF, MetallicRoughnessBSDF
from .conductor import ConductorBSDF, fresnel_conductor
from .deferred import shade_direct, shade_environment, shade_punctual
from .dielectric import RoughDielectricBSDF, SmoothDielectricBSDF, fresnel_dielectric
from .emitters import DirectionSample, Emitter
from .envmap import direction_to_equirect, envmap_lookup, prefilter_ggx, split_sum_lut
from .henyey_greenstein import HenyeyGreenstein, PhaseSample
from .image_layout import image_strip
from .image_formation import (display_encode, form_image, gamma_encode, srgb_decode, srgb_encode, tonemap,
                              vignetting_falloff)
from .lights import MIN_LIGHT_DISTANCE, LightSample, PunctualLights, directional_light, point_light, spot_light
from .material import Material, sample_material
from .medium import DistanceSample, HomogeneousMedium
from .sh import (SH_COSINE_LOBE, equirect_directions, sh_basis, sh_eval, sh_irradiance, sh_num_coeffs,
                 sh_project, sh_project_equirect)
from .surface import SurfaceSample
from .tangents import perturb_normal, vertex_tangents
from .transmission import MetallicRoughnessTransmissionBSDF, bsdf_for

__all__ = ["image_strip",
    "ALPHA_MIN", "AreaLightPoints", "BSDF", "BSDFSample", "ConductorBSDF", "DiffuseBSDF", "DirectionSample",
    "DistanceSample",
    "Emitter", "HenyeyGreenstein", "HomogeneousMedium", "LightSample", "MIN_LIGHT_DISTANCE", "Material",
    "MetallicRoughnessBSDF", "MetallicRoughnessTransmissionBSDF", "PhaseSample", "PunctualLights",
    "RoughDielectricBSDF",
    "SH_COSINE_LOBE", "SmoothDielectricBSDF", "SurfaceSample", "area_light", "area_light_samples", "bsdf_for",
    "cook_torrance", "direction_to_equirect", "directional_light", "envmap_lookup", "equirect_directions",
    "display_encode", "f0_from_ior", "form_image", "fresnel_conductor", "fresnel_dielectric", "fresnel_schlick",
    "gamma_encode", "ggx_distribution",
    "lambert", "metallic_roughness", "metallic_roughness_pdf", "metallic_roughness_sample", "perturb_normal",
    "point_light", "polygon_irradiance", "prefilter_ggx", "sample_material", "shade_direct", "shade_environment",
    "shade_punctual",
    "sh_basis", "sh_eval", "sh_irradiance", "sh_num_coeffs", "sh_project", "sh_project_equirect",
    "smith_ggx_correlated_visibility", "split_sum_lut", "spot_light", "srgb_decode", "srgb_encode", "tonemap",
    "vertex_tangents", "vignetting_falloff",
]
