"""What `echodepth compare` runs: presets (sizes) and variants (what differs), over seeds.

Variants come from the registries: every registered model (with its `compare_settings`), every
registered loss other than the default, each model's, loss's and audio feature's `compare_variants`
(ablations, the seed research script's choices, the binaural cue features) and the training-recipe
variants (`TRAINING_VARIANTS`). The
baseline is the dataset paper's U-Net; the proposal is the guide's base + residual network.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..data import FEATURES
from ..errors import ConfigError
from ..losses import LOSSES
from ..models import MODELS
from ..recipes import RECIPE_DIR
from ..runs.rundir import RunDir
from ..settings.config import TrainConfig
from ..settings.sources import CPU_PRESET
from ..settings.yaml_files import load_yaml

BASELINE, PROPOSED = "unet_baseline", "base_residual"
TUNED = "tuned"  # base + residual at the demo study's best healthy weights (recipes/tuned.yaml)
TUNED_MEDIUM = "tuned_medium"  # ... at the medium study's (recipes/tuned_medium.yaml)
# the variants whose own verdict table `compare` writes: the guide's defaults, and the tuned weights
# (where the decomposition is real: the guide's claims decided there too)
CLAIM_VARIANTS = (PROPOSED, TUNED, TUNED_MEDIUM)
# the same-backbone control: base + residual's blocks, one decoder, a plain L1 loss (isolates the decomposition)
SAME_BACKBONE = "same_backbone"
CONTROLS = (BASELINE, SAME_BACKBONE)  # the comparative claims are decided against each one present
# per preset: seeds and variants when not given (otherwise 3 seeds, every variant)
PRESET_DEFAULTS: dict[str, dict] = {
    "medium": {"seeds": 5, "variants": [BASELINE, SAME_BACKBONE, PROPOSED, TUNED_MEDIUM, "seed_fix", "base_quarter"]}
}
DEFAULT_LOSS = "standard"

PRESETS: dict[str, dict] = {
    # CPU: 24 runs (8 variants x 3 seeds) in about 18 minutes on 2 cores (measured 17 min 33 s)
    "small": {**CPU_PRESET, "synth_rooms": 100, "epochs": 8, "warmup_epochs": 3},  # docs/compare_small's preset
    # CPU, statistics that can decide: 64 x 64, 32 channels, 5 seeds of the baseline and base +
    # residual (10 runs), bf16 autocast (faster than float32 with AMX / AVX512-BF16: benchmarks/bench_train.py)
    "medium": {
        **CPU_PRESET,
        "synth_rooms": 200,
        "synth_image_size": 64,
        "image_size": 64,
        "input_size": [],  # square 64 x 64 features
        "base_channels": 32,
        "precision": "bf16-mixed",
        "epochs": 12,
        "warmup_epochs": 4,
    },
    # GPU: the guide's defaults (256 x 256, 64 channels, batch 256) on the built-in data at 128 x 128 rendering
    "full": {"dataset": "synthetic", "synth_rooms": 1000, "synth_image_size": 128, "epochs": 80, "num_workers": 4},
    # tests
    "tiny": {
        **CPU_PRESET,
        "synth_rooms": 8,
        "synth_image_size": 16,
        "image_size": 16,
        "input_size": [],
        "base_channels": 4,
        "batch_size": 8,
        "epochs": 4,  # room for every variant: seed_fix freezes the base for its last 3 epochs
        "warmup_epochs": 1,
    },
}


# variants of the training recipe (base + residual network, standard loss)
TRAINING_VARIANTS = {
    "adam": {"optimizer": "Adam"},  # the seed research script's optimiser
    # the demo's loss weights: the best trial of the demo's tuning study whose every diagnose check is
    # healthy (docs/tune_demo; found at 32 x 32 with 12 channels), shipped as the recipe `tuned`
    "tuned": load_yaml(RECIPE_DIR / "tuned.yaml"),
    # the best healthy trial of the tuning study at the medium preset's size (docs/tune_medium)
    TUNED_MEDIUM: load_yaml(RECIPE_DIR / "tuned_medium.yaml"),
}


def all_variants() -> dict[str, dict]:
    """Returns variant name -> training settings over the preset, read from the registries."""
    out: dict[str, dict] = {}
    for name in MODELS.names():
        out[name] = {"model": name, **MODELS.get(name).compare_settings}
        for variant, settings in MODELS.get(name).compare_variants.items():
            out[variant] = {"model": name, **settings}
    out.update(TRAINING_VARIANTS)
    for name in LOSSES.names():
        if name != DEFAULT_LOSS:
            out[name] = {"loss": name}
        for variant, settings in LOSSES.get(name).compare_variants.items():
            out[variant] = {"loss": name, **settings}
    for name in FEATURES.names():  # the same network and loss on another input
        for variant, settings in FEATURES.get(name).compare_variants.items():
            out[variant] = {"audio_format": name, **settings}
    return out


@dataclass
class Run:
    """One training run of a comparison: a variant, a seed and its configuration."""

    variant: str
    seed: int
    cfg: TrainConfig

    @property
    def name(self) -> str:
        """The run's name: <variant>_s<seed>."""
        return f"{self.variant}_s{self.seed}"

    @property
    def run_dir(self) -> RunDir:
        """The run's results folder."""
        return self.cfg.run_dir


def plan_runs(out_dir: Path, preset: str, seeds: int, names, *, overrides: dict) -> list[Run]:
    """Returns one run per variant and seed, each in out_dir/runs/<variant>_s<seed>; a variant named
    twice, an unknown one, or no baseline or base + residual among them is a ConfigError."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; expected one of {sorted(PRESETS)}")
    known = all_variants()
    unknown = [v for v in names if v not in known]
    if unknown:
        raise ConfigError(f"unknown variant(s) {unknown}; expected some of {list(known)}")
    repeated = sorted({v for v in names if list(names).count(v) > 1})
    if repeated:  # a variant run twice would count as two seeds that agree
        raise ConfigError(f"--variants names {', '.join(repeated)} more than once; give each variant once")
    if BASELINE not in names or PROPOSED not in names:
        raise ConfigError(f"the comparison needs {BASELINE} and {PROPOSED} among the variants")
    runs = []
    for variant in names:
        for seed in range(seeds):
            values = {
                **PRESETS[preset],
                **overrides,
                **known[variant],
                "seed": seed,
                "results_dir": str(out_dir / "runs"),
                "experiment_name": f"{variant}_s{seed}",
            }
            runs.append(Run(variant, seed, TrainConfig.from_dict(values)))
    return runs
