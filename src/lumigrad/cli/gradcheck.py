"""``lumigrad gradcheck``: autograd vs finite differences for any named parameter of your own scene."""

from __future__ import annotations

from ._scene_setup import (add_integrator_arguments, add_scene_arguments, add_time_arguments, animation_time,
                           apply_pixel_filter, integrator_options, load_scene_and_camera)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "gradcheck",
        help="compare a scene parameter's gradient with finite differences of the rendered image",
        description=(
            "Load SCENE like `lumigrad render`, render loss = sum(w * image) with fixed random pixel weights w, "
            "and compare d loss / d PARAM from autograd with central differences for --samples entries of "
            "PARAM. PARAM is a scene parameter name such as lights.key.position or "
            "meshes.NAME.material.roughness_factor (--list prints them); --time T renders the scene posed at T "
            "seconds of an animation, so that its keyframe values (animations.NAME.TARGET.rotation ...) have "
            "gradients. The check renders in float64 where the scene allows, steps each entry by its own scale, "
            "checks the entries with the largest gradient and random ones, and two random directions over all "
            "entries. Exit code 0 when the gradients agree (cosine >= --tolerance, every entry and direction "
            "within --rtol), 1 when they do not; the worst entries are printed either way."
        ),
    )
    add_scene_arguments(p, default_size=48)
    p.add_argument("param", nargs="?", default=None, help="scene parameter name (see --list)")
    p.add_argument("--list", action="store_true", help="print the scene's parameter names and shapes, then exit")
    p.add_argument("--samples", type=int, default=8, help="entries of PARAM to check (default: 8)")
    p.add_argument("--eps", type=float, default=None,
                   help="finite-difference step relative to each entry's scale (default: 1e-5 in float64, 3e-3 "
                        "in float32)")
    p.add_argument("--tolerance", type=float, default=0.99, help="cosine similarity needed to pass (default: 0.99)")
    p.add_argument("--rtol", type=float, default=0.05,
                   help="largest relative error of an entry or a direction (default: 0.05)")
    p.add_argument("--precision", choices=("auto", "float64", "native"), default="auto",
                   help="render the check in float64 where the scene allows (auto, the default), always, or in "
                        "the scene's own dtype")
    p.add_argument("--seed", type=int, default=0, help="seed of the pixel weights and the entries (default: 0)")
    p.add_argument("--seeds", type=int, default=1,
                   help="with a Monte Carlo integrator: compare the means of this many independent estimates, each "
                        "within --rtol or 3 standard errors (where sampling depends on PARAM, as a glossy lobe's on "
                        "roughness, one estimate's gradient is not the derivative of that estimate; default: 1)"),
    add_integrator_arguments(p, default_mc_spp=16)
    add_time_arguments(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from ..integrators.gradient_check import check_scene_gradient

    scene, camera = load_scene_and_camera(args)
    apply_pixel_filter(args, scene)
    if args.list:
        for name, value in scene.parameters().items():
            print(f"{name:<60s} {tuple(value.shape)}")
        return 0
    if args.param is None:
        raise ValueError("name the parameter to check (PARAM), or pass --list to see the names")
    spp, settings = integrator_options(args)
    when = animation_time(args, scene) or (None, None)
    result = check_scene_gradient(scene, camera, args.param, samples=args.samples, eps=args.eps, seed=args.seed,
                                  integrator=args.integrator, spp=spp, time=when[0], animation=when[1],
                                  precision=args.precision, rtol=args.rtol, cosine_tol=args.tolerance, seeds=args.seeds,
                                  **settings)
    over = f", means of {result.seeds} seeds" if result.seeds > 1 else ""
    print(f"{args.param}: {len(result.indices)} entries and 2 random directions, {camera.width} x {camera.height} "
          f"image, {result.precision}{over}; worst first:")
    print(result.table(worst=8))
    verdict = "agree" if result.passed else "DISAGREE: " + "; ".join(result.reasons())
    print(f"cosine similarity {result.cosine:.6f}, largest relative error {result.max_relative_error:.2e}: {verdict}")
    if not result.passed and result.seeds == 1 and args.integrator != "raster":
        print("(a Monte Carlo estimate: where sampling depends on the parameter, its gradient and the differences of "
              "one estimate differ by more than rounding; --seeds 16 compares means over independent seeds)")
    return 0 if result.passed else 1
