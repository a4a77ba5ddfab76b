"""Host syncs of one frame: how often ``lumigrad.render`` (forward + backward) waits for the device.

On CUDA every read of a value on the device (``.item()``, ``.tolist()``, ``bool(t)``, ``nonzero``, boolean
indexing) is a host sync: the CPU stops queueing work until the GPU catches up, so a frame's syncs bound how
fast small scenes render. This script counts them (:func:`lumigrad.app.host_syncs.count_host_syncs`: the
real syncs on CUDA, the same operations as they pass PyTorch's dispatcher on the CPU) and names where each
comes from. It also times the frame (median of ``--repeats`` after a warm-up) and prints the peak memory on
CUDA. The counter lives in the tree under test, so to compare two trees run this tree's script on both::

    python benchmarks/frame_syncs.py --device cuda
    PYTHONPATH=/path/to/old/src python benchmarks/frame_syncs.py ...  # old library, this counter

The scene is ``lumigrad bench scene``'s: the embedded Spot cow with its texture as base colour and one point
light, kept across frames as a fitting loop keeps it (its vertices require gradients).
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

import torch

try:
    from lumigrad.app.host_syncs import count_host_syncs
except ImportError:  # an older lumigrad under test: this tree's counter (it imports nothing of lumigrad)
    _path = Path(__file__).resolve().parents[1] / "src" / "lumigrad" / "app" / "host_syncs.py"
    _spec = importlib.util.spec_from_file_location("_host_syncs", _path)
    _module = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_module)
    count_host_syncs = _module.count_host_syncs


def _scene(device, size):
    import lumigrad as lg

    spot = lg.data.load_spot().to(device)
    verts = spot.verts.detach().clone().requires_grad_(True)
    scene = lg.Scene()
    scene.add_mesh("spot", lg.SceneMesh(verts, spot.faces, lg.shading.Material(base_color_texture=spot.texture),
                                        uv=spot.uv, uv_faces=spot.uv_faces))
    scene.add_light("key", lg.PointLight(torch.tensor([2.0, 2.0, 2.0], device=device), 8.0))
    cam = lg.Camera.look_at([2.0, 0.5, 2.0], [0.0, 0.1, 0.0], fov_y=0.7, width=size, height=size).to(device)
    return scene, cam, verts


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--size", type=int, nargs="+", default=[256])
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args()
    import lumigrad as lg

    device = torch.device(args.device)
    print(f"lumigrad {lg.__version__} from {lg.__file__.rsplit('/lumigrad/', 1)[0]} | torch {torch.__version__} | "
          f"{device}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else
                         f" ({torch.get_num_threads()} threads)"))
    print("| size | host syncs fwd+bwd | median ms fwd+bwd | min ms | peak MiB |")
    print("|---|---|---|---|---|")
    all_sites = {}
    for size in args.size:
        scene, cam, verts = _scene(device, size)

        def frame():
            verts.grad = None
            lg.render(scene, cam).rgb.mean().backward()

        frame()
        sites = count_host_syncs(frame, device)
        all_sites[size] = sites
        times = []
        for _ in range(args.repeats):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            frame()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append((time.perf_counter() - t0) * 1e3)
        peak = float("nan")
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
            frame()
            peak = (torch.cuda.max_memory_allocated(device) - base) / 2 ** 20
        times.sort()
        print(f"| {size} | {sum(sites.values())} | {times[len(times) // 2]:.2f} | {times[0]:.2f} | {peak:.1f} |")
    for size, sites in all_sites.items():
        print(f"\nhost syncs of one frame at {size}^2, by site:")
        for site, n in sites.most_common():
            print(f"  {n:3d}  {site}")


if __name__ == "__main__":
    main()
