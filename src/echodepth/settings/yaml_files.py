"""Settings files: YAML read as people write settings, and written atomically through storage."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from ..errors import ConfigError, MissingFileError, first_line
from ..runs.storage import atomic_write_text


class SettingsLoader(yaml.SafeLoader):
    """YAML as people write settings: `1e-3` is a number (YAML 1.1 wants `1.0e-3`), and a key
    given twice is an error (PyYAML lets the last one win silently)."""

    def construct_mapping(self, node, deep=False):
        """Returns the mapping of a YAML node; raises ConfigError naming a key given twice and its line."""
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConfigError(f"setting {key!r} is given twice (line {key_node.start_mark.line + 1})")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


SettingsLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)?\.?[0-9]*[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def load_yaml(path) -> dict:
    """Returns the settings of a YAML file; one-line errors for a missing file, one that is not
    UTF-8 text, invalid YAML, a key given twice, or anything but a mapping."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"config file {path} not found")
    try:
        values = yaml.load(path.read_bytes().decode("utf-8"), Loader=SettingsLoader) or {}
    except UnicodeDecodeError as err:
        raise ConfigError(f"config file {path} is not a YAML text file (byte {err.start} is not UTF-8)") from None
    except ConfigError as err:
        raise ConfigError(f"config file {path}: {err}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML ({first_line(err)})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path} must hold a mapping of settings, got {type(values).__name__}")
    return values


def save_yaml(cfg, path) -> None:
    """Writes a TrainConfig's settings as YAML (atomically, through storage)."""
    atomic_write_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
