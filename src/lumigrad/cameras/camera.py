"""The ``Camera`` container: intrinsics, projection, extrinsics, image size and clip range, batched over views.

The maths lives in ``cameras/projection.py``; this class only validates and carries tensors, so that any of
them (``K``, ``world_to_cam``) can require grad and receive gradients from every renderer.
"""

from __future__ import annotations

import math
import warnings
from typing import Dict, Literal, Optional, Tuple

import torch

from .._checks import broadcast_batch, check_choice, check_positive_int, check_tensor
from ..limits import check_pixel_samples
from . import projection
from .distortion import MODELS, distort, undistort
from .thin_lens import disk_points, lens_rays, pinhole_through

#: The dtypes a Camera's tensors may have: half precision cannot hold pixel positions (see ``Camera``).
CAMERA_DTYPES = (torch.float32, torch.float64)


class Camera:
    """A batch of pinhole (or orthographic) cameras in the OpenCV convention (x right, y down, z forward).

    Args:
        K: intrinsics ``[..., 3, 3]`` in pixels, ``[[fx, s, cx], [0, fy, cy], [0, 0, 1]]``. For an orthographic
            camera ``fx``, ``fy`` are pixels per world unit (:meth:`orthographic` builds ``K`` from a view size).
        world_to_cam: extrinsics ``[..., 4, 4]`` (or ``[..., 3, 4]``) acting on column vectors:
            ``x_cam = R @ x_world + t``. Its batch dims broadcast with ``K``'s.
        width, height: image size in pixels.
        near, far: depth range (camera-frame z). Geometry nearer than ``near`` is clipped. This holds for
            orthographic cameras too (``near > 0``): to see geometry behind the camera's origin, move the
            camera back along its viewing axis.
        distortion: optional lens distortion coefficients ``[..., 5]`` (``"opencv"``: k1, k2, p1, p2, k3) or
            ``[..., 4]`` (``"fisheye"``: k1..k4) on normalized coordinates, see ``cameras/distortion.py``.
            :meth:`project` and :meth:`rays` apply it; ``rasterize`` does not support it yet and refuses.
        distortion_model: ``"opencv"`` or ``"fisheye"``.
        projection: ``"perspective"`` (pinhole: ``u = fx x/z + s y/z + cx``, ``v = fy y/z + cy``) or
            ``"orthographic"`` (``u = fx x + s y + cx``, ``v = fy y + cy``: parallel rays along +z starting at
            ``(x, y, 0)``, see :meth:`ray_origins_directions`). Orthographic cameras take no ``distortion``.
        aperture_radius, focus_distance: a thin lens (depth of field, Mitsuba's ``thinlens`` sensor; both or
            neither): the aperture's radius (world units, ``>= 0``) and the camera-frame depth of the plane in
            focus (``> 0``), each a number or a tensor broadcasting with the batch (one value per view), see
            ``cameras/thin_lens.py``. The rays of a pixel then leave from the whole aperture
            (:meth:`ray_origins_directions` with ``lens`` samples). Perspective cameras without ``distortion``
            only; the path tracer renders them (with visibility gradients of every camera parameter, these
            two included), the other renderers refuse them (:meth:`require_pinhole`).

    ``K``, ``world_to_cam`` and ``distortion`` must be float32 or float64 (one dtype for ``K`` and
    ``world_to_cam``): float16 / bfloat16 are refused with a ``TypeError`` rather than upcast, because half
    precision cannot hold pixel positions (near 1000 pixels float16 has a spacing of 0.5, bfloat16 of 4) and a
    silent upcast would hide that from an optimiser stepping on them. Renderers may still take half-precision
    vertices and attributes where they support them.

    Raises:
        TypeError: a tensor of the wrong type or dtype; ``width`` / ``height`` not ints.
        ValueError: wrong shapes, NaN / Inf, non-positive focal lengths, a singular or reflecting rotation, an
            empty batch (a batch dim of size 0), ``0 < near < far`` violated (``far = inf`` is allowed); a
            negative ``aperture_radius``, a non-positive ``focus_distance``, one of them without the other, or
            a thin lens on an orthographic or distorted camera.
        lumigrad.limits.BudgetError: ``width x height`` exceeds the pixel budget
            (:func:`lumigrad.limits.check_pixel_samples`; renderers also count the views and layers).

    **Differentiability:** ``K``, ``world_to_cam``, ``distortion``, ``aperture_radius`` and ``focus_distance`` are
    ordinary tensors: every renderer
    that takes a camera back-propagates into them (build ``world_to_cam`` from a quaternion or axis-angle parameter with
    ``lumigrad.conventions`` to optimise a pose on the rotation manifold).

    Example:
        >>> cam = Camera.look_at(eye=torch.tensor([0., 0., -3.]), target=torch.zeros(3),
        ...                      up=torch.tensor([0., 1., 0.]), fov_y=0.8, width=64, height=48)
        >>> cam.project(torch.zeros(1, 3))[0]   # the target lands at the image centre
        tensor([[32., 24.]])
    """

    def __init__(self, K: torch.Tensor, world_to_cam: torch.Tensor, width: int, height: int,
                 near: float = 0.01, far: float = 1e4, distortion: Optional[torch.Tensor] = None,
                 distortion_model: str = "opencv",
                 projection: Literal["perspective", "orthographic"] = "perspective",
                 aperture_radius=None, focus_distance=None):
        check_tensor(K, "K", trailing=(3, 3), floating=True)
        check_tensor(world_to_cam, "world_to_cam", trailing=(None, 4), floating=True, device=K.device)
        for name, t in (("K", K), ("world_to_cam", world_to_cam)):
            if t.dtype not in CAMERA_DTYPES:
                raise TypeError(f"{name} must be float32 or float64; got {t.dtype} (half precision cannot hold pixel "
                                f"positions: near 1000 pixels float16 has a spacing of 0.5 and bfloat16 of 4); "
                                f"convert with {name}.float()")
        if world_to_cam.shape[-2] not in (3, 4):
            raise ValueError(f"world_to_cam must have shape [..., 4, 4] or [..., 3, 4]; got {tuple(world_to_cam.shape)}")
        batch_shape = broadcast_batch(K.shape[:-2], "K", world_to_cam.shape[:-2], "world_to_cam")
        if 0 in batch_shape:
            raise ValueError(f"K {tuple(K.shape)} and world_to_cam {tuple(world_to_cam.shape)} give an empty camera "
                             f"batch (batch shape {tuple(batch_shape)}); a Camera needs at least one view")
        check_positive_int(width, "width")
        check_positive_int(height, "height")
        check_pixel_samples(width * height, f"camera width x height is {width}x{height} pixels")
        check_tensor(K, "K", finite=True)
        check_tensor(world_to_cam, "world_to_cam", finite=True)
        if world_to_cam.shape[-2] == 3:
            bottom = torch.zeros(world_to_cam.shape[:-2] + (1, 4), dtype=world_to_cam.dtype, device=K.device)
            bottom[..., 0, 3] = 1
            world_to_cam = torch.cat([world_to_cam, bottom], dim=-2)
        for name, value in (("near", near), ("far", far)):
            if isinstance(value, bool) or not isinstance(value, (int, float, torch.Tensor)):
                raise TypeError(f"{name} must be a real number; got {type(value).__name__}")
        near, far = float(near), float(far)
        if not (math.isfinite(near) and 0 < near < far):  # NaN fails every comparison; far may be inf
            raise ValueError(f"near and far must satisfy 0 < near < far (near finite, far finite or inf); got "
                             f"near={near}, far={far}")
        if bool((K[..., 0, 0] <= 0).any()) or bool((K[..., 1, 1] <= 0).any()):
            raise ValueError("K must have positive focal lengths fx = K[0, 0] and fy = K[1, 1]")
        R = world_to_cam[..., :3, :3].detach()
        eye = torch.eye(3, dtype=R.dtype, device=R.device)
        if R.numel() and bool((torch.linalg.det(R).abs() < 1e-6).any()):
            raise ValueError("world_to_cam's rotation block is singular (det R = 0): it is not a rotation; build it "
                             "from a quaternion, axis-angle or 6D parameter (lumigrad.conventions)")
        if R.numel() and float((R @ R.transpose(-1, -2) - eye).abs().max()) > 1e-3:
            warnings.warn("world_to_cam's rotation block is not orthonormal (R R^T != I); projections will be "
                          "skewed. Parameterise the rotation (conventions.quaternion_to_matrix, "
                          "axis_angle_to_matrix, rotation_6d_to_matrix) instead of optimising the matrix",
                          stacklevel=2)
        elif R.numel() and bool((torch.linalg.det(R) < 0).any()):
            raise ValueError("world_to_cam's rotation block has determinant -1 (a reflection); lumigrad's camera "
                             "frames are right-handed: flip one axis consistently (see lumigrad.conventions)")
        if K.dtype != world_to_cam.dtype:
            raise TypeError(f"K is {K.dtype} but world_to_cam is {world_to_cam.dtype}; give both the same dtype")
        self.batch_shape = batch_shape
        check_choice(distortion_model, "distortion_model", tuple(MODELS))
        if distortion is not None:
            check_tensor(distortion, "distortion", trailing=(MODELS[distortion_model],), floating=True,
                         finite=True, device=K.device)
            if distortion.dtype not in CAMERA_DTYPES:
                raise TypeError(f"distortion must be float32 or float64; got {distortion.dtype}")
            self.batch_shape = broadcast_batch(self.batch_shape, "camera", distortion.shape[:-1], "distortion")
            if 0 in self.batch_shape:
                raise ValueError(f"distortion {tuple(distortion.shape)} gives an empty camera batch (batch shape "
                                 f"{tuple(self.batch_shape)}); a Camera needs at least one view")
        check_choice(projection, "projection", ("perspective", "orthographic"))  # the argument hides the module
        if projection == "orthographic" and distortion is not None:
            raise ValueError("an orthographic camera cannot have lens distortion (distortion acts on x/z, y/z); "
                             "give distortion=None or projection='perspective'")
        self.distortion = distortion
        self.distortion_model = distortion_model
        self.projection = projection
        self.aperture_radius, self.focus_distance = self._lens(aperture_radius, focus_distance, K)
        self.K = K
        self.world_to_cam = world_to_cam
        self.width = int(width)
        self.height = int(height)
        self.near = float(near)
        self.far = float(far)

    # ------------------------------------------------------------------------------------- constructors
    @classmethod
    def from_fov(cls, fov_y: float, width: int, height: int, world_to_cam: torch.Tensor, **kw) -> "Camera":
        """Cameras with vertical field of view ``fov_y`` (radians, in ``(0, pi)``), square pixels and a centred
        principal point (:func:`projection.K_from_fov`); ``fov_y`` outside ``(0, pi)`` raises ``ValueError``."""
        K = projection.K_from_fov(fov_y, width, height, dtype=world_to_cam.dtype, device=world_to_cam.device)
        return cls(K=K, world_to_cam=world_to_cam, width=width, height=height, **kw)

    @classmethod
    def orthographic(cls, view_height: float, width: int, height: int, world_to_cam: torch.Tensor,
                     **kw) -> "Camera":
        """Orthographic cameras whose image spans ``view_height`` world units vertically.

        Square pixels (``fx = fy = height / view_height``) and a centred principal point
        (:func:`projection.K_orthographic`). Example: ``view_height=2`` with ``height=64`` gives 32 pixels per
        unit, so the camera-frame point ``(0.5, 0, z)`` lands at ``u = W/2 + 16`` for every depth ``z``.
        """
        K = projection.K_orthographic(view_height, width, height, dtype=world_to_cam.dtype,
                                      device=world_to_cam.device)
        return cls(K=K, world_to_cam=world_to_cam, width=width, height=height, projection="orthographic", **kw)

    @classmethod
    def look_at(cls, eye, target, up=(0.0, 1.0, 0.0), *, fov_y: float = 0.8, width: int = 256,
                height: int = 256, K: Optional[torch.Tensor] = None, **kw) -> "Camera":
        """Cameras at ``eye [..., 3]`` looking at ``target [..., 3]`` with world ``up`` shown upwards.

        For an orthographic camera pass ``projection="orthographic"`` and ``K`` (e.g. from
        :func:`projection.K_orthographic`); ``fov_y`` means nothing to it. Without ``K``, ``fov_y`` (radians)
        must lie in ``(0, pi)``. ``eye``, ``target`` and ``up`` must be finite.
        """
        eye, target, up = (torch.as_tensor(a, dtype=torch.get_default_dtype()) if not isinstance(a, torch.Tensor)
                           else a for a in (eye, target, up))
        for name, t in (("eye", eye), ("target", target), ("up", up)):
            check_tensor(t, name, trailing=(3,), floating=True, finite=True)
        up = up.to(eye)
        w2c = projection.look_at(eye, target.to(eye), up)
        if K is None and kw.get("projection", "perspective") == "orthographic":
            raise ValueError("look_at(..., projection='orthographic') needs K: an orthographic camera has no field "
                             "of view; build K with lumigrad.cameras.projection.K_orthographic(view_height, width, "
                             "height)")
        if K is None:
            return cls.from_fov(fov_y, width, height, w2c, **kw)
        return cls(K=K, world_to_cam=w2c.to(K.dtype), width=width, height=height, **kw)

    # ----------------------------------------------------------------------------------------- queries
    @property
    def device(self) -> torch.device:
        return self.K.device

    @property
    def dtype(self) -> torch.dtype:
        return self.K.dtype

    def __len__(self) -> int:
        n = 1
        for s in self.batch_shape:
            n *= s
        return n

    def parameters(self) -> Dict[str, torch.Tensor]:
        """The camera's tensors by name: ``K``, ``world_to_cam`` and, when set, ``distortion``,
        ``aperture_radius`` and ``focus_distance``."""
        out = {"K": self.K, "world_to_cam": self.world_to_cam}
        for name in ("distortion", "aperture_radius", "focus_distance"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out

    @property
    def thin_lens(self) -> bool:
        """Whether the camera has a thin lens (an aperture and a focal plane) rather than a pinhole."""
        return self.aperture_radius is not None

    def require_pinhole(self, renderer: str) -> None:
        """Raise ``ValueError`` naming ``renderer`` when the camera has a thin lens it cannot render."""
        if self.thin_lens:
            raise ValueError(f"camera has a thin lens (aperture_radius, focus_distance), which {renderer} does not "
                             f"render: depth of field renders with the path tracer (integrator='path' or "
                             f"'direct'); give a pinhole camera (aperture_radius=None) here")

    def replace(self, **changes) -> "Camera":
        """A copy with the constructor arguments ``changes`` replaced (``K``, ``world_to_cam``, ``width``,
        ``height``, ``near``, ``far``, ``distortion``, ``distortion_model``, ``projection``, ``aperture_radius``,
        ``focus_distance``), validated as a new camera."""
        fields = dict(K=self.K, world_to_cam=self.world_to_cam, width=self.width, height=self.height,
                      near=self.near, far=self.far, distortion=self.distortion,
                      distortion_model=self.distortion_model, projection=self.projection,
                      aperture_radius=self.aperture_radius, focus_distance=self.focus_distance)
        unknown = set(changes) - set(fields)
        if unknown:
            raise TypeError(f"Camera.replace got unknown fields {sorted(unknown)}; it takes {sorted(fields)}")
        fields.update(changes)
        return Camera(**fields)

    def _lens(self, aperture_radius, focus_distance, K: torch.Tensor):
        """The checked thin-lens tensors ``(aperture_radius, focus_distance)``, or ``(None, None)``."""
        if aperture_radius is None and focus_distance is None:
            return None, None
        if aperture_radius is None or focus_distance is None:
            raise ValueError("a thin lens needs both aperture_radius and focus_distance; got only "
                             f"{'focus_distance' if aperture_radius is None else 'aperture_radius'}")
        if self.projection != "perspective":
            raise ValueError("an orthographic camera cannot have a thin lens; give aperture_radius=None and "
                             "focus_distance=None, or projection='perspective'")
        if self.distortion is not None:
            raise ValueError("a thin-lens camera cannot have lens distortion yet; give distortion=None or "
                             "aperture_radius=None")
        out = []
        for name, value in (("aperture_radius", aperture_radius), ("focus_distance", focus_distance)):
            if isinstance(value, bool) or not isinstance(value, (int, float, torch.Tensor)):
                raise TypeError(f"{name} must be a number or a tensor; got {type(value).__name__}")
            if not isinstance(value, torch.Tensor):
                value = torch.tensor(float(value), dtype=K.dtype, device=K.device)
            check_tensor(value, name, floating=True, finite=True, device=K.device)
            if value.dtype != K.dtype:
                raise TypeError(f"{name} is {value.dtype} but K is {K.dtype}; give the lens K's dtype")
            self.batch_shape = broadcast_batch(self.batch_shape, "camera", value.shape, name)
            out.append(value)
        if bool((out[0] < 0).any()):
            raise ValueError(f"aperture_radius must be >= 0 (world units); got {out[0].detach().min().item():.6g}")
        if bool((out[1] <= 0).any()):
            raise ValueError(f"focus_distance must be > 0 (the camera-frame depth in focus); got "
                             f"{out[1].detach().min().item():.6g}")
        return out[0], out[1]

    def flat(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """Return ``(K [N, 3, 3], world_to_cam [N, 4, 4])`` with the batch dims flattened (N >= 1)."""
        K = self.K.expand(self.batch_shape + (3, 3)).reshape(-1, 3, 3)
        w2c = self.world_to_cam.expand(self.batch_shape + (4, 4)).reshape(-1, 4, 4)
        return K, w2c

    def to(self, device=None, dtype=None) -> "Camera":
        move = lambda t: None if t is None else t.to(device=device, dtype=dtype)  # noqa: E731
        return self.replace(**{name: move(t) for name, t in self.parameters().items()})

    def resized(self, width: int, height: int) -> "Camera":
        """The same view recorded at ``width x height`` pixels: ``K``'s rows scaled by the size ratios (exact
        for lumigrad's corner-origin pixel coordinates; differentiable in ``K``)."""
        check_positive_int(width, "width")
        check_positive_int(height, "height")
        scale = torch.tensor([width / self.width, height / self.height, 1.0], dtype=self.dtype, device=self.device)
        return self.replace(K=self.K * scale[:, None], width=width, height=height)

    def crop(self, x0: int, y0: int, width: int, height: int) -> "Camera":
        """The window of ``width x height`` pixels whose top-left pixel is (row ``y0``, column ``x0``) of this
        camera's image, as a camera of its own (a tile).

        Pixel (row ``i``, column ``j``) of the crop is pixel (``y0 + i``, ``x0 + j``) of the full image: the
        principal point moves by ``(-x0, -y0)`` (``K`` is otherwise unchanged, so focal lengths, skew and the
        lens distortion, which acts on normalized coordinates, are those of the full camera). Every renderer
        therefore draws the same rays for the crop's pixels as for the full image's; a pinhole render of the
        tiles equals the full render (antialiasing reads one neighbour pixel on each side: give tiles a
        one-pixel halo, see :func:`lumigrad.render_tiled`). Differentiable in ``K``.

        Raises:
            TypeError: non-int arguments.
            ValueError: a window not inside the image (``0 <= x0``, ``x0 + width <= self.width``, likewise in y)
                or of zero size.
        """
        for name, value in (("x0", x0), ("y0", y0)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int; got {type(value).__name__}")
        check_positive_int(width, "width")
        check_positive_int(height, "height")
        if x0 < 0 or y0 < 0 or x0 + width > self.width or y0 + height > self.height:
            raise ValueError(f"crop window x0={x0}, y0={y0}, width={width}, height={height} must lie inside the "
                             f"{self.width}x{self.height} image")
        shift = torch.zeros(3, 3, dtype=self.dtype, device=self.device)
        shift[0, 2], shift[1, 2] = float(x0), float(y0)
        return self.replace(K=self.K - shift, width=width, height=height)

    def __getitem__(self, index) -> "Camera":
        trailing = {"K": (3, 3), "world_to_cam": (4, 4), "aperture_radius": (), "focus_distance": ()}
        if self.distortion is not None:
            trailing["distortion"] = self.distortion.shape[-1:]
        return self.replace(**{name: getattr(self, name).expand(self.batch_shape + tuple(tail))[index]
                               for name, tail in trailing.items() if getattr(self, name) is not None})

    def transform(self, points: torch.Tensor) -> torch.Tensor:
        """World points ``[..., P, 3]`` to the camera frame ``[..., P, 3]`` (batch dims broadcast)."""
        check_tensor(points, "points", trailing=(None, 3), floating=True, device=self.device)
        broadcast_batch(points.shape[:-2], "points", self.world_to_cam.shape[:-2], "camera")
        return projection.transform_points(points, self.world_to_cam)

    def project(self, points: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """World points ``[..., P, 3]`` to pixel positions ``[..., P, 2]`` and depths ``[..., P]``.

        With ``distortion`` the normalized coordinates ``(x/z, y/z)`` are distorted before ``K`` is applied.
        Orthographic cameras map ``(x, y)`` directly: ``u = fx x + s y + cx``, ``v = fy y + cy``.
        """
        check_tensor(points, "points", trailing=(None, 3), floating=True, device=self.device)
        pc = self.transform(points)
        if self.projection == "orthographic":
            return projection.project_points_orthographic(pc, self.K), pc[..., 2]
        if self.distortion is None:
            return projection.project_points(pc, self.K), pc[..., 2]
        z = pc[..., 2:]
        coeffs = self.distortion[..., None, :]
        xy = distort(pc[..., :2] / z, coeffs.expand(pc.shape[:-1] + coeffs.shape[-1:]), self.distortion_model)
        return projection.project_points(torch.cat([xy, torch.ones_like(z)], -1), self.K), pc[..., 2]

    def rays(self, uv: torch.Tensor) -> torch.Tensor:
        """Camera-frame ray directions ``[..., 3]`` (``z = 1``) through pixel positions ``uv [..., 2]`` (a
        thin-lens camera's: the rays through its centre, the pinhole's).

        ``uv``'s leading dims must be ``batch_shape`` followed by any sample dims. Perspective cameras only:
        orthographic rays do not pass through the camera centre, use :meth:`ray_origins_directions`.
        """
        if self.projection == "orthographic":
            raise ValueError("Camera.rays gives directions through the camera centre, which an orthographic camera's "
                             "rays do not share; use Camera.ray_origins_directions(uv), which returns (origins, "
                             "directions) for both projections")
        self._check_uv(uv)
        extra = uv.dim() - 1 - len(self.batch_shape)
        K = self.K.expand(self.batch_shape + (3, 3)).reshape(self.batch_shape + (1,) * extra + (3, 3))
        rays = projection.pixel_rays(K, uv)
        if self.distortion is None:
            return rays
        coeffs = self.distortion.expand(self.batch_shape + self.distortion.shape[-1:])
        coeffs = coeffs.reshape(self.batch_shape + (1,) * extra + coeffs.shape[-1:])
        xy = undistort(rays[..., :2], coeffs, self.distortion_model)  # coeffs broadcast over the sample dims
        return torch.cat([xy, rays[..., 2:]], -1)

    def ray_origins_directions(self, uv: torch.Tensor,
                               lens: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """Camera-frame rays ``(origins [..., 3], directions [..., 3])`` through pixel positions ``uv [..., 2]``.

        Perspective: origins at the camera centre ``(0, 0, 0)``, directions :meth:`rays` (``z = 1``, lens
        distortion undone). Orthographic: origins ``(x, y, 0)`` with ``(x, y, 1) = K^-1 (u, v, 1)``, directions
        ``(0, 0, 1)``. Thin lens: ``lens [..., 2]`` (uniform samples of the unit square, shaped as ``uv``) picks
        each ray's aperture point, its origin; the direction ``(n - L_xy / f, 1)`` passes the pixel's point of
        the focal plane (:func:`lumigrad.cameras.thin_lens.lens_rays`). In all, ``origin + z * direction`` is
        the point at depth ``z`` seen at ``uv``. ``uv``'s leading dims must be ``batch_shape`` followed by any
        sample dims. Differentiable in ``K``, ``uv`` (and ``distortion``, ``aperture_radius``,
        ``focus_distance``); a pinhole camera ignores ``lens``.
        """
        if self.thin_lens:
            if lens is None or tuple(lens.shape) != tuple(uv.shape):
                raise ValueError(f"a thin-lens camera's rays need lens samples shaped as uv {tuple(uv.shape)} (uniform "
                                 f"in the unit square); got {None if lens is None else tuple(lens.shape)}")
            d = self.rays(uv)
            extra = uv.dim() - 1 - len(self.batch_shape)
            lens_shape = self.batch_shape + (1,) * extra
            return lens_rays(d, lens.to(d.dtype), self.aperture_radius.expand(self.batch_shape).reshape(lens_shape),
                             self.focus_distance.expand(self.batch_shape).reshape(lens_shape))
        if self.projection == "perspective":
            d = self.rays(uv)
            return torch.zeros_like(d), d
        self._check_uv(uv)
        extra = uv.dim() - 1 - len(self.batch_shape)
        K = self.K.expand(self.batch_shape + (3, 3)).reshape(self.batch_shape + (1,) * extra + (3, 3))
        return projection.pixel_ray_origins_directions(K, uv, "orthographic")

    def through_lens(self, lens: torch.Tensor) -> "Camera":
        """The pinhole camera of one aperture point of each view: ``lens [*batch_shape, 2]`` (or ``[2]``), a
        uniform sample of the unit square mapped onto the aperture as :meth:`ray_origins_directions` maps it.

        Its rays through pixel ``uv`` are the thin lens's rays of ``uv`` from that aperture point
        (:func:`lumigrad.cameras.thin_lens.pinhole_through`), so the thin lens's image is the mean over the
        aperture of these pinhole images. Differentiable in ``K``, ``world_to_cam``, ``aperture_radius`` and
        ``focus_distance``. A pinhole camera returns itself.
        """
        if not self.thin_lens:
            return self
        check_tensor(lens, "lens", trailing=(2,), floating=True, device=self.device)
        point = self.aperture_radius[..., None] * disk_points(lens.to(self.dtype))
        K, w2c = pinhole_through(self.K, self.world_to_cam, point, self.focus_distance)
        return self.replace(K=K, world_to_cam=w2c, aperture_radius=None, focus_distance=None)

    def _check_uv(self, uv) -> None:
        """``uv [*batch_shape, ..., 2]``: pixel positions with the camera's batch dims first (no host sync)."""
        check_tensor(uv, "uv", trailing=(2,), floating=True, device=self.device)
        lead = tuple(uv.shape[:len(self.batch_shape)])
        if uv.dim() - 1 < len(self.batch_shape) or any(a not in (1, b) for a, b in zip(lead, self.batch_shape)):
            raise ValueError(f"uv must have shape [{', '.join(map(str, self.batch_shape))}{', ' if self.batch_shape else ''}"
                             f"..., 2] (the camera's batch dims first); got {tuple(uv.shape)}")

    def __repr__(self) -> str:
        return (f"Camera(batch_shape={tuple(self.batch_shape)}, width={self.width}, height={self.height}, "
                f"near={self.near}, far={self.far}, projection={self.projection!r}, "
                f"{'thin lens, ' if self.thin_lens else ''}device={self.device}, "
                f"dtype={self.dtype})")

