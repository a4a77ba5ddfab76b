"""Images and plots that people look at: view grids and loss curves (PNG)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch

from ..io.image import write_image


def image_grid(images: torch.Tensor, columns: Optional[int] = None, pad: int = 2) -> torch.Tensor:
    """Tile ``images [N, H, W, C]`` into one ``[rows*H, columns*W, C]`` image with white padding."""
    n, h, w, c = images.shape
    columns = columns or min(n, 4)
    rows = math.ceil(n / columns)
    grid = torch.ones(rows * (h + pad) + pad, columns * (w + pad) + pad, c, dtype=images.dtype)
    for k in range(n):
        r, col = divmod(k, columns)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        grid[y:y + h, x:x + w] = images[k].detach().cpu()
    return grid


def save_image_grid(path: Path, images: torch.Tensor, columns: Optional[int] = None) -> None:
    """Write ``images [N, H, W, C]`` (values in [0, 1], clamped) as one PNG grid."""
    write_image(path, image_grid(images.detach().float(), columns))


def save_loss_plot(path: Path, losses: List[float], history: Optional[Dict[str, List[float]]] = None) -> None:
    """Plot the loss (log scale) and any parameter-error curves in ``history`` side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = {k: v for k, v in (history or {}).items() if v}
    fig, axes = plt.subplots(1, 1 + len(curves), figsize=(4.5 * (1 + len(curves)), 3.4), squeeze=False)
    ax = axes[0, 0]
    ax.semilogy(losses)
    ax.set_xlabel("step")
    ax.set_ylabel("image loss (MSE)")
    ax.grid(True, alpha=0.3)
    for ax, (name, values) in zip(axes[0, 1:], curves.items()):
        ax.semilogy(values)
        ax.set_xlabel("step")
        ax.set_ylabel(name.replace("_", " "))
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


#: Where a fit's output folder keeps a rendered sequence (relative paths): the strip the report shows and the
#: animations it offers for download.
SEQUENCE_STRIP = "images/sequence.png"
SEQUENCE_ANIMATIONS = ("assets/sequence.gif", "assets/sequence.mp4")


def save_sequence(out_dir: Path, frames: torch.Tensor, fps: float = 12.0, columns: Optional[int] = None,
                  mp4: bool = False) -> List[str]:
    """Write a sequence's frames ``[T, H, W, C]`` into an output folder: the strip ``images/sequence.png`` and
    ``assets/sequence.gif`` (and ``assets/sequence.mp4`` with ``mp4=True``, which needs ``lumigrad[video]``).

    Returns the written paths relative to ``out_dir``; :func:`sequence_figures` finds them for the report.
    """
    from ..io.video import write_strip, write_video

    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    (out_dir / "assets").mkdir(parents=True, exist_ok=True)
    write_strip(out_dir / SEQUENCE_STRIP, frames, columns)
    written = [SEQUENCE_STRIP]
    for rel in SEQUENCE_ANIMATIONS if mp4 else SEQUENCE_ANIMATIONS[:1]:
        write_video(out_dir / rel, frames, fps)
        written.append(rel)
    return written


def sequence_figures(out_dir: Path) -> Tuple[List["Figure"], List[str]]:
    """The report's figure for a sequence strip in ``out_dir`` (if there is one) and its animations as assets."""
    from .report_html import Figure

    out_dir = Path(out_dir)
    figures = []
    if (out_dir / SEQUENCE_STRIP).is_file():
        figures.append(Figure("Sequence", SEQUENCE_STRIP, "The rendered sequence, one frame per cell in time order "
                                                          "(the animation is under Downloads)."))
    assets = [rel for rel in SEQUENCE_ANIMATIONS if (out_dir / rel).is_file()]
    return figures, assets
