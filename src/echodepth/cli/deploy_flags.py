"""Flags of `echodepth predict` and `echodepth export`. Importing this module does not import
torch: `predict --model` runs on onnxruntime alone."""

from __future__ import annotations

import argparse

from ..settings.arguments import flag_type, pcm_bits, positive_int

PREDICT_HELP = """Predict depth for BatVision recordings (stereo audio files of any sample type, V1
*_left.npy with *_right.npy beside it, or (2, N) .npy arrays, integer PCM scaled as in a WAV; a
folder stands for its recordings) from a checkpoint (PyTorch) or an exported model (--model
model.onnx: onnxruntime only, torch is not imported). Writes <stem>_depth.npy (metres) and
<stem>_decomposition.png; two recordings with one stem get their folders in the name, so nothing
is overwritten. A file that cannot be predicted from is one line, the others are still
predicted, exit status 1. With --chirps, each file is a long recording holding many chirps:
every emission is found by a matched filter with a significance test against the noise floor
(noise alone holds no chirp), the window the model was trained on is cut after it, and
<stem>_depth.npy (n_chirps, H, W), <stem>_onsets.csv and <stem>_decomposition.gif are written."""
EXPORT_HELP = """Export a checkpoint's network with its feature extraction (STFT as a convolution,
resizing as matrix products) to ONNX (dynamic batch) or TorchScript, with the settings, max depth,
input shape and echodepth version inside the file. The exported model is then run (onnxruntime,
or the TorchScript loader) on the same recordings as the PyTorch predictor, the largest
difference printed; the export fails (and leaves no file) when it exceeds --tolerance_m."""


def predict_flags(p: argparse.ArgumentParser) -> None:
    """Adds `predict`'s flags: a checkpoint or an exported model, the recordings, the chirp options."""
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="a checkpoint written by echodepth train (PyTorch)")
    source.add_argument("--model", help="a model written by echodepth export (.onnx: onnxruntime; .pt: TorchScript)")
    p.add_argument("audio", nargs="+", help="recordings, or folders of recordings")
    p.add_argument("--out_dir", default="predictions")
    p.add_argument(
        "--device", default=None,
        help="--checkpoint only: torch device, auto, cpu, cuda, cuda:N or mps (default: auto, CUDA where available)",
    )  # fmt: skip
    add_precision_flag(p, default=None)
    p.add_argument(
        "--threads", type=flag_type(positive_int, "--threads"), default=None,
        help="--model only: onnxruntime threads (default: all cores)",
    )  # fmt: skip
    p.add_argument(
        "--pcm_bits", type=flag_type(pcm_bits, "--pcm_bits"), default=None,
        help="the PCM width of integer .npy recordings (needed for int64, NumPy's default integer; default: 16 for "
        "int16, 32 for int32)",
    )  # fmt: skip
    p.add_argument("--chirps", action="store_true", help="long recordings: one depth map per chirp found")
    p.add_argument("--chirp", default=None, help="the emitted chirp (mono audio file or .npy; default: the model's)")
    p.add_argument(
        "--lead_ms", type=float, default=None,
        help="time from the window's start to the matched filter's peak (default: the model's, measured on its "
        "training data)",
    )  # fmt: skip
    p.add_argument("--min_gap_ms", type=float, default=None, help="least time between chirps (default: the window)")
    p.add_argument(
        "--threshold", type=float, default=None,
        help="detection level, a fraction of the strongest matched-filter peak (a chirp must also stand out of the "
        "noise floor; default: 0.25)",
    )  # fmt: skip


def export_flags(p: argparse.ArgumentParser) -> None:
    """Adds `export`'s flags: the checkpoint, the output and its format, the check's tolerance (metres)."""
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--output", required=True, help="model.onnx or model.pt")
    p.add_argument("--format", choices=["onnx", "torchscript"], default=None, help="default: from --output's suffix")
    p.add_argument(
        "--samples", type=flag_type(positive_int, "--samples"), default=None,
        help="input length in samples, for a model that reads whole recordings (no cut); a model with a cut reads "
        "its first 2 x max depth / 340 m/s, the input length",
    )  # fmt: skip
    p.add_argument("--tolerance_m", type=float, default=1e-3, help="largest allowed difference to PyTorch (metres)")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (--format onnx only; default: 17)")


def add_precision_flag(p: argparse.ArgumentParser, default: str | None = "fp32") -> None:
    """Adds `--precision fp32|bf16` (the network's precision at inference, `--checkpoint` only);
    `predict` has no default (None: fp32), so that it can refuse the flag given with --model."""
    p.add_argument(
        "--precision", choices=["fp32", "bf16"], default=default,
        help="--checkpoint: the network in float32 or bfloat16 autocast (faster where the CPU or GPU has bf16)",
    )  # fmt: skip
