"""Benchmark: linear blend and dual quaternion skinning throughput, forward and forward+backward.

Meshes: CesiumMan (3,273 vertices, 19 joints, 4 influences, from ``shared/data``) and a synthetic 100k-vertex,
64-joint mesh (random binding, 4 influences). Each row poses the mesh with random local joint rotations:
forward = ``forward_kinematics -> skin_matrices -> skinning``; forward+backward adds the gradient w.r.t. the joint
rotations (axis-angle), the skin weights and the bind-pose vertices. Throughput is vertices x joints per
second (the size of the dense blend), from the median of ``--repeats`` runs; the memory column is the peak
RSS growth of one forward+backward run (``lumigrad.app.benchmarking.peak_memory``; CPU) or CUDA peak
allocation.

    python benchmarks/skinning.py
    python benchmarks/skinning.py --repeats 3 --device cuda
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

import lumigrad as lg
from lumigrad.animation import (axis_angle_to_matrix, dual_quaternion_skinning, forward_kinematics,
                                linear_blend_skinning, skin_matrices)
from lumigrad.app.benchmarking import cpu_model, format_table, median, peak_memory, time_call

CESIUM = Path(__file__).resolve().parents[2] / "shared" / "data" / "gltf-cesium-man" / "glTF" / "CesiumMan.gltf"


def cesium_man(device):
    scene = lg.io.load(CESIUM)
    mesh = next(iter(scene.meshes.values()))
    sk = mesh.skeleton.to(device=device)
    w = mesh.skin_weights / mesh.skin_weights.sum(-1, keepdim=True)
    return "CesiumMan", sk, mesh.verts.to(device), mesh.joints.to(device), w.to(device)


def synthetic(device, V=100_000, J=64, K=4):
    g = torch.Generator().manual_seed(0)
    sk = lg.animation.Skeleton([f"j{k}" for k in range(J)], torch.tensor([-1] + [(k - 1) // 2 for k in range(1, J)]),
                               torch.randn(J, 3, generator=g) * 0.2, torch.tensor([[1.0, 0, 0, 0]]).repeat(J, 1),
                               torch.ones(J, 3), torch.eye(4).repeat(J, 1, 1))
    sk.inverse_bind = torch.linalg.inv(forward_kinematics(sk))
    joints = torch.randint(0, J, (V, K), generator=g)
    w = torch.rand(V, K, generator=g)
    return f"synthetic {V // 1000}k", sk.to(device=device), torch.randn(V, 3, generator=g).to(device), \
        joints.to(device), (w / w.sum(-1, keepdim=True)).to(device)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    meshes = [synthetic(device)]
    if CESIUM.exists():
        meshes.insert(0, cesium_man(device))
    rows = []
    for name, sk, verts, joints, weights in meshes:
        V, J = verts.shape[0], sk.num_joints
        aa = (torch.randn(J, 3, generator=torch.Generator().manual_seed(1)) * 0.3).to(device)
        for method, skin in (("LBS", linear_blend_skinning), ("DQS", dual_quaternion_skinning)):
            def forward():
                with torch.no_grad():
                    return skin(verts, joints, weights, skin_matrices(sk, forward_kinematics(sk, axis_angle_to_matrix(aa))))

            def backward():
                a, w, v = aa.clone().requires_grad_(), weights.clone().requires_grad_(), verts.clone().requires_grad_()
                out = skin(v, joints, w, skin_matrices(sk, forward_kinematics(sk, axis_angle_to_matrix(a))))
                out.square().sum().backward()

            t_fwd = median(time_call(forward, args.repeats, sync=device))
            t_bwd = median(time_call(backward, args.repeats, sync=device))
            mem, exact = peak_memory(backward, device)
            rows.append({"mesh": name, "V": V, "J": J, "method": method, "fwd_ms": 1e3 * t_fwd,
                         "fwd_rate": V * J / t_fwd / 1e6, "bwd_ms": 1e3 * t_bwd, "bwd_rate": V * J / t_bwd / 1e6,
                         "mem": f"{mem:.1f}" + ("" if exact else " (>=)")})
    print(f"device {device} ({cpu_model() if device.type == 'cpu' else torch.cuda.get_device_name(device)}), "
          f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f}, "
          f"median of {args.repeats}")
    print(format_table(rows, ["mesh", "V", "J", "method", ("fwd_ms", "forward ms"),
                              ("fwd_rate", "forward M vert*joint/s"), ("bwd_ms", "fwd+bwd ms"),
                              ("bwd_rate", "fwd+bwd M vert*joint/s"), ("mem", "fwd+bwd peak MiB")], digits=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
