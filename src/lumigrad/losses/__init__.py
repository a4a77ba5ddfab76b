"""Losses for fitting from images and geometric regularizers for meshes.

Image losses compare renders with target photographs (masked MSE / L1, PSNR, SSIM, MS-SSIM over
channel-last ``[..., H, W, C]`` images); silhouette losses compare coverage masks; the regularizers (Laplacian
smoothing, normal consistency, edge length) keep an optimised mesh well shaped; the distances from
:mod:`lumigrad.geometry.distance` are re-exported for fitting to point clouds. Depth and normal losses
compare rendered geometry buffers with measured or predicted ones; the perceptual loss compares images by
structure (offline: hand-built pyramid features, or VGG16 features from a local weights file); the
adversarial loss trains a patch discriminator alongside a fit; the multi-view consistency loss checks that
views agree with each other when reprojected through their depths. Every loss returns a scalar averaged over
leading batch dims; ``docs/losses.md`` says what each is for.
"""

from ..geometry.distance import chamfer_distance, point_mesh_distance, points_to_mesh_loss, sample_points_on_mesh
from .adversarial import AdversarialLoss, PatchDiscriminator, gan_discriminator_loss, gan_generator_loss
from .geometric import depth_loss, normal_loss
from .image import l1_loss, ms_ssim, ms_ssim_loss, mse_loss, psnr, ssim, ssim_loss
from .mesh_regularizers import edge_length_loss, laplacian_smoothing, normal_consistency
from .multiview import WarpResult, multiview_consistency_loss, reproject, warp_to_view
from .perceptual import PerceptualLoss, VGG16Features, load_vgg16_features, perceptual_loss, pyramid_features
from .silhouette import silhouette_bce_loss, silhouette_iou_loss

__all__ = [
    "AdversarialLoss",
    "PatchDiscriminator",
    "PerceptualLoss",
    "VGG16Features",
    "WarpResult",
    "chamfer_distance",
    "depth_loss",
    "edge_length_loss",
    "gan_discriminator_loss",
    "gan_generator_loss",
    "l1_loss",
    "laplacian_smoothing",
    "load_vgg16_features",
    "ms_ssim",
    "ms_ssim_loss",
    "mse_loss",
    "multiview_consistency_loss",
    "normal_consistency",
    "normal_loss",
    "perceptual_loss",
    "point_mesh_distance",
    "points_to_mesh_loss",
    "psnr",
    "pyramid_features",
    "reproject",
    "sample_points_on_mesh",
    "silhouette_bce_loss",
    "silhouette_iou_loss",
    "ssim",
    "ssim_loss",
    "warp_to_view",
]
