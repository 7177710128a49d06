"""Depth rendering: a pinhole camera at the device pose, planar z-depth by ray casting."""

from __future__ import annotations

import numpy as np

from .geometry import cast_rays
from .scene import Pose, Room


def camera_rays(pose: Pose, image_size: tuple[int, int], hfov_deg: float) -> np.ndarray:
    """Returns (H*W, 3) ray directions through the pixel centres, scaled so that their
    component along the optical axis is 1 (so a ray's t is the pixel's z-depth)."""
    h, w = image_size
    forward, right, up = pose.axes()
    tan_x = np.tan(np.deg2rad(hfov_deg) / 2)
    tan_y = tan_x * h / w  # square pixels
    x = ((np.arange(w) + 0.5) / w * 2 - 1) * tan_x
    y = (1 - (np.arange(h) + 0.5) / h * 2) * tan_y  # row 0 is the top of the image
    yy, xx = np.meshgrid(y, x, indexing="ij")
    return forward + xx.reshape(-1, 1) * right + yy.reshape(-1, 1) * up


def render_depth(
    room: Room,
    pose: Pose,
    *,
    image_size=(128, 128),
    hfov_deg: float = 90.0,
    max_depth_m: float = 10.0,
    invalid_incidence_deg: float = 90.0,
    invalid_beyond_m: float = 0.0,
) -> np.ndarray:
    """Returns the (H, W) planar z-depth in metres seen from the pose, clipped at max_depth_m.

    Like a stereo depth camera, pixels whose surface is seen more obliquely than
    `invalid_incidence_deg` (angle between the ray and the surface normal), or lies farther
    than `invalid_beyond_m` (0: no limit), are 0: no measurement."""
    rays = camera_rays(pose, image_size, hfov_deg)
    t, normal, _ = cast_rays(room, pose.position, rays)
    depth = np.minimum(t, max_depth_m)
    if invalid_incidence_deg < 90:
        cos = np.abs(np.einsum("ij,ij->i", rays, normal)) / np.linalg.norm(rays, axis=1)
        depth = np.where(cos < np.cos(np.deg2rad(invalid_incidence_deg)), 0.0, depth)
    if invalid_beyond_m > 0:
        depth = np.where(t > invalid_beyond_m, 0.0, depth)
    return depth.reshape(image_size)
