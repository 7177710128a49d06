"""Runs `echodepth` with one fault injected: SIGKILL at a chosen point (used by test_faults.py).

    python tests/fault_runner.py KILL_POINT N echodepth-args...

KILL_POINT: "step" (before training step N), "checkpoint" (the N-th checkpoint write, after its
temporary file is half written), "metrics" (the N-th metrics.csv write, same), "cache" (after N
batches of a cache build).
"""

import os
import signal
import sys

from echodepth.cli import main
from echodepth.data import datasets
from echodepth.runs import storage
from echodepth.training import module

point, n = sys.argv[1], int(sys.argv[2])
calls = {"n": 0}


if point == "step":
    original_step = module.DepthModule.training_step

    def training_step(self, batch, batch_idx):
        if self.global_step == n:
            os.kill(os.getpid(), signal.SIGKILL)
        return original_step(self, batch, batch_idx)

    module.DepthModule.training_step = training_step
elif point in ("checkpoint", "metrics"):
    original_write = storage.atomic_write_bytes
    suffix = ".ckpt" if point == "checkpoint" else ".csv"

    def atomic_write_bytes(path, data, durable=False):
        if str(path).endswith(suffix):
            calls["n"] += 1
            if calls["n"] == n:  # half a temporary file on disk, then killed
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(f"{path}.tmp-{os.getpid()}", "wb") as f:
                    f.write(data[: len(data) // 2])
                os.kill(os.getpid(), signal.SIGKILL)
        return original_write(path, data, durable)

    storage.atomic_write_bytes = atomic_write_bytes
    from echodepth.runs import rundir
    from echodepth.training import checkpoints

    checkpoints.atomic_write_bytes = atomic_write_bytes
    rundir.atomic_write_bytes = atomic_write_bytes
elif point == "cache":
    original_batches = datasets.EchoDepthDataset.load_batches

    def load_batches(self, batch_size):
        for i, item in enumerate(original_batches(self, batch_size)):
            if i == n:
                os.kill(os.getpid(), signal.SIGKILL)
            yield item

    datasets.EchoDepthDataset.load_batches = load_batches

sys.exit(main(sys.argv[3:]))
