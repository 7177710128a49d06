"""What a run writes at the end of each epoch: its row of metrics.csv and its decomposition figure."""

from __future__ import annotations

from ..viz import decomposition_figure
from .loggers import SafeTensorBoardLogger


def write_epoch_outputs(module, record: dict, figure_samples) -> None:
    """Appends the epoch's row to metrics.csv and saves its decomposition figure (rank 0 only),
    also sending the figure to the loggers that take images."""
    run_dir = module.cfg.run_dir
    run_dir.append_metrics(record)
    if figure_samples is None:
        return
    epoch = record["epoch"]
    title = f"{module.cfg.experiment_name}, epoch {epoch}, val RMSE {record.get('val/rmse', float('nan')):.3f} m"
    path = decomposition_figure(
        *figure_samples, path=run_dir.figure(epoch), max_depth_m=module.max_depth_m, title=title
    )
    for logger in module.loggers:
        if hasattr(logger, "log_image"):  # Weights & Biases
            logger.log_image(key="val/decomposition", images=[str(path)], step=module.global_step)
        elif isinstance(logger, SafeTensorBoardLogger):
            import matplotlib.image as mpimg

            logger.log_rgb_image("val/decomposition", mpimg.imread(path)[..., :3], module.current_epoch)
