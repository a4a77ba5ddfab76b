"""Perceptual (feature-similarity) losses that work offline: a hand-built filter pyramid, or a local VGG16.

Use a perceptual loss next to (not instead of) a pixel loss when a fit should care about structure (edges,
texture, sharpness) more than about exact pixel values: it penalises blur and noise much more than a small global
brightness or colour offset of the same mean squared error.

Two feature extractors, both compared the LPIPS way (Zhang et al. 2018: unit-normalise each pixel's feature
vector over channels, take the squared difference, average over pixels, then over layers):

* ``features="pyramid"`` (default) is **hand-built, not learned**: a fixed, deterministic multi-scale oriented
  filter bank. It needs no weights and no download, and is cheap. It is an engineered stand-in for a learned
  metric, not a reproduction of LPIPS; it has not been calibrated against human judgements.
* ``features="vgg16"`` is torchvision's VGG16 ``features`` stack written in plain torch (same layer indices, so a
  torchvision state dict loads), read at relu1_2, relu2_2, relu3_3, relu4_3 and relu5_3. lumigrad never downloads
  weights (it runs offline and does not depend on torchvision): pass ``weights=`` the path of a local ``.pth``
  state dict. Layers are averaged uniformly: LPIPS's learned per-channel linear weights are not included, so
  values differ from the ``lpips`` package's.

Images are channel-last ``[..., H, W, C]`` in ``[0, 1]`` with ``C`` 1 (grey) or 3 (RGB).
"""

from __future__ import annotations

import math
import os
from typing import List, Literal, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_choice, check_positive_int, check_tensor

__all__ = ["PerceptualLoss", "VGG16Features", "load_vgg16_features", "perceptual_loss", "pyramid_features"]

# ------------------------------------------------------------------------------------------- the filter pyramid

_LUMA = (0.299, 0.587, 0.114)
_SIGMA = 1.0  # std (pixels) of the oriented filters and of the local-mean colour blur, at every level
_RADIUS = 3  # filters are (2 * _RADIUS + 1)^2 taps
_SEMI_SATURATION = 0.01  # c: responses weaker than this (filters have unit L1 norm) count as "flat"
_COLOUR_WEIGHT = 1.0  # weight of the local-mean colour term relative to the structure term
_MIN_LEVEL_SIZE = 8  # the coarsest pyramid level keeps min(H, W) >= this (or is level 0)
_BINOMIAL = (1.0, 4.0, 6.0, 4.0, 1.0)  # anti-alias filter / 16 before each 2x downsampling
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_EPS = 1e-10


def _oriented_filters(dtype, device) -> torch.Tensor:
    """The ``[8, 1, 7, 7]`` bank: Gaussian first (odd) and second (even) derivatives at 0, 45, 90, 135 degrees.

    Each filter is made exactly zero-mean and scaled to unit L1 norm, so it ignores a constant offset and its
    response to an image in ``[0, 1]`` lies in ``[-0.5, 0.5]``.
    """
    r = torch.arange(-_RADIUS, _RADIUS + 1, dtype=torch.float64)
    y, x = torch.meshgrid(r, r, indexing="ij")
    g = torch.exp(-(x * x + y * y) / (2 * _SIGMA ** 2))
    bank = []
    for k in range(4):
        th = k * math.pi / 4
        d = x * math.cos(th) + y * math.sin(th)
        for f in (-d / _SIGMA ** 2 * g, (d * d / _SIGMA ** 2 - 1) / _SIGMA ** 2 * g):
            f = f - f.mean()
            bank.append(f / f.abs().sum())
    return torch.stack(bank)[:, None].to(dtype=dtype, device=device)


def _gaussian_1d(dtype, device) -> torch.Tensor:
    r = torch.arange(-_RADIUS, _RADIUS + 1, dtype=torch.float64)
    g = torch.exp(-(r * r) / (2 * _SIGMA ** 2))
    return (g / g.sum()).to(dtype=dtype, device=device)


def _separable(x: torch.Tensor, g: torch.Tensor, stride: int = 1) -> torch.Tensor:
    """Filter every plane of ``x [N, C, H, W]`` with the 1-D kernel ``g`` along rows and columns (edge replicate)."""
    n, c, H, W = x.shape
    k = g.numel()
    p = k // 2
    planes = F.pad(x.reshape(n * c, 1, H, W), (p, p, p, p), mode="replicate")
    out = F.conv2d(F.conv2d(planes, g.view(1, 1, k, 1), stride=(stride, 1)), g.view(1, 1, 1, k), stride=(1, stride))
    return out.reshape(n, c, out.shape[-2], out.shape[-1])


def _opponent(x: torch.Tensor) -> torch.Tensor:
    """``[N, C, H, W]`` (C = 1 or 3) -> luminance first, then for RGB the two opponent channels R-G, (R+G)/2-B."""
    if x.shape[1] == 1:
        return x
    r, g, b = x.unbind(1)
    lum = _LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b
    return torch.stack([lum, (r - g) / 2, (r + g) / 4 - b / 2], 1)


def _num_levels(H: int, W: int, levels: int) -> int:
    fit = 1 + max(0, int(math.floor(math.log2(max(min(H, W), 1) / _MIN_LEVEL_SIZE))))
    return max(1, min(levels, fit))


def _check_images(x, y):
    check_tensor(x, "x", trailing=(None, None, None), floating=True, finite=True)
    check_tensor(y, "y", trailing=(None, None, None), floating=True, finite=True, device=x.device)
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape [..., H, W, C]; got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.shape[-1] not in (1, 3):
        raise ValueError(f"x and y must have C = 1 (grey) or 3 (RGB) channels, [..., H, W, C]; got C = {x.shape[-1]}")
    work = torch.promote_types(torch.promote_types(x.dtype, y.dtype), torch.float32)
    return x.to(work), y.to(work)


def _nchw(x: torch.Tensor) -> torch.Tensor:
    H, W, C = x.shape[-3:]
    return x.reshape(-1, H, W, C).permute(0, 3, 1, 2)


def pyramid_features(x: torch.Tensor, levels: int = 4) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    """Compute the hand-built pyramid features of images, per level: ``(structure, colour)``.

    Level 0 is the image; level ``l + 1`` is level ``l`` blurred with the 5-tap binomial filter and subsampled
    2x. Levels stop before the shorter side drops below 8 pixels (at least one level). At each level:

    * ``structure [N, 9, h, w]``: the luminance filtered by 8 oriented filters (first and second derivatives of a
      Gaussian, std 1 px, at 0, 45, 90 and 135 degrees; zero-mean, unit L1 norm), responses ``r_1..r_8``, then
      divisively normalised by the local response energy with a semi-saturation constant ``c = 0.01``:
      ``[r_1, ..., r_8, c] / sqrt(c^2 + sum_k r_k^2)``. This is LPIPS's unit-normalisation over channels with
      ``c`` as an extra constant channel: strong structure gives a unit vector along the responses (contrast
      invariant), flat regions a vector along the constant axis, so blur and noise rotate it.
    * ``colour [N, C, h, w]``: the local-mean colour (Gaussian blur, std 1 px) in an opponent space: luminance
      ``0.299 R + 0.587 G + 0.114 B``, then for RGB ``(R - G) / 2`` and ``(R + G) / 4 - B / 2``.

    The filters are fixed and not learned (see the module docstring). Oriented filters are zero-mean, so the
    structure features ignore a constant brightness offset; only the colour features see it.

    Args:
        x: images ``[..., H, W, C]``, float, ``C`` in {1, 3}, values nominally in ``[0, 1]``.
        levels: the most pyramid levels to use (positive int).

    Returns:
        A list (finest first) of ``(structure, colour)`` with the leading dims of ``x`` flattened into ``N``.

    Raises:
        TypeError / ValueError: ``x`` is not a finite float ``[..., H, W, C]`` tensor with ``C`` in {1, 3}, or
            ``levels`` is not a positive int.

    **Differentiability:** smooth in ``x`` (convolutions, and a normalisation whose denominator is ``>= c``).
    """
    check_positive_int(levels, "levels")
    x, _ = _check_images(x, x)
    planes = _opponent(_nchw(x))
    bank = _oriented_filters(planes.dtype, planes.device)
    g = _gaussian_1d(planes.dtype, planes.device)
    binom = torch.tensor(_BINOMIAL, dtype=planes.dtype, device=planes.device) / 16
    out = []
    for level in range(_num_levels(planes.shape[-2], planes.shape[-1], levels)):
        if level > 0:
            planes = _separable(planes, binom, stride=2)
        lum = F.pad(planes[:, :1], (_RADIUS,) * 4, mode="replicate")
        r = F.conv2d(lum, bank)
        c = torch.full_like(r[:, :1], _SEMI_SATURATION)
        s = torch.cat([r, c], 1)
        s = s / torch.sqrt((s * s).sum(1, keepdim=True))
        out.append((s, _separable(planes, g)))
    return out


def _pyramid_distance(x: torch.Tensor, y: torch.Tensor, levels: int) -> torch.Tensor:
    fx, fy = pyramid_features(x, levels), pyramid_features(y, levels)
    terms = []
    for (sx, cx), (sy, cy) in zip(fx, fy):
        structure = ((sx - sy) ** 2).sum(1).mean()
        colour = ((cx - cy) ** 2).sum(1).mean()
        terms.append(structure + _COLOUR_WEIGHT * colour)
    return torch.stack(terms).mean()


# ----------------------------------------------------------------------------------------------------- VGG16

_VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
VGG16_TAPS = {"relu1_2": 3, "relu2_2": 8, "relu3_3": 15, "relu4_3": 22, "relu5_3": 29}

_NO_WEIGHTS = (
    "features='vgg16' needs pretrained VGG16 weights, and lumigrad cannot download them (it runs offline and does "
    "not depend on torchvision). Pass weights='/path/to/vgg16.pth', a local torch state dict of torchvision's "
    "vgg16: the whole model's (keys 'features.N.weight', 'classifier.*' is ignored) or only its features part "
    "(keys 'N.weight'). Make one once on a machine with internet access with "
    "torch.save(torchvision.models.vgg16(weights='IMAGENET1K_V1').state_dict(), 'vgg16.pth'), or use "
    "features='pyramid', which needs no weights")


class VGG16Features(nn.Module):
    """torchvision's VGG16 ``features`` stack in plain torch (conv 3x3 pad 1 + ReLU, 2x2 max pools).

    ``self.features`` is an ``nn.Sequential`` with torchvision's layer indices, so its state dict keys are
    ``features.N.weight`` / ``features.N.bias`` for ``N`` in 0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28, exactly
    as in ``torchvision.models.vgg16().state_dict()``. Built with random weights: load real ones with
    :func:`load_vgg16_features`.
    """

    def __init__(self):
        super().__init__()
        layers: List[nn.Module] = []
        cin = 3
        for v in _VGG16_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(cin, v, kernel_size=3, padding=1), nn.ReLU(inplace=False)]
                cin = v
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        """Return the activations at relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 of ``x [N, 3, H, W]``.

        ``x`` must already be ImageNet-normalised (``(x - mean) / std``).
        """
        taps = set(VGG16_TAPS.values())
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in taps:
                out.append(x)
                if i == max(taps):
                    break
        return out


def load_vgg16_features(weights: Union[str, os.PathLike, None]) -> VGG16Features:
    """Build :class:`VGG16Features` from a local torchvision VGG16 state dict (``.pth``), frozen, in eval mode.

    Args:
        weights: path of a file written by ``torch.save(state_dict)``: the whole ``vgg16`` model's state dict
            (``features.N.*`` keys; others such as ``classifier.*`` are ignored) or just ``vgg16().features``'
            (``N.*`` keys).

    Returns:
        The network on the CPU in float32 with ``requires_grad`` off for every parameter.

    Raises:
        ValueError: ``weights`` is None (nothing can be downloaded), or the file is not a matching state dict.
        FileNotFoundError: no file at ``weights``.
    """
    if weights is None:
        raise ValueError(_NO_WEIGHTS)
    if not isinstance(weights, (str, os.PathLike)):
        raise TypeError(f"weights must be a path (str or os.PathLike) to a local .pth file; got "
                        f"{type(weights).__name__}")
    path = os.fspath(weights)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"weights file {path!r} does not exist. " + _NO_WEIGHTS)
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"weights file {path!r} does not hold a state dict (got {type(state).__name__})")
    if any(str(k).startswith("features.") for k in state):
        state = {k[len("features."):]: v for k, v in state.items() if str(k).startswith("features.")}
    net = VGG16Features()
    try:
        net.features.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(f"weights file {path!r} is not a torchvision VGG16 state dict: {err}") from None
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def _unit(f: torch.Tensor) -> torch.Tensor:
    """Unit-normalise over channels (dim 1); ``sqrt(sum f^2 + eps)`` keeps the gradient finite at f = 0."""
    return f / torch.sqrt((f * f).sum(1, keepdim=True) + _EPS)


def _vgg_distance(net: VGG16Features, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if min(x.shape[-3], x.shape[-2]) < 16:
        raise ValueError(f"features='vgg16' needs images with H, W >= 16 (four 2x poolings before relu5_3); got "
                         f"H, W = {x.shape[-3]}, {x.shape[-2]}")
    p = next(net.parameters())
    mean = torch.tensor(_IMAGENET_MEAN, dtype=p.dtype, device=p.device).view(1, 3, 1, 1)
    std = torch.tensor(_IMAGENET_STD, dtype=p.dtype, device=p.device).view(1, 3, 1, 1)

    def prep(img):
        img = _nchw(img).to(p.dtype)
        if img.shape[1] == 1:
            img = img.expand(-1, 3, -1, -1)
        return (img - mean) / std

    fx, fy = net(prep(x)), net(prep(y))
    terms = [((_unit(a) - _unit(b)) ** 2).sum(1).mean() for a, b in zip(fx, fy)]
    return torch.stack(terms).mean().to(x.dtype)


# ----------------------------------------------------------------------------------------------- public API


def perceptual_loss(x: torch.Tensor, y: torch.Tensor, features: Literal["pyramid", "vgg16"] = "pyramid",
                    weights: Union[str, os.PathLike, None] = None, *, levels: int = 4) -> torch.Tensor:
    """Compute a perceptual (feature-similarity) distance between two images; 0 for identical images.

    For each feature layer (a pyramid level, or a VGG16 tap) the per-pixel feature vectors are unit-normalised
    over channels and compared by squared Euclidean distance, averaged over pixels and images; the result is the
    mean over layers. With ``features="pyramid"`` (:func:`pyramid_features`) each level adds the squared
    difference of the local-mean colours (weight 1), so colour still counts, but a global brightness offset costs
    about its MSE while structure changes (blur, noise, misplaced edges) cost far more. See the module docstring
    for what is and is not learned.

    In a loop, prefer :class:`PerceptualLoss`, which loads VGG16 weights once (this function reads the file on
    every call).

    Example:
        >>> x = torch.rand(2, 16, 16, 3, generator=torch.Generator().manual_seed(0))
        >>> float(perceptual_loss(x, x)), bool(perceptual_loss(x, x.flip(-2)) > 0.1)
        (0.0, True)

    Args:
        x: images ``[..., H, W, C]``, float, finite, ``C`` in {1, 3}, values in ``[0, 1]``.
        y: images, same shape as ``x``.
        features: ``"pyramid"`` (hand-built filters, no weights) or ``"vgg16"`` (needs ``weights``).
        weights: for ``"vgg16"``, the path of a local VGG16 ``.pth`` state dict (:func:`load_vgg16_features`);
            must be None for ``"pyramid"``.
        levels: for ``"pyramid"``, the most pyramid levels (fewer on small images).

    Returns:
        Scalar tensor in ``x``'s dtype (half inputs computed in float32; VGG16 runs in float32 unless the inputs
        are float64).

    Raises:
        TypeError / ValueError: bad images (shape, dtype, channels, NaN), unknown ``features``, ``weights`` given
            for ``"pyramid"``, or (``"vgg16"``) no weights or images smaller than 16 x 16.
        FileNotFoundError: ``weights`` names no file.

    **Differentiability:** differentiable in ``x`` and ``y``; smooth for ``"pyramid"`` (linear filters and a
    normalisation with a positive floor), piecewise smooth for ``"vgg16"`` (ReLU, max pooling).
    """
    check_choice(features, "features", ("pyramid", "vgg16"))
    if features == "pyramid":
        if weights is not None:
            raise ValueError("weights is only used with features='vgg16' (a path to a local VGG16 state dict); the "
                             f"'pyramid' features are fixed; got weights={weights!r}")
        check_positive_int(levels, "levels")
        a, b = _check_images(x, y)
        return _pyramid_distance(a, b, levels).to(x.dtype)
    a, b = _check_images(x, y)
    net = load_vgg16_features(weights)
    if a.dtype == torch.float64:
        net = net.double()
    return _vgg_distance(net.to(a.device), a, b).to(x.dtype)


class PerceptualLoss(nn.Module):
    """Reusable :func:`perceptual_loss`: holds the VGG16 network (loaded once) or the pyramid settings.

    ``PerceptualLoss(features, weights, levels)(x, y)`` equals ``perceptual_loss(x, y, features, weights,
    levels=levels)``. The VGG16 parameters are frozen buffers of this module in effect (``requires_grad`` off),
    so ``.to(device)`` moves them and an optimizer never updates them.

    Args:
        features: ``"pyramid"`` or ``"vgg16"``.
        weights: for ``"vgg16"``, the path of a local VGG16 state dict; None for ``"pyramid"``.
        levels: for ``"pyramid"``, the most pyramid levels.

    Raises:
        ValueError / FileNotFoundError: as :func:`perceptual_loss` (raised here, at construction).
    """

    def __init__(self, features: Literal["pyramid", "vgg16"] = "pyramid",
                 weights: Union[str, os.PathLike, None] = None, levels: int = 4):
        super().__init__()
        check_choice(features, "features", ("pyramid", "vgg16"))
        check_positive_int(levels, "levels")
        if features == "pyramid" and weights is not None:
            raise ValueError("weights is only used with features='vgg16'; the 'pyramid' features are fixed; got "
                             f"weights={weights!r}")
        self.features = features
        self.levels = levels
        self.vgg: Optional[VGG16Features] = load_vgg16_features(weights) if features == "vgg16" else None

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Return the perceptual distance between images ``x`` and ``y`` ``[..., H, W, C]`` (a scalar)."""
        a, b = _check_images(x, y)
        if self.vgg is None:
            return _pyramid_distance(a, b, self.levels).to(x.dtype)
        return _vgg_distance(self.vgg, a, b).to(x.dtype)

    def train(self, mode: bool = True) -> "PerceptualLoss":
        super().train(mode)
        if self.vgg is not None:
            self.vgg.eval()  # no dropout / batch norm in the features, but keep the frozen net in eval mode
        return self

    def extra_repr(self) -> str:
        return f"features={self.features!r}, levels={self.levels}"
