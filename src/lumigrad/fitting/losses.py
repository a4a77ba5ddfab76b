"""The loss of one fit step: the weighted terms of ``[loss]``, each a registered :class:`LossTerm`.

- Image terms compare the rendered colour with the target colour (``mask = "alpha"`` restricts them to the
  target's object mask); ``adversarial`` first steps a patch discriminator on targets vs detached renders,
  then scores the renders with it.
- ``silhouette`` compares rendered coverage with the target's alpha (IoU loss).
- ``depth`` and ``normal`` compare hard (not antialiased) :func:`lumigrad.render_geometry` buffers with
  the target's (L1 on camera-frame depth, cosine on normals) over the pixels where both have geometry, as
  with a depth sensor's maps; the outline is the colour and silhouette terms' job.
- The mesh terms apply to every mesh whose vertices are optimised, on its world-space vertices.

Every term is registered once in :data:`LOSS_TERMS`; its name is its ``[loss]`` key, and the config, the
problem set-up and :func:`total_loss` ask the registry, in registration order. A new term is one file::

    register_loss_term("mean_brightness", lambda x: (x.rgb.mean() - x.target_rgb.mean()).abs())

and ``[loss] mean_brightness = 0.1`` uses it. A term says whether it compares renders with targets
(``data``: a fit needs one such term), what it needs (``"alpha"``: target masks; ``"depth"`` / ``"normal"``:
geometry buffers of the renders and targets), and optionally a ``check(config, targets)`` that refuses data
it cannot use and a ``setup(problem)`` run once when the fit is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch

from ..losses.geometric import depth_loss, normal_loss
from ..losses.image import l1_loss, ms_ssim_loss, mse_loss, ssim_loss
from ..losses.mesh_regularizers import edge_length_loss, laplacian_smoothing, normal_consistency
from ..losses.silhouette import silhouette_iou_loss
from ..registry import Registry

__all__ = ["LOSS_NEEDS", "LOSS_TERMS", "LossInputs", "LossTerm", "register_loss_term", "total_loss"]

#: What a term may need besides rendered and target colour.
LOSS_NEEDS = ("alpha", "depth", "normal")


@dataclass
class LossInputs:
    """What a term's ``compute`` gets for one step.

    Attributes:
        problem: the :class:`~lumigrad.fitting.Problem` (its scene, config, fitted meshes, adversary).
        rgb: rendered colour ``[N, H, W, 3]``; ``alpha``: rendered coverage ``[N, H, W]``.
        targets: the targets ``[N, H, W, C]`` (``C = 4``: alpha is the object mask); ``target_rgb`` their colour.
        mask: ``[N, H, W, 1]`` target alpha when ``[loss] mask = "alpha"``, else ``None``.
        geometry: rendered depth, normals and coverage ``[N, H, W, 5]``, and ``target_geometry`` the targets'
            depth and normals ``[N, H, W, 4]``, when a term needs them (else ``None``).
    """

    problem: object
    rgb: torch.Tensor
    alpha: torch.Tensor
    targets: torch.Tensor
    target_rgb: torch.Tensor
    mask: Optional[torch.Tensor] = None
    geometry: Optional[torch.Tensor] = None
    target_geometry: Optional[torch.Tensor] = None


@dataclass(frozen=True)
class LossTerm:
    """A registered loss term (see :func:`register_loss_term`)."""

    name: str
    compute: Callable[[LossInputs], torch.Tensor]
    data: bool = True
    needs: Tuple[str, ...] = ()
    check: Optional[Callable] = None
    setup: Optional[Callable] = None
    per_pixel: bool = False


#: Every loss term, by its ``[loss]`` key.
LOSS_TERMS: Registry[LossTerm] = Registry("loss term")


def register_loss_term(name: str, compute: Callable[[LossInputs], torch.Tensor], *, data: bool = True,
                       needs: Sequence[str] = (), check: Optional[Callable] = None,
                       setup: Optional[Callable] = None, per_pixel: bool = False, replace: bool = False) -> LossTerm:
    """Register the loss term ``name`` (its ``[loss]`` key).

    Args:
        compute: ``compute(inputs: LossInputs) -> scalar tensor``, the unweighted value.
        data: whether it compares renders with targets (a config needs one such term with a weight > 0);
            ``False`` for regularizers.
        needs: any of :data:`LOSS_NEEDS`: ``"alpha"`` (targets must have an alpha channel), ``"depth"`` /
            ``"normal"`` (geometry buffers are rendered for the renders and the targets).
        check: ``check(config, targets)``, raising :class:`~lumigrad.fitting.ConfigError` for data it cannot use.
        setup: ``setup(problem)``, run once when the problem is built (e.g. a discriminator).
        per_pixel: the term is a weighted mean over pixels of a per-pixel value, ``sum(w e) / sum(w)`` with the
            weights ``w`` of :attr:`LossInputs.mask` (1 without): ``[render] tile`` then splits it over tiles
            exactly (each tile's value weighted by its share of ``sum(w)``). Terms reading pixel neighbourhoods or
            image statistics are not, and ``[render] tile`` refuses them.
        replace: replace an existing term of that name.
    """
    needs = tuple(needs)
    bad = [n for n in needs if n not in LOSS_NEEDS]
    if bad:
        raise ValueError(f"loss term {name!r}: needs {bad[0]!r} is not one of {', '.join(LOSS_NEEDS)}")
    if not callable(compute):
        raise TypeError(f"loss term {name!r}: compute must be callable; got {type(compute).__name__}")
    return LOSS_TERMS.register(name, LossTerm(name, compute, bool(data), needs, check, setup, bool(per_pixel)),
                               replace=replace)


def total_loss(problem, images: torch.Tensor, targets: torch.Tensor, geometry: Optional[torch.Tensor] = None,
               target_geometry: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, Dict[str, float]]:
    """``(loss, {term: value})`` for rendered ``images [N, H, W, C + 1]`` against ``targets [N, H, W, C']``,
    and rendered depth, normals and coverage ``geometry [N, H, W, 5]`` against ``target_geometry [N, H, W, 4]``
    for the depth and normal terms."""
    config = problem.config
    mask = targets[..., 3:4] if config.mask == "alpha" else None
    inputs = LossInputs(problem, images[..., :3], images[..., 3], targets, targets[..., :3], mask, geometry,
                        target_geometry)
    total = torch.zeros((), dtype=images.dtype, device=images.device)
    log: Dict[str, float] = {}
    for name, weight in config.loss.items():
        value = LOSS_TERMS[name].compute(inputs)
        total = total + weight * value
        log[f"loss/{name}"] = float(value.detach())
    return total, log


# ------------------------------------------------------------------------------------------ built-ins
def _masked(x: torch.Tensor, mask):
    return x if mask is None else x * mask


def _check_ms_ssim(config, targets: torch.Tensor) -> None:
    from .config import ConfigError

    if min(targets.shape[1:3]) < 176:
        raise ConfigError(f"{config.path.name}: loss.ms_ssim needs images of at least 176 pixels a side (five "
                          f"scales of an 11-pixel window); these are {targets.shape[2]}x{targets.shape[1]}: use "
                          "loss.ssim")


def _adversarial(x: LossInputs) -> torch.Tensor:
    adversary = x.problem.adversary
    adversary.discriminator_step(_masked(x.target_rgb, x.mask), _masked(x.rgb, x.mask))
    return adversary.generator_loss(_masked(x.rgb, x.mask))


def _setup_adversary(problem) -> None:
    from ..losses.adversarial import AdversarialLoss, PatchDiscriminator

    seeded = torch.Generator().manual_seed(problem.config.fit.seed)  # the same discriminator every run, on every rank
    problem.adversary = AdversarialLoss(PatchDiscriminator(3, generator=seeded).to(problem.targets.device))


def _perceptual(x: LossInputs) -> torch.Tensor:
    from ..losses import perceptual_loss

    return perceptual_loss(_masked(x.rgb, x.mask), _masked(x.target_rgb, x.mask))


def _over_fitted_meshes(regularizer) -> Callable[[LossInputs], torch.Tensor]:
    """A term summing ``regularizer(world verts, faces)`` over the meshes whose vertices are optimised."""
    def compute(x: LossInputs) -> torch.Tensor:
        scene = x.problem.scene
        value = torch.zeros(())
        for mesh_name in x.problem.fitted_meshes():
            mesh = scene.meshes[mesh_name]
            value = value + regularizer(mesh.world_verts(), mesh.faces)
        return value

    return compute


register_loss_term("mse", lambda x: mse_loss(x.rgb, x.target_rgb, x.mask), per_pixel=True)
register_loss_term("l1", lambda x: l1_loss(x.rgb, x.target_rgb, x.mask), per_pixel=True)
register_loss_term("ssim", lambda x: ssim_loss(_masked(x.rgb, x.mask), _masked(x.target_rgb, x.mask)))
register_loss_term("ms_ssim", lambda x: ms_ssim_loss(_masked(x.rgb, x.mask), _masked(x.target_rgb, x.mask)),
                   check=_check_ms_ssim)
register_loss_term("perceptual", _perceptual)
register_loss_term("adversarial", _adversarial, setup=_setup_adversary)
register_loss_term("silhouette", lambda x: silhouette_iou_loss(x.alpha, x.targets[..., 3]), needs=("alpha",))
register_loss_term("depth", lambda x: depth_loss(x.geometry[..., :1], x.target_geometry[..., :1],
                                                 mask=x.geometry[..., 4:]), needs=("depth",))
register_loss_term("normal", lambda x: normal_loss(x.geometry[..., 1:4], x.target_geometry[..., 1:],
                                                   mask=x.geometry[..., 4:]), needs=("normal",))
register_loss_term("laplacian", _over_fitted_meshes(laplacian_smoothing), data=False)
register_loss_term("normal_consistency", _over_fitted_meshes(normal_consistency), data=False)
register_loss_term("edge_length", _over_fitted_meshes(edge_length_loss), data=False)
