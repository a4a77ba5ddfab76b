"""Neural deferred shading: a small MLP colours a rasterized G-buffer (position, normal, view direction, uv).

Worchel et al. 2022, "Multi-View Mesh Reconstruction with Neural Deferred Shading": instead of a BRDF under
known lights, a network ``c = f(x, n, v)`` maps each visible surface point ``x``, its unit normal ``n`` and the
unit direction ``v`` towards the camera to a colour. It learns whatever the images show (albedo, lighting,
shadows baked in, view-dependent highlights) and, trained jointly with the mesh, lets image losses move the
vertices: through the normals and positions it reads, and through the silhouette, where the antialiased
coverage blends the shaded surface with the background.

::

    x -> box [-1, 1]^3 -> frequency encoding ---\\
    n (unit) -----------------------------------+-> MLP -> sigmoid -> linear colour in [0, 1] (-> sRGB encode)
    v (unit) -> SH or frequency encoding -------/
    uv (optional) -> frequency encoding -------/

:func:`shade_gbuffer` shades the buffers of the raster integrator
(``lumigrad.integrators.RasterIntegrator().render_aovs(scene, camera, ("position", "normal", "mask"))``, or
``lumigrad.render(..., aovs=...)``) and composites over a background.

The network and its encodings are :mod:`lumigrad.volume.fields`' :class:`~lumigrad.volume.fields.MLP`,
:func:`~lumigrad.volume.fields.frequency_encode` and :func:`~lumigrad.volume.fields.sh_encode` (a listed
exception to the layering: ``tests/test_layers.py``).
"""

from __future__ import annotations

import math
from typing import Literal, Mapping, Optional, Union

import torch
from torch import nn

from .._checks import check_all_finite, check_choice, check_positive_int, check_tensor
from ..cameras.camera import Camera
from ..shading.image_formation import srgb_encode
from ..volume import fields

__all__ = ["NeuralShader", "shade_gbuffer"]

#: Buffers :func:`shade_gbuffer` reads, with their channels (``uv`` only for a shader with ``use_uv``).
GBUFFER_CHANNELS = {"position": 3, "normal": 3, "mask": 1, "uv": 2}


class NeuralShader(nn.Module):
    """An MLP that maps surface position, unit normal, view direction (and optionally uv) to a colour in [0, 1].

    ``colour = out(sigmoid(MLP([freq(2 (x - lo) / (hi - lo) - 1), n, enc(v), freq(uv)])))`` where ``out`` is the
    identity (``output="linear"``) or the sRGB transfer function (``output="srgb"``: the network then models
    linear radiance and returns sRGB-encoded values, as 8-bit photographs store them).

    Args:
        aabb: the box the surface lives in, ``[2, 3]`` or ``[6]`` world units; positions are mapped to
            ``[-1, 1]^3`` over it before the frequency encoding (points outside are encoded too, not clamped).
        position_frequencies: octaves ``K`` of the position's frequency encoding (Worchel et al. use 4).
        view_encoding: ``"sh"`` (real spherical harmonics up to ``view_degree``, 0..4) or ``"frequency"``
            (``view_frequencies`` octaves of the direction's components).
        view_degree, view_frequencies: the chosen view encoding's size.
        use_uv: also read texture coordinates ``uv [..., 2]`` (frequency-encoded, ``uv_frequencies`` octaves).
        hidden_dim, num_hidden_layers, activation: the MLP (:class:`lumigrad.volume.fields.MLP`).
        output: ``"linear"`` or ``"srgb"`` (see above).

    Raises:
        TypeError / ValueError: a bad box, a non-positive size, an unknown ``view_encoding`` / ``output``.

    **Differentiability:** smooth in the parameters and in ``position``, ``normal``, ``view_dir`` and ``uv``
    (for ``activation="relu"``, piecewise smooth); normal and view direction are normalised inside (their
    gradient is tangent to the sphere; a zero vector reads as zero and gets no gradient).

    Example::

        >>> shader = NeuralShader([-1, -1, -1, 1, 1, 1], output="linear")
        >>> shader(torch.zeros(5, 3), torch.tensor([0., 0., 1.]).expand(5, 3), torch.tensor([0., 0., 1.])).shape
        torch.Size([5, 3])
    """

    def __init__(self, aabb: Union[torch.Tensor, list, tuple], *, position_frequencies: int = 4,
                 view_encoding: Literal["sh", "frequency"] = "sh", view_degree: int = 4, view_frequencies: int = 4,
                 use_uv: bool = False, uv_frequencies: int = 4, hidden_dim: int = 64, num_hidden_layers: int = 3,
                 activation: str = "relu", output: Literal["linear", "srgb"] = "srgb"):
        super().__init__()
        self.register_buffer("aabb", fields.as_aabb(aabb, "aabb"))
        self.position_frequencies = check_positive_int(position_frequencies, "position_frequencies")
        self.view_encoding = check_choice(view_encoding, "view_encoding", ("sh", "frequency"))
        if view_encoding == "sh":
            self._view = fields.SHEncoding(view_degree)
            view_dim = self._view.output_dim
        else:
            self._view = fields.FrequencyEncoding(3, check_positive_int(view_frequencies, "view_frequencies"))
            view_dim = self._view.output_dim
        if not isinstance(use_uv, bool):
            raise TypeError(f"use_uv must be a bool; got {type(use_uv).__name__}")
        self.use_uv = use_uv
        self.uv_frequencies = check_positive_int(uv_frequencies, "uv_frequencies")
        self.output = check_choice(output, "output", ("linear", "srgb"))
        in_dim = 3 * (2 * self.position_frequencies + 1) + 3 + view_dim
        if use_uv:
            in_dim += 2 * (2 * self.uv_frequencies + 1)
        self.mlp = fields.MLP(in_dim, 3, hidden_dim=hidden_dim, num_hidden_layers=num_hidden_layers,
                              activation=activation)

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the network's weights (inputs must match it)."""
        return self.mlp.net[0].weight.dtype

    def forward(self, position: torch.Tensor, normal: torch.Tensor, view_dir: torch.Tensor,
                uv: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Colour ``[..., 3]`` in [0, 1] of surface points.

        Args:
            position: ``[..., 3]`` world-space points, the shader's dtype and device.
            normal: ``[..., 3]`` world-space normals (normalised here).
            view_dir: ``[..., 3]`` directions from the points towards the camera (normalised here).
            uv: ``[..., 2]`` texture coordinates; required exactly when the shader has ``use_uv``.
            All broadcast against each other's leading dims.

        Raises:
            TypeError / ValueError: wrong shape, dtype or device, NaN / Inf, leading dims that do not broadcast,
                ``uv`` given to a shader without ``use_uv`` or missing for one with it.
        """
        named = [("position", position, 3), ("normal", normal, 3), ("view_dir", view_dir, 3)]
        if self.use_uv:
            if uv is None:
                raise ValueError("uv is required: this shader was built with use_uv=True")
            named.append(("uv", uv, 2))
        elif uv is not None:
            raise ValueError("uv was given but this shader was built with use_uv=False")
        device = self.aabb.device
        for name, t, c in named:
            check_tensor(t, name, trailing=(c,), floating=True, device=device)
            if t.dtype != self.dtype:
                raise TypeError(f"{name} is {t.dtype} but the shader's weights are {self.dtype}; convert one "
                                f"(shader.to({t.dtype}) or {name}.to({self.dtype}))")
        try:
            batch = torch.broadcast_shapes(*[t.shape[:-1] for _, t, _ in named])
        except RuntimeError:
            raise ValueError("position, normal, view_dir (and uv) must have broadcastable leading dims; got "
                             + ", ".join(f"{n} {tuple(t.shape)}" for n, t, _ in named)) from None
        check_all_finite([(n, t) for n, t, _ in named])
        expand = [t.expand(batch + t.shape[-1:]) for _, t, _ in named]
        return self.shade_unchecked(*expand[:3], expand[3] if self.use_uv else None)

    def shade_unchecked(self, position: torch.Tensor, normal: torch.Tensor, view_dir: torch.Tensor,
                        uv: Optional[torch.Tensor] = None) -> torch.Tensor:
        """:meth:`forward` without validation (inputs of one shape ``[..., c]``, finite, the shader's dtype)."""
        lo, hi = self.aabb[0].to(position), self.aabb[1].to(position)
        box = 2 * (position - lo) / (hi - lo) - 1
        parts = [fields.frequency_encode(box, self.position_frequencies), _normalized(normal),
                 self._view(_normalized(view_dir))]
        if self.use_uv:
            parts.append(fields.frequency_encode(uv, self.uv_frequencies))
        colour = torch.sigmoid(self.mlp(torch.cat(parts, -1)))
        return srgb_encode(colour) if self.output == "srgb" else colour


def shade_gbuffer(shader: NeuralShader, aovs: Mapping[str, torch.Tensor], camera: Camera,
                  background: Union[float, torch.Tensor] = 0.0) -> torch.Tensor:
    """Shade a rasterized G-buffer with ``shader`` and composite it over ``background``: ``[..., H, W, 3]``.

    The raster integrator's buffers are antialiased (:func:`lumigrad.antialias`): at a silhouette pixel every
    buffer is the foreground value blended with the zero background by the same weight, the coverage ``mask``.
    So ``position / mask`` (likewise normal, uv) is the foreground point, and::

        colour = mask * shader(position / mask, normal / |normal|, v, uv / mask) + (1 - mask) * background

    with ``v`` the unit direction from the point to the camera centre (for an orthographic camera, minus the
    viewing axis). At a pixel crossed by one silhouette edge this is exactly the antialiased image of the
    shaded surface over the background (shading, then :func:`lumigrad.antialias`, as the raster integrator
    does colour); where several edges meet in one pixel the shader sees the coverage-weighted mean point
    instead of averaging its colours. Inside the object, at occlusion boundaries (coverage 1 on both sides),
    the buffers blend two surfaces and the shader reads the blended point and normal. Only pixels with
    non-zero coverage are shaded (compacted rows, so the MLP's cost follows the covered area).

    Args:
        shader: a :class:`NeuralShader` (its dtype and device are the buffers').
        aovs: ``{"position": [..., H, W, 3], "normal": [..., H, W, 3], "mask": [..., H, W, 1]}`` world-space
            buffers zero on the background, as the raster integrator returns them (antialiased or hard), plus
            ``"uv": [..., H, W, 2]`` for a shader with ``use_uv``; other keys are ignored.
        camera: the camera the buffers were drawn with (``[...]`` its batch shape, ``H x W`` its size).
        background: a number or a tensor broadcastable to ``[..., H, W, 3]`` (in the shader's output space).

    Returns:
        ``[..., H, W, 3]``: the shader's colour where the mask is 1, ``background`` where it is 0, the blend
        between.

    Raises:
        TypeError / ValueError: ``shader`` not a :class:`NeuralShader`, a missing or wrongly shaped buffer, a
            dtype or device other than the shader's, NaN / Inf, buffers whose leading dims are not the camera's
            batch shape and size, a ``background`` that does not broadcast to the image or is not finite.

    **Differentiability:** w.r.t. the shader's parameters, every buffer (so, through the raster integrator,
    the mesh vertices: the shaded point, its normal and view direction move with them, and at silhouettes the
    antialiased ``mask`` carries the visibility gradient ``(shaded colour - background) d mask``), the
    camera's pose (through the view direction) and ``background``. Pixels with zero coverage depend on the
    background alone.

    Example: a pixel 30 % covered by a surface the shader colours ``c`` reads ``0.3 c + 0.7 background``.
    """
    if not isinstance(shader, NeuralShader):
        raise TypeError(f"shader must be a lumigrad.shading.NeuralShader; got {type(shader).__name__}")
    if not isinstance(aovs, Mapping):
        raise TypeError(f"aovs must be a dict of buffers (position, normal, mask); got {type(aovs).__name__}")
    if not isinstance(camera, Camera):
        raise TypeError(f"camera must be a lumigrad.Camera; got {type(camera).__name__}")
    names = ["position", "normal", "mask"] + (["uv"] if shader.use_uv else [])
    missing = [n for n in names if n not in aovs]
    if missing:
        raise ValueError(f"aovs has no {missing[0]!r} buffer; render it (aovs=({', '.join(map(repr, names))}))")
    image = tuple(camera.batch_shape) + (camera.height, camera.width)
    for name in names:
        t = aovs[name]
        check_tensor(t, f"aovs[{name!r}]", trailing=(GBUFFER_CHANNELS[name],), floating=True,
                     device=shader.aabb.device)
        if tuple(t.shape[:-1]) != image:
            raise ValueError(f"aovs[{name!r}] must have shape {image + (GBUFFER_CHANNELS[name],)} (the camera's "
                             f"batch shape, height, width); got {tuple(t.shape)}")
        if t.dtype != shader.dtype:
            raise TypeError(f"aovs[{name!r}] is {t.dtype} but the shader's weights are {shader.dtype}")
    named = [(f"aovs[{n!r}]", aovs[n]) for n in names]
    if isinstance(background, torch.Tensor):
        check_tensor(background, "background", floating=True, device=shader.aabb.device)
        try:
            fits = tuple(torch.broadcast_shapes(tuple(background.shape), image + (3,))) == image + (3,)
        except RuntimeError:
            fits = False
        if not fits:
            raise ValueError(f"background must be a number or broadcast to the image {image + (3,)}; "
                             f"got {tuple(background.shape)}")
        named.append(("background", background))
    elif isinstance(background, bool) or not isinstance(background, (int, float)):
        raise TypeError(f"background must be a number or a tensor; got {type(background).__name__}")
    elif not math.isfinite(background):
        raise ValueError(f"background must be finite; got {background}")
    check_all_finite(named)
    return shade_gbuffer_unchecked(shader, {n: aovs[n] for n in names}, camera, background)


def shade_gbuffer_unchecked(shader: NeuralShader, aovs: Mapping[str, torch.Tensor], camera: Camera,
                            background: Union[float, torch.Tensor] = 0.0) -> torch.Tensor:
    """:func:`shade_gbuffer` without validation (buffers ``[..., H, W, c]`` of the camera, finite)."""
    mask = aovs["mask"]
    shape = mask.shape[:-1]  # [..., H, W]
    flat_mask = mask.reshape(-1)
    pixel = (flat_mask != 0).nonzero()[:, 0]
    cover = flat_mask.index_select(0, pixel)[:, None]

    def take(name: str) -> torch.Tensor:  # the foreground value: the buffer divided by its coverage
        t = aovs[name]
        return t.reshape(-1, t.shape[-1]).index_select(0, pixel) / cover

    position = take("position")
    normal = take("normal")
    view_dir = _towards_camera(camera, position, pixel // (shape[-1] * shape[-2]))
    colour = shader.shade_unchecked(position, normal, view_dir, take("uv") if shader.use_uv else None)
    premultiplied = colour.new_zeros(shape.numel(), colour.shape[-1]).index_copy(0, pixel, cover * colour)
    premultiplied = premultiplied.reshape(shape + (colour.shape[-1],))
    return premultiplied + (1 - mask) * torch.as_tensor(background, dtype=mask.dtype, device=mask.device)


def _towards_camera(camera: Camera, position: torch.Tensor, view: torch.Tensor) -> torch.Tensor:
    """``[P, 3]`` directions from each point to the centre of its view's camera (orthographic: minus the
    viewing axis); ``view [P]`` indexes the camera's flattened batch."""
    _, w2c = camera.flat()
    R, t = w2c[:, :3, :3].to(position), w2c[:, :3, 3].to(position)
    if camera.projection == "orthographic":
        return -R[view, 2, :]
    centre = -(R.transpose(-1, -2) @ t[..., None])[..., 0]
    return centre[view] - position


def _normalized(v: torch.Tensor) -> torch.Tensor:
    n = v.norm(dim=-1, keepdim=True)
    return v / torch.where(n > 0, n, torch.ones_like(n))


