"""Optional places the monitor's values also go: TensorBoard scalars and a Lightning callback.

Each imports its package only when used, and says which package to install when it is missing.
"""

from __future__ import annotations

import os
from typing import Any

from dsecli.errors import InputError

__all__ = ["TensorBoardSink", "lightning_callback", "metric_name"]


def scalar_tag(row: dict[str, Any]) -> str:
    """``dse/fc2`` for an entropy, ``dsmi/fc2/labels`` for a mutual information (the row's reference)."""
    tag = f"{row['method']}/{row['series']}"
    ref = row.get("reference")
    if ref:
        tag += "/" + ("labels" if ref == "labels" else "inputs")
    return tag


def _log_dir(target: Any) -> str:
    """The log directory ``target`` names, made now; an :class:`InputError` naming ``tensorboard`` otherwise."""
    try:
        path = os.fspath(target)
    except TypeError:
        raise InputError(f"`tensorboard` must be a log directory (a path) or a SummaryWriter; "
                         f"got {type(target).__name__}") from None
    parent = os.path.abspath(path)
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent) if os.path.dirname(parent) != parent else ""
    if parent and not os.path.isdir(parent):
        raise InputError(f"`tensorboard`: the log directory {path} cannot be made: {parent} is a file, "
                         "not a directory")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise InputError(f"`tensorboard`: the log directory {path} cannot be made: {exc.strerror or exc}") from None
    return path


def metric_name(row: dict[str, Any]) -> str:
    """A trainer's metric name: ``dse/fc2``, ``dsmi/fc2`` (with the labels), ``dsmi/fc2/inputs`` (with the inputs)."""
    name = f"{row['method']}/{row['series']}"
    ref = row.get("reference")
    if ref and ref != "labels":
        name += "/inputs"
    return name


class TensorBoardSink:
    """Writes each row's value as a scalar (:func:`scalar_tag`, step = epoch) with ``torch.utils.tensorboard``.

    ``target``: a log directory (a ``SummaryWriter`` is opened on it, and closed by :meth:`close`)
    or a ``SummaryWriter`` of the caller's (left open).
    """

    def __init__(self, target: Any) -> None:
        if hasattr(target, "add_scalar"):
            self.writer, self._owned = target, False
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise InputError("`tensorboard` needs the tensorboard package, which is not installed; "
                             'install it with: pip install "dsecli[tensorboard]"') from None
        path = _log_dir(target)
        try:
            self.writer, self._owned = SummaryWriter(log_dir=path), True
        except OSError as exc:
            raise InputError(f"`tensorboard`: cannot write a log directory at {path}: {exc.strerror or exc}") from None

    def write(self, row: dict[str, Any], epoch: int) -> None:
        value = row.get("value")
        if isinstance(value, (int, float)):
            self.writer.add_scalar(scalar_tag(row), float(value), global_step=epoch)

    def close(self) -> None:
        self.writer.flush()
        if self._owned:
            self.writer.close()


def _lightning() -> Any:
    try:
        import lightning.pytorch as pl
    except ImportError:
        try:
            import pytorch_lightning as pl
        except ImportError:
            raise InputError('the Lightning callback needs Lightning, which is not installed; install it with: '
                             'pip install "dsecli[lightning]"') from None
    return pl


def lightning_callback(monitor: Any, *, every_n_epochs: int = 1, log: bool = True) -> Any:
    """A Lightning ``Callback`` calling ``monitor.step(trainer.current_epoch)`` after each ``every_n_epochs``-th epoch.

    Only the global-zero process measures (the monitor's model is that process's replica). With
    ``log``, each value goes to the trainer's loggers through ``pl_module.log`` (names from
    :func:`metric_name`: ``dse/<layer>``, ``dsmi/<layer>``, ``dsmi/<layer>/inputs``; logged on the
    epoch, ``rank_zero_only``), or ``trainer.logger.log_metrics`` where ``log`` is not allowed.

    Returns
    -------
    lightning.pytorch.Callback
        An instance to pass to ``Trainer(callbacks=[...])``.
    """
    from dsecli.errors import check_positive_int

    every = check_positive_int(every_n_epochs, "every_n_epochs")
    pl = _lightning()

    class DseMonitorCallback(pl.Callback):  # type: ignore[misc, name-defined]
        """Calls a :class:`~dsecli.monitor.TrainingMonitor` at the end of training epochs and logs its values."""

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            if not (trainer.is_global_zero and trainer.current_epoch % every == 0):
                return
            rows = monitor.step(int(trainer.current_epoch))
            if log:
                _log(trainer, pl_module, rows)

        def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
            monitor.close()

    return DseMonitorCallback()


def _log(trainer: Any, pl_module: Any, rows: list[dict[str, Any]]) -> None:
    metrics = {metric_name(r): float(r["value"]) for r in rows
               if isinstance(r.get("value"), (int, float)) and not isinstance(r.get("value"), bool)}
    if not metrics:
        return
    try:
        for name, value in metrics.items():
            pl_module.log(name, value, on_step=False, on_epoch=True, rank_zero_only=True)
    except Exception:  # a hook where self.log is not allowed (Lightning's MisconfigurationException)
        for logger in getattr(trainer, "loggers", None) or ([trainer.logger] if trainer.logger else []):
            logger.log_metrics(metrics, step=int(trainer.current_epoch))
