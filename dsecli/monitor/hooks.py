"""Capturing named layers' outputs with forward hooks, leaving the model exactly as it was.

:func:`capture_layers` runs the model on fixed inputs under ``torch.no_grad()``, with every
module in eval mode (dropout off, batch-norm statistics not updated), records each named
layer's output flattened per sample (``out.reshape(n, -1)``), and afterwards removes its hooks
and gives every module back its own ``training`` flag, also when the forward pass raises.
Nothing reaches the autograd graph, the parameters, their gradients or the global random state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dsecli.errors import InputError

__all__ = ["find_layers", "capture_layers", "model_device"]

_SHOWN = 40  # module names listed in an unknown-layer message


def find_layers(model: Any, layers: Sequence[str]) -> dict[str, Any]:
    """``{name: module}`` for each name in ``layers``, as ``model.named_modules()`` spells it.

    Raises :class:`~dsecli.errors.InputError` naming an unknown layer and listing the model's
    module names (the first 40).

    Returns
    -------
    dict
        Layer name -> module, in the order of ``layers``.
    """
    if isinstance(layers, str):
        layers = [layers]
    if not layers:
        raise InputError("`layers` must name at least one module of the model (as model.named_modules() prints them)")
    modules = dict(model.named_modules())
    names = [n for n in modules if n]
    out = {}
    for name in layers:
        if not isinstance(name, str) or name not in modules or not name:
            shown = ", ".join(names[:_SHOWN]) + (f", ... ({len(names)} in all)" if len(names) > _SHOWN else "")
            raise InputError(f"`layers`: the model has no module named {name!r}; its modules are: {shown or '(none)'}")
        out[name] = modules[name]
    if len(out) != len(layers):
        raise InputError(f"`layers` names a module twice: {list(layers)}")
    return out


def model_device(model: Any) -> Any:
    """The device of the model's first parameter or buffer (CPU for a model without any)."""
    import torch

    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def _first_tensor(output: Any) -> Any:
    # layers return a tensor, or a tuple whose first item is the representation (RNNs, attention)
    if isinstance(output, (tuple, list)) and output:
        output = output[0]
    return output if hasattr(output, "detach") and hasattr(output, "reshape") else None


def _autocast_off(device: Any) -> Any:
    """``torch.autocast(device.type, enabled=False)``: a caller's autocast region does not reach the capture."""
    import contextlib

    import torch

    try:
        return torch.autocast(device_type=device.type, enabled=False)
    except (RuntimeError, ValueError, TypeError):  # a device type autocast does not know
        return contextlib.nullcontext()


def capture_layers(model: Any, inputs: Any, layers: dict[str, Any], *, batch_size: int = 512) -> dict[str, Any]:
    """Each layer's output on ``inputs`` (n samples), flattened per sample: ``{name: tensor (n, D_layer)}``.

    ``inputs`` (a tensor on the model's device) is fed in batches of ``batch_size`` rows; the
    outputs stay on the model's device, detached. Eval mode, ``torch.no_grad()`` and autocast
    disabled while it runs (a caller's ``torch.autocast`` region does not lower the precision;
    half-precision outputs are cast to float32); each module's mode and the model's hooks are
    restored afterwards, even on error.

    Raises :class:`~dsecli.errors.InputError` when a layer returns no tensor, runs a number of
    times other than once per forward pass, or returns a first dimension other than the batch's.

    Returns
    -------
    dict
        Layer name -> float tensor of shape (n, prod(output.shape[1:])).
    """
    import torch

    n = int(inputs.shape[0])
    captured: dict[str, list[Any]] = {name: [] for name in layers}
    problems: list[str] = []

    def hook_for(name: str) -> Any:
        def hook(_module: Any, _args: Any, output: Any) -> None:
            t = _first_tensor(output)
            if t is None:
                problems.append(f"`layers`: module {name!r} returned {type(output).__name__}, not a tensor")
                return
            t = t.detach()
            if t.is_floating_point() and t.dtype not in (torch.float32, torch.float64):
                t = t.float()  # bfloat16/float16 layers are measured in float32
            captured[name].append(t.reshape(t.shape[0], -1) if t.dim() else t.reshape(1, 1))

        return hook

    modes = [(m, m.training) for m in model.modules()]
    handles = []
    try:
        for name, module in layers.items():
            handles.append(module.register_forward_hook(hook_for(name)))
        model.eval()
        with torch.no_grad(), _autocast_off(inputs.device):
            for start in range(0, n, batch_size):
                batch = inputs[start:start + batch_size]
                before = {name: len(c) for name, c in captured.items()}
                model(batch)
                if problems:
                    raise InputError(problems[0])
                for name, c in captured.items():
                    calls = len(c) - before[name]
                    if calls != 1:
                        raise InputError(f"`layers`: module {name!r} ran {calls} times in one forward pass; "
                                         "name a module that runs once per pass")
                    if c[-1].shape[0] != batch.shape[0]:
                        raise InputError(
                            f"`layers`: module {name!r} returned {c[-1].shape[0]} rows for a batch of "
                            f"{batch.shape[0]} samples (is its batch dimension first?)"
                        )
    finally:
        for h in handles:
            h.remove()
        for module, training in modes:
            module.training = training
    return {name: (torch.cat(c) if len(c) > 1 else c[0]) for name, c in captured.items()}
