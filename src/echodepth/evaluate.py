"""Evaluation: a checkpoint on a split with the protocol's metrics, and the mean-depth predictors.

Depends on training's pieces (the data module) and the one inference path; nothing in training
depends on it.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .data import prepare_batch
from .errors import ConfigError, DataError
from .inference.predictor import Predictor
from .metrics import (
    DEFAULT_PROTOCOL,
    METRIC_KEYS,
    PROTOCOLS,
    EvalProtocol,
    aggregate,
    get_protocol,
    per_image_metrics,
    protocol_per_image,
)
from .runs.rundir import RunDir
from .runs.storage import atomic_write_text, make_dir
from .training import EchoDepthDataModule
from .units import depth_norm_to_m

EVAL_BATCH_SIZE = 64


def check_sample_rate(predictor: Predictor, datamodule: EchoDepthDataModule, split: str) -> None:
    """Raises a DataError when a split's recordings are sampled at another rate than the
    predictor's training data (its spectrograms would mean other frequencies), as `predict` does."""
    data_rate = datamodule.raw_dataset(split).sample_rate_hz
    if data_rate != predictor.sample_rate_hz:
        raise DataError(
            f"the {split} split of {datamodule.root} is sampled at {data_rate} Hz, "
            f"the model expects {predictor.sample_rate_hz} Hz (resample the recordings, or train at {data_rate} Hz)"
        )


class ProtocolGroundTruth:
    """A split's ground truth on the protocols' grids, made by each protocol from the dataset's
    full-resolution depth files as its paper's loader made it (`EvalProtocol.ground_truth`); the
    cache holds the depth at the model's grid only."""

    def __init__(self, raw_dataset):
        self.raw = raw_dataset
        self.refs = {str(ref.depth): ref for ref in raw_dataset.refs}

    def grids(self, depth_files: list[str], protocols: list[EvalProtocol]) -> dict[str, torch.Tensor]:
        """Returns protocol name -> (B, 1, H, W) ground truth in metres of the given depth files, for
        protocols on a grid of their own (each file read once)."""
        per_protocol: dict[str, list[torch.Tensor]] = {p.name: [] for p in protocols}
        for depth_file in depth_files if protocols else []:
            depth_m = self.raw.read_depth_m(self.refs[depth_file])
            for p in protocols:
                per_protocol[p.name].append(p.ground_truth(depth_m))
        return {name: torch.stack(maps) for name, maps in per_protocol.items() if maps}


def protocol_summary(protocol: EvalProtocol, per_image: dict, predictor: Predictor, side: int) -> dict:
    """Returns one protocol's entry of the metrics JSON: its definition (departures from its paper
    included) and its metrics."""
    return {**protocol.describe(side, predictor.max_depth_m), "metrics": protocol.aggregate(per_image)}


def evaluate_split(
    predictor: Predictor,
    datamodule: EchoDepthDataModule,
    split: str,
    *,
    out_dir=None,
    progress: bool = True,
    headline: str = DEFAULT_PROTOCOL,
) -> dict:
    """Returns the metrics of a predictor on a split under every protocol (`metrics.PROTOCOLS`):
    the headline protocol's at the top level, with "headline" naming it and "protocols" holding
    each one's definition and metrics. With out_dir, also writes {split}_metrics.json and a
    per-image CSV (the headline's metrics, then every protocol's as `name/metric`) there. Depth
    metrics are in metres (rmse, mae) or unitless (abs_rel, delta1, ...). An unknown `headline` is
    a ConfigError (before any work), a split sampled at another rate than the model's a DataError."""
    get_protocol(headline)  # an unknown name fails before the work
    check_sample_rate(predictor, datamodule, split)
    protocols = {name: get_protocol(name) for name in PROTOCOLS}
    batch_metrics: dict[str, list] = {name: [] for name in protocols}  # protocol -> per batch, per image
    rows = []
    dataset = datamodule.dataset(split)
    truth = ProtocolGroundTruth(datamodule.raw_dataset(split))
    own_grid = [p for p in protocols.values() if p.image_size]  # the others score the loader's ground truth
    loader = tqdm(
        datamodule.loader(split, batch_size=EVAL_BATCH_SIZE), desc=f"eval {split}", disable=not progress, leave=False
    )
    for b, prediction in predictor.predict_loader(loader):
        files = [dataset.sample_files(i) for i in b["index"].tolist()]
        grids = truth.grids([f["depth"] for f in files], own_grid)
        for name, protocol in protocols.items():
            gt = grids[name] if protocol.image_size else b["depth_m"]
            per = protocol_per_image(prediction.final_m, gt.to(prediction.final_m.device), protocol)
            batch_metrics[name].append({k: v.cpu() for k, v in per.items()})
        for j, i in enumerate(b["index"].tolist()):
            row = {"index": i, **files[j]}
            row.update({k: float(batch_metrics[headline][-1][k][j]) for k in (*METRIC_KEYS, "n_valid")})
            for name in protocols:
                row.update({f"{name}/{k}": float(batch_metrics[name][-1][k][j]) for k in (*METRIC_KEYS, "n_valid")})
            rows.append(row)
    per_image = {name: {k: torch.cat([p[k] for p in ps]) for k in ps[0]} for name, ps in batch_metrics.items()}
    side = datamodule.cfg.image_size
    summaries = {name: protocol_summary(p, per_image[name], predictor, side) for name, p in protocols.items()}
    metrics = {**summaries[headline]["metrics"], "headline": headline, "protocols": summaries}
    metrics["skipped_samples"] = list(dataset.skipped)  # bad samples left out (one line each)
    if out_dir is not None:
        out_dir = make_dir(out_dir, "--out_dir")
        summary = {"checkpoint": str(predictor.checkpoint_path), "split": split, **metrics}
        rows.sort(key=lambda r: r["index"])
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(out_dir / f"{split}_per_image.csv", text.getvalue())
        atomic_write_text(out_dir / f"{split}_metrics.json", json.dumps(summary, indent=2))
    return metrics


def datamodule_for(
    predictor: Predictor, *, dataset=None, data_dir=None, progress: bool = True, on_error: str = "raise"
):
    """Returns the data module of a predictor's training settings, on another dataset or folder if
    given; depth is clipped and scaled with the checkpoint's max depth, as in training. A data
    folder that does not exist is a ConfigError."""
    changes = {"dataset": dataset, "data_dir": data_dir}
    cfg = predictor.cfg.replace(
        **{name: value for name, value in changes.items() if value}, max_depth_m=predictor.max_depth_m
    )
    datamodule = EchoDepthDataModule(cfg, progress=progress, on_error=on_error)
    if not datamodule.root.is_dir():
        raise ConfigError(f"--data_dir {datamodule.root} is not a folder")
    return datamodule


def evaluate(
    checkpoint,
    split: str = "test",
    *,
    dataset=None,
    data_dir=None,
    out_dir=None,
    device="auto",
    progress=True,
    precision: str = "fp32",
    protocol: str | None = None,
) -> dict:
    """Returns (and writes, in out_dir or the run's eval/ folder) a checkpoint's metrics on a split
    under every protocol, `protocol` the headline (None: the checkpoint's `protocol` setting).
    A missing or foreign checkpoint is a MissingFileError / CheckpointError, an unknown protocol a
    ConfigError; bad samples are left out and listed under `skipped_samples`."""
    if protocol is not None:
        get_protocol(protocol)
    predictor = Predictor.from_checkpoint(checkpoint, device=device, batch_size=EVAL_BATCH_SIZE, precision=precision)
    protocol = protocol or predictor.cfg.protocol
    out_dir = make_dir(Path(out_dir) if out_dir else RunDir.of_checkpoint(checkpoint).eval_dir, "--out_dir")
    datamodule = datamodule_for(predictor, dataset=dataset, data_dir=data_dir, progress=progress, on_error="skip")
    return evaluate_split(predictor, datamodule, split, out_dir=out_dir, progress=progress, headline=protocol)


def mean_depth_baselines(datamodule: EchoDepthDataModule, split: str) -> dict[str, dict]:
    """Returns the metrics on `split` of two predictors that ignore the audio: the training set's
    mean depth (one number, metres) and its per-pixel mean depth map (1, H, W), each measured
    with `metrics.per_image_metrics` over the split's valid pixels."""
    max_depth_m = datamodule.max_depth_m
    total, count = 0.0, 0.0
    for batch in datamodule.loader("train", batch_size=256):
        b = prepare_batch(batch, max_depth_m)
        total = total + (b["depth_norm"] * b["valid"]).sum(0)
        count = count + b["valid"].float().sum(0)
    per_pixel_m = depth_norm_to_m(total / count.clamp(min=1), max_depth_m)
    scalar_m = float(depth_norm_to_m(total.sum() / count.sum(), max_depth_m))
    per = {"mean_depth": [], "per_pixel_mean_depth": []}
    for batch in datamodule.loader(split, batch_size=256):
        gt = prepare_batch(batch, max_depth_m)["depth_m"]
        per["mean_depth"].append(per_image_metrics(torch.full_like(gt, scalar_m), gt))
        per["per_pixel_mean_depth"].append(per_image_metrics(per_pixel_m.expand_as(gt), gt))
    return {
        name: aggregate({k: torch.cat([b[k] for b in batches]) for k in batches[0]}) for name, batches in per.items()
    }


def format_protocols(metrics: dict) -> str:
    """Returns one line per protocol: its grid, depth range, counted pixels and main metrics, the
    headline marked."""
    lines = [f"{'protocol':<18}{'grid':>10}{'depth m':>9}{'pixels':>13}{'rmse':>9}{'abs_rel':>9}{'delta1':>8}"]
    for name, entry in metrics["protocols"].items():
        m = entry["metrics"]
        mark = " (headline)" if name == metrics["headline"] else ""
        depth = f"0-{entry['depth_range_m'][1]:g}"
        lines.append(
            f"{name:<18}{entry['resolution']:>10}{depth:>9}{entry['pixels']:>13}"
            f"{m['rmse']:>9.4f}{m['abs_rel']:>9.4f}{m['delta1']:>8.4f}{mark}"
        )
    return "\n".join(lines)


def format_departures(metrics: dict) -> str:
    """Returns one line per way a protocol still departs from its paper's published code (its
    `departures` in the metrics JSON), or "" when none does."""
    lines = [
        f"{name} departs from its paper: {departure}"
        for name, entry in metrics["protocols"].items()
        for departure in entry.get("departures", [])
    ]
    return "\n".join(lines)


def format_comparison(test: dict, baselines: dict) -> str:
    """Returns the test metrics next to the mean-depth predictors' as a small table (both under
    echodepth's protocol, the one the mean-depth predictors are measured with), then every
    protocol's."""
    own = test["protocols"][DEFAULT_PROTOCOL]["metrics"] if "protocols" in test else test  # flat: echodepth's
    rows = [("model (best checkpoint)", own)]
    rows += [(name.replace("_", " ") + " predictor", m) for name, m in baselines.items()]
    keys = ("rmse", "abs_rel", "mae", "delta1", "log10")
    lines = [f"{'test split':<34}" + "".join(f"{k:>10}" for k in keys)]
    for name, m in rows:
        lines.append(f"{name:<34}" + "".join(f"{m[k]:>10.4f}" for k in keys))
    best_baseline = min(m["rmse"] for _, m in rows[1:])
    if not (math.isfinite(test["rmse"]) and math.isfinite(best_baseline)):
        lines.append(
            "no test metrics (NaN): the test split has no depth map with a valid pixel at the training size; "
            "see echodepth check-data --image_size"
        )
        return "\n".join(lines)
    if not best_baseline > 0:
        lines.append("the per-pixel mean depth of the training split matches every test depth map exactly")
        return "\n".join(lines)
    gain = 1 - rows[0][1]["rmse"] / best_baseline
    if gain > 0:
        lines.append(f"RMSE {100 * gain:.1f}% lower than the better mean-depth predictor")
    else:
        lines.append(f"RMSE {100 * -gain:.1f}% HIGHER than the better mean-depth predictor")
    return "\n".join([*lines, format_protocols(test)] if "protocols" in test else lines)
