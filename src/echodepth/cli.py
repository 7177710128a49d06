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


def build_parser() -> argparse.ArgumentParser:
    from .synth import SynthConfig

    parser = argparse.ArgumentParser(prog="echodepth", description="Depth maps from binaural echoes (base + residual decomposition).")
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
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except (UserError, ValueError, FileNotFoundError, NotADirectoryError, PermissionError) as err:
        print(f"echodepth {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"echodepth {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
