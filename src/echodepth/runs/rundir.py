"""The run folder `results/{experiment_name}/` as one object: every file a run writes or reads.

config.yaml                       the resolved settings
metrics.csv                       one row per epoch
epoch_{N:04d}_decomposition.png   base / residual / final / ground truth, validation samples
checkpoints/last.ckpt, best.ckpt  self-describing, loadable with weights_only=True
test_metrics.json                 the best checkpoint on the test split, with the mean-depth predictors
diagnosis.json, diagnosis.md, diagnosis_samples.png   from `echodepth diagnose` (also run by train)
stop_reason.json                  written when a run stops on a non-finite loss
eval/{split}_metrics.json, eval/{split}_per_image.csv    written by `echodepth eval`
tensorboard/, wandb/              loggers
train.log, compare_run.yaml       written when `echodepth compare` runs it
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from .storage import atomic_write_bytes


class RunDir:
    """The folder of one training run and the paths of its files."""

    def __init__(self, path):
        self.path = Path(path)
        self.name = self.path.name
        self.config = self.path / "config.yaml"
        self.metrics = self.path / "metrics.csv"
        self.checkpoints = self.path / "checkpoints"
        self.last_checkpoint = self.checkpoints / "last.ckpt"
        self.best_checkpoint = self.checkpoints / "best.ckpt"
        self.test_metrics = self.path / "test_metrics.json"
        self.eval_dir = self.path / "eval"
        self.tensorboard = self.path / "tensorboard"
        self.train_log = self.path / "train.log"
        self.compare_config = self.path / "compare_run.yaml"
        self.lock = self.path / ".lock"  # held by the process training into this folder
        self.stop_reason = self.path / "stop_reason.json"  # why the last attempt stopped early
        self.diagnosis_json = self.path / "diagnosis.json"
        self.diagnosis_md = self.path / "diagnosis.md"
        self.diagnosis_figure = self.path / "diagnosis_samples.png"

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @classmethod
    def of_checkpoint(cls, checkpoint) -> "RunDir":
        """Returns the run folder a checkpoint lies in (its checkpoints/ folder's parent)."""
        return cls(Path(checkpoint).resolve().parent.parent)

    def figure(self, epoch: int) -> Path:
        """Returns the decomposition figure of a (1-based) epoch."""
        return self.path / f"epoch_{epoch:04d}_decomposition.png"

    @property
    def finished(self) -> bool:
        """Whether the run ended with its test evaluation."""
        return self.test_metrics.exists()

    def append_metrics(self, record: dict) -> None:
        """Appends a row to metrics.csv, dropping rows of this epoch or later (left by a killed
        run that is being resumed) and widening the header when new columns appear."""
        rows = []
        if self.metrics.exists():
            with open(self.metrics, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["epoch"]) < record["epoch"]]
        rows.append(record)
        columns = list(dict.fromkeys(k for r in rows for k in r))
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_bytes(self.metrics, text.getvalue().encode())

    def read_metrics(self) -> list[dict]:
        """Returns metrics.csv as a list of dicts of floats (NaN for empty cells)."""
        with open(self.metrics, newline="") as f:
            return [
                {k: float(v) if v not in ("", None) else math.nan for k, v in row.items()} for row in csv.DictReader(f)
            ]
