"""What each sub-command does with its parsed arguments: call the library and print the result.
Imports are inside each command: `predict --model` must not import torch."""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import ConfigError


def cmd_synth(args: argparse.Namespace) -> int:
    """`echodepth synth`: writes the synthetic dataset and prints the samples per split; returns 0."""
    from ..data.features import FeatureConfig
    from ..synth import SynthConfig, generate_dataset
    from ..synth.analysis import echo_depth_correlation
    from ..synth.presets import preset_settings
    from .flags import given_settings

    cfg = SynthConfig(**{**preset_settings(args.preset), **given_settings(args, SynthConfig)})
    # the recordings must be long enough for the default features to train on them
    FeatureConfig(sample_rate_hz=cfg.sample_rate_hz).check_cut(cfg.max_depth_m)
    counts = generate_dataset(args.out_dir, cfg, workers=args.workers, progress=not args.quiet)
    print(
        f"wrote {sum(counts.values())} samples to {args.out_dir}: " + ", ".join(f"{k} {v}" for k, v in counts.items())
    )
    if args.report:
        print(json.dumps(echo_depth_correlation(args.out_dir, args.report), indent=2))
    return 0


def cmd_check_data(args: argparse.Namespace) -> int:
    """`echodepth check-data`: checks every sample; returns 1 when any is bad or repeated, else 0."""
    from ..data import check_dataset

    kwargs = {"location_blacklist": args.location_blacklist} if args.location_blacklist else {}
    if args.image_size is not None:
        if args.image_size < 1:
            raise ConfigError(f"--image_size {args.image_size}: expected a positive number of pixels")
        kwargs["depth_size"] = (args.image_size, args.image_size)
    n_bad = check_dataset(
        args.dataset, args.data_dir, args.splits, max_depth_m=args.max_depth_m, depth_unit=args.depth_unit, **kwargs
    )
    return 1 if n_bad else 0


def train_settings(args: argparse.Namespace):
    """Returns the training settings of `train` and `tune`: defaults, preset, --config, then flags;
    warns in one line when flags chose another model or loss than a recipe's."""
    from ..recipes import RECIPE_DIR, resolve_config_path
    from ..settings.sources import recipe_override_notice, resolve_config
    from ..settings.yaml_files import load_yaml
    from .flags import given_train_settings

    path = resolve_config_path(args.config) if args.config else None
    file_values = load_yaml(path) if path else {}
    recipe = path is not None and path.resolve().parent == RECIPE_DIR.resolve()
    flag_values = given_train_settings(args)
    cfg = resolve_config(file_values, flag_values, file_is_recipe=recipe, file_name=str(args.config))
    notice = recipe_override_notice(path.stem, file_values, flag_values, cfg) if recipe else None
    if notice:  # the recipe was made for another model or loss: say what is not its source's
        print(f"echodepth {args.command}: warning: {notice}", file=sys.stderr)
    return cfg


def cmd_tune(args: argparse.Namespace) -> int:
    """`echodepth tune`: runs or joins the study until it holds --n_trials complete trials, writes
    its report and prints where; returns 0."""
    import yaml

    from ..tune import tune
    from ..tune.space import resolve_space, space_to_dict

    base = train_settings(args)
    if args.show_space:
        space, source = resolve_space(base, args.space)
        print(
            f"# {source} of --model {base.model} --loss {base.loss}\n"
            + yaml.safe_dump(space_to_dict(space), sort_keys=False, default_flow_style=None)
        )
        return 0
    missing = [flag for flag in ("study_dir", "n_trials") if getattr(args, flag) is None]
    if missing:
        raise ConfigError(f"echodepth tune needs {' and '.join('--' + m for m in missing)}")
    print(f"study {args.study_name} in {args.study_dir}: {args.n_trials} complete trials of {base.model}, {base.loss}")
    path = tune(
        base,
        study_dir=args.study_dir,
        n_trials=args.n_trials,
        space_file=args.space,
        objective=args.objective,
        storage=args.storage,
        study_name=args.study_name,
        workers=args.workers,
        heartbeat_s=args.heartbeat_s,
        sampler_seed=args.sampler_seed,
    )
    print(f"report: {path} (and report.html, trials.csv, best.yaml beside it)")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """`echodepth train`: resolves the settings (defaults, preset, --config, flags), trains, prints the
    test comparison and the diagnosis; returns 0. Raises ConfigError for a bad or inapplicable setting."""
    from ..evaluate import format_comparison
    from ..runs.train import train

    cfg = train_settings(args)
    print(
        f"experiment {cfg.experiment_name}: {cfg.model}, {cfg.loss} loss, dataset {cfg.dataset}, "
        f"{cfg.epochs} epochs, outputs in {cfg.run_dir.path}"
    )
    result = train(cfg)
    if "test" in result:
        print(format_comparison(result["test"], result["baselines"]))
    if "diagnosis" in result:
        from ..diagnose import summary_lines

        lines = summary_lines(result["diagnosis"]) or ["diagnosis: every check healthy"]
        print("\n".join(lines))
        print(f"details: echodepth diagnose {result['out_dir']}")
    print(f"outputs: {result['out_dir']} (best checkpoint {result['best_checkpoint']})")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """`echodepth eval`: prints the headline and per-protocol metrics; returns 1 when a sample failed."""
    from ..evaluate import evaluate, format_departures, format_protocols

    metrics = evaluate(
        args.checkpoint,
        split=args.split,
        dataset=args.dataset,
        data_dir=args.data_dir,
        out_dir=args.out_dir,
        device=args.device,
        precision=args.precision,
        protocol=args.protocol,
    )
    skipped = metrics.pop("skipped_samples")
    headline = {k: v for k, v in metrics.items() if k != "protocols"}
    print(f"headline protocol {metrics['headline']}: " + json.dumps(headline, indent=2))
    print(format_protocols(metrics))
    if departures := format_departures(metrics):
        print(departures)
    for message in skipped:
        print(f"echodepth eval: error: {message}", file=sys.stderr)
    print(f"evaluated {metrics['n_images']} image(s) of the {args.split} split; {len(skipped)} sample(s) failed")
    return 1 if skipped else 0


def cmd_predict(args: argparse.Namespace) -> int:
    """`echodepth predict`: writes a depth map (metres) and a figure per recording; returns 1 when one failed."""
    from ..inference.predict import predict_files

    failed = []

    def report(message: str) -> None:
        failed.append(message)
        print(f"echodepth predict: error: {message}", file=sys.stderr)

    chirps = {"chirp_file": args.chirp, "lead_ms": args.lead_ms, "min_gap_ms": args.min_gap_ms}
    chirps = {name: value for name, value in {**chirps, "threshold": args.threshold}.items() if value is not None}
    if chirps and not args.chirps:
        given = " and ".join(f"--{name.removesuffix('_file')} {value}" for name, value in chirps.items())
        raise ConfigError(f"{given} applies to long recordings: give --chirps too, or leave it out")
    written = predict_files(
        args.checkpoint, args.audio, args.out_dir, device=args.device, on_error=report, model=args.model,
        threads=args.threads, chirps=chirps if args.chirps else None, precision=args.precision, pcm_bits=args.pcm_bits,
    )  # fmt: skip
    for item in written:
        for warning in item["warnings"]:
            print(f"echodepth predict: warning: {item['audio']}: {warning}", file=sys.stderr)
        chirp_count = f" ({item['n_chirps']} chirps, onsets in {item['onsets']})" if "n_chirps" in item else ""
        print(f"{item['audio']} -> {item['depth']}, {item['figure']}{chirp_count}")
    print(f"predicted {len(written)} of {len(written) + len(failed)} recording(s); {len(failed)} failed")
    return 1 if failed else 0


def cmd_export(args: argparse.Namespace) -> int:
    """`echodepth export`: writes the verified ONNX / TorchScript model and prints the largest difference (m)."""
    from ..deploy.export import export_model

    result = export_model(
        args.checkpoint,
        args.output,
        fmt=args.format,
        n_samples=args.samples,
        tolerance_m=args.tolerance_m,
        opset=args.opset,
    )
    print(
        f"exported {result['format']} to {result['path']}: input (batch, 2, {result['n_samples']}) samples; "
        f"largest difference to PyTorch over {result['batch']} recordings {result['max_abs_diff_m']:.2e} m "
        f"(tolerance {result['tolerance_m']:g} m)"
    )
    return 0


def cmd_audio_stats(args: argparse.Namespace) -> int:
    """`echodepth audio-stats`: prints the recordings' statistics as a table or JSON; returns 0."""
    from ..audio.stats import format_table, path_stats

    columns = {path: path_stats(path, args.sample_rate_hz, args.limit or None) for path in args.paths}
    print(json.dumps(columns, indent=2) if args.json else format_table(columns))
    return 0


def cmd_recipes(args: argparse.Namespace) -> int:
    """`echodepth recipes`: prints each shipped recipe with its source and file; returns 0."""
    from ..recipes import RECIPE_DIR, recipe_description, recipe_names

    for name in recipe_names():
        print(f"{name}\n  {recipe_description(name)}\n  file: {RECIPE_DIR / (name + '.yaml')}")
    print("train one: echodepth train --config NAME [--dataset ... --data_dir ... and any flag to override]")
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    """`echodepth cache`: see `cache_command.cmd_cache`."""
    from .cache_command import cmd_cache as run

    return run(args)


COMPARE_OVERRIDES = ("epochs", "dataset", "data_dir", "image_size", "base_channels", "batch_size", "protocol")


def cmd_compare(args: argparse.Namespace) -> int:
    """`echodepth compare`: trains the variants and writes the report; returns 3 when stopped by
    --time_limit_min (the same command resumes), else 0."""
    from ..compare import compare

    overrides = {name: getattr(args, name) for name in COMPARE_OVERRIDES if getattr(args, name) is not None}
    limit = args.time_limit_min * 60 if args.time_limit_min is not None else None
    path = compare(
        args.out,
        args.preset,
        args.seeds,
        args.variants,
        jobs=args.jobs,
        target_rmse=args.target_rmse,
        overrides=overrides,
        time_limit_s=limit,
        new_runs=args.new_runs,
    )
    if path is None:
        print(f"stopped after {args.time_limit_min:g} minutes; run the same command again to continue")
        return 3
    print(f"report: {path} and report.html beside it")
    return 0


def cmd_diagnose(args: argparse.Namespace) -> int:
    """`echodepth diagnose`: prints the checks and the advice; returns 1 when any check is unhealthy."""
    from ..diagnose import Check, diagnose, table

    diagnosis = diagnose(args.results_dir, split=args.split, device=args.device)
    if args.json:
        print(json.dumps(diagnosis, indent=2, default=float))
        return 0 if diagnosis["healthy"] else 1
    print(f"diagnosis of {args.results_dir} ({args.split} split, best checkpoint)")
    print(table([Check(**c) for c in diagnosis["checks"]]))
    if diagnosis["command"]:
        print(f"re-run with the advice:\n  {diagnosis['command']}")
    print(f"wrote diagnosis.json, diagnosis.md and diagnosis_samples.png in {args.results_dir}")
    return 0 if diagnosis["healthy"] else 1
