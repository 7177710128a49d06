"""`echodepth predict`: depth maps for recordings, from a checkpoint (PyTorch, through the one
inference path `Predictor`) or an exported model (`deploy.load_model`: onnxruntime, no torch).

One recording per file, or with `chirps=True` long recordings holding many chirps: each chirp is
found (`deploy.chirps`), the window the model was trained on is cut, and the depth sequence is
written. This module does not import torch itself."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio_io import LEFT, RIGHT, read_audio_file, read_recording, recording_stem
from .deploy.chirps import find_chirps, matched_filter, window_starts
from .errors import ConfigError, DataError, MissingFileError, UserError
from .storage import atomic_write_bytes, make_dir, save_npy
from .viz import decomposition_animation, decomposition_figure

CHUNK = 64  # windows predicted at a time


def load_predictor(checkpoint=None, model=None, device: str = "auto", threads: int | None = None, precision="fp32"):
    """Returns a Predictor (checkpoint) or an ExportedModel (model): both `.predict(wave, rate,
    name)` -> Prediction, with `.sample_rate_hz`, `.max_depth_m`, `.min_samples`, `.emission`."""
    if model is not None:
        from .deploy import load_model

        return load_model(model, threads=threads)
    from .inference import Predictor

    return Predictor.from_checkpoint(checkpoint, device=device, precision=precision)


def as_numpy(maps) -> np.ndarray:
    """Returns (B, H, W) float32 from a (B, 1, H, W) torch tensor or numpy array."""
    maps = maps.detach().cpu().numpy() if hasattr(maps, "detach") else np.asarray(maps)
    return maps[:, 0].astype(np.float32)


@dataclass
class ChirpSettings:
    """How long recordings are cut: the emitted chirp, the lead (samples from a window's start to
    the matched filter's peak), the window length, the least gap and the detection level."""

    chirp: np.ndarray
    lead: int
    window: int
    min_gap: int
    threshold: float = 0.25


def read_chirp(path: Path, sample_rate_hz: int) -> np.ndarray:
    """Returns a mono chirp from an audio file (channels averaged) or a 1-D .npy array."""
    if not path.is_file():
        raise MissingFileError(f"chirp file {path} not found")
    if path.suffix == ".npy":
        chirp = np.load(path, allow_pickle=False)
    else:
        chirp, rate = read_audio_file(path, "chirp file")
        if rate != sample_rate_hz:
            raise DataError(f"chirp file {path} is sampled at {rate} Hz, the model expects {sample_rate_hz} Hz")
        chirp = chirp.mean(axis=1)
    chirp = np.asarray(chirp, dtype=np.float64).squeeze()
    if chirp.ndim != 1 or chirp.size < 2 or not np.isfinite(chirp).all() or not np.abs(chirp).max() > 0:
        raise DataError(f"chirp file {path}: expected a finite, non-silent mono signal, got shape {chirp.shape}")
    return chirp


def chirp_settings(predictor, chirp_file=None, lead_ms=None, min_gap_ms=None, threshold=0.25) -> ChirpSettings:
    """Returns the settings for long recordings: the model's stored emission, overridden by flags."""
    emission = predictor.emission or {}
    rate = predictor.sample_rate_hz
    if chirp_file is not None:
        chirp = read_chirp(Path(chirp_file), rate)
    elif emission.get("chirp"):
        chirp = np.asarray(emission["chirp"], dtype=np.float64)
    else:
        raise ConfigError("this model holds no chirp (it was not trained on synthetic data): give --chirp FILE")
    lead = round(lead_ms * rate / 1000) if lead_ms is not None else int(emission.get("lead_samples", 0))
    window = int(emission.get("window_samples") or predictor.min_samples)
    if lead < 0:
        raise ConfigError(f"--lead_ms {lead_ms}: expected a time >= 0")
    min_gap = round(min_gap_ms * rate / 1000) if min_gap_ms is not None else window
    if min_gap < 1:
        raise ConfigError(f"--min_gap_ms {min_gap_ms}: expected a time > 0")
    return ChirpSettings(chirp, lead, window, min_gap, threshold)


def predict_chirps(predictor, wave: np.ndarray, settings: ChirpSettings, name: str):
    """Returns (rows of the onsets table, base, residual, final (n, H, W) in metres) for a long (2, N)
    recording: one prediction per chirp found whose window fits inside the recording."""
    rate = predictor.sample_rate_hz
    peaks = find_chirps(wave, settings.chirp, settings.min_gap, settings.threshold)
    starts, cut_off = window_starts(peaks, settings.lead, settings.window, wave.shape[-1])
    for peak in cut_off:
        print(f"{name}: chirp at {peak / rate:.4f} s: its window runs past the recording; skipped")
    if len(starts) == 0:
        raise DataError(f"{name}: no chirp found (matched filter above {settings.threshold:g} of its peak)")
    score = matched_filter(wave, settings.chirp)
    maps = [[], [], []]
    for i in range(0, len(starts), CHUNK):
        windows = np.stack([wave[:, s : s + settings.window] for s in starts[i : i + CHUNK]])
        prediction = predictor.predict(windows, rate, name)
        for store, part in zip(maps, (prediction.base_m, prediction.residual_m, prediction.final_m)):
            store.append(as_numpy(part))
    rows = [
        {
            "chirp": k,
            "onset_s": round(s / rate, 6),
            "onset_sample": int(s),
            "peak_sample": int(s + settings.lead),
            "peak_level": round(float(score[s + settings.lead] / score.max()), 4),
        }
        for k, s in enumerate(starts)
    ]
    return (rows, *(np.concatenate(store) for store in maps))


def write_onsets(rows: list[dict], path: Path) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(path, text.getvalue().encode())


def predict_files(
    checkpoint=None, audio_paths=(), out_dir="predictions", device="auto", on_error=None, model=None, threads=None,
    chirps: dict | None = None, precision: str = "fp32",
) -> list[dict]:  # fmt: skip
    """Writes, per recording, `<stem>_depth.npy` (final depth, metres) and
    `<stem>_decomposition.png` (base, residual, final); returns what it wrote. With `chirps` (the
    keyword arguments of `chirp_settings`), each file is a long recording: `<stem>_depth.npy` is
    (n_chirps, H, W), with `<stem>_onsets.csv` and `<stem>_decomposition.gif`.

    A recording that cannot be predicted from (missing, unreadable, NaN, too short, wrong rate or
    channels, no chirp) raises its one-line error, or, with `on_error` (a function of the
    message), is reported there and the others are still predicted."""
    predictor = load_predictor(checkpoint, model, device, threads, precision)
    settings = chirp_settings(predictor, **chirps) if chirps is not None else None
    rate = predictor.sample_rate_hz
    out_dir = make_dir(out_dir, "--out_dir")
    written = []
    paths = [Path(p) for p in audio_paths]
    lefts = {p.name[: -len(LEFT)] for p in paths if p.name.endswith(LEFT)}
    for path in paths:
        if path.name.endswith(RIGHT) and path.name[: -len(RIGHT)] in lefts:
            continue  # read together with its left ear
        stem = recording_stem(path)
        try:
            if not path.is_file():
                raise MissingFileError(f"audio file {path} not found")
            wave = read_recording(path, rate)
            if settings is None:
                prediction = predictor.predict(wave, rate, name=str(path))
                base, residual, final = (
                    as_numpy(m) for m in (prediction.base_m, prediction.residual_m, prediction.final_m)
                )
            else:
                rows, base, residual, final = predict_chirps(predictor, wave, settings, str(path))
        except UserError as err:
            if on_error is None:
                raise
            on_error(str(err))
            continue
        depth_path = out_dir / f"{stem}_depth.npy"
        if settings is None:
            save_npy(depth_path, final[0])
            figure = decomposition_figure(
                base, residual, final, None, out_dir / f"{stem}_decomposition.png", predictor.max_depth_m, path.name
            )
            written.append({"audio": str(path), "depth": str(depth_path), "figure": str(figure)})
            continue
        save_npy(depth_path, final)
        write_onsets(rows, out_dir / f"{stem}_onsets.csv")
        gaps = np.diff([r["onset_s"] for r in rows])
        frame_ms = int(np.clip(np.median(gaps) * 1000, 100, 1000)) if len(gaps) else 500
        titles = [f"{path.name}: chirp {r['chirp']} at {r['onset_s']:.3f} s" for r in rows]
        gif = out_dir / f"{stem}_decomposition.gif"
        decomposition_animation(base, residual, final, gif, predictor.max_depth_m, titles, frame_ms)
        written.append(
            {
                "audio": str(path),
                "depth": str(depth_path),
                "figure": str(gif),
                "onsets": str(out_dir / f"{stem}_onsets.csv"),
                "n_chirps": len(rows),
            }
        )
    return written
