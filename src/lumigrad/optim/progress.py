"""The fit loop's progress bar."""

from __future__ import annotations

__all__ = ["LossProgress"]


class LossProgress:
    """A tqdm progress bar for a fit that shows the latest loss; does nothing when ``enabled`` is false.

    Use as a context manager: ``with LossProgress(steps, "fitting") as bar: ... bar.update(loss)``.
    """

    def __init__(self, total: int, desc: str, enabled: bool = True):
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="step")

    def update(self, loss: float) -> None:
        if self.bar is not None:
            self.bar.update()
            self.bar.set_postfix(loss=f"{loss:.3e}")

    def __enter__(self) -> "LossProgress":
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()
