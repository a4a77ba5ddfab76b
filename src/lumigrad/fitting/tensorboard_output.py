"""``[output] tensorboard = true``: ``lumigrad fit`` writes the fit live to ``OUT/tensorboard/``.

The scalars are the fit's log (:class:`~lumigrad.optim.TensorBoardCallback`): ``loss/total``, each loss term,
``lr/<group>``, ``clip/<group>`` and, for synthetic targets, the parameter errors ``error/<name>`` at the
steps ``[fit] record_every`` records them (the same values as ``plots/parameters.png``). The images are the
first view's target and current render side by side (``views/0``, in the look of ``images/views.png``:
:func:`~lumigrad.fitting.outputs.as_shown`), at the first step, at every record step and at the last step.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..optim.tensorboard import TensorBoardCallback
from .outputs import as_shown
from .view_evaluation import render_view

__all__ = ["TENSORBOARD_DIR", "fit_tensorboard"]

#: The folder of the event files inside the run folder.
TENSORBOARD_DIR = "tensorboard"


def fit_tensorboard(problem, out: Path, record_every: int) -> TensorBoardCallback:
    """The callback that writes ``problem``'s fit to ``out / TENSORBOARD_DIR`` (images every ``record_every``)."""

    def preview(step: int):
        target = problem.targets[0:1][0, ..., :3].to(torch.float32).cpu()
        render = render_view(problem, 0)[0, ..., :3].to(torch.float32).cpu()
        return {"views/0": as_shown(problem, torch.cat([target, render], dim=1))}  # [H, 2W, 3]: target | render

    return TensorBoardCallback(Path(out) / TENSORBOARD_DIR, images=preview, image_every=record_every)
