"""Training settings: one dataclass, YAML in and out, the command line's flags on top.

Precedence: dataclass defaults < CPU preset (only when no dataset is named) < --config YAML < flags.
The choices of model, loss, dataset and audio format are the registries' names.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .data import DATASETS, FEATURES
from .errors import ConfigError
from .losses import LOSSES
from .metrics import PROTOCOLS
from .models import MODELS
from .rundir import RunDir

LR_SCHEDULES = ("none", "cosine")
PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
PRECISIONS = ("auto", "auto-bf16", "32-true", "32", "bf16-mixed", "16-mixed", "bf16-true", "64-true")
COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune")
OPTIMIZERS = ("AdamW", "Adam", "SGD")
AUDIO_WINDOWS = ("start", "emission", "whole")
DEPTH_UNITS = ("mm", "cm", "m")
BASE_DECODERS = ("wide", "narrow", "seed")
INPUT_NORMS = ("position", "centre", "none")


@dataclass
class TrainConfig:
    # the design guide's flags, same names and defaults
    dataset: str = "synthetic"
    batch_size: int = 256
    learning_rate: float = 0.002
    experiment_name: str = "exp1"
    use_wandb: bool = False
    wandb_project: str = "batvision-base-residual"
    lambda_recon: float = 1.0
    lambda_base: float = 0.5
    lambda_sparse: float = 0.1
    lowpass_kernel: int = 8
    use_adaptive_loss: bool = False
    warmup_epochs: int = 20
    base_channels: int = 64
    bilinear: bool = True
    # the seed research script's variants
    use_silog: bool = False  # scale-invariant log reconstruction term instead of L1
    silog_lambda: float = 0.5  # SILog's variance weight (0: plain log RMSE, 1: fully scale-invariant)
    base_decoder: str = "wide"  # wide: the skips' widths (29.8M parameters at 64); narrow: 2c, c, c/2, c/4 (23.6M)
    # seed: the seed code's, 1/16 of the residual decoder (20.2M)
    freeze_base_epochs: int = 0  # the last N epochs train the residual decoder only (encoder, base decoder frozen)
    residual_scale: float = 0.5  # the residual is bounded to (-r, r) x max depth; the seed script: 0.3
    optimizer: str = "AdamW"  # AdamW | Adam | SGD (momentum 0.9)
    val_every: int = 1  # validate every N epochs (make epochs a multiple: best.ckpt needs validations)
    # echodepth's own
    model: str = "base_residual"  # a name in echodepth.models.MODELS
    base_resolution: int = 1  # the base decoder stops at 1/k of the map (1, 2, 4, 8), then bilinear upsampling
    input_norm: str = "centre"  # centre / position: remove each feature-image position's mean (position: and its std)
    loss: str = "standard"  # a name in echodepth.losses.LOSSES
    freq_cutoff: float = 0.1  # frequency loss: fraction of Nyquist
    data_dir: str | None = None  # None with dataset synthetic: the built-in data, made once
    epochs: int = 80  # the dataset baseline's
    image_size: int = 256  # depth map and feature image side, as the baseline
    input_size: list[int] = field(default_factory=list)  # feature image H W when not image_size square
    audio_format: str = "spectrogram"  # a name in echodepth.data.FEATURES
    log_compression: bool = False  # log(1 + x) of spectrogram magnitudes
    # the samples the features see: "start" (the baseline): 2 x max depth / 340 m/s from window_start_ms
    # after the file's start; "emission": the same length from window_start_ms after the emission's
    # onset found in each recording (BatVision V1 files begin with ~980 near-silent samples); "whole"
    audio_window: str = "start"
    window_start_ms: float = 0.0  # may be negative with "emission": keep some lead-in before the onset
    depth_unit: str | None = None  # mm, cm or m: the unit of the depth files (None: the dataset's, mm)
    max_depth_m: float | None = None  # None: the dataset's (12 V1, 30 V2, synthetic: metadata)
    location_blacklist: list[str] = field(default_factory=list)  # V2 locations left out
    num_workers: int = 4  # loader processes for the uncached path (the cache needs none)
    cache: bool = True  # memory-mapped feature cache
    cache_dir: str = ".echodepth_cache"
    weight_decay: float = 0.01  # AdamW's default
    lr_schedule: str = "none"  # none | cosine
    lr_warmup_epochs: int = 0  # linear learning-rate warm-up over N epochs, then lr_schedule over the rest
    protocol: str = "echodepth"  # the headline evaluation protocol of the test at the end (metrics.PROTOCOLS)
    accelerator: str = "auto"
    devices: int = 1
    num_nodes: int = 1
    precision: str = "auto"  # auto: bf16-mixed on a GPU that has it, else 16-mixed on CUDA, 32-true on CPU
    micro_batch_size: str = "auto"  # N, or auto: the largest divisor of batch_size that fits the device
    channels_last: bool = True  # channels-last memory format (on CUDA, and on a CPU in bf16)
    cudnn_benchmark: bool = True  # cuDNN autotuning (on CUDA only)
    compile: str = "none"  # torch.compile mode: none, default, reduce-overhead, max-autotune
    checkpoint_every: int = 1  # last.ckpt every N epochs (and after the last); best.ckpt on improvement
    seed: int = 0
    resume: str | None = None  # a checkpoint, or "last" for this experiment's last one
    overwrite: bool = False  # start afresh in a results folder that holds a run, removing its outputs
    results_dir: str = "results"
    n_figure_samples: int = 4  # validation samples in the decomposition figures
    synth_rooms: int = 200  # the built-in data's size when data_dir is None
    synth_image_size: int = 128

    def __post_init__(self):
        check_types(self)
        if self.use_adaptive_loss:
            if self.loss not in ("standard", "adaptive"):
                raise ConfigError(f"--use_adaptive_loss contradicts --loss {self.loss}")
            self.loss = "adaptive"
        choices = {
            "dataset": DATASETS.names(),
            "model": MODELS.names(),
            "loss": LOSSES.names(),
            "audio_format": FEATURES.names(),
            "lr_schedule": LR_SCHEDULES,
            "precision": PRECISIONS,
            "compile": COMPILE_MODES,
            "optimizer": OPTIMIZERS,
            "base_decoder": BASE_DECODERS,
            "audio_window": AUDIO_WINDOWS,
            "depth_unit": (None, *DEPTH_UNITS),
            "protocol": list(PROTOCOLS),
            "input_norm": INPUT_NORMS,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} {getattr(self, name)!r} is not one of {list(allowed)}")
        positive = ("batch_size", "learning_rate", "lowpass_kernel", "base_channels", "epochs", "image_size")
        if self.micro_batch_size != "auto" and not (self.micro_batch_size.isdigit() and int(self.micro_batch_size) > 0):
            raise ConfigError(
                f"micro_batch_size must be a positive whole number or auto, got {self.micro_batch_size!r}"
            )
        for name in (*positive, "devices", "num_nodes", "checkpoint_every", "val_every", "residual_scale"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0 <= self.lr_warmup_epochs < self.epochs:
            raise ConfigError(
                f"lr_warmup_epochs must be >= 0 and below epochs ({self.epochs}), got {self.lr_warmup_epochs}"
            )
        if not self.weight_decay >= 0:
            raise ConfigError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not 0 <= self.freeze_base_epochs < self.epochs:
            raise ConfigError(
                f"freeze_base_epochs must be at least 0 and below epochs ({self.epochs}), got {self.freeze_base_epochs}"
            )
        if self.freeze_base_epochs and not MODELS.get(self.model).decomposes:
            raise ConfigError(
                f"freeze_base_epochs needs a model with a base and a residual; {self.model} has no residual"
            )
        if self.base_resolution not in (1, 2, 4, 8):
            raise ConfigError(
                f"base_resolution must be 1, 2, 4 or 8 (the base decoder's 1/k), got {self.base_resolution}"
            )
        if not 0 <= self.silog_lambda <= 1:
            raise ConfigError(f"silog_lambda must be between 0 and 1, got {self.silog_lambda}")
        if self.audio_window == "start" and self.window_start_ms < 0:
            raise ConfigError(f"window_start_ms {self.window_start_ms}: expected >= 0 with audio_window start")
        if self.max_depth_m is not None and not self.max_depth_m > 0:
            raise ConfigError(f"max_depth_m must be > 0 metres, got {self.max_depth_m}")
        smallest = MODELS.get(self.model).min_image_size
        if self.image_size < smallest:
            raise ConfigError(f"image_size {self.image_size} is too small for model {self.model}: at least {smallest}")
        if self.input_size and (len(self.input_size) != 2 or min(self.input_size) < 1):
            raise ConfigError(f"input_size must be two positive numbers (height width), got {self.input_size}")
        if self.val_every > self.epochs:
            raise ConfigError(
                f"val_every {self.val_every} is more than epochs {self.epochs}: the run would never validate "
                "and write no best checkpoint; give --val_every at most --epochs"
            )
        if self.lowpass_kernel > self.image_size:
            raise ConfigError(f"lowpass_kernel {self.lowpass_kernel} must be at most image_size ({self.image_size})")
        if not PLAIN_NAME.fullmatch(self.experiment_name):
            raise ConfigError(
                f"experiment_name {self.experiment_name!r} must be a plain folder name: "
                "letters, digits, '.', '_', '-', not starting with '.' or '-'"
            )

    @property
    def input_hw(self) -> tuple[int, int]:
        """Returns the feature image's (H, W): input_size, or image_size square."""
        return tuple(self.input_size) if self.input_size else (self.image_size, self.image_size)

    @property
    def run_dir(self) -> RunDir:
        """Returns the run folder results_dir/experiment_name."""
        return RunDir(Path(self.results_dir) / self.experiment_name)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(f"unknown setting(s) {unknown}; allowed: {known}")
        return cls(**values)


def without_none(hint):
    """Returns X for a type hint `X | None`, else the hint itself."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if type(None) in typing.get_args(hint) and len(args) == 1 else hint


def field_type(cls, name: str):
    """Returns the type of a settings dataclass field, without `| None`."""
    return without_none(typing.get_type_hints(cls)[name])


def check_types(settings) -> None:
    """Raises a ConfigError naming the first field whose value is not of its declared type
    (an int is accepted, and converted, where a float is declared)."""
    hints = typing.get_type_hints(type(settings))
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if value is None and type(None) in typing.get_args(hints[f.name]):
            continue
        expected = field_type(type(settings), f.name)
        origin = typing.get_origin(expected) or expected
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            setattr(settings, f.name, float(value))
        elif origin is list and isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            setattr(settings, f.name, list(value))
        elif isinstance(value, bool) and expected is not bool or not isinstance(value, origin):
            raise ConfigError(f"{f.name} must be {getattr(expected, '__name__', str(expected))}, got {value!r}")


# The CPU-sized run of `echodepth train` with no dataset named: under 5 minutes on 2 cores from a
# fresh clone, data generation included. The guide's defaults apply whenever a dataset is named.
CPU_PRESET = {
    "experiment_name": "default_cpu",
    "synth_rooms": 400,  # 4,000 samples, rooms split 80/10/10: more rooms beat more epochs at the same cost
    "synth_image_size": 32,
    "image_size": 32,  # 32 x 32 depth
    # the echo's time resolution kept: 128 STFT frames (of 163) by 16 frequency rows, not 32 x 32
    # (test RMSE 36% under the per-pixel mean against 26%, README "Quick start")
    "input_size": [16, 128],
    "base_channels": 12,  # 1.0M parameters: the wider input costs what 16 channels at 32 x 32 did
    "log_compression": True,  # the direct sound dwarfs the echoes; log(1 + x) evens them out
    "batch_size": 32,
    "learning_rate": 0.002,
    "epochs": 9,  # 9 x 3,200 samples
    "precision": "auto-bf16",  # bf16 autocast on a CPU that has it in hardware (AVX512-BF16, AMX)
    "lr_schedule": "cosine",
    "warmup_epochs": 5,
    "num_workers": 0,
}


def resolve_config(file_values: dict, flag_values: dict) -> TrainConfig:
    """Returns the settings in force: defaults, the CPU preset when no dataset is named, the
    YAML file's values, then the flags given on the command line."""
    named = "dataset" in file_values or "dataset" in flag_values
    values = {} if named else dict(CPU_PRESET)
    values.update(file_values)
    values.update(flag_values)
    return TrainConfig.from_dict(values)
