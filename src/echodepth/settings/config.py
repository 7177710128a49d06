"""Training settings: the run's own settings (a dataclass) and the settings of the components it
chose (each declared by its component, see `echodepth.settings.components`), YAML in and out, flags on top.

Precedence: declared defaults < CPU preset (only when no dataset is named) < --config YAML < flags.
The choices of model, loss, dataset and audio format are the registries' names. Settings files and
flags are flat (`residual_scale: 0.3`, `--residual_scale 0.3`), as the design guide's flags are.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from ..data import DATASETS, FEATURES
from ..errors import ConfigError
from ..losses import LOSSES
from ..metrics import PROTOCOLS
from ..models import MODELS
from ..registry import check_fields
from ..runs.rundir import RunDir
from .bounds import bounded
from .components import KINDS, declared_settings, resolve_components
from .search_space import searched

LR_SCHEDULES = ("none", "cosine")
PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
PRECISIONS = ("auto", "auto-bf16", "32-true", "32", "bf16-mixed", "16-mixed", "bf16-true", "64-true")  # Lightning's
COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune")
OPTIMIZERS = ("AdamW", "Adam", "SGD")
AUDIO_WINDOWS = ("start", "emission", "whole")
DEPTH_UNITS = ("mm", "cm", "m")


@dataclass
class RunSettings:
    """The settings of the run itself: data, sizes, optimisation, devices, outputs, and which
    model, loss, audio feature and dataset layout it uses (each component's own settings are
    declared by the component, see `echodepth.settings.components`)."""

    # the design guide's flags that are not a component's, same names and defaults
    dataset: str = "synthetic"
    batch_size: int = bounded(256, above=0)
    learning_rate: float = searched(0.002, low=3e-4, high=1e-2, log=True, above=0)  # the optimiser's peak learning rate
    experiment_name: str = "exp1"
    use_wandb: bool = False
    wandb_project: str = "batvision-base-residual"
    use_adaptive_loss: bool = False  # the guide's flag for --loss adaptive
    # the seed research script's variants
    freeze_base_epochs: int = bounded(
        0, at_least=0, help="the last N epochs train the residual decoder only (encoder, base decoder frozen)"
    )
    optimizer: str = "AdamW"  # AdamW | Adam | SGD (momentum 0.9)
    val_every: int = bounded(
        1, above=0, help="validate every N epochs (make epochs a multiple: best.ckpt needs validations)"
    )
    # echodepth's own
    model: str = "base_residual"  # a name in echodepth.models.MODELS
    loss: str = "standard"  # a name in echodepth.losses.LOSSES
    data_dir: str | None = None  # the dataset folder (none with dataset synthetic: the built-in data, made once)
    epochs: int = bounded(80, above=0)  # training epochs (80: the dataset baseline's)
    image_size: int = bounded(256, above=0)  # depth map and feature image side, as the baseline
    input_size: list[int] = bounded([], at_least=1)  # feature image H W when not image_size square
    audio_format: str = "spectrogram"  # a name in echodepth.data.FEATURES
    # the samples the features see: "start" (the baseline): 2 x max depth / 340 m/s from window_start_ms
    # after the file's start; "emission": the same length from window_start_ms after the emission's
    # onset found in each recording (BatVision V1 files begin with ~980 near-silent samples); "whole"
    audio_window: str = "start"
    window_start_ms: float = 0.0  # may be negative with "emission": keep some lead-in before the onset
    depth_unit: str | None = None  # mm, cm or m: the unit of the depth files (None: the dataset's, mm)
    max_depth_m: float | None = bounded(None, above=0)  # None: the dataset's (12 V1, 30 V2, synthetic: metadata)
    num_workers: int = bounded(4, at_least=0)  # loader processes for the uncached path (the cache needs none)
    cache: bool = True  # memory-mapped feature cache
    cache_dir: str = ".echodepth_cache"
    weight_decay: float = bounded(0.01, at_least=0)  # the optimiser's weight decay (0.01: AdamW's default)
    lr_schedule: str = "none"  # none | cosine
    lr_warmup_epochs: int = bounded(
        0, at_least=0, help="linear learning-rate warm-up over N epochs, then lr_schedule over the rest"
    )
    protocol: str = "echodepth"  # the headline evaluation protocol of the test at the end (metrics.PROTOCOLS)
    accelerator: str = "auto"
    devices: int = bounded(1, above=0)
    num_nodes: int = bounded(1, above=0)
    precision: str = "auto"  # auto: bf16-mixed on a GPU that has it, else 16-mixed on CUDA, 32-true on CPU
    micro_batch_size: str = "auto"  # N, or auto: the largest divisor of batch_size that fits the device
    channels_last: bool = True  # channels-last memory format (on CUDA, and on a CPU in bf16)
    cudnn_benchmark: bool = True  # cuDNN autotuning (on CUDA only)
    compile: str = "none"  # torch.compile mode: none, default, reduce-overhead, max-autotune
    checkpoint_every: int = bounded(
        1, above=0, help="last.ckpt every N epochs (and after the last); best.ckpt on improvement"
    )
    seed: int = bounded(0, at_least=0, at_most=2**32 - 1, why="the seeds NumPy accepts")  # Python, NumPy, torch
    resume: str | None = None  # a checkpoint, or "last" for this experiment's last one
    overwrite: bool = False  # start afresh in a results folder that holds a run, removing its outputs
    results_dir: str = "results"
    n_figure_samples: int = bounded(4, at_least=0)  # validation samples in the decomposition figures
    synth_rooms: int = bounded(200, above=0)  # the built-in data's size when data_dir is None
    synth_image_size: int = bounded(128, at_least=2, at_most=4096)  # the built-in data's depth map side

    def __post_init__(self):
        check_fields(self)
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
            "audio_window": AUDIO_WINDOWS,
            "depth_unit": (None, *DEPTH_UNITS),
            "protocol": list(PROTOCOLS),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} {getattr(self, name)!r} is not one of {list(allowed)}")
        if self.micro_batch_size != "auto" and not (self.micro_batch_size.isdigit() and int(self.micro_batch_size) > 0):
            raise ConfigError(
                f"micro_batch_size must be a positive whole number or auto, got {self.micro_batch_size!r}"
            )
        if not 0 <= self.lr_warmup_epochs < self.epochs:
            raise ConfigError(
                f"lr_warmup_epochs must be >= 0 and below epochs ({self.epochs}), got {self.lr_warmup_epochs}"
            )
        if not 0 <= self.freeze_base_epochs < self.epochs:
            raise ConfigError(
                f"freeze_base_epochs must be at least 0 and below epochs ({self.epochs}), got {self.freeze_base_epochs}"
            )
        if self.freeze_base_epochs and not MODELS.get(self.model).decomposes:
            raise ConfigError(
                f"freeze_base_epochs needs a model with a base and a residual; {self.model} has no residual"
            )
        if self.audio_window == "start" and self.window_start_ms < 0:
            raise ConfigError(f"window_start_ms {self.window_start_ms}: expected >= 0 with audio_window start")
        smallest = MODELS.get(self.model).min_image_size
        if self.image_size < smallest:
            raise ConfigError(f"image_size {self.image_size} is too small for model {self.model}: at least {smallest}")
        if self.input_size and len(self.input_size) != 2:
            raise ConfigError(f"input_size must be two positive numbers (height width), got {self.input_size}")
        if self.val_every > self.epochs:
            raise ConfigError(
                f"val_every {self.val_every} is more than epochs {self.epochs}: the run would never validate "
                "and write no best checkpoint; give --val_every at most --epochs"
            )
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


RUN_SETTINGS = [f.name for f in dataclasses.fields(RunSettings)]


class TrainConfig(RunSettings):
    """All the settings of a training run: the run's own (`RunSettings`'s fields) and, in
    `component_settings`, each chosen component's (kind -> name -> value; `KINDS`), read as
    attributes alike (`cfg.batch_size`, `cfg.residual_scale`).

    `TrainConfig(**values)` takes flat values and refuses any that do not apply to the chosen
    components; `from_dict(values, stated)` refuses only those in `stated` and leaves the others out
    (a preset's, a compare variant's or a stored run's: defaults of other components).
    Raises ConfigError (one line) for an unknown name, a wrong type, a value out of range, or a
    stated setting that does not apply, naming the component."""

    def __init__(self, **values):
        self._resolve(dict(values), set(values))

    @classmethod
    def from_dict(cls, values: dict, stated=()) -> "TrainConfig":
        """Returns the settings of flat `values` (a settings file's, a checkpoint's); names in
        `stated` must apply to the chosen components, the others that do not are left out."""
        cfg = cls.__new__(cls)
        cfg._resolve(dict(values), set(stated))
        return cfg

    def _resolve(self, values: dict, stated: set) -> None:
        table = declared_settings()
        clashing = sorted(set(table) & set(RUN_SETTINGS))
        if clashing:  # a component declaring a run setting's name: our bug, not the user's
            raise ValueError(f"component setting(s) {clashing} have the names of run settings")
        unknown = sorted(set(values) - set(RUN_SETTINGS) - set(table))
        if unknown:
            raise ConfigError(f"unknown setting(s) {unknown}; allowed: {RUN_SETTINGS + list(table)}")
        component_values = {name: values.pop(name) for name in list(values) if name in table}
        self.__dict__["component_settings"] = {}
        RunSettings.__init__(self, **values)  # the run's own checks (__post_init__)
        chosen = {kind: getattr(self, kind) for kind in KINDS}
        self.__dict__["component_settings"] = resolve_components(chosen, component_values, stated)
        kernel = self.component_settings["loss"].get("lowpass_kernel")
        if kernel is not None and kernel > self.image_size:
            raise ConfigError(f"lowpass_kernel {kernel} must be at most image_size ({self.image_size})")
        self.__dict__["_resolved"] = True  # from here on immutable: `replace` makes a changed copy

    def __getattr__(self, name: str):
        """Returns a component setting in force; one the chosen components do not take reads as its
        first declared default (for code that reads a setting of every run, e.g. diagnose's advice).
        Raises AttributeError for any other name."""
        settings = self.__dict__.get("component_settings")
        if settings is None or name.startswith("__"):
            raise AttributeError(name)
        for own in settings.values():
            if name in own:
                return own[name]
        declared = declared_settings().get(name)
        if declared is None:
            raise AttributeError(f"{type(self).__name__!r} has no setting {name!r}")
        return next(iter(declared.defaults.values()))

    def __setattr__(self, name: str, value) -> None:
        if self.__dict__.get("_resolved"):  # settings resolved once: nothing changes them behind the run's back
            raise AttributeError(f"TrainConfig is immutable: cfg.replace({name}=...) returns a changed copy")
        super().__setattr__(name, value)

    def __eq__(self, other) -> bool:
        return isinstance(other, TrainConfig) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"TrainConfig({', '.join(f'{k}={v!r}' for k, v in self.to_dict().items())})"

    def settings_for(self, kind: str, changed_only: bool = False) -> dict:
        """Returns the chosen component's settings of `kind` (a key of `KINDS`): name -> value;
        with `changed_only`, those that differ from its declared defaults."""
        own = dict(self.component_settings[kind])
        if changed_only:
            defaults = resolve_components({kind: getattr(self, kind)}, {}, set())[kind]
            own = {name: value for name, value in own.items() if value != defaults[name]}
        return own

    def replace(self, **changes) -> "TrainConfig":
        """Returns a copy with `changes` (flat; each must apply), this one left as it is. Use it, not
        `dataclasses.replace`, which would rebuild the components' settings from their defaults."""
        return TrainConfig.from_dict({**self.to_dict(), **changes}, stated=changes)

    def to_dict(self) -> dict:
        """Returns every setting in force, flat: the run's, then the chosen components'."""
        flat = asdict(self)
        for own in self.component_settings.values():
            flat.update(own)
        return flat
