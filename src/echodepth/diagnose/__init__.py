"""`echodepth diagnose`: the guide's "what to look for" and troubleshooting table, measured on a
trained run, with its advice as flags and a ready command line."""

from __future__ import annotations

from ..errors import MissingFileError
from ..evaluate import EVAL_BATCH_SIZE, datamodule_for
from ..inference import Predictor
from ..rundir import RunDir
from .checks import Check, run_checks
from .measure import measure_split, training_history
from .report import rerun_command, summary_lines, table, write_files


def diagnose(
    results_dir, split: str = "val", device: str = "auto", predictor=None, datamodule=None, progress=True
) -> dict:
    """Returns (and writes into the run folder) the diagnosis of a run's best checkpoint on a split.

    A caller that already holds the run's predictor and data module (the end of `train`) passes them.
    """
    run_dir = RunDir(results_dir)
    if predictor is None:
        if not run_dir.best_checkpoint.is_file():
            raise MissingFileError(
                f"{run_dir.path} holds no checkpoints/best.ckpt: not a finished echodepth run folder"
            )
        predictor = Predictor.from_checkpoint(run_dir.best_checkpoint, device=device, batch_size=EVAL_BATCH_SIZE)
    datamodule = datamodule or datamodule_for(predictor, progress=progress)
    measured = measure_split(predictor, datamodule, split)
    history = training_history(run_dir, predictor.cfg.epochs)
    checks = run_checks(measured, history, predictor.cfg, getattr(predictor.network, "decomposes", True))
    diagnosis = {
        "run": run_dir.name,
        "split": split,
        "healthy": all(c.healthy for c in checks),
        "checks": [c.to_dict() for c in checks],
        "command": rerun_command(run_dir, checks),
        "measured": {k: v for k, v in measured.items() if k not in ("best", "worst")},
        "history": history,
    }
    write_files(run_dir, diagnosis, measured, predictor.max_depth_m)
    return diagnosis


__all__ = ["Check", "diagnose", "rerun_command", "summary_lines", "table"]
