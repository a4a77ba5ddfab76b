"""Smoke test of ``benchmarks/memory.py`` (peak memory vs image size, mesh size and shading checkpoints): a
tiny run prints the three tables with finite, non-negative figures and every row measured. No memory or time
is compared (``benchmarks/`` measures them; a tiny run is dominated by the allocator)."""

import math
import runpy
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "memory.py"


def test_memory_benchmark_tiny_run(capsys):
    runpy.run_path(str(SCRIPT))["main"](["--quick"])
    out = capsys.readouterr().out
    assert "peak memory vs image size" in out and "peak memory vs mesh size" in out and "checkpoint_shading" in out
    assert "one lumigrad fit step" in out
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in out.splitlines()
            if line.startswith("| ") and not line.startswith("| size") and not line.startswith("| triangles")
            and not line.startswith("| checkpoint_shading")]
    assert len(rows) == 2 + 2 + 2 + 2  # two image sizes, two meshes, two fit-step sizes, checkpoint off / on
    for row in rows:
        for cell in row[1:]:
            if cell not in ("True", "False"):
                assert math.isfinite(float(cell)) and float(cell) >= 0, row
