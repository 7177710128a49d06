"""A comparison run's identity: the settings it trains with and a fingerprint of its data.

Written into the run's folder (compare_identity.json) before it first trains. A later compare into
the same --out finds each run's folder by variant and seed; when the identity recorded there is not
the one planned (other --epochs, --base_channels, --data_dir, data files, ...), the run is refused
in one line naming the differences, or, with --new_runs, trained afresh in a folder of its own,
runs/<variant>_s<seed>-<8 hex digits of its identity>. Folders from before identities were written
are read from their compare_run.yaml (settings only).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import yaml

from ..errors import ConfigError
from ..runs.storage import atomic_write_bytes
from .scheduler import TRAIN_THREADS
from .variants import Run

IDENTITY_FILE = "compare_identity.json"
# settings that do not change what a run learns: where things are kept, logging, how often it is saved
NOT_IDENTITY = ("resume", "overwrite", "results_dir", "experiment_name", "cache_dir", "num_workers")
NOT_IDENTITY += ("use_wandb", "wandb_project", "n_figure_samples", "checkpoint_every")
SHOWN_DIFFERENCES = 6  # the refusal names this many differences, then counts the rest


def run_settings(cfg: dict) -> dict:
    """Returns the settings of a run's configuration (as a dict) that decide its results; the data
    folder as an absolute path."""
    settings = {k: v for k, v in cfg.items() if k not in NOT_IDENTITY}
    if settings.get("data_dir"):
        settings["data_dir"] = str(Path(settings["data_dir"]).resolve())
    return settings


def data_fingerprint(datamodule) -> str:
    """Returns 16 hex digits naming a dataset's contents: every split's sample files (path below the
    data folder and size) and, for echodepth's synthetic data, its generator settings. A file
    rewritten in place with the same size is not seen; a regenerated built-in dataset matches."""
    from ..synth.writer import METADATA_FILE

    root = Path(datamodule.root)
    files = {}
    for split in ("train", "val", "test"):
        if datamodule.has_split(split):
            paths = [p for ref in datamodule.raw_dataset(split).refs for p in (*ref.audio, ref.depth)]
            files[split] = sorted([os.path.relpath(p, root), p.stat().st_size if p.exists() else -1] for p in paths)
    generator = root / METADATA_FILE
    meta = json.loads(generator.read_text()) if generator.exists() else {}
    content = {"files": files, "generator": {k: meta.get(k) for k in ("seed", "settings")} if meta else None}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


def identity_of(run: Run, data: str | None) -> dict:
    """Returns the identity planned for a run: its settings, the data's fingerprint (None: not
    known yet) and its CPU threads."""
    identity = {"settings": run_settings(run.cfg.to_dict()), "data": data, "threads": TRAIN_THREADS}
    return json.loads(json.dumps(identity))  # as read back from its file: tuples become lists


def recorded_identity(run_dir) -> dict | None:
    """Returns the identity a run folder records: its compare_identity.json, else (a folder from before
    identities) the settings of its compare_run.yaml with data and threads unknown (None), else None."""
    path = Path(run_dir.path) / IDENTITY_FILE
    if path.exists():
        return json.loads(path.read_text())
    if run_dir.compare_config.exists():
        settings = run_settings(yaml.safe_load(run_dir.compare_config.read_text()))
        return json.loads(json.dumps({"settings": settings, "data": None}))
    return None


def write_identity(run: Run, identity: dict) -> None:
    """Records a run's identity in its folder (before it first trains)."""
    atomic_write_bytes(Path(run.run_dir.path) / IDENTITY_FILE, json.dumps(identity, indent=1, sort_keys=True).encode())


def differences(recorded: dict, planned: dict) -> list[str]:
    """Returns the differences between a recorded identity and the planned one, each as "name old
    (now new)"; what the record does not know (data, threads of an older folder) is not a difference."""
    found = []
    old, new = recorded["settings"], planned["settings"]
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            found.append(f"{key} {old.get(key, 'unset')} (now {new.get(key, 'unset')})")
    for key, label in (("data", "data fingerprint"), ("threads", "CPU threads")):
        if recorded.get(key) is not None and planned.get(key) is not None and recorded[key] != planned[key]:
            found.append(f"{label} {recorded[key]} (now {planned[key]})")
    return found


def digest(identity: dict) -> str:
    """Returns 8 hex digits of an identity (the suffix of a --new_runs folder)."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:8]


def place_runs(runs: list[Run], out_dir, data: str | None, new_runs: bool) -> list[Run]:
    """Returns the runs, each in the folder that holds its identity: runs/<variant>_s<seed> when it
    is free or holds the same run; otherwise, with `new_runs`, runs/<variant>_s<seed>-<digest>; without
    it, a one-line ConfigError naming the differences. With `data` None, the data is not compared."""
    placed, refused = [], {}
    for run in runs:
        planned = identity_of(run, data)
        found = recorded_identity(run.run_dir)
        diff = differences(found, planned) if found is not None else []
        if diff and new_runs:
            run = Run(run.variant, run.seed, run.cfg.replace(experiment_name=f"{run.name}-{digest(planned)}"))
            found = recorded_identity(run.run_dir)
            diff = differences(found, planned) if found is not None else []
        if diff:
            refused[run.name] = diff
        placed.append(run)
    if refused:
        shown = list(dict.fromkeys(d for diff in refused.values() for d in diff))
        more = f" and {len(shown) - SHOWN_DIFFERENCES} more" if len(shown) > SHOWN_DIFFERENCES else ""
        raise ConfigError(
            f"comparison folder {out_dir} holds {len(refused)} of these {len(runs)} runs trained with other settings "
            f"or data: {', '.join(shown[:SHOWN_DIFFERENCES])}{more}; rerun with those settings, give another --out, "
            "or add --new_runs to train new runs in folders of their own"
        )
    return placed


def check_collected(run: Run, data: str) -> None:
    """Raises when a run folder about to be reported no longer records the identity it was planned
    with (changed while the comparison ran): the report holds only runs that match its header."""
    found = recorded_identity(run.run_dir)
    diff = differences(found, identity_of(run, data)) if found is not None else ["no identity recorded"]
    if diff:
        raise ConfigError(f"run folder {run.run_dir.path} changed while the comparison ran: {', '.join(diff)}")
