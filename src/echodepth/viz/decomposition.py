"""Figures: the base / residual / final / ground-truth decomposition."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import TwoSlopeNorm  # noqa: E402

from ..runs.storage import atomic_write_bytes  # noqa: E402

DEPTH_CMAP = "viridis"
RESIDUAL_CMAP = "RdBu_r"
INVALID_COLOUR = "magenta"


def _depth_cmap():
    return plt.get_cmap(DEPTH_CMAP).with_extremes(bad=INVALID_COLOUR)


def decomposition_figure(
    base, residual, final, gt, *, path, max_depth_m: float, title: str = "", row_labels=None, depth_max=None
) -> Path:
    """Saves `make_decomposition_figure(...)` as a PNG at path; returns the path."""
    fig = make_decomposition_figure(
        base, residual, final, gt, max_depth_m=max_depth_m, title=title, row_labels=row_labels, depth_max=depth_max
    )
    return save_figure(fig, path, dpi=80)


def save_figure(fig, path, dpi: int) -> Path:
    """Saves a figure as a PNG, whole or not at all (a full disk is a one-line error), and closes it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=dpi, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def depth_colour_limit(final, gt, max_depth_m: float, percentile: float = 99.0) -> float:
    """Returns the top of the depth colour scale: the `percentile` of the valid ground truth
    shown (else of the predictions), at most max_depth_m, so that rooms of 1-5 m use the scale."""
    source = np.asarray(gt if gt is not None else final, dtype=float)
    values = source[np.isfinite(source) & (source > 0)]
    if values.size == 0:
        return float(max_depth_m)
    return float(min(max(np.percentile(values, percentile), 1e-3), max_depth_m))


def make_decomposition_figure(
    base, residual, final, gt, *, max_depth_m: float, title: str = "", row_labels=None, depth_max: float | None = None
):
    """Returns the 4-column figure (base, residual, final, ground truth), one row per sample;
    3 columns when gt is None (a prediction without ground truth).

    Inputs are (N, H, W) arrays in metres. The three depth columns share one colour scale, from
    0 to `depth_max` (default: `depth_colour_limit`, the 99th percentile of the ground truth
    shown) and one colour bar at the right; the residual uses a diverging map centred at 0 with
    a symmetric range and its colour bar below, so that no bar sits between columns; invalid
    ground-truth pixels are drawn in magenta.
    """
    base, residual, final = (np.asarray(a, dtype=float) for a in (base, residual, final))
    n = len(base)
    n_cols = 3 if gt is None else 4
    top = depth_max if depth_max is not None else depth_colour_limit(final, gt, max_depth_m)
    res_range = max(float(np.abs(residual).max()), 1e-6)
    fig, axes, depth_bar_ax, residual_bar_ax = _grid(n, n_cols)
    depth_image = residual_image = None
    for i in range(n):
        panels = [(base[i], "Base depth"), (residual[i], "Residual"), (final[i], "Final = base + residual")]
        if gt is not None:
            gt_i = np.asarray(gt[i], dtype=float)
            panels.append((np.ma.masked_where(~(gt_i > 0), gt_i), "Ground truth"))
        for j, (image, name) in enumerate(panels):
            ax = axes[i, j]
            if j == 1:
                residual_image = ax.imshow(image, cmap=RESIDUAL_CMAP, norm=TwoSlopeNorm(0.0, -res_range, res_range))
            else:
                depth_image = ax.imshow(image, cmap=_depth_cmap(), vmin=0.0, vmax=top)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(name)
        axes[i, 0].set_ylabel(row_labels[i] if row_labels else f"sample {i}")
    depth_bar = fig.colorbar(depth_image, cax=depth_bar_ax, label="depth (m)", extend="max")
    depth_bar.ax.set_title(f"0-{top:.1f} m", fontsize=8)
    fig.colorbar(residual_image, cax=residual_bar_ax, label="residual (m)", orientation="horizontal")
    suptitle = title if gt is None else (title + "   " if title else "") + f"(invalid ground truth in {INVALID_COLOUR})"
    fig.suptitle(suptitle, y=1 - 0.15 / fig.get_figheight(), va="top")
    return fig


def _grid(n: int, n_cols: int):
    """Returns (figure, (n, n_cols) image axes, the depth colour bar's axes right of the grid, the
    residual's below it). A fixed grid, in inches: matplotlib's constrained layout took about 3 s a
    figure on a CPU, most of a tiny training run's time (one figure an epoch)."""
    panel, left, right, top, bottom = 3.0, 0.45, 1.05, 0.7, 1.0  # inches
    width, height = panel * n_cols + left + right, panel * n + top + bottom
    fig = plt.figure(figsize=(width, height))
    grid = fig.add_gridspec(
        n, n_cols, left=left / width, right=1 - right / width, top=1 - top / height, bottom=bottom / height,
        wspace=0.08, hspace=0.12,
    )  # fmt: skip
    axes = np.array([[fig.add_subplot(grid[i, j]) for j in range(n_cols)] for i in range(n)])
    grid_height = (height - top - bottom) / height
    depth_bar = fig.add_axes(
        (1 - (right - 0.2) / width, bottom / height + 0.05 * grid_height, 0.15 / width, 0.9 * grid_height)
    )
    grid_width = (width - left - right) / width
    residual_bar = fig.add_axes((left / width + 0.25 * grid_width, 0.5 / height, 0.5 * grid_width, 0.12 / height))
    return fig, axes, depth_bar, residual_bar


def decomposition_animation(base, residual, final, *, path, max_depth_m: float, titles, frame_ms: int = 250) -> Path:
    """Saves an animated GIF with one decomposition (base, residual, final) per frame, on one
    colour scale for all frames; inputs are (N, H, W) arrays in metres. Returns the path."""
    from PIL import Image

    frames = []
    for i, title in enumerate(titles):
        fig = make_decomposition_figure(
            base[i : i + 1], residual[i : i + 1], final[i : i + 1], None, max_depth_m=max_depth_m, title=title
        )
        buffer = io.BytesIO()
        fig.savefig(buffer, dpi=60, format="png")
        plt.close(fig)
        frames.append(Image.open(io.BytesIO(buffer.getvalue())).convert("P", palette=Image.Palette.ADAPTIVE))
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:], duration=int(frame_ms), loop=0)
    atomic_write_bytes(path, out.getvalue())
    return Path(path)
