"""The HTML report of ``lumigrad fit``: page content, and a headless Chromium check that its images load."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from lumigrad.io.image import write_image
from lumigrad.app.report import save_image_grid, save_loss_plot
from lumigrad.app.report_html import Figure, format_value, write_html_report

METRICS = {
    "steps": 200,
    "seconds": 12.3456,
    "final_loss": 1.23456e-4,
    "psnr_initial": 18.2,
    "psnr_final": 35.14159,
    "converged": True,
    "parameters": {
        "meshes.bottle.material.roughness_factor": {"true": 0.3, "initial": 0.8, "final": 0.31, "abs_error": 0.01},
        "meshes.bottle.material.base_color": {"true": [0.8, 0.1, 0.1, 1.0, 0.5], "initial": [0.5, 0.5, 0.5],
                                              "final": [0.79, 0.11, 0.1], "abs_error": 0.0123},
    },
    "timing": {"render_ms": 3.25, "backward": {"ms": 7.5}},
}


def _make_outputs(out: Path) -> list[Figure]:
    """Three real PNGs in ``out/images``: a view grid, a single image and a loss plot."""
    (out / "images").mkdir(parents=True)
    (out / "assets").mkdir()
    g = torch.Generator().manual_seed(0)
    views = torch.rand(4, 48, 64, 3, generator=g)
    save_image_grid(out / "images" / "views.png", views)
    ramp = torch.linspace(0, 1, 96)
    write_image(out / "images" / "diff.png", torch.stack(torch.meshgrid(ramp, ramp, indexing="ij") + (ramp[None].expand(96, 96),), -1))
    save_loss_plot(out / "images" / "loss.png", [1.0 / (k + 1) for k in range(50)], {"roughness_error": [0.5 / (k + 1) for k in range(50)]})
    (out / "assets" / "mesh.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    (out / "metrics.json").write_text(json.dumps(METRICS))
    return [Figure("Views", "images/views.png", "target (top) and fit (bottom)"),
            Figure("Difference", "images/diff.png", "absolute difference, x4"),
            Figure("Loss", "images/loss.png", "image loss and parameter error per step")]


def _report(out: Path, title: str = "Fit of bottle <script>alert(1)</script>") -> Path:
    figures = _make_outputs(out)
    return write_html_report(out, title=title, summary="Recovered roughness & colour in 200 steps.",
                             metrics=METRICS, figures=figures, assets=["assets/mesh.obj", "metrics.json"],
                             config_text="steps: 200\nlr: <0.01>\n", log_tail=["step 199 loss 1.2e-4", "done <ok>"])


def test_format_value():
    assert format_value(35.14159) == "35.14"
    assert format_value(1.23456e-4) == "1.235e-04"
    assert format_value(12345.6) == "12350"
    assert format_value(3.2e9) == "3.200e+09"
    assert format_value(200) == "200"
    assert format_value(0.0) == "0"
    assert format_value([1, 2, 3, 4, 5]) == "[1, 2, 3, 4, …] (5)"
    assert format_value([0.5, 0.25]) == "[0.5, 0.25]"


def test_page_content(tmp_path):
    path = _report(tmp_path)
    assert path == tmp_path / "report.html"
    page = path.read_text(encoding="utf-8")
    # escaped text: the only <script> is the page's own checker
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count("<script>") == 1
    assert "lr: &lt;0.01&gt;" in page and "done &lt;ok&gt;" in page and "roughness &amp; colour" in page
    # top-level metrics, formatted
    for key, shown in [("steps", "200"), ("seconds", "12.35"), ("final_loss", "1.235e-04"), ("psnr_final", "35.14")]:
        assert re.search(rf"<th scope=\"row\">{key}</th><td class=\"num\">{re.escape(shown)}</td>", page), key
    # the parameter table, with lists shown compactly
    head = re.search(r"<table class=\"params\"><thead><tr>(.*?)</tr>", page).group(1)
    assert re.findall(r"<th>(.*?)</th>", head) == ["name", "true", "initial", "final", "error"]
    assert "meshes.bottle.material.roughness_factor" in page
    row = re.search(r"roughness_factor</code></th>(.*?)</tr>", page).group(1)
    assert re.findall(r"<td class=\"num\">(.*?)</td>", row) == ["0.3", "0.8", "0.31", "0.01"]
    assert "[0.8, 0.1, 0.1, 1, …] (5)" in page
    # other nested dicts become sub-tables
    assert "<h3>timing</h3>" in page and "render_ms" in page and "7.5" in page
    # relative image links and downloads with sizes; nothing external
    srcs = re.findall(r"<img src=\"([^\"]+)\"", page)
    assert srcs == ["images/views.png", "images/diff.png", "images/loss.png"]
    assert 'href="assets/mesh.obj" download' in page and 'href="metrics.json" download' in page
    assert re.search(r"mesh\.obj</a><span class=\"size\">\d+ B</span>", page)
    assert "http://" not in page and "https://" not in page and str(tmp_path) not in page
    assert "<details" in page and "data-images-loaded" not in page  # set by the script, not baked in


@pytest.mark.parametrize("kind", ["figure", "asset"])
def test_missing_file_raises(tmp_path, kind):
    figures = _make_outputs(tmp_path)
    assets = ["metrics.json"]
    if kind == "figure":
        figures.append(Figure("Ghost", "images/ghost.png"))
    else:
        assets.append("assets/scene.glb")
    missing = "images/ghost.png" if kind == "figure" else "assets/scene.glb"
    with pytest.raises(ValueError, match=re.escape(missing)):
        write_html_report(tmp_path, title="t", summary="", metrics={}, figures=figures, assets=assets)
    assert not (tmp_path / "report.html").exists()


@pytest.mark.parametrize("bad", ["/etc/passwd", "../outside.png", ""])
def test_path_must_stay_inside(tmp_path, bad):
    with pytest.raises(ValueError, match="relative"):
        write_html_report(tmp_path, title="t", summary="", metrics={}, figures=[Figure("x", bad)])


# --- headless browser ------------------------------------------------------------------------------

def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is needed for the HTML report test in CI: apt-get install chromium")
        pytest.skip("chromium not installed")
    return exe


def _chromium_run(exe: str, tmp_path: Path, page: Path, *extra: str) -> str:
    cmd = [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--allow-file-access-from-files", "--hide-scrollbars", "--virtual-time-budget=5000",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", *extra, page.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"{cmd}\n{proc.stderr[-3000:]}"
    return proc.stdout


def test_images_load_in_chromium(tmp_path):
    exe = _chromium()
    out = tmp_path / "fit"
    page = _report(out)
    dom = _chromium_run(exe, tmp_path, page, "--dump-dom")
    assert 'data-images-loaded="3/3"' in dom, dom[:2000]

    shot = tmp_path / "report.png"
    _chromium_run(exe, tmp_path, page, f"--screenshot={shot}", "--window-size=1280,2000")
    assert shot.is_file()
    from PIL import Image

    with Image.open(shot) as im:
        pixels = np.asarray(im.convert("RGB"))
    assert pixels.shape[:2] == (2000, 1280)
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50, "screenshot is (nearly) one flat colour"

    # the check is real: a corrupt image is counted as not loaded
    (out / "images" / "diff.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    dom = _chromium_run(exe, tmp_path, page, "--dump-dom")
    assert 'data-images-loaded="2/3"' in dom, dom[:2000]


def test_a_saved_sequence_shows_as_a_strip_and_downloads(tmp_path):
    import torch

    from lumigrad.app.report import save_sequence, sequence_figures
    from lumigrad.app.report_html import write_html_report

    assert sequence_figures(tmp_path) == ([], [])
    frames = torch.rand(4, 6, 8, 3)
    written = save_sequence(tmp_path, frames, fps=5)
    assert written == ["images/sequence.png", "assets/sequence.gif"]
    figures, assets = sequence_figures(tmp_path)
    assert [f.path for f in figures] == ["images/sequence.png"] and assets == ["assets/sequence.gif"]
    page = write_html_report(tmp_path, title="t", summary="", metrics={}, figures=figures, assets=assets)
    text = page.read_text()
    assert 'src="images/sequence.png"' in text and 'href="assets/sequence.gif"' in text
    assert 'class="wide"' in text  # a strip of 4 frames is wider than twice its height: a full row
