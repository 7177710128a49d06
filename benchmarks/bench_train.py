"""Training throughput: model-only and end-to-end samples/s, FLOPs, achieved TFLOP/s, memory.

    python benchmarks/bench_train.py --preset cpu|guide [--models base_residual unet_baseline]
        [--steps 5] [--repeats 3] [--no-end_to_end] [--peak_tflops X] [--json]

Model-only: random features and depth on the device, AdamW, the standard loss, the precision,
memory format and micro-batch that `echodepth train` would use; median samples/s of `repeats`
timings of `steps` optimiser steps after a warm-up. FLOPs per sample: torch.utils.flop_counter on
one forward pass, times 3 for a training step (forward + backward). End to end: `train()` on the
built-in synthetic data (the CPU preset's, or at the guide's size), the marginal time of two more
epochs (a 3-epoch run against a 1-epoch run), validation, figures and checkpoints included.
"""

import argparse
import contextlib
import json
import resource
import statistics
import sys
import tempfile
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from echodepth.losses import build_loss_for_training
from echodepth.models import build_model_for_training
from echodepth.runs.train import resolve_precision, train
from echodepth.settings.config import TrainConfig
from echodepth.settings.sources import CPU_PRESET
from echodepth.training import EchoDepthDataModule
from echodepth.training.microbatch import accumulate_gradients, choose_micro_batch

PRESETS = {
    "cpu": {**CPU_PRESET, "dataset": "synthetic"},
    "guide": {"dataset": "synthetic", "synth_rooms": 240, "synth_image_size": 128},  # batch 256, 256 x 256, 64 ch
}
# dense bf16 tensor-core peaks from the vendors' data sheets (TFLOP/s)
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}


def device_peak(device: str) -> float | None:
    if device != "cuda":
        return None
    name = torch.cuda.get_device_name()
    return next((v for k, v in PEAK_TFLOPS.items() if k in name), None)


def forward_flops(model, side: int, channels: int, device: str) -> float:
    model.eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.randn(1, channels, side, side, device=device))
    model.train()
    return float(counter.get_total_flops())


def model_only(cfg: TrainConfig, device: str, steps: int, repeats: int) -> dict:
    model = build_model_for_training(cfg, 2).to(device)
    criterion = build_loss_for_training(cfg)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate)
    precision = resolve_precision(cfg)
    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)
    channels_last = device == "cuda" and cfg.channels_last
    if channels_last:
        model.to(memory_format=torch.channels_last)
    network = (
        model if cfg.compile == "none" else torch.compile(model, mode=None if cfg.compile == "default" else cfg.compile)
    )
    side, batch = cfg.image_size, cfg.batch_size
    features = torch.randn(batch, 2, side, side, device=device)
    depth = torch.rand(batch, 1, side, side, device=device)

    def prepare(x):
        return x.contiguous(memory_format=torch.channels_last) if channels_last else x

    def autocast():
        return torch.autocast(device, dtype=dtype) if dtype else torch.autocast(device, enabled=False)

    def probe(x):
        with autocast():
            base, residual, final = network(prepare(x))
            criterion(base.float(), residual.float(), final.float(), depth[: len(x)])["loss"].backward()
        model.zero_grad(set_to_none=True)

    choice = choose_micro_batch(batch, model, features, step=probe if device == "cuda" else None)
    micro = choice["micro_batch_size"]

    def step():
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            accumulate_gradients(
                network,
                criterion,
                feature_image=features,
                depth_norm=depth,
                valid=depth > 0,
                micro_batch=micro,
                backward=lambda loss: loss.backward(),
                prepare=prepare,
            )
        optimizer.step()

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    step()  # warm-up (cuDNN autotuning, allocator)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    rates = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        sync()
        rates.append(steps * batch / (time.perf_counter() - start))
    peak_gb = torch.cuda.max_memory_allocated() / 1e9 if device == "cuda" else None
    return {"samples_per_s": statistics.median(rates), "runs": rates, "micro_batch": micro, "precision": precision,
            "channels_last": channels_last, "peak_memory_gb": peak_gb}  # fmt: skip


def end_to_end(cfg_values: dict, root: str) -> dict:
    """Returns the marginal samples/s of two more epochs: a 3-epoch run against a 1-epoch run
    (the data and its caches are made first, outside the timings)."""
    cfg = TrainConfig.from_dict({**cfg_values, "cache_dir": f"{root}/cache"})
    datamodule = EchoDepthDataModule(cfg, progress=False)
    datamodule.prepare_data()
    datamodule.dataset("test")
    seconds = {}
    for epochs in (1, 3):
        values = {**cfg_values, "epochs": epochs, "experiment_name": f"e{epochs}", "lr_schedule": "none"}
        values.update({"results_dir": f"{root}/results", "cache_dir": f"{root}/cache"})
        start = time.perf_counter()
        train(TrainConfig.from_dict(values), progress=False)
        seconds[epochs] = time.perf_counter() - start
    samples = len(datamodule.dataset("train"))
    used = samples - samples % cfg.batch_size  # full batches only
    rate = 2 * used / (seconds[3] - seconds[1])
    return {"samples_per_s": rate, "seconds_1_epoch": seconds[1], "seconds_3_epochs": seconds[3], "train_samples": used}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--models", nargs="+", default=["base_residual", "unet_baseline"])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--end_to_end", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--peak_tflops", type=float, default=None, help="the device's peak (default: known GPUs)")
    parser.add_argument("--channels_last", action=argparse.BooleanOptionalAction, default=True, help="on CUDA")
    parser.add_argument("--compile", default="none", choices=["none", "default", "reduce-overhead", "max-autotune"])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    peak = args.peak_tflops or device_peak(device)
    report = {"preset": args.preset, "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
              "threads": torch.get_num_threads(), "torch": torch.__version__, "models": {}}  # fmt: skip
    # with --json, what training prints goes to stderr: stdout holds the JSON only
    with contextlib.redirect_stdout(sys.stderr if args.json else sys.stdout):
        for name in args.models:
            values = {
                **PRESETS[args.preset],
                "model": name,
                "channels_last": args.channels_last,
                "compile": args.compile,
            }
            cfg = TrainConfig.from_dict(values)
            flops = forward_flops(build_model_for_training(cfg, 2).to(device), cfg.image_size, 2, device)
            entry = {
                "forward_gflop_per_sample": flops / 1e9,
                "model_only": model_only(cfg, device, args.steps, args.repeats),
            }
            achieved = entry["model_only"]["samples_per_s"] * 3 * flops / 1e12
            entry["model_only"]["achieved_tflops"] = achieved
            entry["model_only"]["share_of_peak"] = achieved / peak if peak else None
            if args.end_to_end:
                with tempfile.TemporaryDirectory() as root:
                    entry["end_to_end"] = end_to_end(values, root)
                entry["end_to_end_over_model_only"] = (
                    entry["end_to_end"]["samples_per_s"] / entry["model_only"]["samples_per_s"]
                )
            report["models"][name] = entry
    report["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"preset {args.preset} on {report['device']} ({report['threads']} threads, torch {report['torch']})")
    for name, e in report["models"].items():
        m = e["model_only"]
        share = f", {100 * m['share_of_peak']:.0f}% of peak" if m["share_of_peak"] else ""
        memory = f", peak memory {m['peak_memory_gb']:.1f} GB" if m["peak_memory_gb"] else ""
        runs = ", ".join(f"{r:.1f}" for r in m["runs"])
        print(f"{name}: {e['forward_gflop_per_sample']:.2f} GFLOP/sample forward")
        print(
            f"  model-only {m['samples_per_s']:.1f} samples/s (runs {runs}), {m['achieved_tflops']:.3f} TFLOP/s{share}"
        )
        print(f"  micro-batch {m['micro_batch']}, {m['precision']}, channels-last {m['channels_last']}{memory}")
        if "end_to_end" in e:
            t = e["end_to_end"]
            ratio = e["end_to_end_over_model_only"]
            rate = t["samples_per_s"]
            print(f"  end to end {rate:.1f} samples/s ({t['train_samples']} an epoch), {ratio:.2f} of model-only")


if __name__ == "__main__":
    main()
