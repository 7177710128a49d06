"""Structure metrics: how a prediction's coarse layout and fine detail compare with the ground truth.

They answer the design guide's claims about structure (straighter walls, fewer artifacts in
uniform regions, a smooth base, a small residual near objects). Sums over batches are
accumulated with `structure_sums` and turned into metrics by `finish_structure`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..losses import lowpass


def depth_edges(gt: torch.Tensor, valid: torch.Tensor, jump: float = 0.1) -> torch.Tensor:
    """Returns a bool map of pixels within one pixel of a depth edge: a 4-neighbour whose depth
    differs by more than `jump` (relative to the nearer depth) from the pixel's; both must be valid.
    gt, valid: (B, 1, H, W) or (B, H, W) depth in metres and its valid mask; the result has their shape."""
    g = torch.where(valid, gt, torch.zeros_like(gt))
    edge = torch.zeros_like(valid)
    for dim in (-1, -2):
        a, b = g.narrow(dim, 0, g.shape[dim] - 1), g.narrow(dim, 1, g.shape[dim] - 1)
        both = (a > 0) & (b > 0)
        step = both & ((a - b).abs() > jump * torch.minimum(a, b))
        pad = (0, 1) if dim == -1 else (0, 0, 0, 1)
        pad2 = (1, 0) if dim == -1 else (0, 0, 1, 0)
        edge = edge | F.pad(step, pad) | F.pad(step, pad2)
    return F.max_pool2d(edge.float(), 3, stride=1, padding=1) > 0


def high_frequency_energy(maps: torch.Tensor, cutoff_cycles_per_px: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns, per map (..., H, W), (spectral energy above the cutoff, total spectral energy),
    mean removed, both per pixel (m^2 for maps in metres): the total is the map's variance
    (Parseval), whatever the orientation of its patterns.

    The map is mirrored into a (2H, 2W) one first, so that the FFT's periodic wrap-around joins
    equal values: a smooth ramp (a floor, a wall seen at an angle) then has no false edge at the
    image border."""
    maps = maps - maps.mean(dim=(-2, -1), keepdim=True)
    maps = torch.cat([maps, maps.flip(-1)], dim=-1)
    maps = torch.cat([maps, maps.flip(-2)], dim=-2)
    h, w = maps.shape[-2:]
    # rfft2 keeps one of each pair of columns +-fx: count those twice (not fx = 0 and the Nyquist
    # column of the even width 2W), so that energy is the map's mean square whatever its orientation
    weight = torch.full((w // 2 + 1,), 2.0, dtype=maps.dtype, device=maps.device)
    weight[0] = weight[-1] = 1.0
    spectrum = torch.fft.rfft2(maps).abs() ** 2 * weight
    fy = torch.fft.fftfreq(h, device=maps.device).abs()[:, None]
    fx = torch.fft.rfftfreq(w, device=maps.device)[None, :]
    high = ((fy**2 + fx**2).sqrt() > cutoff_cycles_per_px).to(spectrum.dtype)
    scale = 1.0 / (h * w) ** 2
    return (spectrum * high).sum(dim=(-2, -1)) * scale, spectrum.sum(dim=(-2, -1)) * scale


def high_frequency_share(maps: torch.Tensor, cutoff_cycles_per_px: float) -> torch.Tensor:
    """Returns, per map, the share of its spectral energy (mean removed) above the cutoff."""
    high, total = high_frequency_energy(maps, cutoff_cycles_per_px)
    return high / total.clamp(min=1e-12)


def structure_sums(base, residual, final, gt, *, kernel: int) -> dict[str, float]:
    """Returns sums (to be divided by the matching counts) of the structure metrics of a batch
    of (B, 1, H, W) maps in metres; see `finish_structure`."""
    valid = gt > 0
    mask = valid.float()
    gt_low, _ = lowpass(gt, mask, kernel)
    pred_low, _ = lowpass(final, mask, kernel)
    edges = depth_edges(gt, valid) & valid
    smooth = valid & ~edges
    err = (final - gt).abs()

    def grad(m):  # |horizontal| + |vertical| differences, on the (H-1, W-1) inner grid
        dx = (m[..., :, 1:] - m[..., :, :-1]).abs()[..., :-1, :]
        dy = (m[..., 1:, :] - m[..., :-1, :]).abs()[..., :, :-1]
        return dx + dy

    smooth_inner = smooth[..., :-1, :-1]
    cutoff = 1.0 / kernel  # a K-box filter's first zero, cycles per pixel
    gt_filled = torch.where(valid, gt, gt_low)  # holes take the local average, not a 0 step
    return {
        "lowpass_err": float(((pred_low - gt_low).abs() * mask).sum()),
        "highpass_err": float((((final - pred_low) - (gt - gt_low)).abs() * mask).sum()),
        "valid": float(mask.sum()),
        "edge_err": float((err * edges).sum()),
        "edges": float(edges.sum()),
        "smooth_err": float((err * smooth).sum()),
        "smooth": float(smooth.sum()),
        "smooth_roughness": float(((grad(final) - grad(gt)) * smooth_inner).sum()),
        "smooth_inner": float(smooth_inner.sum()),
        "base_hf_share": float(high_frequency_share(base[:, 0], cutoff).sum()),
        "final_hf_share": float(high_frequency_share(final[:, 0], cutoff).sum()),
        "gt_hf_share": float(high_frequency_share(gt_filled[:, 0], cutoff).sum()),
        "base_hf_energy": float(high_frequency_energy(base[:, 0], cutoff)[0].sum()),
        "gt_hf_energy": float(high_frequency_energy(gt_filled[:, 0], cutoff)[0].sum()),
        "images": float(len(gt)),
        "abs_residual": float((residual.abs() * mask).sum()),
        "abs_final": float((final.abs() * mask).sum()),
        "res_edges": float((residual.abs() * edges).sum()),
        "res_smooth": float((residual.abs() * smooth).sum()),
    }


def finish_structure(s: dict[str, float]) -> dict[str, float]:
    """Returns the structure metrics from summed parts."""

    def div(a, b):
        return s[a] / s[b] if s[b] > 0 else math.nan

    res_edge, res_smooth = div("res_edges", "edges"), div("res_smooth", "smooth")
    return {
        "lowpass_mae": div("lowpass_err", "valid"),  # error of the prediction's low-pass component (m)
        "highpass_mae": div("highpass_err", "valid"),  # error of its high-frequency component (m)
        "edge_mae": div("edge_err", "edges"),  # error near depth edges (m)
        "smooth_mae": div("smooth_err", "smooth"),  # error in smooth ground-truth regions (m)
        "smooth_roughness_excess": div(
            "smooth_roughness", "smooth_inner"
        ),  # extra gradient in smooth regions (m/px): artifacts
        "base_hf_share": div("base_hf_share", "images"),  # base energy above the low-pass cutoff
        "final_hf_share": div("final_hf_share", "images"),
        "gt_hf_share": div("gt_hf_share", "images"),
        # the base's energy above the cutoff against the ground truth's: below 1, the base is smoother
        "base_hf_to_gt": div("base_hf_energy", "gt_hf_energy"),
        "residual_share": div("abs_residual", "abs_final"),  # mean |residual| / mean |final|
        "residual_edge_to_smooth": res_edge / res_smooth if res_smooth > 0 else math.nan,
    }


def analysis_kernel(image_size: int) -> int:
    """The low-pass kernel of the structure analysis: 1/8 of the image side (8 px at 64), at least 3."""
    return max(3, image_size // 8)
