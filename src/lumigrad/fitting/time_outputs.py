"""What a fit over time adds to its output folder (:mod:`lumigrad.fitting.time_axis`)::

    OUT/images/over_time.png        rows: target, initial, final of the first view at each target time
    OUT/assets/over_time.gif        true | fitted animation of the first view, side by side (MP4 too with the
                                    video extra, lumigrad[video])
    OUT/assets/animation.glb        the scene file with the fitted animation (skinned joints' rotations and
                                    translations), when the scene is a skinned glTF

and to ``metrics.json``: the animation, the target times, ``keyframe_angle_error_deg_initial`` / ``_final``
(the mean angle between fitted and true keyframe rotations over every fitted rotation track: keys that no
target time reaches keep their error) and ``joint_angle_error_deg_initial`` / ``_final`` (the mean angle between
the fitted and the true joint rotations *at the target times*, what the targets show).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Dict, List, Tuple

import torch

from ..animation import sample_track
from ..app.report import save_image_grid
from ..app.report_html import Figure
from ..scene.params import KEYFRAME_ROTATION
from .metrics import quaternion_angle_deg
from .outputs import as_shown

__all__ = ["joint_angle_error_deg", "time_metrics", "write_time_outputs"]

MAX_TIMES_SHOWN = 8
SEQUENCE_FRAMES = 24  # frames of the animation files, evenly over the animation
FPS = 12.0


def time_metrics(problem) -> Dict:
    """The time axis and the mean keyframe-rotation angle error (degrees) before and after the fit."""
    axis = problem.time_axis
    out: Dict = {"animation": axis.animation, "times": [round(float(t), 6) for t in axis.times]}
    rotations = _fitted_rotations(problem)
    if rotations:
        for when, values in (("initial", problem.initial_values), ("final", {n: problem.scene[n] for n in rotations})):
            angles = torch.cat([quaternion_angle_deg(values[n].detach(), problem.truth[n].detach()).flatten()
                                for n in rotations])
            out[f"keyframe_angle_error_deg_{when}"] = float(angles.mean())
            out[f"joint_angle_error_deg_{when}"] = joint_angle_error_deg(problem, values)
    return out


def joint_angle_error_deg(problem, values=None) -> float:
    """Mean angle (degrees) between the fitted and the true joint rotations at the target times, over every
    fitted keyframe-rotation track; ``values`` (``{name: keyframe values}``) replaces the scene's."""
    axis, angles = problem.time_axis, []
    for name in _fitted_rotations(problem):
        track, true = _track(problem.scene, name), _track(problem.truth, name)
        fitted = track if values is None else dataclasses.replace(track, values=values[name].detach())
        with torch.no_grad():
            angles.append(quaternion_angle_deg(sample_track(fitted, axis.times.to(track.times)),
                                               sample_track(true, axis.times.to(true.times))).flatten())
    return float(torch.cat(angles).mean()) if angles else math.nan


def _track(scene, name: str):
    """The keyframe track whose values are the parameter ``name`` (its owner is an animation)."""
    values = scene[name]
    return next(c.track for c in scene.param_info(name).obj.channels if c.track.values is values)


def _fitted_rotations(problem) -> List[str]:
    return [n for n in problem.optimised_names() if problem.scene.param_info(n).kind == KEYFRAME_ROTATION
            and problem.truth is not None and n in problem.truth]


def write_time_outputs(out: Path, problem, initial: torch.Tensor, final: torch.Tensor) -> Tuple[List[Figure], List[str]]:
    """Write the files of the module docstring; return the report's figures and the assets' relative paths."""
    axis = problem.time_axis
    T, N = len(axis.times), axis.views
    shown = torch.arange(min(T, MAX_TIMES_SHOWN)) * N  # pair index of the first view at each shown time
    rows = torch.cat([problem.targets[shown, ..., :3].cpu(), initial[shown, ..., :3].cpu(), final[shown, ..., :3].cpu()])
    save_image_grid(out / "images" / "over_time.png", as_shown(problem, rows), columns=len(shown))
    times = ", ".join(f"{float(t):.2f}" for t in axis.times[:len(shown)])
    figures = [Figure("Over time", "images/over_time.png",
                      f"Rows: target, initial, final of the first view at t = {times} s (animation "
                      f"{axis.animation!r}).")]
    assets = _animation_files(out, problem)
    glb = _export_animation(out / "assets" / "animation.glb", problem)
    if glb:
        assets.append("assets/animation.glb")
    return figures, assets


def _animation_files(out: Path, problem) -> List[str]:
    """``assets/over_time.gif`` (and ``.mp4`` with the video extra): true | fitted, first view."""
    from ..io.video import write_video

    axis = problem.time_axis
    duration = float(axis.times[-1])
    times = torch.linspace(0.0, duration, SEQUENCE_FRAMES, dtype=torch.float64) if duration > 0 else axis.times[:1]
    camera = problem.camera[torch.tensor([0])]
    frames = []
    with torch.no_grad():
        for t in times.tolist():
            pair = [problem.render_output(camera, scene=scene.at(t, axis.animation)).rgb[0, ..., :3]
                    for scene in (problem.truth, problem.scene) if scene is not None]
            frames.append(torch.cat(pair, 1).cpu())
    frames = torch.stack(frames)
    written = []
    for name in ("over_time.gif", "over_time.mp4"):
        try:
            write_video(out / "assets" / name, frames, FPS)
        except ImportError:  # MP4 needs imageio and imageio-ffmpeg (lumigrad[video]); the GIF is enough
            continue
        written.append(f"assets/{name}")
    return written


def _export_animation(path: Path, problem) -> bool:
    """The scene file with the fitted animation's joint rotations / translations sampled at every key time
    (:func:`lumigrad.io.write_gltf_animation`); ``False`` (nothing written) when the scene is not a skinned
    glTF or the animation drives no joint of its first skin (scale and morph-weight channels are not written)."""
    from ..io.gltf_animation_writer import write_gltf_animation

    source = problem.config.scene.file
    skeletons = [m.skeleton for m in problem.scene.meshes.values() if getattr(m, "skeleton", None) is not None]
    if source is None or source.suffix.lower() not in (".gltf", ".glb") or not skeletons:
        return False
    names = skeletons[0].names
    animation = problem.scene.animations[problem.time_axis.animation]
    keys = torch.unique(torch.cat([c.track.times.detach().double().cpu() for c in animation.channels]))
    rotations, joints, translations = [], [], {}
    for c in animation.channels:
        if c.target not in names:
            continue
        values = sample_track(c.track, keys.to(c.track.times)).detach().cpu().double()
        if c.path == "rotation":
            rotations.append(values)
            joints.append(names.index(c.target))
        elif c.path == "translation":
            translations[names.index(c.target)] = values
    if not rotations:
        return False
    try:
        write_gltf_animation(source, path, keys, torch.stack(rotations, 1), joints=joints,
                             translations=translations or None, name=animation.name,
                             trust_paths=problem.config.trust_paths)
    except ValueError:  # a joint outside the first skin, or keys glTF cannot hold
        return False
    return True
