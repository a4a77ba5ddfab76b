"""The fit loop's progress bar."""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence

__all__ = ["LossProgress"]


class LossProgress:
    """A tqdm progress bar for a fit that shows the latest loss; does nothing when ``enabled`` is false.

    Use as a context manager: ``with LossProgress(steps, "fitting") as bar: ... bar.update(loss, log)``.
    ``keys`` names log entries shown beside the loss, each with the latest value it had (e.g. a held-out PSNR
    measured every few hundred steps stays on the bar in between).
    """

    def __init__(self, total: int, desc: str, enabled: bool = True, keys: Sequence[str] = ()):
        self.bar = None
        self.keys = tuple(keys)
        self.latest: Dict[str, float] = {}
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="step")

    def update(self, loss: float, log: Optional[Mapping[str, float]] = None) -> None:
        if self.bar is not None:
            for key in self.keys:
                if log is not None and key in log:
                    self.latest[key] = float(log[key])
            self.bar.update()
            shown = {key: f"{value:.2f}" for key, value in self.latest.items()}
            self.bar.set_postfix(loss=f"{loss:.3e}", **shown)

    def __enter__(self) -> "LossProgress":
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()
