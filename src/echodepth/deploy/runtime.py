"""Running an exported model: ONNX through onnxruntime (torch is not imported), TorchScript
through torch.jit. Both read the `echodepth` metadata inside the file and predict like
`Predictor`: same checks on the input, same `Prediction` (numpy arrays), same report.

    from echodepth.deploy import load_model
    model = load_model("model.onnx")
    prediction = model.predict(waveform, sample_rate_hz=44100)   # (2, N) or (B, 2, N)
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from ..audio.recordings import as_waveform_batch, check_recording
from ..errors import CheckpointError, MissingFileError, UserError, first_line
from ..inference.model_files import folder_message, torch_save_kind
from ..inference.prediction import Prediction, recording_report
from ..settings.arguments import positive_int

METADATA_KEY = "echodepth"
TORCHSCRIPT_METADATA = "echodepth.json"


class DeployError(UserError):
    """onnxruntime missing, or a model file that is not an echodepth export."""


def parse_metadata(text: str, path) -> dict:
    """Returns the `echodepth` metadata of an exported model, checked: a JSON object with a
    positive sample rate and max depth and an input shape (batch, 2, samples); raises a
    CheckpointError naming the file and the damaged field otherwise."""
    try:
        meta = json.loads(text)
    except ValueError as err:
        raise CheckpointError(f"model {path}: its echodepth metadata is damaged (not JSON: {err})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"model {path}: its echodepth metadata is damaged (not a JSON object)")
    try:
        checks = {
            "sample_rate_hz": int(meta["sample_rate_hz"]) > 0,
            "max_depth_m": float(meta["max_depth_m"]) > 0,
            "input": len(meta["input"]["shape"]) == 3 and int(meta["input"]["shape"][-1]) > 0,
        }
    except (KeyError, TypeError, ValueError, IndexError) as err:
        reason = f"a field missing or of the wrong type: {err}"
        raise CheckpointError(f"model {path}: its echodepth metadata is damaged ({reason})") from None
    bad = [name for name, ok in checks.items() if not ok]
    if bad:
        raise CheckpointError(f"model {path}: its echodepth metadata is damaged (field(s) {bad} out of range)")
    return meta


class ExportedModel:
    """An exported model: `run` maps waveforms (B, 2, >= n_samples) to (base, residual, final)."""

    def __init__(self, path, meta: dict, run_fn):
        self.path = Path(path)
        self.meta = meta
        self._run = run_fn
        self.sample_rate_hz = int(meta["sample_rate_hz"])
        self.max_depth_m = float(meta["max_depth_m"])
        self.n_samples = int(meta["input"]["shape"][-1])
        self.emission = meta.get("emission")

    @property
    def min_samples(self) -> int:
        """Returns the samples per ear the exported input takes (its fixed length n)."""
        return self.n_samples

    def run(self, waves: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Returns base, residual and final depth (B, 1, H, W) in metres; no checks."""
        return self._run(np.ascontiguousarray(np.asarray(waves, dtype=np.float32)[..., : self.n_samples]))

    def predict(self, waveform, sample_rate_hz: int, name: str = "waveform", pcm_bits: int | None = None) -> Prediction:
        """Returns the prediction for one (2, N) recording or a batch (B, 2, N), checked like
        `Predictor.predict` (the same errors; `pcm_bits` the same)."""
        wave = as_waveform_batch(waveform, name, pcm_bits)
        check_recording(
            wave,
            sample_rate_hz,
            expected_rate_hz=self.sample_rate_hz,
            min_samples=self.min_samples,
            max_depth_m=self.max_depth_m,
            name=name,
            samples_used=self.n_samples,
        )
        return Prediction(*self.run(wave), report=recording_report(wave, self.n_samples, self.sample_rate_hz))


def _onnx_runner(path: Path, threads: int | None):
    try:
        import onnxruntime as ort
    except ImportError:
        raise DeployError("onnxruntime is not installed: pip install 'echodepth[deploy]'") from None
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime's errors share no public base class
        raise CheckpointError(f"model {path} is not a readable ONNX file ({first_line(err)})") from None
    custom = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in custom:
        raise CheckpointError(f"model {path} was not written by echodepth export (no 'echodepth' metadata)")
    input_name = session.get_inputs()[0].name
    return parse_metadata(custom[METADATA_KEY], path), lambda waves: tuple(session.run(None, {input_name: waves}))


def _torchscript_runner(path: Path, threads: int | None):
    import torch

    if threads:
        torch.set_num_threads(threads)
    files = {TORCHSCRIPT_METADATA: ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TorchScript announces its deprecation
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=files)
    except Exception as err:
        raise CheckpointError(f"model {path} is not a readable TorchScript file ({first_line(err)})") from None
    if not files[TORCHSCRIPT_METADATA]:
        raise CheckpointError(f"model {path} was not written by echodepth export (no echodepth.json inside)")

    def run(waves):
        with torch.no_grad():
            return tuple(t.numpy() for t in module(torch.from_numpy(waves)))

    return parse_metadata(files[TORCHSCRIPT_METADATA], path), run


def load_model(path, threads: int | None = None, fmt: str | None = None) -> ExportedModel:
    """Returns the exported model at path (.onnx: onnxruntime; otherwise TorchScript), run with
    `threads` threads (None: all cores). A missing file is a MissingFileError; a folder, a
    PyTorch checkpoint (a training checkpoint renamed .pt: predict from it with --checkpoint) or
    a file that is not an echodepth export a CheckpointError; `threads` that is not a whole
    number above 0 a ConfigError."""
    path = Path(path)
    if threads is not None:
        threads = positive_int(threads, "threads")
    if path.is_dir():
        expected, use = "a file written by echodepth export (.onnx or .pt)", "predict from one with --checkpoint"
        raise CheckpointError(folder_message(path, "model", expected, use))
    if not path.is_file():
        raise MissingFileError(f"model {path} not found")
    saved = torch_save_kind(path)
    if saved:
        use = f"predict from it with --checkpoint {path}, or export it first (echodepth export --checkpoint {path})"
        raise CheckpointError(f"model {path} is a {saved} (torch.save), not a model written by echodepth export: {use}")
    fmt = fmt or ("onnx" if path.suffix == ".onnx" else "torchscript")
    meta, run = (_onnx_runner if fmt == "onnx" else _torchscript_runner)(path, threads)
    return ExportedModel(path, meta, run)
