"""The `echodepth` command line: sub-commands parse arguments and call the library.

Errors about the user's input (`echodepth.errors.UserError`) are printed as one line; anything
else is a bug and keeps its traceback. `--debug` or ECHODEPTH_DEBUG=1 shows every traceback.
"""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import UserError
from ..runs.interrupt import Interrupted
from ..version import __version__
from . import commands
from .deploy_flags import EXPORT_HELP, PREDICT_HELP, add_precision_flag, export_flags, predict_flags
from .tune_flags import TUNE_HELP, tune_flags

TRAIN_HELP = """Train a model (PyTorch Lightning). With no dataset named (no --dataset, no
--config naming one), trains a CPU-sized configuration on the built-in synthetic data, made once:
under 5 minutes on 2 cores from a fresh clone. With a dataset named, the design guide's defaults apply (batch 256,
learning rate 0.002, 64 base channels, 256 x 256). Precedence: defaults < --config < flags.
--config takes a YAML file or the name of a published recipe shipped with echodepth (`echodepth recipes`
lists them): batvision_unet (the dataset paper's U-Net), htf (HTF-EchoDepth's recipe), guide_defaults."""
SYNTH_HELP = """Write the built-in synthetic dataset in the BatVision V2 layout. Every generator
setting is a flag; an interrupted run resumes."""
CHECK_HELP = """Validate every sample of every split; print a summary and one line per bad sample
(unreadable, silent, truncated, depth in an implausible unit, no valid depth pixel at the training
size), then one line per recording named twice: a duplicate row, or a sample shared between splits.
Exit status 1 when any sample is bad or repeated."""
EVAL_HELP = """Evaluate a checkpoint on a split under every evaluation protocol (echodepth's own and the
published papers': batvision, batvision_strict, htf, echogeom; each with its grid, depth range and
counted pixels); prints the headline one (--protocol), a line per protocol and a line per way a protocol
still departs from its paper's published code; writes {split}_metrics.json (all of them, "headline"
naming the one at its top level) and {split}_per_image.csv."""
DIAGNOSE_HELP = """Measure the design guide's "what to look for" on a run's best checkpoint (base smoothness,
residual share and location, base against final, reconstruction against the mean-depth predictors,
training stability) and print the guide's advice as flags, with a ready command line. Writes
diagnosis.json, diagnosis.md and diagnosis_samples.png into the run folder. Exit status 1 when
any check is unhealthy."""
CACHE_HELP = """list: every cache folder with its size and status (ok, damaged, or stale: its dataset's
files or settings changed since it was built). verify: the same with every array's checksum;
--sources also recomputes each sample from its files (a file changed in place with the same size
and time is otherwise not seen); exit status 1 if any is damaged or stale. clear: removes them
(--stale: only damaged or stale ones) and prints the space freed."""
COMPARE_HELP = """Train the baseline U-Net, the same-backbone control (base + residual's blocks, one
decoder, plain L1 loss), base + residual and ablations on the same data with the same budget over
several seeds (each run its own process, resumable), then write report.md and a self-contained
report.html with plots, structure metrics, predictions and a verdict per claim and control from
per-seed paired differences with 95% Student t-intervals (one seed gives none: every claim is then
undecided). --preset small runs on a CPU (3 seeds, every variant); --preset medium (64 x 64, 32
channels, {medium}); --preset full uses the guide's sizes (GPU): with --time_limit_min 10 it stops
and the same command resumes. A run folder's settings and data are its identity: a rerun into
the same --out with other settings or data is refused in one line naming the differences, or, with
--new_runs, trains new runs in folders of their own."""


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (argparse prints the usage too)."""

    def error(self, message: str):
        """Exits with status 2 after one line: the message and where to find the usage."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    """Adds `--debug` (show every traceback) to a parser, absent from the namespace unless given."""
    # SUPPRESS: a sub-command's default must not hide `echodepth --debug COMMAND`
    help_text = "show the traceback of every error (also ECHODEPTH_DEBUG=1)"
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=help_text)


def _synth_flags(p: argparse.ArgumentParser) -> None:
    from ..synth import SynthConfig
    from ..synth.presets import SYNTH_PRESETS
    from .flags import add_settings_flags

    p.add_argument("--preset", default="default", choices=sorted(SYNTH_PRESETS), help="a bundle of the settings below")
    p.add_argument("out_dir", help="output folder (created; resumed if it holds the same settings)")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--report", type=int, nargs="?", const=300, default=0, metavar="N",
        help="print the first-echo / nearest-depth correlation over N samples (default 300)",
    )  # fmt: skip
    add_settings_flags(p, SynthConfig)


def _dataset_names() -> list[str]:
    from ..data import DATASETS

    return DATASETS.names()


def _check_data_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, choices=_dataset_names())
    p.add_argument("--data_dir", required=True)
    p.add_argument("--splits", nargs="+", default=["train", "val", "test"])
    p.add_argument(
        "--max_depth_m", type=float, default=None, help="default: 12 for V1, 30 for V2, the metadata's for synthetic"
    )
    p.add_argument("--location_blacklist", nargs="*", default=None, help="V2 locations to leave out")
    p.add_argument("--depth_unit", choices=["mm", "cm", "m"], help="the depth files' unit (default: the dataset's, mm)")
    p.add_argument(
        "--image_size", type=int, default=None,
        help="the training size: a depth map with no valid pixel left at this size is bad (default: 128)",
    )  # fmt: skip


def _train_flags(p: argparse.ArgumentParser) -> None:
    from .flags import add_train_flags

    p.add_argument(
        "--config", default=None,
        help="YAML file of settings, or a recipe name (batvision_unet, htf, guide_defaults); flags override it",
    )  # fmt: skip
    add_train_flags(p)


def _eval_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--dataset", default=None, choices=_dataset_names(), help="default: the checkpoint's")
    p.add_argument("--data_dir", default=None, help="default: the checkpoint's")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--out_dir", default=None, help="default: eval/ beside the run's checkpoints/")
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--protocol", default=None, choices=_protocol_names(),
        help="the headline evaluation protocol (default: the checkpoint's --protocol setting, else echodepth)",
    )  # fmt: skip
    add_precision_flag(p)


def _protocol_names() -> list[str]:
    from ..metrics import PROTOCOLS

    return list(PROTOCOLS)


def _diagnose_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("results_dir", help="a run folder, results/{experiment_name}")
    p.add_argument("--split", default="val", choices=["train", "val", "test"])
    p.add_argument("--json", action="store_true", help="print the diagnosis as JSON")
    p.add_argument("--device", default="auto")


def _cache_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["list", "verify", "clear"])
    p.add_argument("--cache_dir", default=".echodepth_cache")
    p.add_argument("--sources", action="store_true", help="verify: also recompute every sample from its files")
    p.add_argument("--stale", action="store_true", help="clear: only damaged or stale folders")


def preset_defaults_text(preset: str) -> str:
    """Returns a preset's default seeds and variants as words, read from compare's PRESET_DEFAULTS."""
    from ..compare.variants import PRESET_DEFAULTS

    defaults = PRESET_DEFAULTS[preset]
    return f"{defaults['seeds']} seeds of {', '.join(defaults['variants'])}"


def _compare_flags(p: argparse.ArgumentParser) -> None:
    from ..compare import PRESETS, all_variants
    from ..compare.variants import PRESET_DEFAULTS

    p.description = COMPARE_HELP.format(medium=preset_defaults_text("medium"))
    seeds = "; ".join(f"{d['seeds']} for --preset {name}" for name, d in PRESET_DEFAULTS.items() if "seeds" in d)
    variants = "; ".join(f"--preset {name}: {', '.join(d['variants'])}" for name, d in PRESET_DEFAULTS.items())
    p.add_argument("--out", default="results/compare")
    p.add_argument("--preset", default="small", choices=sorted(PRESETS))
    p.add_argument("--seeds", type=int, default=None, help=f"default: {seeds}; else 3")
    p.add_argument(
        "--variants", nargs="+", default=None, choices=list(all_variants()),
        help=f"each at most once (default {variants}; else every variant)",
    )  # fmt: skip
    p.add_argument("--jobs", type=int, default=2, help="runs side by side, each on one CPU thread whatever --jobs")
    p.add_argument(
        "--target_rmse", type=float, default=None,
        help="metres (default: the largest best validation RMSE over the controls' and base + residual's runs)",
    )  # fmt: skip
    p.add_argument(
        "--time_limit_min", type=float, default=None,
        help="stop every run after this many minutes (e.g. 10 on a lent GPU); the same command resumes them",
    )  # fmt: skip
    p.add_argument(
        "--new_runs", action="store_true",
        help="where --out holds a run of other settings or data, train a new one in runs/<variant>_s<seed>-<id> "
        "(default: refuse); the report covers the runs of this call",
    )  # fmt: skip
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--dataset", default=None, choices=_dataset_names())
    p.add_argument("--data_dir", default=None)
    p.add_argument("--image_size", type=int, default=None)
    p.add_argument("--base_channels", type=int, default=None)
    p.add_argument("--batch_size", type=int, default=None)
    p.add_argument(
        "--protocol", default=None, choices=_protocol_names(),
        help="the headline evaluation protocol of the tables and verdicts (default: echodepth); every one is reported",
    )  # fmt: skip


AUDIO_STATS_HELP = """Statistics that tell synthetic echoes from real ones, side by side for each input
(a recording, or the medians over a folder's recordings): length, onset and envelope peak, the
1 ms RMS envelope at 10/20/40/80/160 ms re its peak, noise floor, spectral centroid, interaural
level and time differences. Hold `echodepth synth` output against your own recordings."""


def _audio_stats_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", help="recordings or folders (.wav, .flac, V1 *_left.npy)")
    from ..settings.arguments import flag_type, sample_rate_hz

    rate = flag_type(sample_rate_hz, "--sample_rate_hz")
    p.add_argument("--sample_rate_hz", type=rate, default=44100, help="for .npy ear pairs, which carry no rate")
    p.add_argument("--limit", type=int, default=300, help="at most this many recordings per folder (0: all)")
    p.add_argument("--json", action="store_true", help="print the statistics as JSON")


RECIPES_HELP = """List the published training recipes shipped with echodepth, with their sources and files:
`echodepth train --config NAME` trains one (flags override its settings)."""


def _no_flags(p: argparse.ArgumentParser) -> None:
    pass


# name: (one-line help, description, flags, function of the parsed arguments)
COMMANDS = {
    "synth": ("write the built-in synthetic dataset (BatVision V2 layout)", SYNTH_HELP, _synth_flags, "cmd_synth"),
    "check-data": ("validate every sample of a dataset", CHECK_HELP, _check_data_flags, "cmd_check_data"),
    "train": ("train a model", TRAIN_HELP, _train_flags, "cmd_train"),
    "eval": ("evaluate a checkpoint (metrics JSON + per-image CSV)", EVAL_HELP, _eval_flags, "cmd_eval"),
    "predict": ("predict depth maps for recordings", PREDICT_HELP, predict_flags, "cmd_predict"),
    "export": ("export a checkpoint to ONNX or TorchScript, verified", EXPORT_HELP, export_flags, "cmd_export"),
    "audio-stats": ("compare recordings' echo statistics", AUDIO_STATS_HELP, _audio_stats_flags, "cmd_audio_stats"),
    "diagnose": ("check a trained run against the guide's advice", DIAGNOSE_HELP, _diagnose_flags, "cmd_diagnose"),
    "cache": ("list, verify or clear the feature cache", CACHE_HELP, _cache_flags, "cmd_cache"),
    "recipes": ("list the published training recipes (train --config NAME)", RECIPES_HELP, _no_flags, "cmd_recipes"),
    "tune": ("search the decomposition's settings with Optuna", TUNE_HELP, tune_flags, "cmd_tune"),
    "compare": (
        "test the guide's claims against the U-Net and the same-backbone control",
        COMPARE_HELP,
        _compare_flags,
        "cmd_compare",
    ),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Returns the parser; with `only`, the other commands get no flags (their flags import
    torch and the registries: `predict --model` must run without torch)."""
    parser = OneLineParser(
        prog="echodepth", description="Depth maps from binaural echoes (base + residual decomposition)."
    )
    parser.add_argument("--version", action="version", version=f"echodepth {__version__}")
    add_debug_flag(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_text, description, add_flags, func) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=description)
        if only is None or only == name:
            add_flags(p)
        add_debug_flag(p)
        p.set_defaults(func=getattr(commands, func))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs `echodepth ARGV` and returns its exit status: 0, 1 (a command found bad inputs), 2 (bad
    input, one line on stderr), 130 / 143 (interrupted), a command's own (compare: 3, stopped in time)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), None)  # the global flags take no value
    parser = build_parser(only=command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    debug = getattr(args, "debug", False) or os.environ.get("ECHODEPTH_DEBUG", "") not in ("", "0")
    try:
        return args.func(args)
    except UserError as err:
        if debug:
            raise
        print(f"echodepth {args.command}: error: {err}", file=sys.stderr)
        return 2
    except Interrupted as stop:  # SIGTERM or SIGINT inside a command that handles them (train)
        print(f"echodepth {args.command}: {stop}", file=sys.stderr)
        return stop.exit_status
    except KeyboardInterrupt:
        print(f"echodepth {args.command}: interrupted", file=sys.stderr)
        return 130
