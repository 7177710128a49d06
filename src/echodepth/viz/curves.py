"""Training-curve plots over seeds: validation RMSE, base and residual magnitudes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .decomposition import plt, save_figure


def plot_curves(
    results: dict, path: Path, *, key: str, ylabel: str, title: str, highlight=(), target: float | None = None
) -> None:
    """Plots, per variant, the seed-mean of results[variant][key] (a list of per-seed curves) with
    its min-max band; the highlighted variants are drawn thick."""
    fig, ax = plt.subplots(figsize=(8, 5), constrained_layout=True)
    for variant, entry in results.items():
        curves = entry[key]
        n = min(len(c) for c in curves)
        arr = np.asarray([c[:n] for c in curves])
        epochs = np.arange(1, n + 1)
        style = {"lw": 2.5} if variant in highlight else {"lw": 1.0, "alpha": 0.8}
        line = ax.plot(epochs, arr.mean(0), label=variant, **style)[0]
        ax.fill_between(epochs, arr.min(0), arr.max(0), color=line.get_color(), alpha=0.15)
    if target is not None:
        ax.axhline(target, color="k", ls="--", lw=1, label=f"target {target:.3f} m")
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    save_figure(fig, path, dpi=90)


def plot_magnitudes(results: dict, path: Path, highlight=()) -> None:
    """Plots the seed-mean of mean |base| and mean |residual| on validation over training."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), constrained_layout=True)
    for variant, entry in results.items():
        for ax, key in zip(axes, ("base", "residual")):
            arr = np.asarray([c[: min(len(x) for x in entry[key])] for c in entry[key]])
            ax.plot(np.arange(1, arr.shape[1] + 1), arr.mean(0), label=variant, lw=2.5 if variant in highlight else 1.0)
    axes[0].set_title("mean |base| on validation (m)")
    axes[1].set_title("mean |residual| on validation (m)")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
    save_figure(fig, path, dpi=90)
