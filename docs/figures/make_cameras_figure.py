"""Draw docs/figures/cameras.png: lumigrad's camera convention and a straight-edged scene seen through a lens.

    .venv/bin/python docs/figures/make_cameras_figure.py
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import lumigrad as lg  # noqa: E402

OUT = Path(__file__).resolve().parent / "cameras.png"
COEFFS = [-0.25, 0.06, 0.0, 0.0, 0.0]


def grid_scene():
    """A 10 x 8 board of alternating squares on the plane z = 3 (camera frame = world frame)."""
    verts, faces, colors = [], [], []
    for i in range(-5, 5):
        for j in range(-4, 4):
            base = len(verts)
            x0, y0 = i * 0.5, j * 0.5
            verts += [[x0, y0, 3.0], [x0 + 0.5, y0, 3.0], [x0 + 0.5, y0 + 0.5, 3.0], [x0, y0 + 0.5, 3.0]]
            faces += [[base, base + 2, base + 1], [base, base + 3, base + 2]]
            c = 0.85 if (i + j) % 2 else 0.25
            colors += [[c, c, c]] * 4
    return torch.tensor(verts), torch.tensor(faces), torch.tensor(colors)


def main():
    verts, faces, colors = grid_scene()
    K = torch.tensor([[150.0, 0.0, 160.0], [0.0, 150.0, 120.0], [0.0, 0.0, 1.0]])
    pinhole = lg.Camera(K=K, world_to_cam=torch.eye(4), width=320, height=240)
    lens = lg.Camera(K=K, world_to_cam=torch.eye(4), width=320, height=240, distortion=torch.tensor(COEFFS))

    def draw(cam):
        frags = lg.rasterize(verts, faces, cam)
        return lg.antialias(lg.interpolate(colors, frags, faces), frags, verts, faces, cam)

    with torch.no_grad():
        straight = draw(pinhole)
        bent = lg.render_through_lens(draw, lens, supersample=2.0, samples=2)
        # The model's prediction for one board line (x = 1.5 on the board): Camera.project applies it.
        y = torch.linspace(-2.0, 2.0, 200)
        line = torch.stack([torch.full_like(y, 1.5), y, torch.full_like(y, 3.0)], -1)
        uv, _ = lens.project(line)

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    ax = axes[0]
    ax.set_title("camera frame and pixels (OpenCV)")
    ax.set_xlim(-0.2, 4.2)
    ax.set_ylim(3.2, -0.2)  # y down
    for r in range(4):
        for c in range(5):
            ax.add_patch(plt.Rectangle((c * 0.8, r * 0.8), 0.8, 0.8, fill=False, lw=0.6, color="0.6"))
    ax.plot([0.4], [0.4], "o", color="C3")
    ax.annotate("pixel (row 0, col 0)\ncentre at (0.5, 0.5)", (0.4, 0.4), (1.2, 1.5), fontsize=8,
                arrowprops=dict(arrowstyle="->", lw=0.8))
    ax.annotate("", (1.6, 0.0), (0.0, 0.0), arrowprops=dict(arrowstyle="->", color="C0", lw=2))
    ax.annotate("", (0.0, 1.6), (0.0, 0.0), arrowprops=dict(arrowstyle="->", color="C2", lw=2))
    ax.text(1.65, 0.1, "+x, u", color="C0")
    ax.text(0.05, 1.75, "+y, v", color="C2")
    ax.text(2.2, 2.9, "+z: into the image (forward)\nx_cam = R x_world + t\nu = fx x/z + s y/z + cx", fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    axes[1].imshow(straight.clamp(0, 1).numpy())
    axes[1].set_title("pinhole: straight 3D lines stay straight")
    axes[2].imshow(bent.clamp(0, 1).numpy())
    axes[2].plot(uv[:, 0].numpy() - 0.5, uv[:, 1].numpy() - 0.5, "--", color="C3", lw=1.2,
                 label="Camera.project of the line x = 1.5")
    axes[2].set_title(f"render_through_lens, k1={COEFFS[0]}, k2={COEFFS[1]}")
    axes[2].legend(loc="lower left", fontsize=7)
    for ax in axes[1:]:
        ax.set_xlim(0, 320)
        ax.set_ylim(240, 0)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(OUT, dpi=90)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
