"""Evaluation and prediction from self-describing checkpoints (loaded with weights_only=True)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .config import TrainConfig
from .data import AudioFeatures, DataError, prepare_batch
from .data.datasets import read_ear_pair, read_stereo
from .metrics import METRIC_KEYS, aggregate, per_image_metrics


def load_checkpoint(path, device: str = "cpu"):
    """Returns (network in eval mode, TrainConfig, metadata) from a checkpoint, running no pickled code."""
    from .training import build_network

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:
        raise ValueError(f"checkpoint {path} is unreadable or not a plain weights file ({str(err).splitlines()[0]})") from None
    if "echodepth" not in ckpt:
        raise ValueError(f"checkpoint {path} was not written by echodepth train (no 'echodepth' settings inside)")
    meta = ckpt["echodepth"]
    cfg = TrainConfig.from_dict(meta["config"])
    network = build_network(cfg)
    state = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    network.load_state_dict(state)
    return network.to(device).eval(), cfg, meta


def _device(name: str = "auto") -> str:
    return ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name


@torch.no_grad()
def run_split(network, datamodule, split: str, max_depth_m: float, device: str, progress: bool = True):
    """Yields (batch, base, residual, final, gt) in metres over a split."""
    for batch in tqdm(datamodule.loader(split, batch_size=64), desc=f"eval {split}", disable=not progress, leave=False):
        b = prepare_batch({k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}, max_depth_m, True)
        base, residual, final = (t.float() * max_depth_m for t in network(b["features"]))
        yield b, base, residual, final, b["depth"] * max_depth_m


def evaluate_module(checkpoint, datamodule, split: str, out_dir=None, device: str = "auto", progress: bool = True) -> dict:
    """Returns the protocol's metrics of a checkpoint on a split; with out_dir, also writes
    metrics.json and a per-image CSV there."""
    device = _device(device)
    network, cfg, meta = load_checkpoint(checkpoint, device)
    max_depth = float(meta["max_depth_m"])
    parts, rows = [], []
    raw = datamodule.raw_dataset(split)
    for b, base, residual, final, gt in run_split(network, datamodule, split, max_depth, device, progress):
        per = per_image_metrics(final, gt)
        parts.append({k: v.cpu() for k, v in per.items()})
        for j, i in enumerate(b["index"].tolist()):
            ref = raw.refs[i]
            rows.append({"index": i, "audio": ";".join(str(p) for p in ref.audio), "depth": str(ref.depth), **{k: float(per[k][j]) for k in (*METRIC_KEYS, "n_valid")}})
    metrics = aggregate({k: torch.cat([p[k] for p in parts]) for k in parts[0]})
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / f"{split}_metrics.json").write_text(json.dumps({"checkpoint": str(checkpoint), "split": split, **metrics}, indent=2))
        rows.sort(key=lambda r: r["index"])
        with open(out_dir / f"{split}_per_image.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return metrics


def evaluate(checkpoint, split: str = "test", dataset: str | None = None, data_dir: str | None = None, out_dir=None, device: str = "auto", progress: bool = True) -> dict:
    """Returns (and writes, in out_dir or beside the checkpoint's run) a checkpoint's metrics on a split."""
    from .training import EchoDepthDataModule

    _, cfg, meta = load_checkpoint(checkpoint)
    values = cfg.to_dict()
    if dataset:
        values["dataset"] = dataset
    if data_dir:
        values["data_dir"] = data_dir
    values["max_depth"] = float(meta["max_depth_m"])  # clip and scale as in training
    datamodule = EchoDepthDataModule(TrainConfig.from_dict(values), progress=progress)
    if not datamodule.root.is_dir():
        raise ValueError(f"--data_dir {datamodule.root} is not a folder")
    out_dir = Path(out_dir) if out_dir else Path(checkpoint).resolve().parent.parent / "eval"
    return evaluate_module(checkpoint, datamodule, split, out_dir=out_dir, device=device, progress=progress)


def read_recording(path: Path, sample_rate_hz: int) -> np.ndarray:
    """Returns the (2, N) waveform of a BatVision recording: a stereo audio file (V2), a V1
    `*_left.npy` whose `*_right.npy` lies beside it, or a (2, N) .npy array."""
    if path.name.endswith("_left.npy"):
        return read_ear_pair(path, path.with_name(path.name[: -len("_left.npy")] + "_right.npy"), str(path))
    if path.suffix == ".npy":
        wave = np.load(path, allow_pickle=False)
        if wave.ndim == 2 and wave.shape[1] == 2 and wave.shape[0] != 2:
            wave = wave.T
        if wave.ndim != 2 or wave.shape[0] != 2:
            raise DataError(f"{path}: expected a (2, N) waveform or a V1 *_left.npy, got shape {wave.shape}")
        return wave.astype(np.float32)
    return read_stereo(path, sample_rate_hz, str(path))


@torch.no_grad()
def predict(checkpoint, audio_paths, out_dir, device: str = "auto") -> list[dict]:
    """Writes, per recording, `<stem>_depth.npy` (final depth, metres) and
    `<stem>_decomposition.png` (base, residual, final); returns what it wrote."""
    from .data import FeatureConfig
    from .viz import decomposition_figure

    device = _device(device)
    network, cfg, meta = load_checkpoint(checkpoint, device)
    max_depth = float(meta["max_depth_m"])
    side = cfg.image_size
    features = AudioFeatures(FeatureConfig(audio_format=cfg.audio_format, log=cfg.log_compression, image_size=(side, side)), max_depth).to(device)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    paths = [Path(p) for p in audio_paths]
    lefts = {p.name[: -len("_left.npy")] for p in paths if p.name.endswith("_left.npy")}
    for path in paths:
        if path.name.endswith("_right.npy") and path.name[: -len("_right.npy")] in lefts:
            continue  # read together with its left ear
        if not path.is_file():
            raise FileNotFoundError(f"audio file {path} not found")
        wave = torch.from_numpy(read_recording(path, 44100))[None].to(device)
        base, residual, final = (t.float() * max_depth for t in network(features(wave)))
        stem = path.name.removesuffix("_left.npy") if path.name.endswith("_left.npy") else path.stem
        depth_path = out_dir / f"{stem}_depth.npy"
        np.save(depth_path, final[0, 0].cpu().numpy())
        figure = decomposition_figure(base[:, 0].cpu(), residual[:, 0].cpu(), final[:, 0].cpu(), None, out_dir / f"{stem}_decomposition.png", max_depth, title=path.name)
        written.append({"audio": str(path), "depth": str(depth_path), "figure": str(figure)})
    return written
