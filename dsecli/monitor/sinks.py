"""Optional places the monitor's values also go: TensorBoard scalars and a Lightning callback.

Each imports its package only when used, and says which package to install when it is missing.
"""

from __future__ import annotations

import os
from typing import Any

from dsecli.errors import InputError

__all__ = ["TensorBoardSink", "lightning_callback"]


def scalar_tag(row: dict[str, Any]) -> str:
    """``dse/fc2`` for an entropy, ``dsmi/fc2/labels`` for a mutual information (the row's reference)."""
    tag = f"{row['method']}/{row['series']}"
    ref = row.get("reference")
    if ref:
        tag += "/" + ("labels" if ref == "labels" else "inputs")
    return tag


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
                             "install it with: pip install tensorboard") from None
        self.writer, self._owned = SummaryWriter(log_dir=os.fspath(target)), True

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


def lightning_callback(monitor: Any, *, every_n_epochs: int = 1) -> Any:
    """A Lightning ``Callback`` calling ``monitor.step(trainer.current_epoch)`` after each ``every_n_epochs``-th epoch.

    Only the global-zero process measures (the monitor's model is that process's replica).

    Returns
    -------
    lightning.pytorch.Callback
        An instance to pass to ``Trainer(callbacks=[...])``.
    """
    from dsecli.errors import check_positive_int

    every = check_positive_int(every_n_epochs, "every_n_epochs")
    pl = _lightning()

    class DseMonitorCallback(pl.Callback):  # type: ignore[misc, name-defined]
        """Calls a :class:`~dsecli.monitor.TrainingMonitor` at the end of training epochs."""

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            if trainer.is_global_zero and trainer.current_epoch % every == 0:
                monitor.step(int(trainer.current_epoch))

        def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
            monitor.close()

    return DseMonitorCallback()
