"""Self-calibration by rendering: recover the focal length and radial distortion (k1, k2) of a camera.

A known textured scene (the Spot cow in front of a textured backdrop) is photographed by a camera with
barrel distortion from three known viewpoints, as on a calibration bench (a turntable or a robot arm gives
the poses; ``examples/04_bundle_adjustment.py`` solves poses and intrinsics together). Starting from a focal
length 8% off and no distortion, Levenberg-Marquardt on the image residuals recovers f, k1 and k2; its
gradient is back-propagated through ``lumigrad.render_through_lens``, which applies the distortion per
pixel, so the gradients of k1 and k2 come from where the image really bends. Every trial lens goes through
the fold-safe ``lens`` map of ``lumigrad fit`` (a step that would fold the lens inside the image is scaled back
towards no distortion, instead of failing the render); ``--no-lens-map`` shows the bare solver, which has to
shrink such steps by trial and error.

    python examples/03_self_calibration.py --out calib-out
"""

import argparse
import math
from pathlib import Path

import torch

import lumigrad as lg
from lumigrad.fitting.parameterize import make_parameterization

TRUE_K1, TRUE_K2 = -0.15, 0.04


def calibration_scene(texture_size=256):
    """Spot plus a textured backdrop behind it, sharing one texture atlas (cow left, backdrop right)."""
    spot = lg.data.load_spot()
    cow = torch.nn.functional.interpolate(spot.texture[..., :3].permute(2, 0, 1)[None], size=(texture_size,) * 2,
                                          mode="area")[0].permute(1, 2, 0)
    board = backdrop_texture(texture_size)
    atlas = torch.cat([cow, board], 1)  # [T, 2T, 3]
    quad = torch.tensor([[-1.5, -1.1, -1.0], [1.5, -1.1, -1.0], [1.5, 1.3, -1.0], [-1.5, 1.3, -1.0]])
    verts = torch.cat([spot.verts, quad])
    n, m = spot.verts.shape[0], spot.uv.shape[0]
    faces = torch.cat([spot.faces, torch.tensor([[n, n + 1, n + 2], [n, n + 2, n + 3]])])
    uv = torch.cat([spot.uv * torch.tensor([0.5, 1.0]),
                    torch.tensor([[0.5, 1.0], [1.0, 1.0], [1.0, 0.0], [0.5, 0.0]])])
    uv_faces = torch.cat([spot.uv_faces, torch.tensor([[m, m + 1, m + 2], [m, m + 2, m + 3]])])
    return verts, faces, uv, uv_faces, atlas


def backdrop_texture(size, seed=7):
    """A non-periodic colour pattern (smooth blobs at two scales): features everywhere, no repeats for the
    fit to lock onto at the wrong period, as a checkerboard would."""
    gen = torch.Generator().manual_seed(seed)
    layers = []
    for cells in (4, 12):
        noise = torch.rand(1, 3, cells, cells, generator=gen)
        layers.append(torch.nn.functional.interpolate(noise, size=(size, size), mode="bicubic", align_corners=True))
    return (0.6 * layers[0] + 0.4 * layers[1])[0].permute(1, 2, 0).clamp(0.05, 0.95)


def true_cameras(size):
    """Three viewpoints in front of the backdrop and the true intrinsics (focal, k1, k2)."""
    eyes = torch.tensor([[0.4, 0.35, 2.4], [-0.9, 0.2, 2.2], [1.0, 0.6, 2.1]])
    w2c = lg.cameras.look_at(eyes, torch.tensor([0.0, 0.1, -0.2]).expand(3, 3), torch.tensor([0.0, 1.0, 0.0]))
    focal = 0.8 * size
    return w2c, focal, torch.tensor([TRUE_K1, TRUE_K2])


def make_cameras(size, focal, k12, w2c):
    zero = focal * 0
    K = torch.stack([torch.stack([focal, zero, zero + size / 2]), torch.stack([zero, focal, zero + size / 2]),
                     torch.tensor([0.0, 0.0, 1.0])])
    dist = torch.cat([k12, torch.zeros(3)])
    return lg.Camera(K=K, world_to_cam=w2c, width=size, height=size, distortion=dist)


def fold_safe(size, focal, k12, w2c):
    """``k12`` projected into the lenses that do not fold inside the image, by the ``lens`` map of ``lumigrad
    fit``: unchanged when the lens is valid, else its radial terms scaled towards 0 just enough."""
    scene = lg.Scene()
    scene.add_camera("views", make_cameras(size, focal, k12, w2c))
    name = "cameras.views.distortion"
    lens = make_parameterization("lens", [name], scene[name], "lens", info=scene.param_info(name))
    return lens.apply(scene).detach()[:2]


def render(scene, cams, supersample=1.0, samples=1):
    verts, faces, uv, uv_faces, tex = scene

    def draw(c):
        frags = lg.rasterize(verts, faces, c)
        rgb = lg.texture(tex, lg.interpolate(uv, frags, uv_faces), mask=frags.mask)
        return lg.antialias(rgb, frags, verts, faces, c)

    return lg.render_through_lens(draw, cams, supersample=supersample, samples=samples)


def blur(images, sigma):
    """Separable Gaussian blur of ``[N, H, W, C]`` images (coarse-to-fine stages)."""
    if sigma <= 0:
        return images
    radius = max(1, int(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=images.dtype)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = k / k.sum()
    n, h, w, c = images.shape
    img = images.permute(0, 3, 1, 2).reshape(n * c, 1, h, w)
    img = torch.nn.functional.conv2d(torch.nn.functional.pad(img, (radius, radius, 0, 0), mode="replicate"),
                                     k.view(1, 1, 1, -1))
    img = torch.nn.functional.conv2d(torch.nn.functional.pad(img, (0, 0, radius, radius), mode="replicate"),
                                     k.view(1, 1, -1, 1))
    return img.reshape(n, c, h, w).permute(0, 2, 3, 1)


def solve_intrinsics(scene, target, w2c, size, focal_true, start_scale, iterations, progress=None, lens_map=True):
    """Levenberg-Marquardt on ``x = (log f / f_true, k1, k2)`` over the image residuals.

    The gradient ``J^T r`` comes from back-propagation through the renderer. The curvature ``J^T J`` of
    these three strongly coupled unknowns (focal length and both radial terms all move the image border)
    comes from six extra renders, one central difference per unknown: plain gradient descent crawls along
    the k1-k2 valley for hundreds of steps, this takes a few dozen renders. Images are blurred first
    (coarse to fine) so that the start may be several pixels off at the border. With ``lens_map`` each trial's
    k1, k2 go through :func:`fold_safe` first.
    """
    x = torch.tensor([math.log(start_scale), 0.0, 0.0])

    def image(x):
        return render(scene, make_cameras(size, focal_true * x[0].exp(), x[1:], w2c))

    lam, history, projected = 0.1, [], 0
    for it in range(iterations):
        sigma = max(0.0, 2.0 * (1 - it / 6))
        xg = x.clone().requires_grad_(True)
        residual = (blur(image(xg), sigma) - blur(target, sigma)).reshape(-1)
        loss = 0.5 * (residual ** 2).sum()
        (grad,) = torch.autograd.grad(loss, xg)  # J^T r, analytic
        with torch.no_grad():
            columns = []
            for i, h in enumerate((1e-3, 2e-3, 2e-3)):
                e = torch.zeros(3)
                e[i] = h
                columns.append((blur(image(x + e), sigma) - blur(image(x - e), sigma)).reshape(-1) / (2 * h))
            J = torch.stack(columns, 1)
            H = J.T @ J
            while lam < 1e8:
                step = -torch.linalg.solve(H + lam * torch.diag(torch.diag(H)), grad)
                if lens_map:  # the step to the nearest lens that does not fold
                    trial_x = x + step
                    trial_x[1:] = fold_safe(size, focal_true * trial_x[0].exp(), trial_x[1:], w2c)
                    projected += not torch.equal(trial_x, x + step)
                    step = trial_x - x
                try:
                    trial = (blur(image(x + step), sigma) - blur(target, sigma)).reshape(-1)
                except ValueError:  # the trial lens folds inside the image: shorten the step
                    lam *= 10
                    continue
                if 0.5 * float((trial ** 2).sum()) < float(loss):
                    x, lam = x + step, max(lam / 3, 1e-6)
                    break
                lam *= 10
        history.append((it, sigma, float(loss.detach()) / residual.numel() * 2, float(x[0].exp()) - 1, float(x[1]), float(x[2])))
        if progress:
            progress(history[-1])
        if sigma == 0 and float(step.abs().max()) < 1e-5:
            break
    return x, history, projected


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=25)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--start-focal-error", type=float, default=0.08, help="relative focal error at the start")
    parser.add_argument("--out", type=Path, default=None, help="folder for target / initial / final images")
    parser.add_argument("--lens-map", action=argparse.BooleanOptionalAction, default=True,
                        help="trial lenses through the fold-safe 'lens' map (default: on)")
    args = parser.parse_args(argv)

    scene = calibration_scene()
    w2c, focal_true, k_true = true_cameras(args.size)
    with torch.no_grad():
        target = render(scene, make_cameras(args.size, torch.tensor(focal_true), k_true, w2c))
        initial = render(scene, make_cameras(args.size, torch.tensor(focal_true * (1 + args.start_focal_error)),
                                             torch.zeros(2), w2c))
    x, history, projected = solve_intrinsics(scene, target, w2c, args.size, focal_true, 1 + args.start_focal_error,
                                  args.iterations, lens_map=args.lens_map)
    with torch.no_grad():
        final = render(scene, make_cameras(args.size, focal_true * x[0].exp(), x[1:], w2c))
    metrics = {
        "focal_error_pct": 100 * abs(float(x[0].exp()) - 1),
        "k1_error": abs(float(x[1]) - TRUE_K1),
        "k2_error": abs(float(x[2]) - TRUE_K2),
        "initial_focal_error_pct": 100 * args.start_focal_error,
        "iterations": len(history),
        "folding_steps_projected": projected,
        "image_psnr_db": float(-10 * torch.log10(((final - target) ** 2).mean().clamp_min(1e-20))),
    }
    print(f"{'iter':>4} {'blur px':>7} {'mse':>9} {'focal err':>9} {'k1':>8} {'k2':>8}")
    for it, sigma, mse, ferr, k1, k2 in history:
        print(f"{it:>4} {sigma:>7.2f} {mse:>9.2e} {100 * ferr:>8.3f}% {k1:>8.4f} {k2:>8.4f}")
    print(f"true k1 {TRUE_K1}, k2 {TRUE_K2}; " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
    if args.out is not None:
        from lumigrad.app.report import save_image_grid

        args.out.mkdir(parents=True, exist_ok=True)
        save_image_grid(args.out / "target_initial_final.png", torch.cat([target, initial, final]), columns=3)
        save_image_grid(args.out / "error_initial_final.png",
                        (torch.cat([(initial - target).abs(), (final - target).abs()]) * 4).clamp(0, 1), columns=3)
        print(f"images written to {args.out}")
    return metrics


if __name__ == "__main__":
    main()
