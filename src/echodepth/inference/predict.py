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

from ..audio.recordings import (
    LEFT,
    RIGHT,
    load_npy,
    pcm_to_float,
    read_audio_file,
    read_recording,
    recording_stem,
    recordings_in,
)
from ..deploy.chirps import NOISE_FLOOR_Z, find_chirps, normalised_correlation, window_starts
from ..errors import ConfigError, DataError, MissingFileError, UserError
from ..runs.storage import atomic_write_bytes, make_dir, save_npy
from ..settings.arguments import pcm_bits as check_pcm_bits
from ..viz import decomposition_animation, decomposition_figure

CHUNK = 64  # windows predicted at a time


def check_source_options(checkpoint=None, model=None, *, device=None, threads=None, precision=None) -> None:
    """Raises a ConfigError unless exactly one of `checkpoint` and `model` is given, naming an
    option that does not apply to it: `device` and `precision` to an exported model (it runs on
    the CPU, in the precision it was exported in), `threads` to a checkpoint (torch's threads)."""
    if (checkpoint is None) == (model is None):
        raise ConfigError("give a checkpoint (--checkpoint) or an exported model (--model), one of the two")
    if model is not None:
        given = [f"--{name} {value}" for name, value in (("device", device), ("precision", precision)) if value]
        if given:
            raise ConfigError(
                f"{' and '.join(given)} {'does' if len(given) == 1 else 'do'} not apply to --model: an exported "
                "model runs on the CPU (onnxruntime, or TorchScript) in the precision it was exported in; "
                "leave it out, or predict with --checkpoint"
            )
    elif threads is not None:
        raise ConfigError(
            f"--threads {threads} applies to --model (onnxruntime's threads), not to --checkpoint: leave it out "
            "(torch uses every core; set OMP_NUM_THREADS to limit it)"
        )


def load_predictor(checkpoint=None, model=None, *, device=None, threads: int | None = None, precision=None):
    """Returns a Predictor (checkpoint; device None: "auto", precision None: "fp32") or an
    ExportedModel (model): both `.predict(wave, rate, name, pcm_bits)` -> Prediction, with
    `.sample_rate_hz`, `.max_depth_m`, `.min_samples`, `.emission`. Options that do not apply to
    the source are a ConfigError (`check_source_options`)."""
    check_source_options(checkpoint, model, device=device, threads=threads, precision=precision)
    if model is not None:
        from ..deploy import load_model

        return load_model(model, threads=threads)
    from .predictor import Predictor

    return Predictor.from_checkpoint(checkpoint, device=device or "auto", precision=precision or "fp32")


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
        chirp = pcm_to_float(load_npy(path, "chirp file"), f"chirp file {path}")
    else:
        chirp, rate = read_audio_file(path, "chirp file")
        if rate != sample_rate_hz:
            raise DataError(f"chirp file {path} is sampled at {rate} Hz, the model expects {sample_rate_hz} Hz")
        chirp = chirp.mean(axis=1)
    chirp = np.asarray(chirp, dtype=np.float64).squeeze()
    if chirp.ndim != 1 or chirp.size < 2 or not np.isfinite(chirp).all() or not np.abs(chirp).max() > 0:
        raise DataError(f"chirp file {path}: expected a finite, non-silent mono signal, got shape {chirp.shape}")
    return chirp


def chirp_settings(predictor, *, chirp_file=None, lead_ms=None, min_gap_ms=None, threshold=0.25) -> ChirpSettings:
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
    """Returns (rows of the onsets table, base, residual, final (n, H, W) in metres, the windows'
    warnings) for a long (2, N) recording: one prediction per chirp found whose window fits inside
    the recording."""
    rate = predictor.sample_rate_hz
    peaks = find_chirps(wave, settings.chirp, settings.min_gap, settings.threshold)
    starts, cut_off = window_starts(peaks, settings.lead, settings.window, wave.shape[-1])
    for peak in cut_off:
        print(f"{name}: chirp at {peak / rate:.4f} s: its window runs past the recording; skipped")
    if len(starts) == 0:
        raise DataError(
            f"{name}: no chirp found (no matched-filter peak {NOISE_FLOOR_Z:g} robust standard deviations above "
            "the noise floor whose window fits in the recording)"
        )
    score = normalised_correlation(wave, settings.chirp)
    maps, warnings = [[], [], []], set()
    for i in range(0, len(starts), CHUNK):
        windows = np.stack([wave[:, s : s + settings.window] for s in starts[i : i + CHUNK]])
        prediction = predictor.predict(windows, rate, name)
        warnings.update(w for report in prediction.report for w in report["warnings"])
        for store, part in zip(maps, (prediction.base_m, prediction.residual_m, prediction.final_m)):
            store.append(as_numpy(part))
    rows = [
        {
            "chirp": k,
            "onset_s": round(s / rate, 6),
            "onset_sample": int(s),
            "peak_sample": int(s + settings.lead),
            "correlation": round(float(score[s + settings.lead]), 4),  # normalised: 1 = the chirp itself
        }
        for k, s in enumerate(starts)
    ]
    return (rows, *(np.concatenate(store) for store in maps), sorted(warnings))


def write_onsets(rows: list[dict], path: Path) -> None:
    """Writes the chirps' rows (onset, correlation, ...) as a CSV file (atomically)."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(path, text.getvalue().encode())


def input_recordings(audio_paths) -> list[Path | UserError]:
    """Returns the recordings to predict, in order: each file named, each folder's recordings
    (`recordings_in`), a path given twice once, a V1 `*_right.npy` whose `*_left.npy` is given
    left out (read with it); a missing path or an empty folder is its UserError in place."""
    found: list[Path | UserError] = []
    for path in map(Path, audio_paths):
        if path.is_dir():
            try:
                found.extend(recordings_in(path))
            except UserError as err:
                found.append(err)
        else:
            found.append(path if path.is_file() else MissingFileError(f"audio file {path} not found"))
    paths = [p for p in found if isinstance(p, Path)]
    lefts = {p.with_name(p.name[: -len(LEFT)]) for p in paths if p.name.endswith(LEFT)}
    seen, unique = set(), []
    for item in found:
        if isinstance(item, Path):
            key = item.resolve()
            if key in seen or (item.name.endswith(RIGHT) and item.with_name(item.name[: -len(RIGHT)]) in lefts):
                continue
            seen.add(key)
        unique.append(item)
    return unique


def output_stems(paths: list[Path]) -> list[str]:
    """Returns the output name stem of each recording, all different: the file's stem
    (`recording_stem`); where two recordings share one, the file type is added if that parts them
    (x.wav, x.npy -> x_wav, x_npy), else as many parent folders as it takes (a/x.wav, b/x.wav ->
    a_x, b_x), and a number if nothing does."""
    stems = [recording_stem(p) for p in paths]

    def clashing() -> set[str]:
        return {s for s in stems if stems.count(s) > 1}

    by_type = [f"{s}_{p.suffix.lstrip('.')}" for p, s in zip(paths, stems)]
    if clashing():
        stems = [t if s in clashing() and by_type.count(t) == 1 else s for s, t in zip(stems, by_type)]
    folders = [p.absolute().parent.parts for p in paths]
    for depth in range(1, max(map(len, folders), default=0) + 1):
        # folders can part a clash only where the clashing files lie in different folders
        clash = {c for c in clashing() if len({f for f, s in zip(folders, stems) if s == c}) > 1}
        if not clash:
            break
        stems = [
            "_".join((*f[-depth:], recording_stem(p))).lstrip("/_") if s in clash else s
            for p, f, s in zip(paths, folders, stems)
        ]
    counts: dict[str, int] = {}
    unique = []
    for stem, repeated in zip(stems, [stems.count(s) > 1 for s in stems]):
        counts[stem] = counts.get(stem, 0) + 1
        unique.append(f"{stem}_{counts[stem]}" if repeated else stem)
    return unique


def predict_files(
    checkpoint=None, audio_paths=(), out_dir="predictions", *, device=None, on_error=None, model=None, threads=None,
    chirps: dict | None = None, precision: str | None = None, pcm_bits: int | None = None,
) -> list[dict]:  # fmt: skip
    """Writes, per recording (a file, or each recording of a folder), `<stem>_depth.npy` (final
    depth, metres) and `<stem>_decomposition.png` (base, residual, final); returns what it wrote,
    with the recording's `warnings` (clipping, level above full scale, near silence). Stems are
    made unique by `output_stems`: no output overwrites another. With `chirps` (the keyword
    arguments of `chirp_settings`), each file is a long recording: `<stem>_depth.npy` is
    (n_chirps, H, W), with `<stem>_onsets.csv` and `<stem>_decomposition.gif`.

    A recording that cannot be predicted from (missing, unreadable, silent, NaN, too short, wrong
    rate or channels, no chirp) raises its one-line error, or, with `on_error` (a function of the
    message), is reported there and the others are still predicted. `pcm_bits` declares the width
    of integer .npy recordings (needed for int64: `audio.recordings.pcm_to_float`); options that do not
    apply to the source (`check_source_options`) are a ConfigError before anything is read."""
    if pcm_bits is not None:
        pcm_bits = check_pcm_bits(pcm_bits)
    predictor = load_predictor(checkpoint, model, device=device, threads=threads, precision=precision)
    settings = chirp_settings(predictor, **chirps) if chirps is not None else None
    out_dir = make_dir(out_dir, "--out_dir")
    inputs = input_recordings(audio_paths)
    paths = [p for p in inputs if isinstance(p, Path)]
    stems = dict(zip(paths, output_stems(paths)))
    written = []
    for path in inputs:
        try:
            if isinstance(path, UserError):
                raise path
            item = predict_one(predictor, path, out_dir / stems[path], settings=settings, pcm_bits=pcm_bits)
        except UserError as err:
            if on_error is None:
                raise
            on_error(str(err))
            continue
        written.append(item)
    return written


def predict_one(predictor, path: Path, out_stem: Path, *, settings: ChirpSettings | None, pcm_bits=None) -> dict:
    """Predicts one recording and writes its outputs under `out_stem` + suffixes; returns what it wrote."""
    rate = predictor.sample_rate_hz
    wave = read_recording(path, rate, pcm_bits)
    depth_path = out_stem.with_name(out_stem.name + "_depth.npy")
    if settings is None:
        prediction = predictor.predict(wave, rate, name=str(path))
        base, residual, final = (as_numpy(m) for m in (prediction.base_m, prediction.residual_m, prediction.final_m))
        save_npy(depth_path, final[0])
        figure = out_stem.with_name(out_stem.name + "_decomposition.png")
        figure = decomposition_figure(
            base, residual, final, None, path=figure, max_depth_m=predictor.max_depth_m, title=path.name
        )
        warnings = prediction.report[0]["warnings"]
        return {"audio": str(path), "depth": str(depth_path), "figure": str(figure), "warnings": warnings}
    rows, base, residual, final, warnings = predict_chirps(predictor, wave, settings, str(path))
    save_npy(depth_path, final)
    onsets = out_stem.with_name(out_stem.name + "_onsets.csv")
    write_onsets(rows, onsets)
    gaps = np.diff([r["onset_s"] for r in rows])
    frame_ms = int(np.clip(np.median(gaps) * 1000, 100, 1000)) if len(gaps) else 500
    titles = [f"{path.name}: chirp {r['chirp']} at {r['onset_s']:.3f} s" for r in rows]
    gif = out_stem.with_name(out_stem.name + "_decomposition.gif")
    decomposition_animation(
        base, residual, final, path=gif, max_depth_m=predictor.max_depth_m, titles=titles, frame_ms=frame_ms
    )
    item = {"audio": str(path), "depth": str(depth_path), "figure": str(gif), "onsets": str(onsets)}
    return {**item, "n_chirps": len(rows), "warnings": warnings}
