"""On CUDA a frame's checks add no host sync: ``lumigrad.render`` forward + backward waits for the GPU only
where the pipeline must read a size back (the visibility kernel's tile count, which carries the frame's value
checks, and the compactions of covered pixels and silhouette edges). Counted with
``torch.cuda.set_sync_debug_mode``; ``benchmarks/frame_reads.py`` prints the same count with its sites."""

import collections
import traceback
import warnings

import pytest
import torch

import lumigrad as lg

pytestmark = pytest.mark.cuda

#: Syncs of one frame of the scene below, forward and backward, as measured on an H200 (2026-12-04).
FRAME_SYNCS = 6


def _site() -> str:
    for frame in reversed(traceback.extract_stack()[:-2]):
        if "/lumigrad/" in frame.filename:
            return f"{frame.filename.split('/lumigrad/')[-1]}:{frame.lineno} {frame.name}"
    return "(outside lumigrad)"


def _frame_syncs(frame) -> collections.Counter:
    sites = collections.Counter()
    original = warnings.showwarning

    def record(message, category, filename, lineno, file=None, line=None):
        if "synchroniz" in str(message):
            sites[_site()] += 1

    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = record
            frame()
    finally:
        torch.cuda.set_sync_debug_mode("default")
        warnings.showwarning = original
    return sites


def test_a_frame_syncs_only_where_the_pipeline_reads_sizes(spot):
    spot = spot.to("cuda")
    verts = spot.verts.detach().clone().requires_grad_(True)
    scene = lg.Scene()
    scene.add_mesh("spot", lg.SceneMesh(verts, spot.faces, lg.shading.Material(base_color_texture=spot.texture),
                                        uv=spot.uv, uv_faces=spot.uv_faces))
    scene.add_light("key", lg.PointLight(torch.tensor([2.0, 2.0, 2.0], device="cuda"), 8.0))
    cam = lg.Camera.look_at([2.0, 0.5, 2.0], [0.0, 0.1, 0.0], fov_y=0.7, width=128, height=128).to("cuda")

    def frame():
        verts.grad = None
        lg.render(scene, cam).rgb.mean().backward()

    frame()  # the first frame checks the index tables and remembers them
    sites = _frame_syncs(frame)
    report = "\n".join(f"{n} x {site}" for site, n in sites.most_common())
    assert not [s for s in sites if "_checks.py" in s or " check" in s], report
    assert sum(sites.values()) <= FRAME_SYNCS, report
    assert torch.isfinite(verts.grad).all()
