"""Published training recipes as settings files shipped with the package: `echodepth train --config NAME`.

Each `NAME.yaml` here is a recipe; its first comment lines say where it comes from. A recipe
names its dataset (BatVision V2, where the published numbers were measured), so the CPU preset
does not apply under it; flags given with it override it (`--dataset synthetic --image_size 32`).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError, MissingFileError

RECIPE_DIR = Path(__file__).parent


def recipe_names() -> list[str]:
    """Returns the shipped recipes' names, sorted."""
    return sorted(p.stem for p in RECIPE_DIR.glob("*.yaml"))


def recipe_description(name: str) -> str:
    """Returns a recipe's leading comment lines joined into one text."""
    lines = []
    for line in (RECIPE_DIR / f"{name}.yaml").read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("# ").rstrip())
    return " ".join(lines)


def resolve_config_path(value: str) -> Path:
    """Returns the settings file `--config` names: an existing file, else a shipped recipe's.
    Raises MissingFileError for a path that does not exist, ConfigError for an unknown name."""
    path = Path(value)
    if path.is_file():
        return path
    if value in recipe_names():
        return RECIPE_DIR / f"{value}.yaml"
    if path.suffix in (".yaml", ".yml") or len(path.parts) > 1:
        raise MissingFileError(f"config file {path} not found")
    raise ConfigError(f"--config {value!r} is neither a file nor a recipe; recipes: {recipe_names()}")
