"""Micro-batches: the batch the optimiser sees, computed in pieces that fit the device.

The loss terms are means over valid pixels, so each micro-batch's loss is weighted by its share
of the batch's valid pixels: the accumulated gradient is then the gradient of the whole batch's
loss (exactly, up to float rounding; BatchNorm statistics are per micro-batch in training mode).
The largest activation of a sample decides the most samples one tensor may hold: some CUDA
kernels index with 32-bit integers and fail beyond 2^31 elements.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import DataError

MAX_TENSOR_ELEMENTS = 2**31 - 1


def accumulate_gradients(
    model, criterion, *, feature_image, depth_norm, valid, micro_batch: int, backward, prepare=None
) -> dict:
    """Runs forward and backward over micro-batches of a batch; returns the batch's loss terms
    (detached), which equal those of one pass over the whole batch. A batch without a valid
    depth pixel is a DataError (no loss is computed from zero pixels); a micro-batch without one
    adds nothing."""
    n = len(feature_image)
    valid_total = valid.sum()
    if not valid_total > 0:
        raise DataError(
            "a training batch holds no valid depth pixel: no loss can be computed from it "
            "(echodepth check-data --image_size names the depth maps with none left at the training size)"
        )
    totals: dict[str, torch.Tensor] = {}
    for start in range(0, n, micro_batch):
        rows = slice(start, start + micro_batch)
        if n > micro_batch and not bool(valid[rows].any()):
            continue
        x = feature_image[rows] if prepare is None else prepare(feature_image[rows])
        base, residual, final = model(x)
        loss_terms = criterion(base.float(), residual.float(), final.float(), depth_norm[rows])
        share = valid[rows].sum() / valid_total
        backward(loss_terms["loss"] * share)
        for k, v in loss_terms.items():
            totals[k] = totals.get(k, 0.0) + v.detach() * share
    return totals


def largest_activation(model: nn.Module, feature_image: torch.Tensor) -> int:
    """Returns the most elements one output of any layer holds, per sample (a forward of 1 sample)."""
    largest = [0]

    def record(module, inputs, output):
        for t in output if isinstance(output, (tuple, list)) else (output,):
            if torch.is_tensor(t):
                largest[0] = max(largest[0], t.numel())

    hooks = [m.register_forward_hook(record) for m in model.modules()]
    was_training = model.training
    model.eval()  # one sample: BatchNorm in training mode cannot normalise a 1 x 1 map
    try:
        with torch.no_grad():
            model(feature_image[:1])
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return largest[0]


def divisor_at_most(n: int, limit: int) -> int:
    """Returns the largest divisor of n that is at most limit (so every micro-batch is equal)."""
    for m in range(max(1, min(n, limit)), 0, -1):
        if n % m == 0:
            return m
    return 1


def measured_bytes_per_sample(step, feature_image: torch.Tensor) -> tuple[float, float]:
    """Returns (fixed bytes, bytes per sample) of a training step on CUDA, from its peak memory at
    1 and 2 samples."""
    peaks = []
    for m in (1, 2):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step(feature_image[:m])
        torch.cuda.synchronize()
        peaks.append(torch.cuda.max_memory_allocated() - base)
    per_sample = max(peaks[1] - peaks[0], 1)
    return peaks[0] - per_sample, per_sample


def choose_micro_batch(
    batch_size: int, model: nn.Module, feature_image: torch.Tensor, *, step=None, memory_share=0.8
) -> dict:
    """Returns the micro-batch for `batch_size` and why: never over MAX_TENSOR_ELEMENTS in one
    tensor; on CUDA (when `step`, a function running one training step, is given) also within
    `memory_share` of the free device memory, from a measured probe."""
    per_sample = largest_activation(model, feature_image)
    limit = max(1, MAX_TENSOR_ELEMENTS // max(per_sample, 1))
    reason = {"largest_activation_per_sample": per_sample, "element_limit": limit}
    if step is not None and feature_image.is_cuda:
        fixed, per = measured_bytes_per_sample(step, feature_image)
        free, _ = torch.cuda.mem_get_info()
        fits = int((memory_share * free - max(fixed, 0)) // per)
        reason.update({"bytes_per_sample": per, "free_bytes": free, "memory_limit": max(fits, 1)})
        limit = min(limit, max(fits, 1))
    return {"micro_batch_size": divisor_at_most(batch_size, limit), **reason}
