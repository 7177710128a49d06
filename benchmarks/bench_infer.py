"""Inference latency on the CPU: waveform in, base / residual / final depth out, per backend.

    python benchmarks/bench_infer.py [--configs full256 full128 mid64 unet256 cpu cpu_0.2 cpu_base4 ...]
        [--backends eager eager_bf16 torchscript onnxruntime] [--runs 50] [--threads 2] [--json]

Each configuration is the exported pipeline (`echodepth.deploy.frontend.DepthPipeline`: the
STFT as a convolution, the resize as matrix products, then the network) with random weights:
latency does not depend on the weights. Per backend: median and 95th percentile latency over
`runs` predictions at batch 1 after warm-up, throughput at batch 16, and GFLOP/s achieved
(forward FLOPs from torch.utils.flop_counter divided by the median latency). eager_bf16 is
bfloat16 autocast with channels-last (what `Predictor(precision="bf16")`, `echodepth predict
--precision bf16` and `echodepth eval --precision bf16` run); its difference to float32 on the
same random inputs is printed (median over pixels and largest, metres; max depth 10 m).
Accuracy on test data comes from `echodepth eval [--precision bf16]` on trained checkpoints.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from echodepth.data import AudioFeatures, FeatureConfig, cut_length
from echodepth.deploy.frontend import DepthPipeline
from echodepth.models import build_model_for_training
from echodepth.settings.config import TrainConfig
from echodepth.units import depth_norm_to_m

MAX_DEPTH_M = 10.0
CONFIGS = {  # name: TrainConfig settings
    "full256": {"model": "base_residual", "image_size": 256, "base_channels": 64},  # the guide's network
    "full128": {"model": "base_residual", "image_size": 128, "base_channels": 64},
    "mid64": {"model": "base_residual", "image_size": 64, "base_channels": 32},
    "unet256": {"model": "unet_baseline", "image_size": 256},  # the dataset authors' baseline
    "cpu": {"model": "base_residual", "image_size": 32, "base_channels": 12, "input_size": [16, 128]},  # the demo's
    "cpu_0.2": {"model": "base_residual", "image_size": 32, "base_channels": 16},  # echodepth 0.2's demo
}
# the base decoder at 1/4 and 1/8 of the map, then a bilinear upsampling (`--base_resolution`), beside
# the full-resolution configurations above
for _name in ("cpu", "mid64", "full128"):
    for _k in (4, 8):
        CONFIGS[f"{_name}_base{_k}"] = {**CONFIGS[_name], "base_resolution": _k}
BACKENDS = ("eager", "eager_bf16", "torchscript", "onnxruntime")


def build_pipeline(settings: dict) -> DepthPipeline:
    cfg = TrainConfig(dataset="synthetic", log_compression=True, **settings)
    features = AudioFeatures(FeatureConfig(log=True, image_size=cfg.input_hw), MAX_DEPTH_M)
    network = build_model_for_training(cfg, features.n_channels)
    n_samples = cut_length(MAX_DEPTH_M, features.cfg.sample_rate_hz)
    return DepthPipeline(network, features, n_samples, MAX_DEPTH_M).eval()


def forward_gflop(pipeline: DepthPipeline, wave: torch.Tensor) -> float:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        pipeline(wave)
    return counter.get_total_flops() / 1e9


def runner(pipeline: DepthPipeline, backend: str, example: torch.Tensor, workdir: Path, threads: int):
    """Returns a function of a (B, 2, n) float32 numpy batch that predicts with the backend."""
    if backend == "eager":
        return lambda w: pipeline(torch.from_numpy(w))
    if backend == "eager_bf16":
        network = pipeline.network.to(memory_format=torch.channels_last)
        frontend = pipeline.frontend

        def run(w):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                x = frontend(torch.from_numpy(w)).contiguous(memory_format=torch.channels_last)
                return tuple(depth_norm_to_m(t.float(), pipeline.max_depth_m) for t in network(x))

        return run
    if backend == "torchscript":
        traced = torch.jit.freeze(torch.jit.trace(pipeline, example, check_trace=False))
        return lambda w: traced(torch.from_numpy(w))
    if backend == "onnxruntime":
        import onnxruntime as ort

        path = workdir / "model.onnx"
        torch.onnx.export(
            pipeline, (example,), str(path), input_names=["waveform"], opset_version=17, dynamo=False,
            dynamic_axes={"waveform": {0: "batch"}},
        )  # fmt: skip
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return lambda w: session.run(None, {"waveform": w})
    raise ValueError(backend)


def time_runs(fn, wave: np.ndarray, runs: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        fn(wave)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn(wave)
        times.append(time.perf_counter() - start)
    return times


def measure(name: str, backends, runs: int, threads: int, workdir: Path) -> dict:
    pipeline = build_pipeline(CONFIGS[name])
    rng = np.random.default_rng(0)
    n = pipeline.frontend.n_samples
    one = (0.1 * rng.standard_normal((1, 2, n))).astype(np.float32)
    batch = (0.1 * rng.standard_normal((16, 2, n))).astype(np.float32)
    example = torch.from_numpy(one)
    gflop = forward_gflop(pipeline, example)
    params = sum(p.numel() for p in pipeline.network.parameters())
    result = {"config": name, **CONFIGS[name], "gflop": gflop, "params_m": params / 1e6, "backends": {}}
    with torch.no_grad():
        reference = pipeline(torch.from_numpy(batch[:4]))[2].numpy()
        for backend in backends:
            fn = runner(pipeline, backend, example, workdir, threads)
            times = time_runs(fn, one, runs)
            # throughput: batch 16, fewer runs for the big networks
            batch_times = time_runs(fn, batch, 2 if gflop > 20 else max(2, runs // 10), warmup=1)
            median = statistics.median(times)
            entry = {
                "median_ms": median * 1000,
                "p95_ms": float(np.percentile(times, 95)) * 1000,
                "gflops_per_s": gflop / median,
                "batch16_samples_per_s": 16 / statistics.median(batch_times),
            }
            final = np.asarray(fn(batch[:4])[2], dtype=np.float32)
            diff = np.abs(final - reference)
            entry["diff_to_fp32_median_m"], entry["diff_to_fp32_max_m"] = float(np.median(diff)), float(diff.max())
            result["backends"][backend] = entry
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=list(BACKENDS))
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")  # the tracers' and exporters' notes on shape-dependent branches
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {platform.processor() or platform.machine()}")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.configs:
            result = measure(name, args.backends, args.runs, args.threads, Path(tmp))
            results.append(result)
            head = f"{name}: {result['params_m']:.1f}M parameters, {result['gflop']:.2f} GFLOP a prediction"
            print(head, flush=True)
            for backend, e in result["backends"].items():
                print(
                    f"  {backend:12s} median {e['median_ms']:8.1f} ms  p95 {e['p95_ms']:8.1f} ms  "
                    f"{e['gflops_per_s']:6.1f} GFLOP/s  batch 16: {e['batch16_samples_per_s']:7.1f} samples/s  "
                    f"diff to fp32: median {e['diff_to_fp32_median_m']:.1e} m, max {e['diff_to_fp32_max_m']:.1e} m",
                    flush=True,
                )
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
