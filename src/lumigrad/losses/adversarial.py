"""Adversarial (GAN) losses: a PatchGAN discriminator and a loss object that trains it alongside a fit.

Use an adversarial loss when the target is a distribution rather than one image: e.g. to make an optimised
texture or a render's local statistics look like a set of example photos (realistic noise and grain, sharpness)
where no pixel-aligned target exists. It is a regulariser next to a reconstruction loss, not a replacement: on
its own it is unstable and only matches statistics of patches.

* :class:`PatchDiscriminator` (Isola et al. 2017, PatchGAN): a small conv net that outputs a map of logits, one
  per overlapping receptive field ("is this patch real?").
* :class:`AdversarialLoss` owns a discriminator and its Adam optimiser. Each fit step call
  :meth:`AdversarialLoss.discriminator_step` with real images and the current renders (it detaches them and
  updates only the discriminator), and add :meth:`AdversarialLoss.generator_loss` of the renders to the fit's
  loss (differentiable in the renders; it leaves the discriminator's ``.grad`` untouched).
* :func:`gan_generator_loss` / :func:`gan_discriminator_loss` are the functional losses on logits
  (``"hinge"``: Lim & Ye 2017 / Miyato et al. 2018; ``"nonsaturating"``: Goodfellow et al. 2014).

Images are ``[N, H, W, C]`` (lumigrad's channel-last convention) with values in ``[0, 1]``.
"""

from __future__ import annotations

import contextlib
import math
from typing import Literal, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_choice, check_positive_int, check_tensor

__all__ = ["AdversarialLoss", "PatchDiscriminator", "gan_discriminator_loss", "gan_generator_loss"]

_KINDS = ("hinge", "nonsaturating")


def gan_generator_loss(fake_logits: torch.Tensor, kind: Literal["hinge", "nonsaturating"] = "hinge") -> torch.Tensor:
    """Compute the generator's adversarial loss from the discriminator's logits on generated images.

    ``"hinge"``: ``-mean(D(fake))``; ``"nonsaturating"``: ``mean(softplus(-D(fake))) = -mean(log sigmoid(D(fake)))``.

    Example:
        >>> float(gan_generator_loss(torch.tensor([1.0, 3.0])))
        -2.0

    Args:
        fake_logits: discriminator logits on generated images, any shape, float.
        kind: ``"hinge"`` or ``"nonsaturating"``.

    Returns:
        Scalar tensor.

    Raises:
        TypeError / ValueError: ``fake_logits`` is not a float tensor, or ``kind`` is unknown.
    """
    check_choice(kind, "kind", _KINDS)
    check_tensor(fake_logits, "fake_logits", floating=True)
    if kind == "hinge":
        return -fake_logits.mean()
    return F.softplus(-fake_logits).mean()


def gan_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor,
                           kind: Literal["hinge", "nonsaturating"] = "hinge") -> torch.Tensor:
    """Compute the discriminator's loss from its logits on real and on generated images.

    ``"hinge"``: ``mean(relu(1 - D(real))) + mean(relu(1 + D(fake)))``;
    ``"nonsaturating"`` (binary cross-entropy): ``mean(softplus(-D(real))) + mean(softplus(D(fake)))``.

    Example (both sides beyond the margin):
        >>> float(gan_discriminator_loss(torch.tensor([2.0]), torch.tensor([-1.5])))
        0.0

    Args:
        real_logits: logits on real images, any shape, float.
        fake_logits: logits on generated images, any shape, float.
        kind: ``"hinge"`` or ``"nonsaturating"``.

    Returns:
        Scalar tensor.

    Raises:
        TypeError / ValueError: a logits argument is not a float tensor, or ``kind`` is unknown.
    """
    check_choice(kind, "kind", _KINDS)
    check_tensor(real_logits, "real_logits", floating=True)
    check_tensor(fake_logits, "fake_logits", floating=True, device=real_logits.device)
    if kind == "hinge":
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


class PatchDiscriminator(nn.Module):
    """A PatchGAN discriminator: images ``[N, H, W, C]`` in ``[0, 1]`` -> a map of logits ``[N, h, w]``.

    Layers: ``layers`` convolutions 4x4 / stride 2 / padding 1 (channels ``width``, ``2 width``, ... capped at
    ``8 width``), each followed by LeakyReLU(0.2), then a 3x3 convolution to one logit per location. Each stride-2
    layer halves the size (rounding down), so ``h = H // 2^layers`` and ``w = W // 2^layers``, and the receptive
    field of one logit is ``5 * 2^layers - 2`` pixels wide (``38`` for ``layers=3``). Inputs are
    mapped to ``[-1, 1]`` (``2 x - 1``) first.

    ``norm="spectral"`` (default) wraps every convolution in spectral normalisation (Miyato et al. 2018), which
    keeps the discriminator 1-Lipschitz-ish and training stable; ``norm="instance"`` adds an instance norm after
    every stride-2 convolution but the first (the pix2pix recipe); ``norm="none"`` uses plain convolutions.

    The initial weights are PyTorch's defaults (Kaiming-uniform convolutions, uniform biases, spectral-norm
    power-iteration vectors drawn from a normal distribution), drawn from torch's global RNG, or from
    ``generator`` when one is given: ``PatchDiscriminator(generator=torch.Generator().manual_seed(s))`` equals
    ``torch.manual_seed(s); PatchDiscriminator()`` bit for bit, without reading or advancing the global RNG.

    Args:
        channels: image channels ``C``.
        width: channels of the first layer.
        layers: number of stride-2 layers; images need ``H, W >= 2^layers``.
        norm: ``"spectral"``, ``"instance"`` or ``"none"``.
        generator: optional ``torch.Generator`` for the initial weights; the network is created on its device.

    Raises:
        TypeError / ValueError: a size is not a positive int, ``norm`` is unknown, or ``generator`` is not a
            ``torch.Generator``.
    """

    def __init__(self, channels: int = 3, width: int = 32, layers: int = 3,
                 norm: Literal["spectral", "instance", "none"] = "spectral",
                 generator: Optional[torch.Generator] = None):
        super().__init__()
        check_positive_int(channels, "channels")
        check_positive_int(width, "width")
        check_positive_int(layers, "layers")
        check_choice(norm, "norm", ("spectral", "instance", "none"))
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None; got {type(generator).__name__}")
        self.channels, self.layers, self.norm = channels, layers, norm
        wrap = nn.utils.parametrizations.spectral_norm if norm == "spectral" else (lambda m: m)
        mods = []
        cin = channels
        with torch.device("meta") if generator is not None else contextlib.nullcontext():
            for i in range(layers):
                cout = width * min(2 ** i, 8)
                mods.append(wrap(nn.Conv2d(cin, cout, kernel_size=4, stride=2, padding=1)))
                if norm == "instance" and i > 0:
                    mods.append(nn.InstanceNorm2d(cout, affine=True))
                mods.append(nn.LeakyReLU(0.2))
                cin = cout
            mods.append(wrap(nn.Conv2d(cin, 1, kernel_size=3, stride=1, padding=1)))
        self.net = nn.Sequential(*mods)
        if generator is not None:  # built on the meta device (no random numbers drawn), initialised from generator
            self.to_empty(device=generator.device)
            _initialise(self.net, generator)

    def forward(self, images: torch.Tensor, name: str = "images") -> torch.Tensor:
        """Return the logit map ``[N, H // 2^layers, W // 2^layers]`` of ``images [N, H, W, C]``.

        ``name`` is the argument name used in error messages.
        """
        p = next(self.parameters())
        _check_images(images, name, self.channels, self.layers, self.norm, p.device)
        x = images.to(p.dtype).permute(0, 3, 1, 2) * 2 - 1
        return self.net(x)[:, 0]


@torch.no_grad()
def _initialise(net: nn.Sequential, generator: torch.Generator) -> None:
    """Give ``net``'s layers PyTorch's default initial values, in construction order, drawn from ``generator``:
    ``Conv2d.reset_parameters`` for each convolution, then, under spectral normalisation, the normal ``u`` and
    ``v`` and 16 power iterations (the 15 ``spectral_norm`` starts with, and one more from the forward pass that
    ``register_parametrization`` runs as a check); unit scale and zero shift for instance norm. The test
    ``test_generator_matches_the_global_rng_construction`` pins this to PyTorch's own construction."""
    for module in net:
        if isinstance(module, nn.InstanceNorm2d):
            module.weight.fill_(1.0)
            module.bias.zero_()
        if not isinstance(module, nn.Conv2d):
            continue
        spectral = nn.utils.parametrize.is_parametrized(module, "weight")
        weight = module.parametrizations.weight.original if spectral else module.weight
        fan_in = weight[0].numel()
        bound = math.sqrt(3.0) * (nn.init.calculate_gain("leaky_relu", math.sqrt(5)) / math.sqrt(fan_in))
        weight.uniform_(-bound, bound, generator=generator)  # nn.init.kaiming_uniform_(weight, a=sqrt(5))
        bound = 1.0 / math.sqrt(fan_in)
        module.bias.uniform_(-bound, bound, generator=generator)
        if spectral:
            norm = module.parametrizations.weight[0]
            w = weight.flatten(1)
            u, v = (F.normalize(torch.empty(n, dtype=w.dtype, device=w.device).normal_(0, 1, generator=generator),
                                dim=0, eps=norm.eps) for n in w.shape)
            for _ in range(16):
                u = F.normalize(torch.mv(w, v), dim=0, eps=norm.eps)
                v = F.normalize(torch.mv(w.H, u), dim=0, eps=norm.eps)
            buffers = dict(norm.named_buffers())
            buffers["_u"].copy_(u)
            buffers["_v"].copy_(v)


def _check_images(x, name: str, channels: int, layers: int, norm: str, device: torch.device) -> None:
    check_tensor(x, name, trailing=(None, None, None, channels), max_dims=4, floating=True, finite=True)
    if x.device != device:
        raise ValueError(f"{name} is on {x.device} but the discriminator is on {device}; move one of them "
                         "(discriminator.to(device) before building AdversarialLoss)")
    need = 2 ** layers * (2 if norm == "instance" else 1)  # instance norm needs > 1 value per channel
    if x.shape[1] < need or x.shape[2] < need:
        raise ValueError(f"{name} must have H, W >= {need} for a discriminator with {layers} stride-2 layers"
                         f"{' and instance norm' if norm == 'instance' else ''}; got H, W = {x.shape[1]}, {x.shape[2]}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one image; got shape {tuple(x.shape)}")


class AdversarialLoss:
    """An adversarial loss with its own discriminator and Adam optimiser, stepped alongside a fit.

    Per fit step::

        adv.discriminator_step(real_batch, render)    # updates the discriminator only
        loss = recon_loss + lam * adv.generator_loss(render)

    Args:
        discriminator: the network mapping ``[N, H, W, C]`` images to logits; default
            ``PatchDiscriminator()`` (3 channels, width 32, 3 layers, spectral norm).
        lr: the discriminator's Adam learning rate.
        kind: ``"hinge"`` or ``"nonsaturating"`` (see :func:`gan_discriminator_loss`).
        betas: Adam's ``(beta1, beta2)``; ``beta1 = 0.5`` is the usual GAN choice.

    Raises:
        TypeError / ValueError: ``discriminator`` is not an ``nn.Module`` with parameters, ``lr`` is not positive,
            ``kind`` is unknown, or ``betas`` are not two numbers in ``[0, 1)``.

    **Differentiability:** :meth:`generator_loss` is differentiable in its images; gradients flow through the
    (frozen for that call) discriminator and never reach the discriminator's parameters.
    """

    def __init__(self, discriminator: Optional[nn.Module] = None, lr: float = 2e-4,
                 kind: Literal["hinge", "nonsaturating"] = "hinge", betas: Tuple[float, float] = (0.5, 0.999)):
        if discriminator is None:
            discriminator = PatchDiscriminator()
        if not isinstance(discriminator, nn.Module):
            raise TypeError(f"discriminator must be a torch.nn.Module; got {type(discriminator).__name__}")
        if not list(discriminator.parameters()):
            raise ValueError("discriminator has no parameters to train")
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
            raise ValueError(f"lr must be a positive number; got {lr!r}")
        check_choice(kind, "kind", _KINDS)
        try:
            b1, b2 = (float(b) for b in betas)
        except (TypeError, ValueError):
            raise TypeError(f"betas must be two numbers (beta1, beta2); got {betas!r}") from None
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError(f"betas must lie in [0, 1); got {betas!r}")
        self.discriminator = discriminator
        self.kind = kind
        self.optimizer = torch.optim.Adam(discriminator.parameters(), lr=float(lr), betas=(b1, b2))

    def _logits(self, images: torch.Tensor, name: str) -> torch.Tensor:
        if isinstance(self.discriminator, PatchDiscriminator):
            return self.discriminator(images, name)
        check_tensor(images, name, trailing=(None, None, None, None), max_dims=4, floating=True, finite=True)
        return self.discriminator(images)

    def generator_loss(self, fake: torch.Tensor) -> torch.Tensor:
        """Return the generator's adversarial loss on generated images ``fake [N, H, W, C]`` (a scalar).

        Differentiable in ``fake``. The discriminator's parameters are frozen (``requires_grad`` off) while the
        graph is built, so backpropagating this loss never accumulates gradients into them.
        """
        params = list(self.discriminator.parameters())
        flags = [p.requires_grad for p in params]
        try:
            for p in params:
                p.requires_grad_(False)
            logits = self._logits(fake, "fake")
        finally:
            for p, f in zip(params, flags):
                p.requires_grad_(f)
        return gan_generator_loss(logits, self.kind)

    def discriminator_step(self, real: torch.Tensor, fake: torch.Tensor) -> float:
        """Take one optimiser step on the discriminator; return its loss before the step.

        Args:
            real: real images ``[N, H, W, C]``.
            fake: generated images ``[M, H', W', C]`` (detached here: no gradient reaches the generator).

        Returns:
            The discriminator loss as a Python float.
        """
        self.discriminator.train()
        self.optimizer.zero_grad(set_to_none=True)
        real_logits = self._logits(real, "real")
        fake_logits = self._logits(fake.detach() if isinstance(fake, torch.Tensor) else fake, "fake")
        loss = gan_discriminator_loss(real_logits, fake_logits, self.kind)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    def state_dict(self) -> dict:
        """Return ``{"kind", "discriminator", "optimizer"}`` state for a checkpoint (``torch.save``-able)."""
        return {"kind": self.kind, "discriminator": self.discriminator.state_dict(),
                "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Restore the discriminator and its optimiser from :meth:`state_dict`'s output.

        Raises:
            ValueError: ``state`` lacks a key or was saved with another ``kind``.
        """
        if not isinstance(state, dict) or not {"kind", "discriminator", "optimizer"} <= set(state):
            raise ValueError("state must be a dict from AdversarialLoss.state_dict() with keys 'kind', "
                             "'discriminator' and 'optimizer'")
        if state["kind"] != self.kind:
            raise ValueError(f"state was saved with kind={state['kind']!r} but this loss has kind={self.kind!r}")
        self.discriminator.load_state_dict(state["discriminator"])
        self.optimizer.load_state_dict(state["optimizer"])
