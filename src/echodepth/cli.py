"""The `echodepth` command line: sub-commands parse arguments and call the library."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing

from . import __version__


class UserError(Exception):
    """A problem with the user's input: printed as one line, no traceback."""


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (argparse prints the usage too)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _optional_type(hint):
    """Returns the concrete type of `X | None`, or hint itself."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args and typing.get_origin(hint) in (typing.Union, getattr(__import__("types"), "UnionType", None)) else hint


def _add_train_flags(parser: argparse.ArgumentParser) -> None:
    """Adds a flag per TrainConfig setting; only flags given on the command line are set."""
    from .config import TrainConfig

    hints = typing.get_type_hints(TrainConfig)
    for field in dataclasses.fields(TrainConfig):
        hint = _optional_type(hints[field.name])
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        kw = {"default": argparse.SUPPRESS, "help": f"default: {default}"}
        if hint is bool:
            parser.add_argument(f"--{field.name}", action=argparse.BooleanOptionalAction, **kw)
        elif typing.get_origin(hint) is list:
            parser.add_argument(f"--{field.name}", nargs="*", **kw)
        else:
            parser.add_argument(f"--{field.name}", type=hint, **kw)


def _add_dataclass_flags(parser: argparse.ArgumentParser, cls, skip=()) -> None:
    """Adds one --flag per field of a settings dataclass (tuples take several values)."""
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if field.name in skip:
            continue
        default = field.default
        hint = hints[field.name]
        if isinstance(default, tuple):
            item = type(default[0]) if default else str
            parser.add_argument(f"--{field.name}", type=item, nargs="+", default=None, help=f"default: {' '.join(map(str, default))}")
        elif hint is bool or isinstance(default, bool):
            parser.add_argument(f"--{field.name}", action=argparse.BooleanOptionalAction, default=None, help=f"default: {default}")
        else:
            parser.add_argument(f"--{field.name}", type=type(default), default=None, help=f"default: {default}")


def _dataclass_from_args(cls, args: argparse.Namespace, **extra):
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if getattr(args, f.name, None) is not None}
    return cls(**{**values, **extra})


def _cmd_synth(args: argparse.Namespace) -> int:
    from .synth import SynthConfig, generate_dataset
    from .synth.analysis import echo_depth_correlation

    cfg = _dataclass_from_args(SynthConfig, args)
    counts = generate_dataset(args.out_dir, cfg, workers=args.workers, progress=not args.quiet)
    print(f"wrote {sum(counts.values())} samples to {args.out_dir}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if args.report:
        print(json.dumps(echo_depth_correlation(args.out_dir, args.report), indent=2))
    return 0


def _cmd_check_data(args: argparse.Namespace) -> int:
    from .data import check_dataset

    kwargs = {"location_blacklist": args.location_blacklist} if args.location_blacklist else {}
    n_bad = check_dataset(args.dataset, args.data_dir, splits=args.splits, max_depth_m=args.max_depth, **kwargs)
    return 1 if n_bad else 0


TRAIN_HELP = """Train a model (PyTorch Lightning). With no dataset named (no --dataset, no
--config naming one), trains a CPU-sized configuration on the built-in synthetic data, made once:
about 3.5 minutes on 2 cores. With a dataset named, the design guide's defaults apply (batch 256,
learning rate 0.002, 64 base channels, 256 x 256). Precedence: defaults < --config < flags."""


def _cmd_train(args: argparse.Namespace) -> int:
    from .config import load_yaml, resolve_config
    from .training import NonFiniteLossError, format_comparison, train

    flags = {k: v for k, v in vars(args).items() if k not in ("command", "func", "config")}
    cfg = resolve_config(load_yaml(args.config) if args.config else {}, flags)
    print(f"experiment {cfg.experiment_name}: {cfg.model}, {cfg.loss} loss, dataset {cfg.dataset}, {cfg.epochs} epochs, outputs in {cfg.out_dir}")
    try:
        result = train(cfg)
    except NonFiniteLossError as err:
        last = cfg.out_dir / "checkpoints" / "last.ckpt"
        kept = f"last good checkpoint: {last}" if last.exists() else "no checkpoint was written yet"
        raise UserError(f"{err}; {kept}") from None
    if "test" in result:
        print(format_comparison(result))
    print(f"outputs: {result['out_dir']} (best checkpoint {result['best_checkpoint']})")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from .evaluate import evaluate

    metrics = evaluate(args.checkpoint, split=args.split, dataset=args.dataset, data_dir=args.data_dir, out_dir=args.out_dir, device=args.device)
    print(json.dumps(metrics, indent=2))
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from .evaluate import predict

    for item in predict(args.checkpoint, args.audio, args.out_dir, device=args.device):
        print(f"{item['audio']} -> {item['depth']}, {item['figure']}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from .compare import compare

    overrides = {}
    for name in ("epochs", "dataset", "data_dir", "image_size", "base_channels", "batch_size"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    path = compare(args.out, args.preset, args.seeds, args.variants, args.jobs, args.target_rmse, overrides)
    print(f"report: {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .synth import SynthConfig

    parser = OneLineParser(prog="echodepth", description="Depth maps from binaural echoes (base + residual decomposition).")
    parser.add_argument("--version", action="version", version=f"echodepth {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("synth", help="write the built-in synthetic dataset (BatVision V2 layout)", description="Write the built-in synthetic dataset in the BatVision V2 layout. Every generator setting is a flag; an interrupted run resumes.")
    p.add_argument("out_dir", help="output folder (created; resumed if it holds the same settings)")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--report", type=int, nargs="?", const=300, default=0, metavar="N", help="print the first-echo / nearest-depth correlation over N samples (default 300)")
    _add_dataclass_flags(p, SynthConfig)
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser("check-data", help="validate every sample of a dataset", description="Validate every sample of every split; print a summary and one line per bad sample. Exit status 1 when any sample is bad.")
    p.add_argument("--dataset", required=True, choices=["batvisionv1", "batvisionv2", "synthetic"])
    p.add_argument("--data_dir", required=True)
    p.add_argument("--splits", nargs="+", default=["train", "val", "test"])
    p.add_argument("--max_depth", type=float, default=None, help="metres (default: 12 for V1, 30 for V2, the metadata's for synthetic)")
    p.add_argument("--location_blacklist", nargs="*", default=None, help="V2 locations to leave out")
    p.set_defaults(func=_cmd_check_data)

    p = sub.add_parser("train", help="train a model", description=TRAIN_HELP)
    p.add_argument("--config", default=None, help="YAML file of settings (flags override it)")
    _add_train_flags(p)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("eval", help="evaluate a checkpoint (metrics JSON + per-image CSV)", description="Evaluate a checkpoint on a split with the protocol's metrics; writes {split}_metrics.json and {split}_per_image.csv.")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--dataset", default=None, choices=["batvisionv1", "batvisionv2", "synthetic"], help="default: the checkpoint's")
    p.add_argument("--data_dir", default=None, help="default: the checkpoint's")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--out_dir", default=None, help="default: eval/ beside the run's checkpoints/")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("predict", help="predict depth maps for recordings", description="Predict depth for BatVision recordings (stereo audio files, or V1 *_left.npy with *_right.npy beside it); writes <stem>_depth.npy (metres) and <stem>_decomposition.png.")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("audio", nargs="+")
    p.add_argument("--out_dir", default="predictions")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_cmd_predict)

    from .compare import PRESETS, VARIANTS

    p = sub.add_parser("compare", help="test the guide's claims against the baseline U-Net", description="Train the baseline U-Net, base + residual and ablations on the same data with the same budget over several seeds (each run its own process, resumable), then write report.md with plots, structure metrics and a verdict per claim. --preset small runs on a CPU in about 18 minutes (2 cores); --preset full uses the guide's sizes (GPU).")
    p.add_argument("--out", default="results/compare")
    p.add_argument("--preset", default="small", choices=sorted(PRESETS))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--variants", nargs="+", default=None, choices=list(VARIANTS), help="default: all")
    p.add_argument("--jobs", type=int, default=2, help="runs side by side")
    p.add_argument("--target_rmse", type=float, default=None, help="metres (default: the baseline's best)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--dataset", default=None, choices=["batvisionv1", "batvisionv2", "synthetic"])
    p.add_argument("--data_dir", default=None)
    p.add_argument("--image_size", type=int, default=None)
    p.add_argument("--base_channels", type=int, default=None)
    p.add_argument("--batch_size", type=int, default=None)
    p.set_defaults(func=_cmd_compare)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except (UserError, ValueError, FileNotFoundError, NotADirectoryError, PermissionError, RuntimeError) as err:
        print(f"echodepth {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"echodepth {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
