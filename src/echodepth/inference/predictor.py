"""The one inference path: a `Predictor` built from a self-describing checkpoint.

    from echodepth import Predictor
    predictor = Predictor.from_checkpoint("results/exp1/checkpoints/best.ckpt", device="auto")
    prediction = predictor.predict(waveform, sample_rate_hz=44100)   # (2, N) or (B, 2, N)
    prediction.final_m                                                # (B, 1, H, W) metres

End-of-training test evaluation, `echodepth eval`, `predict` and `compare` all predict through it.
Checkpoints load with `weights_only=True`: no pickled code runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..audio.recordings import as_waveform_batch, check_recording
from ..data import FEATURE_IMAGE, AudioFeatures, FeatureConfig, prepare_batch, with_feature_image
from ..data.features import min_window_samples
from ..errors import CheckpointError, ConfigError, MissingFileError, first_line
from ..models import build_model_for_training
from ..settings.arguments import positive_int
from ..settings.config import TrainConfig
from ..units import depth_norm_to_m
from .model_files import exported_format, folder_message
from .prediction import Prediction, recording_report

INFERENCE_DTYPES = ("fp32", "bf16")  # what the network computes in (not Lightning's precisions)


DEVICE_FORMS = "auto, cpu, cuda, cuda:N (N a GPU's number) or mps"


def resolve_device(name: str = "auto") -> str:
    """Returns the torch device a name stands for, checked once for the API and every command's
    --device: "auto" is CUDA where available, else the CPU; names are taken in any case and
    with an index where torch takes one ("CPU" and "cpu:0" are "cpu", "CUDA:1" is "cuda:1").
    Raises a ConfigError naming the value for a name that is no device (DEVICE_FORMS), and for
    a device this machine lacks ("CUDA is not available on this machine")."""
    if not isinstance(name, str):
        raise ConfigError(f"device {name!r} ({type(name).__name__}): expected a device name: {DEVICE_FORMS}")
    kind, colon, index = name.strip().lower().partition(":")
    if kind == "auto" and not colon:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if kind not in ("cpu", "cuda", "mps") or (colon and not index.isdigit()) or (kind != "cuda" and index not in "0"):
        raise ConfigError(f"device {name!r}: expected {DEVICE_FORMS}")
    if kind == "cpu":
        return "cpu"
    if kind == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(f"device {name!r}: MPS (an Apple GPU) is not available on this machine; use cpu or auto")
        return "mps"
    if not torch.cuda.is_available():
        raise ConfigError(f"device {name!r}: CUDA is not available on this machine; use cpu or auto")
    count = torch.cuda.device_count()
    if index and int(index) >= count:
        raise ConfigError(f"device {name!r}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    return f"cuda:{int(index)}" if index else "cuda"


# Lightning's accelerator names that echodepth trains on, and the device each needs
ACCELERATOR_DEVICES = {"auto": None, "cpu": "cpu", "gpu": "cuda", "cuda": "cuda", "mps": "mps"}


def check_accelerator(name: str) -> None:
    """Checks `train --accelerator` before any work, as `resolve_device` checks --device: a name
    Lightning does not train on here, or a device this machine lacks ("CUDA is not available on
    this machine"), raises a ConfigError naming the value."""
    if name not in ACCELERATOR_DEVICES:
        raise ConfigError(f"accelerator {name!r}: expected one of {list(ACCELERATOR_DEVICES)}")
    device = ACCELERATOR_DEVICES[name]
    if device is not None:
        try:
            resolve_device(device)
        except ConfigError as err:
            raise ConfigError(f"accelerator {name!r}: {str(err).split(': ', 1)[1]}") from None


def unpickling_error(err: Exception) -> str:
    """Returns the first line of torch.load's error, unless it advises loading without
    weights_only (which would run the file's code): then a plain description."""
    first = first_line(err)
    # torch 2.6+: "Weights only load failed. This file can still be loaded, ... if you trust the source"
    unsafe_advice = any(word in first.lower() for word in ("weights_only", "weights only", "trust"))
    return "it holds more than tensors and plain values" if unsafe_advice else first


def read_checkpoint(path, device: str = "cpu") -> dict:
    """Returns the checkpoint's contents, loaded with weights_only=True; one-line errors for a
    missing, unreadable or foreign file, and for an exported model given as a checkpoint."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(folder_message(path, "checkpoint", "a .ckpt file written by echodepth train"))
    if not path.is_file():
        raise MissingFileError(f"checkpoint {path} not found")
    exported = exported_format(path)
    if exported:
        raise CheckpointError(
            f"{path} is an exported {exported} model, not a training checkpoint: predict from it with "
            "`echodepth predict --model`; train --resume, eval and export take a .ckpt from results/*/checkpoints/"
        )
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:
        raise CheckpointError(
            f"checkpoint {path} is unreadable or not a plain weights file ({unpickling_error(err)})"
        ) from None
    if not isinstance(ckpt, dict) or "echodepth" not in ckpt:
        raise CheckpointError(f"checkpoint {path} was not written by echodepth train (no 'echodepth' settings inside)")
    return ckpt


def upgrade_metadata(meta: dict) -> dict:
    """Returns a checkpoint's metadata in this version's terms: 0.1 checkpoints named the depth
    range `max_depth` and did not store the feature settings (then 44.1 kHz, baseline STFT); up to
    0.3 no network had an input standardisation (input_norm none)."""
    config = dict(meta["config"])
    if "max_depth" in config:
        config["max_depth_m"] = config.pop("max_depth")
    config.setdefault("input_norm", "none")  # 0.3 and older: no input standardisation
    features = (
        meta.get("features")
        or FeatureConfig(
            audio_format=config.get("audio_format", "spectrogram"),
            log=config.get("log_compression", False),
            image_size=(config["image_size"], config["image_size"]),
        ).to_dict()
    )
    return {**meta, "config": config, "features": features}


def check_precision(precision: str) -> None:
    """Raises a ConfigError unless `precision` is one the network computes in (INFERENCE_DTYPES)."""
    if precision not in INFERENCE_DTYPES:
        raise ConfigError(f"precision {precision!r}: expected one of {list(INFERENCE_DTYPES)}")


class Predictor:
    """A trained network with the feature settings and depth range it was trained with."""

    def __init__(
        self,
        network: torch.nn.Module,
        cfg: TrainConfig,
        meta: dict,
        *,
        device: str = "cpu",
        batch_size: int = 64,
        precision: str = "fp32",
    ):
        check_precision(precision)
        self.checkpoint_path: Path | None = None  # set by from_checkpoint
        self.device = resolve_device(device)
        self.batch_size = positive_int(batch_size, "batch_size")
        self.precision = precision
        self.network = network.to(self.device).eval()
        if precision == "bf16":  # oneDNN's bf16 kernels (AMX, AVX512-BF16) want channels-last
            self.network = self.network.to(memory_format=torch.channels_last)
        self.cfg = cfg
        self.meta = meta
        self.max_depth_m = float(meta["max_depth_m"])
        self.feature_config = FeatureConfig(**meta["features"])
        self.feature_extractor = AudioFeatures(self.feature_config, self.max_depth_m).to(self.device)

    @classmethod
    def from_checkpoint(cls, path, device: str = "auto", batch_size: int = 64, precision: str = "fp32") -> "Predictor":
        """Returns the predictor of a checkpoint written by `echodepth train`; precision "bf16" runs
        the network in bfloat16 autocast, channels-last (faster on a CPU with AMX or AVX512-BF16;
        the speed-up is measured in docs/tutorials/deploy.md with benchmarks/bench_infer.py).

        The arguments are checked before the file is read: a device name that is no device or
        one this machine lacks (`resolve_device`), a batch size that is not a whole number above
        0 or an unknown precision is a ConfigError (a ValueError) naming it; a missing file is a
        MissingFileError (a FileNotFoundError), a folder, an exported model or a file that is
        not an echodepth checkpoint a CheckpointError (a ValueError)."""
        device = resolve_device(device)
        batch_size = positive_int(batch_size, "batch_size")
        check_precision(precision)
        ckpt = read_checkpoint(path, device)
        meta = upgrade_metadata(ckpt["echodepth"])
        cfg = TrainConfig.from_dict(meta["config"])
        network = build_model_for_training(cfg, int(meta["input_shape"][0]))
        state = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
        network.load_state_dict(state)
        predictor = cls(network, cfg, meta, device=device, batch_size=batch_size, precision=precision)
        predictor.checkpoint_path = Path(path)
        return predictor

    @property
    def sample_rate_hz(self) -> int:
        """Returns the sample rate (Hz) the network was trained at; recordings must have it."""
        return self.feature_config.sample_rate_hz

    @property
    def emission(self) -> dict | None:
        """The chirp and its place in a training window (synthetic training data), or None."""
        return self.meta.get("emission")

    @property
    def min_samples(self) -> int:
        """Returns the shortest recording the features accept (the cut's length)."""
        return min_window_samples(self.feature_config, self.max_depth_m)

    @torch.no_grad()
    def predict_feature_image(self, feature_image: torch.Tensor) -> Prediction:
        """Returns the prediction for a batch of feature images (B, C, H, W), batch_size at a time."""
        parts = []
        bf16 = self.precision == "bf16"
        for chunk in torch.split(feature_image, self.batch_size):
            chunk = chunk.to(self.device).float()
            if bf16:
                chunk = chunk.contiguous(memory_format=torch.channels_last)
            with torch.autocast(self.device.split(":")[0], dtype=torch.bfloat16, enabled=bf16):
                outputs = self.network(chunk)
            parts.append([depth_norm_to_m(t.float(), self.max_depth_m) for t in outputs])
        return Prediction(*(torch.cat(maps) for maps in zip(*parts)))

    def check_waveform(self, wave: np.ndarray, sample_rate_hz: int, name: str = "waveform") -> None:
        """Raises a DataError naming `name` when a float (B, 2, N) waveform cannot be predicted from."""
        used = self.feature_extractor.n_samples(wave.shape[-1]) if wave.ndim == 3 else None
        check_recording(
            wave,
            sample_rate_hz,
            expected_rate_hz=self.feature_config.sample_rate_hz,
            min_samples=self.min_samples,
            max_depth_m=self.max_depth_m,
            name=name,
            samples_used=used,
        )

    @torch.no_grad()
    def predict(self, waveform, sample_rate_hz: int, name: str = "waveform", pcm_bits: int | None = None) -> Prediction:
        """Returns the prediction for one (2, N) recording or a batch (B, 2, N) (numpy or torch;
        float samples in full-scale units, integer PCM scaled as soundfile scales WAVs: `pcm_bits`
        declares the width, needed for int64 and other types without one, see
        `audio.recordings.pcm_to_float`). A waveform that cannot be predicted from is a one-line DataError
        naming `name`; a sample rate that is not a number a ConfigError. The report of a recording
        much longer than the model's window says how much of it was read (`recording_report`)."""
        if torch.is_tensor(waveform):
            waveform = waveform.detach().cpu()
            waveform = (waveform.float() if waveform.is_floating_point() else waveform).numpy()
        wave = as_waveform_batch(waveform, name, pcm_bits)
        self.check_waveform(wave, sample_rate_hz, name)
        prediction = self.predict_feature_image(self.feature_extractor(torch.from_numpy(wave).to(self.device)))
        used = self.feature_extractor.n_samples(wave.shape[-1])
        prediction.report = recording_report(wave, used, self.sample_rate_hz)
        return prediction

    def predict_loader(self, loader):
        """Yields (prepared batch, prediction) over a data loader of the training data format."""
        for batch in loader:
            batch = {k: v.to(self.device) if torch.is_tensor(v) else v for k, v in batch.items()}
            b = prepare_batch(with_feature_image(batch, self.feature_extractor), self.max_depth_m)
            yield b, self.predict_feature_image(b[FEATURE_IMAGE])
