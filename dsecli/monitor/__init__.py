"""DSE and DSMI of a model's layers inside a training loop: :class:`TrainingMonitor`.

hooks.py captures named layers' outputs (forward hooks, no_grad, modes and hooks restored);
monitor.py computes the methods each epoch and writes ``dse batch`` rows; sinks.py sends the
values to TensorBoard or runs the monitor from a Lightning callback.
"""

from dsecli.monitor.monitor import TrainingMonitor

__all__ = ["TrainingMonitor"]
