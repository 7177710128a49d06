"""The model registry and the interface every registered model follows.

A model is an `nn.Module` registered with `@MODELS.register("name")` that
- has a `Settings` dataclass: its keyword settings. `in_channels`, `image_size` (H, W) and, if
  declared, `input_size` (H, W) are filled by the run (`echodepth.settings.components.RUN_SUPPLIED`); every
  other field is a training setting of the same name (`--name` flag, `name:` YAML key), checked
  against its type (`Literal[...]` for choices) and by the dataclass's `__post_init__`,
- maps feature images (B, C, F, T) to `(base, residual, final)`, each (B, 1, H, W) in normalised depth
  (depth / max depth, see `echodepth.units`), with final == base + residual,
- may give `compare_settings`: training settings `echodepth compare` uses when it runs the model
  as a variant (e.g. the baseline's plain L1 loss), and `decomposes = False` when its residual
  is always 0 (`diagnose` then skips the decomposition checks), and `compare_variants`: named
  training settings of its own variants (e.g. a narrower decoder),
- has `parameter_counts()` (encoder, base_decoder, residual_decoder, total),
- says its heads' ranges in `head_bounds()` (`diagnose` flags outputs pinned at a bound), and, if
  its base can be frozen for a last residual-only phase (`--freeze_base_epochs`), `base_path()`.
"""

from __future__ import annotations

from torch import nn

from ..registry import Registry, accepted_settings

MODELS = Registry("model")


class DepthModel(nn.Module):
    """Base class of registered models: the defaults of the interface above."""

    Settings: type
    compare_settings: dict = {}
    compare_variants: dict[str, dict] = {}  # name -> training settings of its own ablations
    decomposes = True  # whether it predicts a residual (the baseline's is always 0)
    min_image_size = 1  # the smallest depth map side it can produce

    def head_bounds(self) -> dict[str, tuple[float, float]]:
        """Returns each output head's range in normalised depth: base in [0, 1] (a sigmoid)."""
        return {"base": (0.0, 1.0)}

    def base_path(self) -> list[nn.Module]:
        """Returns the modules that compute the base (frozen in a residual-only phase); none here."""
        return []

    def parameter_counts(self) -> dict[str, int]:
        """Returns the parameter count of each part and the total (all in `total` by default)."""
        total = sum(p.numel() for p in self.parameters())
        return {"encoder": 0, "base_decoder": total, "residual_decoder": 0, "total": total}


def build_model(name: str, **settings) -> nn.Module:
    """Returns a new model of the registered `name`; an unknown setting is an error naming it."""
    return MODELS.build(name, **settings)


def build_model_for_training(cfg, in_channels: int) -> nn.Module:
    """Returns the network a TrainConfig describes (`cfg.model` with its settings in force), taking
    `in_channels` feature channels of cfg.input_hw and predicting normalised depth at image_size."""
    run = {"in_channels": in_channels, "image_size": (cfg.image_size, cfg.image_size), "input_size": cfg.input_hw}
    declared = accepted_settings(MODELS.get(cfg.model))
    supplied = {name: value for name, value in run.items() if name in declared}
    return build_model(cfg.model, **supplied, **cfg.settings_for("model"))


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """Returns the parameter count per part (encoder, base_decoder, residual_decoder, total)."""
    return model.parameter_counts()
