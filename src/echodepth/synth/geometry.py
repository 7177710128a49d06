"""Vectorised ray casting against a shoebox room and its axis-aligned furniture boxes."""

from __future__ import annotations

import numpy as np

from .scene import Room

_TINY = 1e-12


def _safe(directions: np.ndarray) -> np.ndarray:
    # a zero component would give 0/0 in the slab test; a tiny one gives a huge, harmless t
    return np.where(np.abs(directions) < _TINY, _TINY, directions)


def _slab(o: np.ndarray, inv: tuple, lo: np.ndarray, hi: np.ndarray):
    """Returns (t_near, t_far, axis of t_near) of rays o + t*d against one box, inv = 1/d per axis.

    Works axis by axis on (N,) vectors: numpy's reductions over a trailing axis of size 3 are
    several times slower than these element-wise operations.
    """
    t_near = t_far = axis = None
    for a in range(3):
        t1 = (lo[a] - o[a]) * inv[a]
        t2 = (hi[a] - o[a]) * inv[a]
        near, far = np.minimum(t1, t2), np.maximum(t1, t2)
        if t_near is None:
            t_near, t_far, axis = near, far, np.zeros(near.shape, dtype=np.int64)
        else:
            axis = np.where(near > t_near, a, axis)
            t_near = np.maximum(t_near, near)
            t_far = np.minimum(t_far, far)
    return t_near, t_far, axis


def cast_rays(room: Room, origin: np.ndarray, directions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns (t, normal, surface) of the first hit of each ray origin + t * direction.

    directions: (N, 3), need not be unit length (t is in units of |direction|). The origin must
    lie inside the room and outside every box. normal: (N, 3) unit normals facing the origin's
    side; surface: (N,) int, 0..5 the walls x=0, x=Lx, y=0, y=Ly, floor, ceiling, 6+i box i.
    """
    d = _safe(np.asarray(directions, dtype=float))
    o = np.asarray(origin, dtype=float)
    inv = tuple(1.0 / d[:, a] for a in range(3))
    # room: the ray leaves through the wall it reaches first
    t, axis = None, None
    for a in range(3):
        t_a = (np.where(d[:, a] > 0, room.size[a], 0.0) - o[a]) * inv[a]
        if t is None:
            t, axis = t_a, np.zeros(len(d), dtype=np.int64)
        else:
            axis = np.where(t_a < t, a, axis)
            t = np.minimum(t, t_a)
    rows = np.arange(len(d))
    surface = 2 * axis + (d[rows, axis] > 0)
    for i, box in enumerate(room.boxes):
        t_near, t_far, box_axis = _slab(o, inv, box.lo, box.hi)
        closer = (t_near <= t_far) & (t_near > 0) & (t_near < t)
        t = np.where(closer, t_near, t)
        surface = np.where(closer, 6 + i, surface)
        axis = np.where(closer, box_axis, axis)
    normal = np.zeros_like(d)
    normal[rows, axis] = -np.sign(d[rows, axis])
    return t, normal, surface


def segment_blocked(
    room: Room, start: np.ndarray, end: np.ndarray, skip_surface: np.ndarray | None = None
) -> np.ndarray:
    """Returns (N,) bool: whether a box cuts the open segment start -> end (each (N, 3)).

    skip_surface: (N,) surface index whose box is ignored (the face a reflection lies on).
    """
    start = np.atleast_2d(start).astype(float)
    end = np.atleast_2d(end).astype(float)
    n = max(len(start), len(end))
    if not room.boxes:
        return np.zeros(n, dtype=bool)
    d = _safe(end - start)
    lo = np.stack([b.lo for b in room.boxes])
    hi = np.stack([b.hi for b in room.boxes])
    inv = 1.0 / d[:, None, :]
    t1 = (lo[None] - start[:, None, :]) * inv
    t2 = (hi[None] - start[:, None, :]) * inv
    t_near = np.minimum(t1, t2).max(axis=2)
    t_far = np.maximum(t1, t2).min(axis=2)
    eps = 1e-6
    cut = (t_near <= t_far) & (t_far > eps) & (t_near < 1 - eps)
    if skip_surface is not None:
        own = np.asarray(skip_surface)[:, None] - 6 == np.arange(len(room.boxes))[None, :]
        cut &= ~own
    return cut.any(axis=1)


def fibonacci_sphere(n: int) -> np.ndarray:
    """Returns (n, 3) unit vectors spread evenly over the sphere (each covers 4 pi / n sr)."""
    i = np.arange(n) + 0.5
    z = 1 - 2 * i / n
    phi = np.pi * (1 + 5**0.5) * i
    r = np.sqrt(1 - z**2)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)
