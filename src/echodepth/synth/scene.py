"""Scene sampling: shoebox rooms, furniture boxes, surface materials and device poses."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import ConfigError
from ..settings.bounds import bounded
from .checks import check_lengths, check_synth_settings

SPEED_OF_SOUND_M_S = 343.0

# name: (width x, depth y, height z) in metres; the pillar's height is the room's
FURNITURE_TEMPLATES: dict[str, tuple[float, float, float]] = {
    "table": (1.2, 0.8, 0.75),
    "chair": (0.5, 0.5, 0.9),
    "cabinet": (0.8, 0.5, 1.8),
    "shelf": (1.0, 0.35, 2.0),
    "sofa": (2.0, 0.9, 0.85),
    "bed": (2.0, 1.6, 0.55),
    "pillar": (0.4, 0.4, -1.0),
}


@dataclass
class SynthConfig:
    """Every setting of the generator; saved in the dataset's metadata file."""

    seed: int = 0
    n_rooms: int = 200
    samples_per_room: int = 10  # device poses per room
    n_locations: int = 4  # BatVision V2 location folders; rooms are spread over them
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)  # train / val / test, by room
    # rooms
    room_size_m: tuple[float, float] = (3.0, 10.0)  # sides x and y
    room_height_m: tuple[float, float] = (2.4, 3.5)
    furniture_count: tuple[int, int] = (0, 6)
    furniture_scale: tuple[float, float] = (0.8, 1.2)
    furniture: tuple[str, ...] = tuple(FURNITURE_TEMPLATES)
    # materials: amplitude reflection coefficients, per surface
    diffuse_reflectivity: tuple[float, float] = (0.1, 0.6)
    specular_reflectivity: tuple[float, float] = (0.2, 0.9)
    # device pose
    device_height_m: tuple[float, float] = (0.4, 1.2)
    pitch_deg: tuple[float, float] = (-10.0, 10.0)
    wall_clearance_m: float = 0.5
    furniture_clearance_m: float = 0.3
    # camera and depth
    image_size: tuple[int, int] = (128, 128)  # (H, W)
    hfov_deg: float = 90.0
    max_depth_m: float = 10.0
    # audio
    # 8 kHz (telephone audio) to 1 MHz (ultrasound): a sample renders in 0.01 s at 44.1 kHz, 0.1 s at
    # 1 MHz, and over a minute at 10 MHz
    sample_rate_hz: int = bounded(44100, at_least=8000, at_most=1_000_000, why="the rates the renderer is made for")
    ear_offset_m: float = 0.1  # ears this far left and right of the camera
    chirp_f0_hz: float = 20.0
    chirp_f1_hz: float = 20000.0
    chirp_duration_s: float = 0.003
    margin_s: float = 0.01  # recorded beyond 2 * max_depth / c + chirp
    speaker_directivity: float = 2.0  # D(theta) = ((1 + cos theta) / 2) ** this
    scatter_rays: int = 4096  # directions sampling the surfaces around the device
    tail_max_order: int = 10  # image-source order of the late tail (orders >= 2)
    snr_db: tuple[float, float] = (15.0, 40.0)  # on the echo part, after the direct sound
    gain: tuple[float, float] = (0.3, 0.9)  # peak level of the written file
    components: tuple[str, ...] = ("direct", "scatter", "specular", "tail")
    # the recording device and late reverberation (see synth/device.py); the defaults are ideal
    duration_s: float = 0.0  # file length; 0: just long enough (2 * max_depth / c + chirp + margin)
    system_delay_s: float = 0.0  # the emission starts this long after the file's start
    band_hz: tuple[float, float] = (0.0, 0.0)  # speaker and microphone band-pass; (0, 0): flat
    direct_gain: float = 1.0  # the direct path's amplitude relative to a free speaker
    reverb_rt60_s: tuple[float, float] = (0.0, 0.0)  # diffuse late tail's RT60; 0: none
    reverb_level_db: tuple[float, float] = (-40.0, -40.0)  # its level, dB re a free speaker at 1 m
    audio_subtype: str = "PCM_16"  # the WAV sample type (BatVision V2: PCM_32)
    # where a stereo depth camera loses depth: written as 0 (invalid)
    invalid_incidence_deg: float = 90.0  # surfaces seen more obliquely than this; 90: none
    invalid_beyond_m: float = 0.0  # farther than this; 0: none

    def __post_init__(self):
        check_lengths(self)
        for name in (
            "room_size_m",
            "room_height_m",
            "furniture_count",
            "furniture_scale",
            "diffuse_reflectivity",
            "specular_reflectivity",
            "device_height_m",
            "pitch_deg",
            "snr_db",
            "gain",
            "split_fractions",
            "image_size",
            "furniture",
            "components",
            "band_hz",
            "reverb_rt60_s",
            "reverb_level_db",
        ):
            value = tuple(getattr(self, name))
            setattr(self, name, value)
            ordered = name not in ("split_fractions", "furniture", "components", "image_size")
            if ordered and value[0] > value[1] and not (name == "band_hz" and value[1] == 0):
                raise ConfigError(f"synth setting {name}: range {value} has min > max")
        unknown = set(self.furniture) - set(FURNITURE_TEMPLATES)
        if unknown:
            raise ConfigError(
                f"unknown furniture templates {sorted(unknown)}; expected some of {sorted(FURNITURE_TEMPLATES)}"
            )
        if len(self.split_fractions) != 3 or abs(sum(self.split_fractions) - 1) > 1e-6:
            raise ConfigError(f"split_fractions must be 3 numbers summing to 1, got {self.split_fractions}")
        if self.n_rooms < 1 or self.samples_per_room < 1 or self.n_locations < 1:
            raise ConfigError("n_rooms, samples_per_room and n_locations must be >= 1")
        check_synth_settings(self)

    @property
    def n_audio_samples(self) -> int:
        """Recording length: long enough for an echo from max_depth, plus the chirp and a margin."""
        seconds = 2 * self.max_depth_m / SPEED_OF_SOUND_M_S + self.chirp_duration_s + self.margin_s
        return int(np.ceil(max(seconds + self.system_delay_s, self.duration_s) * self.sample_rate_hz))

    def to_dict(self) -> dict:
        """Returns the settings as plain YAML/JSON values (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass
class Box:
    """An axis-aligned furniture box standing on the floor."""

    lo: np.ndarray  # (3,) min corner, metres
    hi: np.ndarray  # (3,) max corner
    kind: str = "box"


@dataclass
class Room:
    """A shoebox room (metres) with its furniture boxes and each surface's diffuse and specular
    reflection coefficients (0 to 1)."""

    size: np.ndarray  # (3,) Lx, Ly, Lz: the room spans [0, L] on each axis, z up
    boxes: list[Box] = field(default_factory=list)
    # per surface: 0..5 = walls x=0, x=Lx, y=0, y=Ly, floor, ceiling; 6+i = box i
    diffuse: np.ndarray | None = None
    specular: np.ndarray | None = None

    def __post_init__(self):
        self.size = np.asarray(self.size, dtype=float)
        n = 6 + len(self.boxes)
        if self.diffuse is None:
            self.diffuse = np.full(n, 0.3)
        if self.specular is None:
            self.specular = np.full(n, 0.6)


@dataclass
class Pose:
    """Where the recording device stands (metres) and where it looks (yaw and pitch, radians)."""

    position: np.ndarray  # (3,) camera centre, metres
    yaw: float = 0.0  # radians, 0 looks along +x, positive turns towards +y
    pitch: float = 0.0  # radians, positive looks up

    def axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Returns the camera's (forward, right, up) unit vectors in room coordinates."""
        cy, sy, cp, sp = np.cos(self.yaw), np.sin(self.yaw), np.cos(self.pitch), np.sin(self.pitch)
        forward = np.array([cp * cy, cp * sy, sp])
        right = np.array([sy, -cy, 0.0])
        up = np.cross(right, forward)
        return forward, right, up

    def ears(self, offset: float) -> np.ndarray:
        """Returns (2, 3): the left and right ear positions."""
        _, right, _ = self.axes()
        p = np.asarray(self.position, dtype=float)
        return np.stack([p - offset * right, p + offset * right])


def _uniform(rng: np.random.Generator, bounds) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def sample_room(cfg: SynthConfig, rng: np.random.Generator) -> Room:
    """Returns a random shoebox room with furniture and materials drawn from cfg's ranges."""
    size = np.array([_uniform(rng, cfg.room_size_m), _uniform(rng, cfg.room_size_m), _uniform(rng, cfg.room_height_m)])
    boxes = []
    for _ in range(int(rng.integers(cfg.furniture_count[0], cfg.furniture_count[1] + 1))):
        kind = cfg.furniture[int(rng.integers(len(cfg.furniture)))]
        w, d, h = FURNITURE_TEMPLATES[kind]
        scale = rng.uniform(*cfg.furniture_scale, size=3)
        w, d = w * scale[0], d * scale[1]
        h = size[2] if h < 0 else min(h * scale[2], size[2] - 0.1)
        if rng.random() < 0.5:  # turned by 90 degrees
            w, d = d, w
        w, d = min(w, size[0] - 0.2), min(d, size[1] - 0.2)
        x0 = rng.uniform(0.0, size[0] - w)
        y0 = rng.uniform(0.0, size[1] - d)
        boxes.append(Box(np.array([x0, y0, 0.0]), np.array([x0 + w, y0 + d, h]), kind))
    n = 6 + len(boxes)
    return Room(
        size, boxes, rng.uniform(*cfg.diffuse_reflectivity, size=n), rng.uniform(*cfg.specular_reflectivity, size=n)
    )


def _clear_of_boxes(xy: np.ndarray, room: Room, clearance: float) -> bool:
    for box in room.boxes:
        dx = max(box.lo[0] - xy[0], 0.0, xy[0] - box.hi[0])
        dy = max(box.lo[1] - xy[1], 0.0, xy[1] - box.hi[1])
        if np.hypot(dx, dy) < clearance:
            return False
    return True


def sample_pose(cfg: SynthConfig, room: Room, rng: np.random.Generator, max_tries: int = 100) -> Pose | None:
    """Returns a device pose clear of the walls and the furniture, or None if none was found."""
    margin = min(cfg.wall_clearance_m, 0.45 * float(room.size[:2].min()))
    for _ in range(max_tries):
        xy = np.array([rng.uniform(margin, room.size[0] - margin), rng.uniform(margin, room.size[1] - margin)])
        if _clear_of_boxes(xy, room, cfg.furniture_clearance_m):
            height = min(_uniform(rng, cfg.device_height_m), room.size[2] - 0.2)
            return Pose(
                np.array([xy[0], xy[1], height]),
                yaw=float(rng.uniform(0, 2 * np.pi)),
                pitch=float(np.deg2rad(_uniform(rng, cfg.pitch_deg))),
            )
    return None


def sample_scene(cfg: SynthConfig, rng: np.random.Generator, max_rooms: int = 50) -> tuple[Room, list[Pose]]:
    """Returns a room and cfg.samples_per_room device poses in it; a room too crowded for the
    poses is drawn again (deterministically, from the same generator)."""
    for _ in range(max_rooms):
        room = sample_room(cfg, rng)
        poses = [sample_pose(cfg, room, rng) for _ in range(cfg.samples_per_room)]
        if all(p is not None for p in poses):
            return room, poses
    raise ConfigError("could not place the device in any sampled room: loosen the clearances or furniture_count")
