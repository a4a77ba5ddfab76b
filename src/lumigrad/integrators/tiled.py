"""``render_tiled`` and ``tiled_loss``: render and back-propagate an image tile by tile, so memory is bounded by
one tile's graph.

Each tile is a window of the camera's image (:meth:`lumigrad.Camera.crop`) drawn with a halo of neighbour
pixels (antialiasing blends each pixel with its neighbours), cut back to the window, scored by the caller's
loss and back-propagated at once; the parameter gradients accumulate in ``.grad`` as ``loss.backward()``
would leave them after an untiled render. :func:`tiled_loss` does the same per tile but, instead of filling
``.grad``, returns a loss tensor whose ``backward()`` delivers the summed gradients, so it drops into any loop
that calls ``loss.backward()`` itself (:class:`lumigrad.optim.Fit`, ``lumigrad fit``'s ``[render] tile``).
What must hold for the result to equal the untiled one is listed
in :func:`render_tiled` ("Tile-safe losses").
"""

from __future__ import annotations

from typing import Callable, Iterator, List, Optional, Sequence, Tuple, Union

import torch

from .._checks import check_positive_int, check_tensor
from ..cameras.camera import Camera
from ..scene.scene import Scene
from .base import Integrator, RenderOutput, get_integrator, integrator_class
from .dispatch import render, resolve_camera

__all__ = ["render_tiled", "tile_windows", "tiled_loss"]

#: The halo the raster integrator needs: :func:`lumigrad.antialias` blends a pixel with its right and lower
#: neighbours (and is blended by its left and upper ones), one pixel away.
ANTIALIAS_HALO = 1

Window = Tuple[int, int, int, int]  # x0, y0, width, height


def tile_windows(width: int, height: int, tile: int) -> Sequence[Window]:
    """The ``(x0, y0, w, h)`` windows of ``tile x tile`` pixels (smaller at the right and bottom edges) that
    cover a ``width x height`` image, row by row."""
    check_positive_int(width, "width")
    check_positive_int(height, "height")
    check_positive_int(tile, "tile")
    return [(x0, y0, min(tile, width - x0), min(tile, height - y0))
            for y0 in range(0, height, tile) for x0 in range(0, width, tile)]


LossFn = Callable[[RenderOutput, Optional[torch.Tensor]], torch.Tensor]


def render_tiled(scene: Scene, camera: Union[Camera, str, None], loss_fn: LossFn,
                 target: Optional[torch.Tensor] = None, *, tile: int = 512, halo: int = ANTIALIAS_HALO,
                 integrator: Union[str, Integrator] = "raster", aovs: Sequence[str] = (), spp: int = 1,
                 seed: int = 0, return_image: bool = False, **settings
                 ) -> Union[torch.Tensor, Tuple[torch.Tensor, RenderOutput]]:
    """Render ``scene`` tile by tile and back-propagate ``loss_fn`` of each tile at once: ``sum_tiles
    loss_fn(tile_output, target_tile)`` with its gradient accumulated into the ``.grad`` of the scene's (and
    camera's) tensors, in the memory of one tile's graph instead of the whole image's.

    Args:
        scene, camera, integrator, aovs, spp, seed, **settings: as :func:`lumigrad.render`. A ``background``
            image (``[..., H, W, 3]``) is cut to each tile.
        loss_fn: ``loss_fn(out, target_tile) -> scalar tensor``; ``out`` is the :class:`RenderOutput` of one
            tile (``out.rgb [..., h, w, 3]``, ``out.alpha``, ``out.aovs``; halo removed) and ``target_tile``
            ``target[..., y0:y0 + h, x0:x0 + w, :]`` (``None`` without ``target``).
        target: optional ``[..., H, W, C]`` reference image of the camera's size.
        tile: the tile size in pixels (tiles at the right and bottom edges are smaller).
        halo: extra pixels rendered around each tile and dropped before the loss (clipped at the image border):
            1 (the default) for the raster integrator's antialiasing; 0 for renderers whose pixels do not read
            their neighbours. A Monte Carlo integrator takes at least the film's pixel filter's reach
            (:attr:`lumigrad.cameras.pixel_filter.PixelFilter.halo`: 2 for Mitsuba's gaussian), so that each
            tile's pixels see the film the untiled render's do.
        return_image: also return the whole image (detached, stitched from the tiles) as a RenderOutput.

    Returns:
        the total loss (a detached 0-dim tensor of the losses' dtype and device); with ``return_image``,
        ``(loss, image)``.

    **Tile-safe losses.** The tiled gradient equals the untiled one when the untiled loss is a *sum over
    pixels* of a per-pixel term: L1, L2 / MSE (divide by the *whole* image's pixel count, not the tile's),
    Huber, masked or weighted per-pixel losses (cut the weights like the target), silhouette / alpha losses,
    depth and normal AOV losses. Losses that read pixel neighbourhoods (SSIM / MS-SSIM windows, image
    gradients, total variation of the image, perceptual networks) or that normalise by image statistics
    (a mean over the tile, a histogram) are *not* tile-safe: summed over tiles they differ from the image's
    loss near tile borders. Regularizers of the parameters themselves (mesh Laplacian, texture TV) do not
    depend on the image: add them once, outside the tiles.

    Equality with the untiled render holds to float rounding for the raster integrator (deterministic, one
    sample at each pixel centre; a one-pixel halo covers antialiasing), also through lens distortion when
    ``lens_supersample * x0`` and ``* y0`` are whole numbers for every tile (e.g. ``lens_supersample=1``): the
    tiles' pinhole covers then sample the same points. Stochastic integrators draw their random numbers per
    tile: the estimate stays unbiased but its noise differs from the untiled render's.

    Parameters computed from others outside the scene (a parameterisation, ``verts = f(u)``) share one upstream
    graph between the tiles: it is then kept (``retain_graph``) until the last tile, and freed with the scene.

    Raises:
        TypeError: ``loss_fn`` not callable; ``loss_fn`` returning something else than a 0-dim tensor.
        ValueError: ``target`` of the wrong size, ``halo`` negative, ``tile`` not positive, and whatever
            :func:`lumigrad.render` raises.

    Example:
        >>> import torch, lumigrad as lg
        >>> scene = lg.Scene()
        >>> verts = torch.tensor([[-1., -1, 0], [1, -1, 0], [0, 1, 0]], requires_grad=True)
        >>> _ = scene.add_mesh("tri", lg.SceneMesh(verts, torch.tensor([[0, 2, 1]]), double_sided=True))
        >>> cam = lg.Camera.look_at([0., 0., -3.], [0., 0., 0.], width=16, height=12)
        >>> loss = lg.render_tiled(scene, cam, lambda out, t: out.alpha.sum(), tile=8)
        >>> verts.grad is not None
        True
    """
    _check_callables(scene, loss_fn)
    camera = resolve_camera(scene, camera)
    retain = _shares_upstream_graph(scene, camera)
    total = image = None
    for x0, y0, inner, loss in _tile_losses(scene, camera, loss_fn, target, tile, halo, integrator, aovs, spp, seed,
                                            settings):
        if loss.requires_grad:
            loss.backward(retain_graph=retain)
        total = loss.detach() if total is None else total + loss.detach()  # on the loss's device: no sync
        if return_image:
            image = _paste(image, inner, x0, y0, camera)
        del inner, loss  # this tile's graph goes before the next one is built
    return (total, image) if return_image else total


def tiled_loss(scene: Scene, camera: Union[Camera, str, None], loss_fn: LossFn,
               target: Optional[torch.Tensor] = None, *, inputs: Optional[Sequence[torch.Tensor]] = None,
               tile: int = 512, halo: int = ANTIALIAS_HALO, integrator: Union[str, Integrator] = "raster",
               aovs: Sequence[str] = (), spp: int = 1, seed: int = 0, **settings) -> torch.Tensor:
    """The tiled sum ``sum_tiles loss_fn(tile_output, target_tile)`` as a loss tensor whose ``backward()`` gives
    the gradients of the untiled loss, built in the memory of one tile's graph.

    Each tile is rendered, scored and differentiated at once with respect to ``inputs`` (its graph is freed
    before the next tile); the gradients are summed over the tiles. The returned 0-dim tensor has the total
    loss as its value and, as its graph, ``sum_i <inputs_i, grad_i>`` (gradients held constant), so
    ``backward()`` writes exactly those gradients into ``inputs`` and carries them on to whatever ``inputs``
    were computed from (a parameterisation ``verts = f(u)`` is then traversed once, not once per tile). Add
    parameter regularizers to it as to any loss. The tiles must be tile-safe losses: see :func:`render_tiled`.

    Args:
        scene, camera, loss_fn, target, tile, halo, integrator, aovs, spp, seed, **settings: as
            :func:`render_tiled`.
        inputs: the tensors the gradients are taken with respect to (only those that require grad count). The
            default is the scene's and the camera's tensors: pass the scene's tensors alone when ``camera`` is
            computed from them (a resized or indexed scene camera), so that no gradient is counted twice.

    Returns:
        a 0-dim tensor (the losses' dtype and device) that requires grad when any of ``inputs`` does.

    Raises:
        as :func:`render_tiled`; ``TypeError`` when ``inputs`` holds something other than tensors.

    Example:
        >>> import torch, lumigrad as lg
        >>> scene = lg.Scene()
        >>> verts = torch.tensor([[-1., -1, 0], [1, -1, 0], [0, 1, 0]], requires_grad=True)
        >>> _ = scene.add_mesh("tri", lg.SceneMesh(verts, torch.tensor([[0, 2, 1]]), double_sided=True))
        >>> cam = lg.Camera.look_at([0., 0., -3.], [0., 0., 0.], width=16, height=12)
        >>> loss = lg.tiled_loss(scene, cam, lambda out, t: out.alpha.sum(), tile=8)
        >>> loss.backward(); verts.grad.shape
        torch.Size([3, 3])
    """
    _check_callables(scene, loss_fn)
    camera = resolve_camera(scene, camera)
    if inputs is None:
        inputs = list(scene.parameters().values()) + list(camera.parameters().values())
    for k, t in enumerate(inputs):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"inputs[{k}] must be a tensor; got {type(t).__name__}")
    wanted = _unique([t for t in inputs if t.requires_grad])
    grads: List[Optional[torch.Tensor]] = [None] * len(wanted)
    total = None
    for _, _, inner, loss in _tile_losses(scene, camera, loss_fn, target, tile, halo, integrator, aovs, spp, seed,
                                          settings):
        if loss.requires_grad and wanted:
            # retained: nodes between ``inputs`` and the tiles (a resized camera, ...) serve every tile; the tile's own
            # graph still goes with ``inner`` and ``loss`` below.
            parts = torch.autograd.grad(loss, wanted, allow_unused=True, retain_graph=True)
            grads = [g if p is None else (p if g is None else g + p) for g, p in zip(grads, parts)]
        total = loss.detach() if total is None else total + loss.detach()
        del inner, loss
    surrogate = total
    for t, g in zip(wanted, grads):
        if g is not None:
            inner_product = (t * g).sum()
            surrogate = surrogate + (inner_product - inner_product.detach()).to(total.dtype)
    return surrogate


def _unique(tensors: Sequence[torch.Tensor]) -> List[torch.Tensor]:
    """``tensors`` without repeats (a tensor shared by several parameter names counts once)."""
    seen, out = set(), []
    for t in tensors:
        if id(t) not in seen:
            seen.add(id(t))
            out.append(t)
    return out


def _tile_losses(scene: Scene, camera: Camera, loss_fn: LossFn, target: Optional[torch.Tensor], tile: int, halo: int,
                 integrator: Union[str, Integrator], aovs: Sequence[str], spp: int, seed: int, settings
                 ) -> Iterator[Tuple[int, int, RenderOutput, torch.Tensor]]:
    """``(x0, y0, tile_output, loss)`` of each tile in turn (arguments checked before the first render)."""
    check_positive_int(tile, "tile")
    if isinstance(halo, bool) or not isinstance(halo, int) or halo < 0:
        raise ValueError(f"halo must be a non-negative int; got {halo!r}")
    if target is not None:
        check_tensor(target, "target", trailing=(camera.height, camera.width, None))
    background = settings.get("background")
    spatial_background = isinstance(background, torch.Tensor) and background.dim() >= 3 and \
        tuple(background.shape[-3:-1]) != (1, 1)
    if isinstance(integrator, Integrator) and isinstance(getattr(integrator, "background", None), torch.Tensor) \
            and integrator.background.dim() >= 3 and tuple(integrator.background.shape[-3:-1]) != (1, 1):
        raise ValueError("render_tiled cuts a background image to each tile only when it comes as a setting: pass "
                         "integrator by name with background=... instead of a configured instance")
    if isinstance(integrator, Integrator) and settings:
        raise ValueError(f"settings ({', '.join(settings)}) go with an integrator name; this integrator instance is "
                         "already configured")
    shared = get_integrator(integrator, **settings) if isinstance(integrator, str) and not spatial_background \
        else integrator
    return _each_tile(scene, camera, loss_fn, target, tile, halo, integrator, aovs, spp, seed, settings, shared,
                      background if spatial_background else None)


def _check_callables(scene, loss_fn) -> None:
    if not isinstance(scene, Scene):
        raise TypeError(f"scene must be a lumigrad.Scene; got {type(scene).__name__}")
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be a callable (out, target_tile) -> scalar; got {type(loss_fn).__name__}")


def _each_tile(scene, camera, loss_fn, target, tile, halo, integrator, aovs, spp, seed, settings, shared,
               background) -> Iterator[Tuple[int, int, RenderOutput, torch.Tensor]]:
    monte_carlo = (integrator_class(integrator) if isinstance(integrator, str) else integrator).monte_carlo
    if monte_carlo:  # a pixel's filter reaches this many neighbours, which a tile's film must hold
        halo = max(halo, scene.film.pixel_filter.halo)
    for x0, y0, w, h in tile_windows(camera.width, camera.height, tile):
        hx0, hy0 = max(0, x0 - halo), max(0, y0 - halo)
        hx1, hy1 = min(camera.width, x0 + w + halo), min(camera.height, y0 + h + halo)
        view = camera.crop(hx0, hy0, hx1 - hx0, hy1 - hy0)
        chosen = shared
        if background is not None:
            cut = dict(settings, background=_window(background, hx0, hy0, hx1 - hx0, hy1 - hy0, camera))
            chosen = get_integrator(integrator, **cut)
        out = render(scene, view, integrator=chosen, aovs=aovs, spp=spp, seed=seed)
        inner = _cut(out, x0 - hx0, y0 - hy0, w, h)
        del out
        loss = loss_fn(inner, None if target is None else target[..., y0:y0 + h, x0:x0 + w, :])
        if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
            raise TypeError(f"loss_fn must return a 0-dim tensor; got "
                            f"{tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__}")
        yield x0, y0, inner, loss
        del inner, loss


def _shares_upstream_graph(scene: Scene, camera: Camera) -> bool:
    """True when a scene or camera tensor is computed (has a ``grad_fn``) from tensors that need gradients: the
    graph behind it is shared by every tile, so each tile's backward must keep it."""
    tensors = list(scene.parameters().values()) + list(camera.parameters().values())
    return any(t.requires_grad and t.grad_fn is not None for t in tensors)


def _window(image: torch.Tensor, x0: int, y0: int, w: int, h: int, camera: Camera) -> torch.Tensor:
    """``image [..., H or 1, W or 1, C]`` cut to the window (broadcast dims kept)."""
    rows = slice(None) if image.shape[-3] == 1 else slice(y0, y0 + h)
    cols = slice(None) if image.shape[-2] == 1 else slice(x0, x0 + w)
    if image.shape[-3] not in (1, camera.height) or image.shape[-2] not in (1, camera.width):
        raise ValueError(f"background must be [..., H, W, 3] of the camera's size {camera.height}x{camera.width} "
                         f"(or broadcast to it); got {tuple(image.shape)}")
    return image[..., rows, cols, :]


def _cut(out: RenderOutput, x0: int, y0: int, w: int, h: int) -> RenderOutput:
    """The window of a tile's output (``face_id`` is ``[..., H, W]``, every other buffer ``[..., H, W, C]``)."""
    def cut(t: torch.Tensor, channels: bool) -> torch.Tensor:
        return t[..., y0:y0 + h, x0:x0 + w, :] if channels else t[..., y0:y0 + h, x0:x0 + w]

    aovs = {name: cut(b, name != "face_id") for name, b in out.aovs.items()}
    return RenderOutput(cut(out.rgb, True), cut(out.alpha, True), aovs)


def _paste(image: Optional[RenderOutput], tile: RenderOutput, x0: int, y0: int, camera: Camera) -> RenderOutput:
    """Write ``tile`` (detached) into the whole-image ``image`` at ``(x0, y0)``, allocating it on first use."""
    H, W = camera.height, camera.width

    def full(t: torch.Tensor, channels: bool) -> torch.Tensor:
        lead = t.shape[:-3] if channels else t.shape[:-2]
        return t.new_zeros(lead + (H, W) + (t.shape[-1:] if channels else ()))

    if image is None:
        image = RenderOutput(full(tile.rgb, True), full(tile.alpha, True),
                             {n: full(b, n != "face_id") for n, b in tile.aovs.items()})
    h, w = tile.alpha.shape[-3], tile.alpha.shape[-2]
    image.rgb[..., y0:y0 + h, x0:x0 + w, :] = tile.rgb.detach()
    image.alpha[..., y0:y0 + h, x0:x0 + w, :] = tile.alpha.detach()
    for name, b in tile.aovs.items():
        if name == "face_id":
            image.aovs[name][..., y0:y0 + h, x0:x0 + w] = b
        else:
            image.aovs[name][..., y0:y0 + h, x0:x0 + w, :] = b.detach()
    return image
