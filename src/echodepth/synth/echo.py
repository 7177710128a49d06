"""Echo rendering: the binaural impulse response of a room at a device pose, and the recording.

Paths, each with a per-ear time of flight and amplitude relative to the speaker's on-axis
pressure at 1 m (a point source, amplitude 1/distance):
- direct: speaker -> ear, through the speaker's directivity at the ear's angle;
- scatter: first-order diffuse scattering from every surface around the device (walls, floor,
  ceiling, furniture), sampled by `scatter_rays` directions. Each ray's hit is a patch of area
  A = r^2 dOmega / cos(incidence) acting as a point scatterer of strength
  rho_d * cos(incidence) * cos(exit) * A / pi, heard at amplitude strength / (r * r_ear): so the
  sum over rays is a discretised surface integral whose value does not depend on the ray count;
- specular: first-order mirror reflections off every wall and every box face facing the
  device, image-source construction, kept only where both legs are free of other boxes;
- tail: orders >= 2 of pyroomacoustics' image-source model of the empty shoebox. Furniture is
  deliberately not given to pyroomacoustics: its image-source method is specular only and
  cannot hear furniture below ear height, and an obstacle wall whose normal does not face into
  the obstacle silently loses its echoes; the furniture's echoes come from the first-order
  terms above. We read the image positions and dampings (not `compute_rir()`), and place the
  impulses ourselves: `compute_rir()` delays every response by a fixed 40 samples (half its
  81-tap fractional-delay filter), which would shift the tail against our own paths.
Impulses fall between samples; each is split between its two neighbouring samples (linear
fractional delay). The response is convolved with the chirp, then noise and a gain are applied.
"""

from __future__ import annotations

import numpy as np
import pyroomacoustics as pra
from scipy.signal import chirp as _scipy_chirp
from scipy.signal.windows import tukey

from ..errors import ConfigError
from .checks import COMPONENTS
from .device import apply_delay, band_response, diffuse_tail
from .geometry import cast_rays, fibonacci_sphere, segment_blocked
from .scene import SPEED_OF_SOUND_M_S, Pose, Room, SynthConfig

# pyroomacoustics wall names for our surfaces 0..5
_PRA_WALLS = ("west", "east", "south", "north", "floor", "ceiling")


def chirp_signal(cfg: SynthConfig) -> np.ndarray:
    """Returns the emitted linear chirp (f0 -> f1 over chirp_duration_s), edges tapered."""
    n = max(int(round(cfg.chirp_duration_s * cfg.sample_rate_hz)), 2)
    t = np.arange(n) / cfg.sample_rate_hz
    sweep = _scipy_chirp(t, cfg.chirp_f0_hz, cfg.chirp_duration_s, cfg.chirp_f1_hz, method="linear")
    return sweep * tukey(n, 0.1)  # the taper avoids clicks at the ends


def directivity(cos_theta: np.ndarray, exponent: float) -> np.ndarray:
    """Returns the speaker's relative amplitude ((1 + cos theta) / 2) ** exponent (1 on axis)."""
    return ((1.0 + np.clip(cos_theta, -1.0, 1.0)) / 2.0) ** exponent


class Paths:
    """Collects (ear, time s, amplitude) triples and splats them into a (2, N) response."""

    def __init__(self):
        self.ear: list[np.ndarray] = []
        self.time: list[np.ndarray] = []
        self.amp: list[np.ndarray] = []

    def add(self, ear: int, time_s, amp) -> None:
        """Adds paths reaching `ear` (0 left, 1 right) at arrival times `time_s` (seconds) with
        amplitudes `amp` (linear); times and amplitudes broadcast against each other."""
        time_s, amp = np.broadcast_arrays(np.asarray(time_s, float), np.asarray(amp, float))
        self.ear.append(np.full(time_s.size, ear))
        self.time.append(time_s.ravel())
        self.amp.append(amp.ravel())

    def response(self, n_samples: int, sample_rate_hz: int) -> np.ndarray:
        """Returns the (2, n_samples) impulse response: each path split linearly between the two
        samples around its arrival time; paths arriving outside the recording are dropped."""
        ir = np.zeros((2, n_samples))
        if not self.time:
            return ir
        ear, pos, amp = np.concatenate(self.ear), np.concatenate(self.time) * sample_rate_hz, np.concatenate(self.amp)
        i0 = np.floor(pos).astype(np.int64)
        frac = pos - i0
        keep = (i0 >= 0) & (i0 < n_samples - 1)
        ear, i0, frac, amp = ear[keep], i0[keep], frac[keep], amp[keep]
        flat = ear * n_samples + i0
        size = 2 * n_samples
        ir += np.bincount(flat, amp * (1 - frac), minlength=size)[:size].reshape(2, n_samples)
        ir += np.bincount(flat + 1, amp * frac, minlength=size)[:size].reshape(2, n_samples)
        return ir


def _direct(paths: Paths, room: Room, pose: Pose, cfg: SynthConfig) -> None:
    forward, _, _ = pose.axes()
    for e, ear in enumerate(pose.ears(cfg.ear_offset_m)):
        v = ear - pose.position
        dist = np.linalg.norm(v)
        amp = cfg.direct_gain * directivity(v @ forward / dist, cfg.speaker_directivity) / dist
        paths.add(e, dist / SPEED_OF_SOUND_M_S, amp)


def _scatter(paths: Paths, room: Room, pose: Pose, cfg: SynthConfig) -> None:
    forward, _, _ = pose.axes()
    dirs = fibonacci_sphere(cfg.scatter_rays)
    d_omega = 4 * np.pi / cfg.scatter_rays
    t, normal, surface = cast_rays(room, pose.position, dirs)
    hit = pose.position + t[:, None] * dirs
    cos_in = np.abs(np.einsum("ij,ij->i", dirs, normal))
    emitted = directivity(dirs @ forward, cfg.speaker_directivity) * room.diffuse[surface]
    for e, ear in enumerate(pose.ears(cfg.ear_offset_m)):
        back = ear - hit
        r_ear = np.linalg.norm(back, axis=1)
        cos_out = np.clip(np.einsum("ij,ij->i", back, normal) / r_ear, 0.0, None)
        area = t**2 * d_omega / np.maximum(cos_in, 1e-3)
        strength = emitted * cos_in * cos_out * area / np.pi
        paths.add(e, (t + r_ear) / SPEED_OF_SOUND_M_S, strength / (t * r_ear))


def _faces(room: Room):
    """Yields (axis, coordinate, side, lo, hi, surface) for every reflecting plane face.

    side is +1 when the reflecting side is towards larger coordinates; lo/hi bound the face.
    """
    L = room.size
    for axis in range(3):
        yield axis, 0.0, +1, np.zeros(3), L, 2 * axis
        yield axis, L[axis], -1, np.zeros(3), L, 2 * axis + 1
    for i, box in enumerate(room.boxes):
        for axis in range(3):
            yield axis, box.lo[axis], -1, box.lo, box.hi, 6 + i
            if axis < 2 or box.hi[2] < L[2]:  # a box's top, unless it reaches the ceiling
                yield axis, box.hi[axis], +1, box.lo, box.hi, 6 + i


def _specular(paths: Paths, room: Room, pose: Pose, cfg: SynthConfig) -> None:
    forward, _, _ = pose.axes()
    src = np.asarray(pose.position, float)
    ears = pose.ears(cfg.ear_offset_m)
    faces = [f for f in _faces(room) if f[2] * (src[f[0]] - f[1]) > 0]  # faces the speaker sees
    if not faces:
        return
    axis = np.array([f[0] for f in faces])
    coord = np.array([f[1] for f in faces])
    side = np.array([f[2] for f in faces])
    lo = np.stack([f[3] for f in faces])
    hi = np.stack([f[4] for f in faces])
    surface = np.array([f[5] for f in faces])
    rows = np.arange(len(faces))
    image = np.repeat(src[None], len(faces), axis=0)
    image[rows, axis] = 2 * coord - src[axis]
    for e, ear in enumerate(ears):
        on_side = side * (ear[axis] - coord) > 0
        frac = (coord - image[rows, axis]) / (ear[axis] - image[rows, axis])
        point = image + frac[:, None] * (ear - image)
        inside = np.all((point >= lo - 1e-9) & (point <= hi + 1e-9), axis=1)
        ok = on_side & inside
        ok &= ~segment_blocked(room, np.repeat(src[None], len(faces), 0), point, surface)
        ok &= ~segment_blocked(room, point, np.repeat(ear[None], len(faces), 0), surface)
        if not ok.any():
            continue
        length = np.linalg.norm(ear - image, axis=1)
        out_dir = (point - src) / np.linalg.norm(point - src, axis=1, keepdims=True)
        amp = directivity(out_dir @ forward, cfg.speaker_directivity) * room.specular[surface] / length
        paths.add(e, (length / SPEED_OF_SOUND_M_S)[ok], amp[ok])


def _tail(paths: Paths, room: Room, pose: Pose, cfg: SynthConfig) -> None:
    absorption = np.clip(1.0 - room.specular[:6] ** 2 - room.diffuse[:6] ** 2, 0.02, 0.98)
    materials = {name: pra.Material(float(a)) for name, a in zip(_PRA_WALLS, absorption)}
    shoebox = pra.ShoeBox(
        room.size, fs=cfg.sample_rate_hz, materials=materials, max_order=cfg.tail_max_order, air_absorption=False
    )
    shoebox.add_source(np.asarray(pose.position, float))
    ears = pose.ears(cfg.ear_offset_m)
    shoebox.add_microphone_array(ears.T)
    shoebox.image_source_model()
    source = shoebox.sources[0]
    late = source.orders >= 2  # orders 0 and 1 are the direct and specular terms above
    images = source.images[:, late].T  # (M, 3)
    damping = source.damping[0, late]
    mean_directivity = 1.0 / (cfg.speaker_directivity + 1.0)  # the diffuse tail leaves in all directions
    for e, ear in enumerate(ears):
        dist = np.linalg.norm(images - ear, axis=1)
        paths.add(e, dist / SPEED_OF_SOUND_M_S, mean_directivity * damping / dist)


_RENDERERS = {"direct": _direct, "scatter": _scatter, "specular": _specular, "tail": _tail}


def impulse_response(room: Room, pose: Pose, cfg: SynthConfig, components=None) -> np.ndarray:
    """Returns the (2, N) binaural impulse response (left, right) of the chosen components."""
    paths = Paths()
    for name in components if components is not None else cfg.components:
        if name not in _RENDERERS:
            raise ConfigError(f"unknown echo component {name!r}; expected some of {COMPONENTS}")
        _RENDERERS[name](paths, room, pose, cfg)
    return paths.response(cfg.n_audio_samples, cfg.sample_rate_hz)


def direct_sound_end(cfg: SynthConfig) -> int:
    """Returns the first sample after the direct sound (its arrival plus the chirp, after the
    system delay)."""
    seconds = cfg.system_delay_s + cfg.ear_offset_m / SPEED_OF_SOUND_M_S + cfg.chirp_duration_s
    return int(np.ceil(seconds * cfg.sample_rate_hz)) + 1


def render_echo(room: Room, pose: Pose, cfg: SynthConfig, rng: np.random.Generator, *, components=None) -> np.ndarray:
    """Returns the (N, 2) float32 recording: response * chirp, plus noise, scaled by a random gain.

    The device's settings (`synth/device.py`) add a diffuse late tail to the response, pass the
    result through the speaker and microphone band and delay it. The noise is white, at an SNR
    drawn from cfg.snr_db and measured on the echo part (after the direct sound); the result's
    peak is a random level drawn from cfg.gain.
    """
    ir = impulse_response(room, pose, cfg, components)
    n = cfg.n_audio_samples
    if components is None or "tail" in components:
        ir = ir + diffuse_tail(room, pose, cfg, rng, n=n)
    sweep = chirp_signal(cfg)
    clean = np.stack([np.convolve(ir[e], sweep)[:n] for e in range(2)])
    clean = apply_delay(band_response(clean, cfg), cfg)
    echo_power = float(np.mean(clean[:, direct_sound_end(cfg) :] ** 2))
    snr_db = rng.uniform(*cfg.snr_db)
    noise = rng.standard_normal(clean.shape) * np.sqrt(echo_power / 10 ** (snr_db / 10))
    audio = clean + noise
    peak = np.abs(audio).max()
    gain = rng.uniform(*cfg.gain)
    if peak > 0:
        audio = audio * (gain / peak)
    return audio.T.astype(np.float32)
