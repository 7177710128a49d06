"""`echodepth predict`: depth maps for recordings, through the one inference path."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .data.files import read_ear_pair, read_stereo
from .errors import DataError, MissingFileError, UserError
from .inference import Predictor
from .viz import decomposition_figure

LEFT, RIGHT = "_left.npy", "_right.npy"


def read_recording(path: Path, sample_rate_hz: int) -> np.ndarray:
    """Returns the (2, N) waveform of a BatVision recording: a stereo audio file (V2), a V1
    `*_left.npy` whose `*_right.npy` lies beside it, or a (2, N) .npy array."""
    if path.name.endswith(LEFT):
        return read_ear_pair(path, path.with_name(path.name[: -len(LEFT)] + RIGHT), str(path))
    if path.suffix == ".npy":
        wave = np.load(path, allow_pickle=False)
        if wave.ndim == 2 and wave.shape[1] == 2 and wave.shape[0] != 2:
            wave = wave.T
        if wave.ndim != 2 or wave.shape[0] != 2:
            raise DataError(f"{path}: expected a (2, N) waveform or a V1 *_left.npy, got shape {wave.shape}")
        return wave.astype(np.float32)
    return read_stereo(path, sample_rate_hz, str(path))


def recording_stem(path: Path) -> str:
    return path.name.removesuffix(LEFT) if path.name.endswith(LEFT) else path.stem


def predict_files(checkpoint, audio_paths, out_dir, device: str = "auto", on_error=None) -> list[dict]:
    """Writes, per recording, `<stem>_depth.npy` (final depth, metres) and
    `<stem>_decomposition.png` (base, residual, final); returns what it wrote.

    A recording that cannot be predicted from (missing, unreadable, NaN, too short, wrong rate or
    channels) raises its one-line error, or, with `on_error` (a function of the message), is
    reported there and the others are still predicted."""
    predictor = Predictor.from_checkpoint(checkpoint, device=device)
    rate = predictor.features.sample_rate_hz
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    paths = [Path(p) for p in audio_paths]
    lefts = {p.name[: -len(LEFT)] for p in paths if p.name.endswith(LEFT)}
    for path in paths:
        if path.name.endswith(RIGHT) and path.name[: -len(RIGHT)] in lefts:
            continue  # read together with its left ear
        try:
            if not path.is_file():
                raise MissingFileError(f"audio file {path} not found")
            prediction = predictor.predict(read_recording(path, rate), rate, name=str(path))
        except UserError as err:
            if on_error is None:
                raise
            on_error(str(err))
            continue
        stem = recording_stem(path)
        depth_path = out_dir / f"{stem}_depth.npy"
        np.save(depth_path, prediction.final_m[0, 0].cpu().numpy())
        maps = [t[:, 0].cpu() for t in (prediction.base_m, prediction.residual_m, prediction.final_m)]
        figure = decomposition_figure(
            *maps, None, out_dir / f"{stem}_decomposition.png", predictor.max_depth_m, title=path.name
        )
        written.append({"audio": str(path), "depth": str(depth_path), "figure": str(figure)})
    return written
