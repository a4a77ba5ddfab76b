"""Scene loading and camera choice shared by ``lumigrad render`` and ``lumigrad gradcheck``."""

from __future__ import annotations

import math
from pathlib import Path

from ._device import add_device_argument, resolve


def add_scene_arguments(p, default_size: int) -> None:
    p.add_argument("scene", type=Path, help="scene file: .gltf, .glb, .obj, .ply or a Mitsuba 3 .xml")
    p.add_argument("--camera", default=None,
                   help="name of a camera in the file (default: frame the scene; render: a Mitsuba file's first "
                        "sensor)")
    p.add_argument("--size", type=int, nargs=2, default=None, metavar=("W", "H"),
                   help=f"image size in pixels (default: {default_size} {default_size} for the framing camera; a "
                        "file camera's own size, which --size rescales)")
    p.set_defaults(default_size=(default_size, default_size))
    p.add_argument("--azimuth", type=float, default=30.0,
                   help="framing camera azimuth in degrees about +y, 0 looking at the front (+z, glTF's) "
                        "(default: 30)")
    p.add_argument("--elevation", type=float, default=20.0, help="framing camera elevation in degrees (default: 20)")
    p.add_argument("--fov", type=float, default=40.0, help="framing camera vertical field of view, degrees")
    p.add_argument("--env", type=Path, default=None, help="environment map (.hdr or .exr), shown and lighting")
    p.add_argument("--texture", type=Path, default=None, metavar="IMAGE",
                   help="base colour image (sRGB, as glTF's) for an OBJ / PLY mesh with texture coordinates, "
                        "as the fit's scene.texture")
    p.add_argument("--trust-paths", action="store_true",
                   help="let file names inside SCENE (OBJ mtllib/map_*, glTF URIs) be absolute or leave its "
                        "folder (default: confined to it)")
    add_device_argument(p)


def check_scene_arguments(args) -> None:
    """Refuse bad camera options (one line, exit 2 through ``cli/main.py``) before the scene file is read.

    ``--fov`` in (0, 180) degrees, finite ``--azimuth`` / ``--elevation``, a positive ``--size`` within the
    pixel budget (:mod:`lumigrad.limits`).
    """
    from ..limits import check_pixel_samples

    if not (math.isfinite(args.fov) and 0 < args.fov < 180):
        raise ValueError(f"--fov must be a vertical field of view in degrees in (0, 180), exclusive; got {args.fov:g}")
    for flag, value in (("--azimuth", args.azimuth), ("--elevation", args.elevation)):
        if not math.isfinite(value):
            raise ValueError(f"{flag} must be a finite number of degrees; got {value:g}")
    width, height = args.size if args.size is not None else args.default_size
    if width <= 0 or height <= 0:
        raise ValueError(f"--size must be positive; got {width} {height}")
    check_pixel_samples(width * height, f"--size {width} {height} is {width}x{height} pixels")


def load_scene_and_camera(args):
    """The scene of ``args.scene`` (a mesh file becomes a one-mesh scene) with lights, and the camera, both on
    ``--device``."""
    device = resolve(args)  # before the file is read: a missing CUDA is the first thing to say
    scene, camera = _scene_and_camera(args)
    return scene.to(device), camera.to(device)


def _scene_and_camera(args):
    import torch

    import lumigrad as lg

    from ..io.mitsuba_settings import mitsuba_sensors, sensor_pixel_filter

    check_scene_arguments(args)
    loaded = lg.io.load(args.scene, trust_paths=args.trust_paths)
    if getattr(args, "texture", None) is not None:
        loaded = _textured(loaded, args)
    scene = lg.scene.from_mesh.as_scene(loaded, str(args.scene))
    sensors = mitsuba_sensors(scene)
    as_mitsuba = getattr(args, "file_sensor", False)  # render: as Mitsuba would; gradcheck keeps its small default
    if args.camera is None and sensors and as_mitsuba:
        args.camera = next(iter(sensors))  # Mitsuba renders the file's first sensor
    if args.camera in sensors:  # the chosen sensor's film filter (the loader gives the scene the first's)
        try:
            scene.film.pixel_filter = sensor_pixel_filter(sensors[args.camera])
        except ValueError as exc:
            raise ValueError(f"{args.scene}: {exc}") from None
    if hasattr(args, "integrator"):
        _mitsuba_render_defaults(args, scene, sensors if as_mitsuba else {})
    if args.env is not None:
        scene.add_light("environment", lg.io.read_environment(args.env, size=(32, 64)))
    if not scene.lights:
        if getattr(args, "integrator", "raster") == "raster":
            sh = torch.zeros(9, 3)
            sh[0] = 0.25 * math.sqrt(4 * math.pi)  # a uniform sky of radiance 0.25
            scene.add_light("sky", lg.SHLight(sh))
        else:  # the same sky as an emitter a path tracer can sample (it shows behind the scene)
            scene.add_light("sky", lg.EnvironmentLight(torch.full((4, 8, 3), 0.25)))
        scene.add_light("key", lg.DirectionalLight([-0.4, -1.0, 0.6], 1.5))
    if args.camera is not None:
        if args.camera not in scene.cameras:
            raise ValueError(f"no camera named {args.camera!r} in {args.scene}; it has "
                             f"{', '.join(scene.cameras) or 'none'}")
        camera = scene.cameras[args.camera]
        return scene, camera if args.size is None else camera.resized(*args.size)
    return scene, _framing_camera(scene, args)


def _mitsuba_render_defaults(args, scene, sensors: dict) -> None:
    """Fill what the command line leaves out from a Mitsuba file, as Mitsuba would render it
    (:mod:`lumigrad.io.mitsuba_settings`): the integrator (raster for other files and files without one, the
    path tracer for a file without one whose sensors have a thin lens, which only it renders), its
    ``max_depth``, ``rr_depth`` and ``hide_emitters`` (kept in ``args.file_settings``) and, where ``sensors`` has
    the chosen camera, its ``sample_count`` as ``--spp``."""
    import sys

    from ..integrators import integrator_settings
    from ..io.mitsuba_settings import integrator_settings_of, mitsuba_integrator, sensor_sample_count

    name, integ, known_kind = mitsuba_integrator(scene)
    args.file_settings = {}
    if args.integrator is None:
        lens = any(camera.thin_lens for camera in scene.cameras.values())
        args.integrator = name or ("path" if lens else "raster")
        if not known_kind:
            print(f"lumigrad: {args.scene}'s integrator {integ.get('type')!r} is not one lumigrad has; using the path "
                  f"tracer (--integrator picks another)", file=sys.stderr)
    if integ is None or args.integrator not in ("path", "direct"):
        return
    try:
        known = set(integrator_settings(args.integrator)) - ({"max_depth"} if args.max_depth is not None else set())
        file_settings = integrator_settings_of(args.integrator, integ, known)
        if args.spp is None and args.camera in sensors:
            args.spp = sensor_sample_count(sensors[args.camera])
    except ValueError as exc:
        raise ValueError(f"{args.scene}: {exc} (the command line's option overrides it)") from None
    depth = file_settings.pop("max_depth", None)
    if args.max_depth is None and depth is not None:
        args.max_depth = depth
    args.file_settings = file_settings


def _textured(mesh, args):
    """``mesh`` (an OBJ / PLY mesh with texture coordinates) with ``--texture`` as its base colour."""
    import lumigrad as lg

    if isinstance(mesh, lg.Scene) or not hasattr(mesh, "faces"):
        raise ValueError(f"--texture is for an OBJ / PLY mesh; {args.scene} is a scene with its own materials")
    if getattr(mesh, "uv", None) is None:
        raise ValueError(f"--texture needs texture coordinates, and {args.scene} has none")
    if not isinstance(mesh, lg.Mesh):  # a PLY's record: per-vertex texture coordinates
        mesh = lg.Mesh(mesh.verts.float(), mesh.faces, mesh.uv.float(), mesh.uv_faces if mesh.uv_faces is not None
                       else mesh.faces)
    if not args.texture.is_file():
        raise ValueError(f"--texture {args.texture}: no such image file")
    mesh.texture = lg.io.read_image(args.texture)[..., :3]
    return mesh


def _framing_camera(scene, args):
    import torch

    import lumigrad as lg

    verts = scene.flatten().verts.detach().float()
    if verts.shape[0] == 0:
        raise ValueError(f"{args.scene}: the scene has no triangles to frame; pass --camera")
    lo, hi = verts.min(0).values, verts.max(0).values
    centre, radius = (lo + hi) / 2, float((hi - lo).norm()) / 2
    if radius == 0:
        raise ValueError(f"{args.scene}: the scene's geometry has no extent to frame")
    az, el = math.radians(args.azimuth), math.radians(args.elevation)
    distance = radius / math.sin(math.radians(args.fov) / 2) * 1.1
    # in front of the asset: glTF's front faces +z, so azimuth 0 puts the camera on the +z axis
    direction = torch.tensor([math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az)])
    width, height = args.size if args.size is not None else args.default_size
    if width <= 0 or height <= 0:
        raise ValueError(f"--size must be positive; got {width} {height}")
    return lg.Camera.look_at(centre + distance * direction, centre, fov_y=math.radians(args.fov), width=width,
                             height=height, near=max(1e-3, distance - 2 * radius), far=distance + 2 * radius)


def add_time_arguments(p) -> None:
    """``--time T`` and ``--animation NAME``: pose the scene at T seconds of one of its animations."""
    p.add_argument("--time", type=float, default=None, metavar="T",
                   help="animation time in seconds (default: the pose stored in the file, no animation)")
    p.add_argument("--animation", default=None, metavar="NAME",
                   help="which of the file's animations --time plays (default: the first)")


def animation_time(args, scene):
    """``(t, animation name or None)`` that ``--time`` / ``--animation`` ask for, or ``None`` for the scene's own
    pose; ValueError naming the option for a time that is not finite or an animation the scene lacks."""
    if args.time is not None and not math.isfinite(args.time):
        raise ValueError(f"--time must be a finite number of seconds; got {args.time:g}")
    if args.time is None and args.animation is None:
        return None
    if args.animation is not None and args.animation not in scene.animations:
        raise ValueError(f"no animation named {args.animation!r} in {args.scene}; it has "
                         f"{', '.join(scene.animations) or 'none'}")
    return (args.time if args.time is not None else 0.0), args.animation


def add_integrator_arguments(p, default_mc_spp: int) -> None:
    """``--integrator``, ``--spp``, ``--max-depth`` (and nothing of the scene): the renderer of a command."""
    p.add_argument("--integrator", default=None, type=_registered_integrator, metavar="NAME",
                   help="the renderer, by registered name (default: raster, the rasterizer with deferred shading; "
                        "path / direct: the path tracer; for a Mitsuba file, its own integrator: path, or direct "
                        "for direct and direct_projective, with its max_depth, rr_depth and hide_emitters)")
    p.add_argument("--spp", type=int, default=None,
                   help=f"samples per pixel of a Monte Carlo integrator (default: {default_mc_spp}; render: a Mitsuba "
                        "file's sensor's sample_count; the rasterizer takes 1)")
    p.add_argument("--max-depth", type=int, default=None,
                   help="longest path in vertices for the path tracer (Mitsuba's max_depth; -1: no limit; default: "
                        "8, a Mitsuba file's integrator's, or Mitsuba's default for it)")
    p.add_argument("--pixel-filter", default=None, type=_pixel_filter_name, metavar="NAME",
                   help="the path tracer's pixel reconstruction filter: box, tent, gaussian, mitchell, catmullrom or "
                        "lanczos (default: the scene film's: a Mitsuba file's rfilter, gaussian where it names none; "
                        "box otherwise)")
    p.set_defaults(default_mc_spp=default_mc_spp)


def _pixel_filter_name(name: str) -> str:
    """``name`` if it names a pixel filter (argparse ``type``: imported only when the option is parsed)."""
    import argparse

    from ..cameras.pixel_filter import FILTERS

    if name not in FILTERS:
        raise argparse.ArgumentTypeError(f"invalid choice: {name!r} (choose from {', '.join(map(repr, FILTERS))})")
    return name


def apply_pixel_filter(args, scene) -> None:
    """Set ``scene.film``'s pixel filter to ``--pixel-filter`` where it is given."""
    from ..cameras.pixel_filter import as_pixel_filter

    if args.pixel_filter is not None:
        scene.film.pixel_filter = as_pixel_filter(args.pixel_filter, "--pixel-filter")


def _registered_integrator(name: str) -> str:
    """``name`` if an integrator is registered under it (argparse ``type``: the registry, which imports the
    renderers, is asked only when the option is parsed, never for ``--help``)."""
    import argparse

    from ..integrators import integrator_names

    names = integrator_names()
    if name not in names:
        raise argparse.ArgumentTypeError(f"invalid choice: {name!r} (choose from {', '.join(map(repr, names))})")
    return name


def integrator_options(args) -> tuple:
    """``(spp, settings)`` of ``--integrator``, ``--spp`` and ``--max-depth``, or ValueError naming the option."""
    from ..integrators import integrator_settings
    from ..integrators.base import integrator_class

    settings = dict(getattr(args, "file_settings", {}))
    if args.max_depth is not None:
        if "max_depth" not in integrator_settings(args.integrator):
            raise ValueError(f"--max-depth is a setting of the path tracer; integrator {args.integrator} has none")
        settings["max_depth"] = args.max_depth
    monte_carlo = integrator_class(args.integrator).monte_carlo
    spp = args.spp if args.spp is not None else (args.default_mc_spp if monte_carlo else 1)
    if spp < 1 or (spp != 1 and not monte_carlo):
        raise ValueError(f"--spp must be a positive int (1 for integrator {args.integrator}); got {spp}")
    return spp, settings
