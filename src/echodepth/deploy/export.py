"""`echodepth export`: a checkpoint's network with its feature extraction, as one ONNX or
TorchScript file that takes waveforms and gives depth in metres, verified against PyTorch.

The file holds its own description (`echodepth` metadata: settings, max depth, input shape,
sample rate, the chirp for long recordings, echodepth version), so that
`echodepth predict --model` needs nothing else. ONNX: batch size dynamic, opset 17 by default,
exported through the TorchScript-based exporter (no onnxscript needed).
"""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, DataError
from ..inference.predictor import Predictor
from ..runs.storage import UnwritableError, atomic_write_bytes, make_dir
from ..settings.arguments import positive_int
from ..version import __version__
from .frontend import DepthPipeline
from .runtime import METADATA_KEY, TORCHSCRIPT_METADATA, load_model

OUTPUTS = ("base_m", "residual_m", "final_m")
MIN_OPSET, MAX_OPSET = 7, 20  # the TorchScript-based exporter's range (torch.onnx._constants, torch 2.13)
INPUT = "waveform"


def model_metadata(predictor: Predictor, n_samples: int) -> dict:
    """Returns what `predict --model` needs to know about an exported model."""
    meta = predictor.meta
    return {
        "version": __version__,
        "config": meta["config"],
        "features": meta["features"],
        "max_depth_m": predictor.max_depth_m,
        "sample_rate_hz": predictor.feature_config.sample_rate_hz,
        "input": {"name": INPUT, "shape": ["batch", 2, n_samples]},
        "outputs": {name: ["batch", *meta["output_shape"]] for name in OUTPUTS},
        "emission": meta.get("emission"),
    }


def verification_waves(n_samples: int, n: int = 3, seed: int = 0) -> np.ndarray:
    """Returns n test recordings (n, 2, n_samples): a decaying noise burst, like an echo."""
    rng = np.random.default_rng(seed)
    decay = np.exp(-np.arange(n_samples) / (0.2 * n_samples))
    return (0.3 * rng.standard_normal((n, 2, n_samples)) * decay).astype(np.float32)


def _export_onnx(pipeline, example: torch.Tensor, opset: int, meta: dict) -> bytes:
    """Returns the ONNX file's bytes (made in memory: only storage writes files)."""
    import onnx

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter announces its deprecation
        torch.onnx.export(
            pipeline,
            (example,),
            buffer,
            input_names=[INPUT],
            output_names=list(OUTPUTS),
            dynamic_axes={name: {0: "batch"} for name in (INPUT, *OUTPUTS)},
            opset_version=opset,
            dynamo=False,
        )
    model = onnx.load_from_string(buffer.getvalue())
    model.metadata_props.add(key=METADATA_KEY, value=json.dumps(meta))
    model.producer_name = "echodepth"
    return model.SerializeToString()


def _export_torchscript(pipeline, example: torch.Tensor, meta: dict) -> bytes:
    """Returns the TorchScript archive's bytes (made in memory)."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript announces its deprecation in favour of torch.export
        traced = torch.jit.trace(pipeline, example, check_trace=False)
        torch.jit.save(traced, buffer, _extra_files={TORCHSCRIPT_METADATA: json.dumps(meta)})
    return buffer.getvalue()


DEFAULT_OPSET = 17


def export_model(
    checkpoint, output, *, fmt: str | None = None, n_samples: int | None = None, tolerance_m: float = 1e-3, opset=None
) -> dict:
    """Exports a checkpoint to `output`, runs the exported file and PyTorch's predictor on the
    same recordings, and returns {"path", "format", "max_abs_diff_m", "tolerance_m", ...}. Raises a
    DataError (and writes nothing) when the difference exceeds tolerance_m.

    `n_samples` is the input length of a model that reads whole recordings; a model with a cut
    reads its first `min_samples`, so another n_samples is a ConfigError (it would not apply), as
    is `opset` (default DEFAULT_OPSET) for a TorchScript export."""
    output = Path(output)
    fmt = fmt or ("onnx" if output.suffix == ".onnx" else "torchscript" if output.suffix in (".pt", ".ts") else None)
    if fmt not in ("onnx", "torchscript"):
        raise ConfigError(f"--output {output}: give --format onnx or torchscript (or name it .onnx / .pt)")
    if not tolerance_m > 0:
        raise ConfigError(f"--tolerance_m {tolerance_m:g}: expected a difference in metres above 0")
    n_samples = positive_int(n_samples, "--samples") if n_samples is not None else None
    if fmt == "torchscript" and opset is not None:
        raise ConfigError(f"--opset {opset} applies to ONNX exports; a TorchScript export has no opset: leave it out")
    opset = DEFAULT_OPSET if opset is None else opset
    if fmt == "onnx" and not MIN_OPSET <= opset <= MAX_OPSET:
        raise ConfigError(f"--opset {opset}: the exporter writes opsets {MIN_OPSET} to {MAX_OPSET}")
    predictor = Predictor.from_checkpoint(checkpoint, device="cpu")
    if predictor.feature_config.align_to_emission or predictor.feature_config.window_start_ms:
        raise ConfigError(
            "export takes models whose window starts at the file's start (audio_window start, window_start_ms 0); "
            "this one's follows the emission or starts later: predict with --checkpoint"
        )
    if n_samples is None:
        if not predictor.feature_config.cut:
            raise ConfigError("this model reads whole recordings (no cut): give --samples, the recording length")
        n_samples = predictor.min_samples
    if n_samples < predictor.min_samples:
        raise ConfigError(f"--samples {n_samples}: the model needs at least {predictor.min_samples}")
    cut = predictor.feature_extractor.n_samples(n_samples)
    if cut != n_samples:
        raise ConfigError(
            f"--samples {n_samples} does not apply: this model reads the first {cut} samples of a recording (its cut "
            f"for {predictor.max_depth_m:g} m), the exported input's length; leave --samples out"
        )
    pipeline = DepthPipeline(predictor.network, predictor.feature_extractor, n_samples, predictor.max_depth_m).eval()
    meta = model_metadata(predictor, pipeline.frontend.n_samples)
    waves = verification_waves(pipeline.frontend.n_samples)
    make_dir(output.parent, "--output's folder")
    if output.is_dir():
        raise UnwritableError(f"--output {output} is a folder; give a file name (.onnx or .pt)")
    tmp = output.with_name(f".{output.name}.verify-{os.getpid()}{output.suffix}")
    try:
        example = torch.from_numpy(waves[:1])
        if fmt == "onnx":
            data = _export_onnx(pipeline, example, opset, meta)
        else:
            data = _export_torchscript(pipeline, example, meta)
        atomic_write_bytes(tmp, data)  # the file the runtime verifies, before the output exists
        reference = predictor.predict(waves, predictor.feature_config.sample_rate_hz)
        exported = load_model(tmp, threads=None, fmt=fmt).run(waves)
        diff = max(
            float(np.abs(mine - getattr(reference, name).cpu().numpy()).max()) for name, mine in zip(OUTPUTS, exported)
        )
        result = {"path": str(output), "format": fmt, "n_samples": pipeline.frontend.n_samples}
        result.update(max_abs_diff_m=diff, tolerance_m=tolerance_m, batch=len(waves))
        if not diff <= tolerance_m:
            raise DataError(
                f"exported {fmt} model differs from PyTorch by {diff:.3g} m (> --tolerance_m {tolerance_m:g}); "
                f"nothing written to {output}"
            )
        atomic_write_bytes(output, data)
        return result
    finally:
        tmp.unlink(missing_ok=True)
