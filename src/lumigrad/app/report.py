"""Images and plots that people look at: view grids and loss curves (PNG)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, List, Optional

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
