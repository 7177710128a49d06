"""Where a run's settings come from, in order: the declared defaults, the CPU preset when no
dataset is named, a YAML settings file, then the flags given on the command line."""

from __future__ import annotations

from ..errors import ConfigError
from .config import TrainConfig

# The CPU-sized run of `echodepth train` with no dataset named: under 5 minutes on 2 cores from a
# fresh clone, data generation included. The guide's defaults apply whenever a dataset is named.
CPU_PRESET = {
    "experiment_name": "default_cpu",
    "synth_rooms": 400,  # 4,000 samples, rooms split 80/10/10: more rooms beat more epochs at the same cost
    "synth_image_size": 32,
    "image_size": 32,  # 32 x 32 depth
    # the echo's time resolution kept: 128 STFT frames (of 163) by 16 frequency rows, not 32 x 32
    # (test RMSE 36% under the per-pixel mean against 26%, CHANGELOG.md)
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


# echodepth up to 0.3 wrote every setting into a run's config.yaml, those of the components the run
# did not use included: a file holding all of these is such a file, and its settings that do not apply
# are left out as a preset's are (they were other components' defaults and never took effect)
SAVED_BY_0_3 = ("lambda_recon", "lambda_base", "lambda_sparse", "lowpass_kernel", "warmup_epochs", "base_channels")
SAVED_BY_0_3 += ("bilinear", "use_adaptive_loss", "use_wandb", "wandb_project", "results_dir", "synth_rooms")


def resolve_config(
    file_values: dict, flag_values: dict, file_is_recipe: bool = False, file_name: str | None = None
) -> TrainConfig:
    """Returns the settings in force: defaults, the CPU preset when no dataset is named, the
    YAML file's values, then the flags given on the command line.

    The flags and a settings file the user wrote must apply to the chosen components (ConfigError
    naming the component otherwise, and `file_name` when the file's keys are the ones refused); a
    recipe's settings, the CPU preset's, and those of a run's config.yaml that holds every
    component's settings (the flat format) that do not apply are left out."""
    named = "dataset" in file_values or "dataset" in flag_values
    values = {} if named else dict(CPU_PRESET)
    values.update(file_values)
    values.update(flag_values)
    saved_by_0_3 = all(name in file_values for name in SAVED_BY_0_3)
    file_stated = set() if file_is_recipe or saved_by_0_3 else set(file_values) - set(flag_values)
    try:
        return TrainConfig.from_dict(values, set(flag_values) | file_stated)
    except ConfigError as err:
        if not file_stated or file_name is None:
            raise
        TrainConfig.from_dict(values, set(flag_values))  # raises if the flags are wrong too
        raise ConfigError(f"in {file_name}: {err}") from None


def _listed(items: list[str]) -> str:
    return ", ".join(items[:-1]) + f" and {items[-1]}" if len(items) > 1 else items[0]


def _shown(value) -> str:
    return " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def recipe_override_notice(recipe: str, recipe_values: dict, flag_values: dict, cfg: TrainConfig) -> str | None:
    """Returns one line saying which settings of a run no longer come from the recipe's source when
    flags chose another model or loss than the recipe's (`echodepth train --config htf --model
    base_residual`): the new component's settings at its defaults, the recipe's values kept though
    chosen for the other component, and those left out; None when the recipe's model and loss stand.
    Settings given as flags are the user's and not listed."""
    from .components import settings_of

    made_for, clauses = [], []
    for kind in ("model", "loss"):
        old, new = recipe_values.get(kind), getattr(cfg, kind)
        if old is None or old == new:
            continue
        made_for.append((kind, old, new))
        own_new = [n for n in settings_of(kind, new) if n not in flag_values]
        defaults = [f"{n} {_shown(getattr(cfg, n))}" for n in own_new if n not in recipe_values]
        kept = [f"{n} {_shown(getattr(cfg, n))}" for n in own_new if n in recipe_values]
        dropped = [n for n in settings_of(kind, old) if n in recipe_values and n not in settings_of(kind, new)]
        if defaults:
            clauses.append(
                f"{_listed(defaults)} {'are' if len(defaults) > 1 else 'is'} {new}'s default"
                + ("s" if len(defaults) > 1 else "")
            )
        if kept:
            clauses.append(f"{_listed(kept)} {'are' if len(kept) > 1 else 'is'} the recipe's choice for {old}")
        if dropped:
            clauses.append(f"{_listed(dropped)} left out ({new} does not take {'them' if len(dropped) > 1 else 'it'})")
    if not made_for:
        return None
    was = ", ".join(f"--{kind} {old}" for kind, old, _ in made_for)
    now = ", ".join(f"--{kind} {new}" for kind, _, new in made_for)
    said = "; ".join(clauses) or f"{now} takes no settings of its own"
    return f"recipe {recipe} was made for {was}: with {now}, these settings do not come from its source: {said}"
