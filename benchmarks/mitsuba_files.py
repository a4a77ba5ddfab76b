"""Mitsuba 3 scene files rendered by Mitsuba and by lumigrad from the same file: how close, and how fast.

Each case is one small XML scene (a sphere on a diffuse floor under a small area lamp and a constant sky, seen by a
``--size``^2 perspective sensor, Mitsuba's ``path`` integrator to depth 6 and its default gaussian film filter)
whose sphere carries the BSDF under test (or whose lamp is a ``spot``): Mitsuba renders it with
``--mitsuba-spp`` samples (``mi.render``), lumigrad loads it with ``lumigrad.io.load`` and renders it with
``lumigrad.io.mitsuba_render_settings`` (the file's sensor, integrator, depth and filter) at ``--spp``. Printed:
the relative RMSE per pixel (``sqrt(mean((a - b)^2)) / mean(b)``), the same after averaging 4 x 4 pixel blocks
(which removes most of lumigrad's per-pixel noise), the ratio of the mean pixels, and the median seconds of
``--repeats`` renders by each at ``--spp`` (after a warm-up; Mitsuba's JIT compiles on the first).

Prints a markdown table; ``main(argv)`` returns its rows (the smoke test's). Needs Mitsuba 3
(``bash benchmarks/setup_mitsuba.sh``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

import lumigrad as lg
from lumigrad.app.benchmarking import median, time_call

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _mitsuba_peer as peer  # noqa: E402

#: The sphere's BSDF of each case (``None``: a diffuse sphere, the lamp a ``spot`` light instead).
CASES = {
    "diffuse": '<bsdf type="diffuse"><rgb name="reflectance" value="0.6, 0.3, 0.2"/></bsdf>',
    "roughconductor": '<bsdf type="roughconductor"><float name="alpha" value="0.3"/></bsdf>',
    "roughconductor-Au": '<bsdf type="roughconductor"><string name="material" value="Au"/>'
                         '<float name="alpha" value="0.3"/></bsdf>',
    "roughconductor-ggx": '<bsdf type="roughconductor"><string name="distribution" value="ggx"/>'
                          '<float name="alpha" value="0.3"/></bsdf>',
    "roughconductor-Cr": '<bsdf type="roughconductor"><string name="material" value="Cr"/>'
                         '<string name="distribution" value="ggx"/><float name="alpha" value="0.1"/></bsdf>',
    "roughplastic": '<bsdf type="roughplastic"><rgb name="diffuse_reflectance" value="0.6, 0.3, 0.2"/>'
                    '<float name="alpha" value="0.2"/></bsdf>',
    "plastic": '<bsdf type="plastic"><rgb name="diffuse_reflectance" value="0.6, 0.3, 0.2"/></bsdf>',
    "roughdielectric": '<bsdf type="roughdielectric"><float name="alpha" value="0.2"/></bsdf>',
    "thindielectric": '<bsdf type="thindielectric"/>',
    "principled": '<bsdf type="principled"><rgb name="base_color" value="0.6, 0.3, 0.2"/>'
                  '<float name="roughness" value="0.5"/></bsdf>',
    "principled-metal": '<bsdf type="principled"><rgb name="base_color" value="0.9, 0.7, 0.5"/>'
                        '<float name="metallic" value="1"/><float name="roughness" value="0.4"/></bsdf>',
    "principled-lobes": '<bsdf type="principled"><rgb name="base_color" value="0.6, 0.3, 0.2"/>'
                        '<float name="roughness" value="0.5"/><float name="metallic" value="0.2"/>'
                        '<float name="spec_tint" value="0.4"/><float name="sheen" value="0.7"/>'
                        '<float name="sheen_tint" value="0.5"/><float name="clearcoat" value="0.8"/>'
                        '<float name="clearcoat_gloss" value="0.6"/><float name="flatness" value="0.3"/></bsdf>',
    "roughconductor-aniso": '<bsdf type="roughconductor"><string name="material" value="Al"/>'
                            '<string name="distribution" value="ggx"/><float name="alpha_u" value="0.05"/>'
                            '<float name="alpha_v" value="0.35"/></bsdf>',
    "principled-aniso": '<bsdf type="principled"><rgb name="base_color" value="0.9, 0.6, 0.3"/>'
                        '<float name="roughness" value="0.4"/><float name="metallic" value="0.8"/>'
                        '<float name="anisotropic" value="0.8"/></bsdf>',
    "roughdielectric-aniso": '<bsdf type="roughdielectric"><string name="distribution" value="ggx"/>'
                             '<float name="alpha_u" value="0.35"/><float name="alpha_v" value="0.03"/></bsdf>',
    "principled-glass": '<bsdf type="principled"><rgb name="base_color" value="0.5, 0.8, 0.6"/>'
                        '<float name="roughness" value="0.3"/><float name="spec_trans" value="1"/></bsdf>',
    "spot": None,
}

_LAMP = ('<shape type="rectangle"><transform name="to_world"><scale value="0.4"/><rotate x="1" angle="90"/>'
         '<translate x="0.8" y="2" z="-0.5"/></transform><emitter type="area"><rgb name="radiance" value="15"/>'
         '</emitter></shape>')
_SPOT = ('<emitter type="spot"><rgb name="intensity" value="12"/><float name="cutoff_angle" value="25"/>'
         '<float name="beam_width" value="12"/><transform name="to_world"><lookat origin="0.8, 2.2, -0.6" '
         'target="0, 0.3, 0" up="0, 1, 0"/></transform></emitter>')


def scene_xml(case: str, size: int, spp: int) -> str:
    """The XML text of case ``case``."""
    bsdf = CASES[case] or CASES["diffuse"]
    return f'''<?xml version="1.0"?>
<scene version="3.0.0">
<integrator type="path"><integer name="max_depth" value="6"/></integrator>
<sensor type="perspective"><float name="fov" value="35"/>
 <transform name="to_world"><lookat origin="0, 1.2, -3.5" target="0, 0.4, 0" up="0, 1, 0"/></transform>
 <sampler type="independent"><integer name="sample_count" value="{spp}"/></sampler>
 <film type="hdrfilm"><integer name="width" value="{size}"/><integer name="height" value="{size}"/></film></sensor>
<emitter type="constant"><rgb name="radiance" value="0.3"/></emitter>
{_SPOT if CASES[case] is None else _LAMP}
<shape type="rectangle"><transform name="to_world"><scale value="3"/><rotate x="1" angle="-90"/></transform>
 <bsdf type="diffuse"><rgb name="reflectance" value="0.5"/></bsdf></shape>
<shape type="sphere"><point name="center" x="0" y="0.5" z="0"/><float name="radius" value="0.5"/>{bsdf}</shape>
</scene>'''


def _rrmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)) / np.mean(b))


def _blocks(img: np.ndarray, k: int) -> np.ndarray:
    H, W, C = img.shape
    return img[:H // k * k, :W // k * k].reshape(H // k, k, W // k, k, C).mean((1, 3))


def run_case(mi, folder: Path, case: str, size: int, spp: int, mitsuba_spp: int, repeats: int) -> dict:
    path = folder / f"{case}.xml"
    path.write_text(scene_xml(case, size, mitsuba_spp))
    mscene = mi.load_file(str(path))
    ref = np.array(mi.render(mscene, seed=0), dtype=np.float64)[..., :3]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", lg.io.MitsubaXmlWarning)
        scene = lg.io.load(path, sphere_subdivisions=5)
    settings = {**lg.io.mitsuba_render_settings(scene), "spp": spp}

    def ours():
        with torch.no_grad():
            return lg.render(scene, **settings).rgb

    image = ours().double().numpy()
    seconds = median(time_call(ours, repeats, warmup=0))
    theirs = median(peer._timed(lambda: peer._sync(mi.render(mscene, spp=spp, seed=1)), repeats))
    material = list(scene.meshes.values())[-1].material  # the sphere's
    return dict(case=case, rrmse=_rrmse(image, ref), rrmse_blocks=_rrmse(_blocks(image, 4), _blocks(ref, 4)),
                mean_ratio=float(image.mean() / ref.mean()), seconds=seconds, mitsuba_seconds=theirs,
                microfacet=getattr(material, "microfacet", "-"))


def main(argv=None) -> list:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--spp", type=int, default=1024)
    p.add_argument("--mitsuba-spp", type=int, default=8192)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    args = p.parse_args(argv)
    mi = peer.mitsuba_or_report()
    if mi is None:
        return []
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run_case(mi, Path(tmp), c, args.size, args.spp, args.mitsuba_spp, args.repeats) for c in args.cases]
    print(f"lumigrad {lg.__version__} | torch {torch.__version__} | {torch.get_num_threads()} threads | Mitsuba "
          f"{mi.__version__} (llvm_ad_rgb) | {args.size}^2, lumigrad {args.spp} spp against Mitsuba "
          f"{args.mitsuba_spp} spp")
    print("| case | rrmse per pixel | rrmse 4 x 4 blocks | mean ratio | lumigrad s | Mitsuba s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['case']} | {r['rrmse']:.4f} | {r['rrmse_blocks']:.4f} | {r['mean_ratio']:.4f} | "
              f"{r['seconds']:.3f} | {r['mitsuba_seconds']:.3f} |")
    return rows


if __name__ == "__main__":
    main()
