"""DSE and DSMI of a model's layers inside a training loop: :class:`TrainingMonitor`.

hooks.py captures named layers' outputs (forward hooks, no_grad, modes and hooks restored);
monitor.py computes the methods each epoch and writes ``dse batch`` rows; sinks.py sends the
values to TensorBoard or runs the monitor from a Lightning callback (logging through the
trainer's loggers); metrics.py holds torchmetrics ``Metric`` objects for DSE and DSMI.
"""

from typing import Any

from dsecli.monitor.monitor import TrainingMonitor, read_runs

__all__ = ["TrainingMonitor", "read_runs", "DSEMetric", "DSMIMetric"]


def __getattr__(name: str) -> Any:
    # the torchmetrics Metrics: torchmetrics is imported only when one of them is asked for
    if name in ("DSEMetric", "DSMIMetric"):
        from dsecli.monitor import metrics

        return getattr(metrics, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
