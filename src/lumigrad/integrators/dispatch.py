"""``render(scene, camera, integrator="raster", ...)``: the public entry that picks an integrator.

It validates what every integrator shares (the scene, the camera, the AOV names, ``spp``, ``seed``) once,
builds the integrator from the registry with its settings and calls it.
"""

from __future__ import annotations

from typing import Sequence, Union

from ..cameras.camera import Camera
from ..scene.scene import Scene
from .base import Integrator, RenderOutput, get_integrator

__all__ = ["render", "resolve_camera"]

MAX_SEED = 2 ** 63 - 1


def render(scene: Scene, camera: Union[Camera, str, None] = None, *, integrator: Union[str, Integrator] = "raster",
           aovs: Sequence[str] = (), spp: int = 1, seed: int = 0, **settings) -> RenderOutput:
    """Render ``scene`` seen by ``camera`` with an integrator: colour, alpha and named buffers.

    Args:
        scene: the :class:`~lumigrad.Scene`.
        camera: a :class:`~lumigrad.Camera` (any batch shape: one image per view), the name of one of the
            scene's cameras, or ``None`` for the scene's only camera.
        integrator: a registered name (:func:`~lumigrad.integrators.integrator_names`; ``"raster"``, the hard
            rasterizer with deferred shading, by default) or an :class:`~lumigrad.integrators.Integrator`
            instance (then without ``settings``).
        aovs: names of extra buffers to return (:data:`~lumigrad.integrators.AOV_DOCS`), each one the
            integrator lists in its ``aov_names``: e.g. ``("depth", "normal")``.
        spp: samples per pixel, a positive int (the raster integrator takes 1).
        seed: seed of the integrator's random numbers, an int in [0, 2^63) (ignored by deterministic ones).
        **settings: the integrator's settings, e.g. for ``"raster"`` ``background``, ``use_antialias``,
            ``use_aov_antialias``, ``lens_supersample``, ``lens_samples``, ``shadows``, ``max_layers``
            (:class:`~lumigrad.integrators.RasterIntegrator`).

    Returns:
        a :class:`~lumigrad.integrators.RenderOutput`: ``rgb [..., H, W, 3]`` (after the scene's
        :class:`~lumigrad.Film`; linear HDR radiance by default), ``alpha [..., H, W, 1]`` (coverage in
        [0, 1]) and ``aovs`` ``{name: [..., H, W, C]}``; ``.rgba`` is the ``[..., H, W, 4]`` tensor that
        ``render`` returned before integrators existed.

    **Deprecated:** using the result as that tensor (``render(...)[..., :3]``, ``render(...).sum()``,
    ``render(...) - target``) still works during a deprecation period and emits a ``FutureWarning`` once per
    calling line; write ``.rgb``, ``.alpha`` or ``.rgba``.

    Raises:
        ValueError: an unknown integrator, setting or AOV name (the message lists the known ones), a camera
            name the scene does not have (the message lists its cameras), ``spp`` / ``seed`` out of range,
            and whatever the integrator refuses (for the raster integrator: a NaN / Inf or wrongly shaped
            ``background``, a scene with nothing to draw, geometry the raster ops refuse).
        TypeError: ``scene`` not a Scene, ``camera`` not a Camera / name / None, ``aovs`` not a sequence of
            strings, ``spp`` / ``seed`` not ints, a setting of the wrong type.
        lumigrad.limits.BudgetError: the image exceeds the pixel budget; checked before rendering.

    **Differentiability:** what the integrator gives; the raster integrator's colour is differentiable
    w.r.t. every tensor in ``scene.parameters()`` and the camera's ``K``, ``world_to_cam`` and distortion,
    with visibility gradients at silhouettes (see :class:`~lumigrad.integrators.RasterIntegrator`).

    Example:
        >>> import torch, lumigrad as lg
        >>> scene = lg.Scene()
        >>> _ = scene.add_mesh("tri", lg.SceneMesh(torch.tensor([[-1., -1, 0], [1, -1, 0], [0, 1, 0]]),
        ...                                    torch.tensor([[0, 2, 1]])))
        >>> cam = lg.Camera.look_at([0., 0., -3.], [0., 0., 0.], width=16, height=12)
        >>> out = lg.render(scene, cam, aovs=("depth", "normal"))
        >>> tuple(out.rgb.shape), tuple(out.alpha.shape), tuple(out.aovs["normal"].shape)
        ((12, 16, 3), (12, 16, 1), (12, 16, 3))
    """
    if not isinstance(scene, Scene):
        raise TypeError(f"scene must be a lumigrad.Scene; got {type(scene).__name__}")
    if isinstance(integrator, Integrator):
        if settings:
            raise ValueError(f"settings ({', '.join(settings)}) go with an integrator name; this integrator "
                             "instance is already configured")
        chosen = integrator
    else:
        chosen = get_integrator(integrator, **settings)
    camera = resolve_camera(scene, camera)
    aovs = _check_aovs(aovs, chosen, integrator if isinstance(integrator, str) else type(integrator).__name__)
    if isinstance(spp, bool) or not isinstance(spp, int):
        raise TypeError(f"spp must be an int; got {type(spp).__name__}")
    if spp < 1:
        raise ValueError(f"spp must be a positive number of samples per pixel; got {spp}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int; got {type(seed).__name__}")
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must be in [0, 2^63); got {seed}")
    return chosen.render(scene, camera, aovs=aovs, spp=spp, seed=seed)


def resolve_camera(scene: Scene, camera: Union[Camera, str, None]) -> Camera:
    """``camera`` itself, the scene's camera of that name, or (``None``) the scene's only camera.

    Raises:
        ValueError: a name the scene does not have (listing its cameras); ``None`` for a scene without
            exactly one camera.
        TypeError: anything else.
    """
    if isinstance(camera, Camera):
        return camera
    if camera is None:
        if len(scene.cameras) != 1:
            raise ValueError(f"camera=None needs a scene with exactly one camera; this one has "
                             f"{list(scene.cameras)}: pass a Camera or one of these names")
        return next(iter(scene.cameras.values()))
    if isinstance(camera, str):
        if camera not in scene.cameras:
            have = ", ".join(repr(name) for name in scene.cameras) or "none"
            raise ValueError(f"camera {camera[:80]!r} is not in the scene; its cameras are: {have}")
        return scene.cameras[camera]
    raise TypeError(f"camera must be a Camera, a camera name or None; got {type(camera).__name__}")


def _check_aovs(aovs, integrator: Integrator, name: str) -> tuple:
    if isinstance(aovs, str) or not isinstance(aovs, (list, tuple)):
        raise TypeError(f"aovs must be a tuple or list of AOV names, e.g. ('depth', 'normal'); got "
                        f"{type(aovs).__name__}")
    out = []
    for aov in aovs:
        if not isinstance(aov, str):
            raise TypeError(f"aovs must hold strings; got {type(aov).__name__}")
        if aov not in integrator.aov_names:
            have = ", ".join(integrator.aov_names) or "none"
            raise ValueError(f"integrator {name!r} has no AOV {aov[:80]!r}; its AOVs are: {have}")
        if aov not in out:
            out.append(aov)
    return tuple(out)
