"""``TensorBoardCallback``: a :class:`~lumigrad.optim.Fit` callback that writes the fit to TensorBoard live.

Every step it writes the loss (``loss/total``) and every value the loss function logged under its own name
(``error/albedo``, ``lr/shape``, ``clip/shape``, loss terms; TensorBoard groups tags by the part before the
first ``/``). Optionally it renders preview images every ``image_every`` steps through a function of yours.
``lumigrad fit`` uses it for ``[output] tensorboard = true`` (docs/fit.md); in a loop of your own::

    from lumigrad.optim import Fit, TensorBoardCallback

    with TensorBoardCallback("runs/a/tensorboard", images=lambda step: {"render": render_view0()}) as tb:
        Fit(loss_fn, groups, steps=500, callbacks=[tb]).run()
    # then: tensorboard --logdir runs/a/tensorboard

It writes through ``torch.utils.tensorboard.SummaryWriter``, which needs the ``tensorboard`` package
(``pip install 'lumigrad[tensorboard]'``); pass ``writer=`` to use another object with the same methods
(``add_scalar``, ``add_image``, ``flush``, ``close``), e.g. ``tensorboardX.SummaryWriter``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Union

import torch

from .._checks import check_positive_int

__all__ = ["TensorBoardCallback", "tensorboard_available"]

EXTRA_HINT = "pip install 'lumigrad[tensorboard]' (the tensorboard package)"

PreviewFn = Callable[[int], Mapping[str, torch.Tensor]]


def tensorboard_available() -> bool:
    """Whether ``torch.utils.tensorboard.SummaryWriter`` can be used (the ``tensorboard`` package is installed)."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        return False
    return True


class TensorBoardCallback:
    """Write a fit's loss, logged values and preview images to a TensorBoard log folder, live.

    Args:
        log_dir: the folder of the event files (created); with ``writer`` it may be None.
        writer: an object with ``add_scalar(tag, value, step)``, ``add_image(tag, image, step,
            dataformats="HWC")``, ``flush()`` and ``close()``. Default: a ``SummaryWriter(log_dir)`` opened at the
            first step it sees (with ``purge_step`` at that step, so a resumed fit replaces what the interrupted
            one wrote after its checkpoint).
        images: ``images(step)`` -> ``{tag: image [H, W, C]}`` (``C`` 1, 3 or 4, float, display values in
            ``[0, 1]``, clamped), called without gradients at the first step, every ``image_every`` steps
            and from :meth:`close` for the last step seen.
        image_every: steps between preview images; also how often the event file is flushed, so that a
            running TensorBoard shows the fit as it goes.

    Raises:
        ImportError: ``writer`` is None and the ``tensorboard`` package is missing (the message names the
            ``tensorboard`` extra).
        TypeError / ValueError: a bad argument, named.

    The callback never stops the fit (it returns None). Non-finite logged values are written as they are
    (TensorBoard shows them as gaps); the fit itself stops on a non-finite loss.
    """

    def __init__(self, log_dir: Optional[Union[str, os.PathLike]] = None, *, writer: Any = None,
                 images: Optional[PreviewFn] = None, image_every: int = 50):
        check_positive_int(image_every, "image_every")
        if images is not None and not callable(images):
            raise TypeError(f"images must be callable (step -> {{tag: image}}); got {type(images).__name__}")
        if writer is None:
            if log_dir is None:
                raise ValueError("TensorBoardCallback needs log_dir (or a writer)")
            if not tensorboard_available():
                raise ImportError(f"TensorBoard logging needs the tensorboard package: {EXTRA_HINT}")
        else:
            missing = [m for m in ("add_scalar", "add_image", "flush", "close") if not callable(getattr(writer, m, None))]
            if missing:
                raise TypeError(f"writer must have the SummaryWriter methods {missing}; got {type(writer).__name__}")
        self.log_dir = None if log_dir is None else Path(log_dir)
        self.writer = writer
        self.images = images
        self.image_every = image_every
        self._last_step: Optional[int] = None
        self._last_image_step: Optional[int] = None
        self._closed = False

    def _open(self, step: int) -> Any:
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.log_dir.mkdir(parents=True, exist_ok=True)
            self.writer = SummaryWriter(str(self.log_dir), purge_step=step)
        return self.writer

    def __call__(self, step: int, loss: float, log: Mapping[str, float]) -> None:
        if self._closed:
            raise RuntimeError("this TensorBoardCallback is closed; make a new one for another fit")
        first = self._last_step is None
        writer = self._open(step)
        writer.add_scalar("loss/total", float(loss), step)
        for tag, value in log.items():
            writer.add_scalar(tag, float(value), step)
        self._last_step = step
        if first or step % self.image_every == 0:
            self._write_images(step)
            writer.flush()

    def _write_images(self, step: int) -> None:
        if self.images is None or self._last_image_step == step:
            return
        with torch.no_grad():
            previews = self.images(step)
        for tag, image in previews.items():
            if not isinstance(image, torch.Tensor) or image.dim() != 3 or image.shape[-1] not in (1, 3, 4):
                shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
                raise ValueError(f"images({step})[{tag!r}] must be a [H, W, C] tensor with C in (1, 3, 4); got {shape}")
            self.writer.add_image(tag, image.detach().float().clamp(0, 1).cpu(), step, dataformats="HWC")
        self._last_image_step = step

    def close(self) -> None:
        """Write the last step's preview images, flush and close the writer (safe to call twice)."""
        if self.writer is None or self._closed:
            return
        if self._last_step is not None:
            self._write_images(self._last_step)
            self.writer.flush()
        self.writer.close()
        self._closed = True

    def __enter__(self) -> "TensorBoardCallback":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

