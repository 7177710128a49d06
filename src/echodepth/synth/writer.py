"""Writes a synthetic dataset in the BatVision V2 layout, in parallel, resumable, reproducible.

    OUT/echodepth_synth.json                    every setting, the version and the seed
    OUT/location_00/{train,val,test}.csv        V2 columns: depth path, depth file name, audio path, audio file name
    OUT/location_00/audio/room00004_pose03.wav  stereo 16-bit PCM, 44.1 kHz
    OUT/location_00/depth/room00004_pose03.npy  uint16 depth in millimetres

Each room is one unit of work with its own random stream (seed, room), so the files are
byte-identical whatever the number of workers. A room's files are written to temporary names
and renamed; a marker in OUT/.progress then records the room as done. The CSVs are written
last, from the markers, so no CSV row ever points to an incomplete file; an interrupted run
resumes by skipping the rooms already marked.
"""

from __future__ import annotations

import csv
import io
import json
import multiprocessing as mp
import os
import signal
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

from ..errors import ConfigError
from ..runs.storage import atomic_write_bytes, make_dir, remove_stale_partials, save_npy
from ..version import __version__
from .depth import render_depth
from .echo import render_echo
from .scene import SynthConfig, sample_scene

METADATA_FILE = "echodepth_synth.json"
V2_COLUMNS = ["depth path", "depth file name", "audio path", "audio file name", "room", "pose"]
SPLITS = ("train", "val", "test")


def location_name(index: int) -> str:
    """Returns the folder name of room `index`, e.g. 'location_03'."""
    return f"location_{index:02d}"


def assign_splits(cfg: SynthConfig) -> dict[int, tuple[str, str]]:
    """Returns room index -> (location folder, split). Rooms are shuffled and split by
    cfg.split_fractions (at least one room each in val and test when there are 3+ rooms), so no
    room is in two splits; room r lies in location r mod n_locations."""
    rooms = np.random.default_rng([cfg.seed, 1]).permutation(cfg.n_rooms)
    n = cfg.n_rooms
    n_val = max(1, round(cfg.split_fractions[1] * n)) if n >= 3 and cfg.split_fractions[1] > 0 else 0
    n_test = max(1, round(cfg.split_fractions[2] * n)) if n >= 3 and cfg.split_fractions[2] > 0 else 0
    n_train = n - n_val - n_test
    out = {}
    for i, room in enumerate(rooms):
        split = "train" if i < n_train else ("val" if i < n_train + n_val else "test")
        out[int(room)] = (location_name(int(room) % cfg.n_locations), split)
    return out


def render_room(cfg: SynthConfig, room_index: int):
    """Yields (pose index, audio (N, 2) float32, depth (H, W) metres) for every pose of a room."""
    room, poses = sample_scene(cfg, np.random.default_rng([cfg.seed, room_index]))
    for p, pose in enumerate(poses):
        depth = render_depth(
            room,
            pose,
            image_size=cfg.image_size,
            hfov_deg=cfg.hfov_deg,
            max_depth_m=cfg.max_depth_m,
            invalid_incidence_deg=cfg.invalid_incidence_deg,
            invalid_beyond_m=cfg.invalid_beyond_m,
        )
        audio = render_echo(room, pose, cfg, np.random.default_rng([cfg.seed, room_index, p]))
        yield p, audio, depth


def _write_room(job) -> int:
    out_dir, cfg_dict, room_index, location, split = job
    cfg = SynthConfig(**cfg_dict)
    out_dir = Path(out_dir)
    rows = []
    for p, audio, depth in render_room(cfg, room_index):
        stem = f"room{room_index:05d}_pose{p:02d}"
        buf = io.BytesIO()
        sf.write(buf, audio, cfg.sample_rate_hz, format="WAV", subtype=cfg.audio_subtype)
        atomic_write_bytes(out_dir / location / "audio" / f"{stem}.wav", buf.getvalue())
        save_npy(out_dir / location / "depth" / f"{stem}.npy", np.round(depth * 1000).astype(np.uint16))
        rows.append(
            {
                "depth path": f"{location}/depth",
                "depth file name": f"{stem}.npy",
                "audio path": f"{location}/audio",
                "audio file name": f"{stem}.wav",
                "room": room_index,
                "pose": p,
            }
        )
    marker = {"room": room_index, "location": location, "split": split, "rows": rows}
    atomic_write_bytes(out_dir / ".progress" / f"room{room_index:05d}.json", json.dumps(marker).encode())
    return len(rows)


def metadata(cfg: SynthConfig) -> dict:
    """Returns the dataset's metadata.json contents: format, generator version, seed and settings."""
    return {
        "format": "batvision_v2",
        "generator": "echodepth.synth",
        "version": __version__,
        "seed": cfg.seed,
        "max_depth_m": cfg.max_depth_m,
        "sample_rate_hz": cfg.sample_rate_hz,
        "n_audio_samples": cfg.n_audio_samples,
        "image_size": list(cfg.image_size),
        "depth_unit": "mm",
        "settings": cfg.to_dict(),
    }


def generate_dataset(
    out_dir, cfg: SynthConfig | None = None, workers: int | None = None, progress: bool = True
) -> dict:
    """Writes (or completes) the dataset of `cfg` in out_dir; returns the number of samples per split."""
    cfg = cfg or SynthConfig()
    out_dir = make_dir(out_dir)
    meta_path = out_dir / METADATA_FILE
    meta = metadata(cfg)
    if meta_path.exists():
        old = json.loads(meta_path.read_text())
        if old.get("settings") != meta["settings"]:
            raise ConfigError(
                f"{out_dir} already holds a synthetic dataset made with other settings (see {meta_path}); "
                "choose another folder"
            )
    elif any(out_dir.iterdir()):
        raise ConfigError(f"{out_dir} is not empty and holds no {METADATA_FILE}: refusing to write a dataset into it")
    atomic_write_bytes(meta_path, (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode())
    splits = assign_splits(cfg)
    for loc in range(cfg.n_locations):
        for sub in ("audio", "depth"):
            make_dir(out_dir / location_name(loc) / sub)
    make_dir(out_dir / ".progress")
    remove_stale_partials(out_dir)  # left by an interrupted run
    todo = [r for r in range(cfg.n_rooms) if not (out_dir / ".progress" / f"room{r:05d}.json").exists()]
    jobs = [(str(out_dir), cfg.to_dict(), r, *splits[r]) for r in todo]
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs) or 1))
    bar = tqdm(
        total=cfg.n_rooms * cfg.samples_per_room,
        initial=(cfg.n_rooms - len(todo)) * cfg.samples_per_room,
        unit="sample",
        desc="synth",
        disable=not progress,
    )
    with bar:
        if workers == 1:
            for job in jobs:
                bar.update(_write_room(job))
        else:
            ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
            with ctx.Pool(workers, initializer=_pool_worker_signals) as pool:
                for n in pool.imap_unordered(_write_room, jobs):
                    bar.update(n)
    return _write_csvs(out_dir, cfg)


def _pool_worker_signals() -> None:
    """Gives a forked pool worker the default SIGTERM (the pool's terminate() ends it) and no SIGINT (its
    parent handles Ctrl-C): a handler inherited from the parent (`train`'s, which raises) would fire inside
    the pool's queue lock at terminate() and leave the worker, and its parent joining it, waiting forever."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _write_csvs(out_dir: Path, cfg: SynthConfig) -> dict:
    tables: dict[tuple[str, str], list[dict]] = {
        (location_name(l), s): [] for l in range(cfg.n_locations) for s in SPLITS
    }
    for r in range(cfg.n_rooms):
        marker = json.loads((out_dir / ".progress" / f"room{r:05d}.json").read_text())
        tables[(marker["location"], marker["split"])].extend(marker["rows"])
    counts = {s: 0 for s in SPLITS}
    for (location, split), rows in tables.items():
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=V2_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_bytes(out_dir / location / f"{split}.csv", buf.getvalue().encode())
        counts[split] += len(rows)
    return counts


def is_complete(out_dir, cfg: SynthConfig) -> bool:
    """Returns whether out_dir holds the whole dataset of cfg (metadata, every room, the CSVs)."""
    out_dir = Path(out_dir)
    meta_path = out_dir / METADATA_FILE
    if not meta_path.exists() or json.loads(meta_path.read_text()).get("settings") != cfg.to_dict():
        return False
    rooms_done = all((out_dir / ".progress" / f"room{r:05d}.json").exists() for r in range(cfg.n_rooms))
    csvs = all((out_dir / location_name(l) / f"{s}.csv").exists() for l in range(cfg.n_locations) for s in SPLITS)
    return rooms_done and csvs
