"""MINE: mutual information neural estimation (Belghazi et al. 2018), "mine"."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from dsecli.device import Timer, dtype_name
from dsecli.errors import InputError, check_choice, check_finite_number, check_positive_int
from dsecli.estimators.common import Collect, as_matrix, check_base, check_max_n, check_seed, nats_to, split_reference
from dsecli.inputs.prepare import prepare_pair
from dsecli.inputs.reference import REF_KINDS
from dsecli.inputs.sampling import DEFAULT_MAX_N
from dsecli.results import MIResult, units_for_base

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["mine_mutual_information"]

ACTIVATION = "elu"


@contextmanager
def _threads(n: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    if n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n != before:
            torch.set_num_threads(before)


def _standardize(a: np.ndarray) -> np.ndarray:
    # MI is invariant to per-coordinate affine maps; unit scale makes one learning rate fit all data
    mu = a.mean(axis=0)
    sd = a.std(axis=0)
    return (a - mu) / np.where(sd > 0, sd, 1.0)


def _check_network_memory(fan_in: int, hidden: int, layers: int, batch: int, *, device: Any, dtype: Any) -> None:
    """Stop before building a network that cannot fit (a huge --hidden-units or --hidden-layers)."""
    from dsecli.diffusion.plan import check_memory

    params = (fan_in + 1) * hidden + (layers - 1) * (hidden + 1) * hidden + hidden + 1
    itemsize = 4 if dtype_name(dtype) == "float32" else 8
    # weights, gradients and Adam's two moments, plus the activations of a joint and a shuffled batch
    need = (4 * params + 2 * 3 * batch * hidden * layers) * itemsize
    check_memory(need, what="MINE's network", detail=f" ({params:,} parameters: hidden_units = {hidden}, "
                 f"hidden_layers = {layers})", device=device, hint="use a smaller --hidden-units or --hidden-layers")


class _StatisticsNetwork:
    """T(x, y): an MLP on the concatenation [x, y] with ELU activations and a scalar output.

    The first layer is split into x and y parts, h1 = x W_x + y W_y + b, so that the scores of
    shuffled pairs reuse x W_x and y W_y (the held-out evaluation scores several shuffles).
    Parameters are initialised like ``torch.nn.Linear`` (U(-1/sqrt(fan_in), 1/sqrt(fan_in)))
    from a local generator.
    """

    def __init__(self, dx: int, dy: int, hidden: int, layers: int, *, gen: torch.Generator,
                 device: torch.device, dtype: torch.dtype) -> None:
        import torch

        def uniform(shape: tuple[int, ...], fan_in: int) -> torch.Tensor:
            bound = 1.0 / math.sqrt(fan_in)
            t = torch.empty(shape, dtype=dtype).uniform_(-bound, bound, generator=gen)
            return t.to(device).requires_grad_(True)

        fan = dx + dy
        self.wx = uniform((dx, hidden), fan)
        self.wy = uniform((dy, hidden), fan)
        self.b1 = uniform((hidden,), fan)
        self.rest: list[tuple[torch.Tensor, torch.Tensor]] = []
        for i in range(layers):
            out = 1 if i == layers - 1 else hidden
            self.rest.append((uniform((hidden, out), hidden), uniform((out,), hidden)))

    def parameters(self) -> list[torch.Tensor]:
        return [self.wx, self.wy, self.b1] + [p for pair in self.rest for p in pair]

    def head(self, h1: torch.Tensor) -> torch.Tensor:
        import torch

        h = torch.nn.functional.elu(h1)
        for i, (w, b) in enumerate(self.rest):
            h = torch.addmm(b, h, w)
            if i < len(self.rest) - 1:
                h = torch.nn.functional.elu(h)
        return h[:, 0]


def mine_mutual_information(
    x: Any,
    y: Any = None,
    *,
    hidden_units: int = 100,
    hidden_layers: int = 2,
    epochs: int = 200,
    batch_size: int = 500,
    learning_rate: float = 1e-3,
    patience: int = 20,
    holdout_fraction: float = 0.2,
    ma_rate: float = 0.01,
    eval_shuffles: int = 5,
    average_last: int = 5,
    ref_kind: str = "auto",
    cpu_threads: int | None = 1,
    max_n: int | None = DEFAULT_MAX_N,
    seed: int = 0,
    sampler: str = "numpy",
    device: Any = None,
    dtype: Any = None,
    base: float = 2.0,
    flatten: bool = False,
    drop_nonfinite: bool = False,
) -> MIResult:
    """Mutual information by MINE: a neural lower bound trained on the rows, evaluated on held-out rows.

    Donsker-Varadhan bound, maximised over a statistics network T:

    .. math::

        I(X; Y) \\ge \\mathbb{E}_{P_{XY}}[T] - \\log \\mathbb{E}_{P_X \\otimes P_Y}[e^{T}]

    Marginal pairs are made by shuffling y within each batch (a local ``torch.Generator``).
    The gradient of the log term is bias-corrected with a moving average of E[e^T]
    (Belghazi et al. 2018, section 3.2): the loss is -(mean T_joint - mean e^{T_marg} / ma) with
    ma <- (1 - ``ma_rate``) ma + ``ma_rate`` mean e^{T_marg} held fixed in the gradient.
    After every epoch the bound is evaluated on the held-out rows (``holdout_fraction`` of them),
    their marginal term over ``eval_shuffles`` fixed shuffles of y. Training stops after
    ``epochs`` or after ``patience`` epochs without a new best held-out bound. The reported
    value is the mean of the last ``average_last`` held-out evaluations of the trajectory that
    early stopping selects, i.e. those up to and including the best epoch, with their standard
    deviation in ``extra["std"]`` (the evaluations after the best are those of an overfitting
    network; the best alone would be the maximum of noisy values).

    Parameters
    ----------
    x : array-like, shape (N, D), a tensor, a lazy source or :class:`~dsecli.inputs.prepare.Prepared`
        (trusted as it is; see :func:`dsecli.inputs.prepare.prepare_rows`)
    y : array-like, shape (N,) or (N, D'), a lazy source, or None when ``x`` is a Prepared holding
        its reference
        Continuous values, or labels (integer/boolean/string column, or ``ref_kind="discrete"``)
        which are one-hot encoded.
    hidden_units, hidden_layers : int
        Width and number of hidden layers of T (the paper's comparison: 2 x 100).
    epochs : int
        Maximum passes over the training rows (200 as in the paper's comparison).
    batch_size : int
        Rows per step (500 as in the paper's comparison); at most the training rows.
    learning_rate : float
        Adam step size. 1e-3 (the paper's comparison used 1e-4, which under-trains within 200
        epochs of 5,000 rows: see ``benchmarks/accuracy.py``).
    patience : int
        Epochs without improvement of the held-out bound before stopping (0: never stop early).
    holdout_fraction : float in (0, 1)
        Share of rows held out for the reported value.
    ma_rate : float in (0, 1]
        Moving-average rate of the gradient correction (1 gives the plain, biased DV gradient).
    eval_shuffles : int
        Shuffles of y for the held-out marginal term.
    average_last : int
        Held-out evaluations (ending at the best epoch) averaged into the reported value.
    ref_kind : {"auto", "discrete", "continuous"}
    cpu_threads : int or None
        torch intra-op threads while training on CPU (restored afterwards). 1 by default: the
        network's small matrices gain nothing from more threads and slow down many-fold when the
        cores are busy. None keeps torch's setting.
    max_n, seed, sampler, flatten, drop_nonfinite
        Row selection as for :func:`dsecli.diffusion_spectral_mutual_information`; ``seed`` also
        seeds the split, the initial weights and every shuffle.
    device : {"auto", "cpu", "cuda", "cuda:N"} or None
        None: "auto", or a Prepared ``x``'s device.
    dtype : {"float32", "float64"} or None
        Training precision; None: float32 (the bound's noise is far above its rounding), or a
        Prepared ``x``'s dtype.
    base : float
        Logarithm base (2: bits).

    Returns
    -------
    MIResult
        ``value`` in ``units``; ``extra``: ``std`` (same units), ``history`` (held-out bound per
        epoch, nats), ``best``/``best_epoch``, ``epochs_run``, ``stopped_early``, ``train_s``.

    Notes
    -----
    x and y are standardised per column (MI is invariant to that). A lower bound that is
    estimated: it can be slightly negative at independence and is reported as computed. Results
    depend on training; ``params`` records the seed and every setting.

    References
    ----------
    M. I. Belghazi, A. Baratin, S. Rajeswar, S. Ozair, Y. Bengio, A. Courville, R. D. Hjelm,
    "Mutual Information Neural Estimation", ICML 2018 (eq. 10-12, section 3.2).
    """
    hidden_units = check_positive_int(hidden_units, "hidden_units")
    hidden_layers = check_positive_int(hidden_layers, "hidden_layers")
    epochs = check_positive_int(epochs, "epochs")
    batch_size = check_positive_int(batch_size, "batch_size", minimum=2)
    patience = check_positive_int(patience, "patience", minimum=0)
    eval_shuffles = check_positive_int(eval_shuffles, "eval_shuffles")
    average_last = check_positive_int(average_last, "average_last")
    if cpu_threads is not None:
        cpu_threads = check_positive_int(cpu_threads, "cpu_threads")
    learning_rate = check_finite_number(learning_rate, "learning_rate")
    if learning_rate <= 0:
        raise InputError(f"`learning_rate` must be > 0; got {learning_rate!r}")
    holdout_fraction = check_finite_number(holdout_fraction, "holdout_fraction")
    if not 0 < holdout_fraction < 1:
        raise InputError(f"`holdout_fraction` must be in (0, 1); got {holdout_fraction!r}")
    ma_rate = check_finite_number(ma_rate, "ma_rate")
    if not 0 < ma_rate <= 1:
        raise InputError(f"`ma_rate` must be in (0, 1]; got {ma_rate!r}")
    check_choice(ref_kind, "ref_kind", REF_KINDS)
    base = check_base(base)
    seed = check_seed(seed)
    check_max_n(max_n)
    start = time.perf_counter()
    rows = prepare_pair(x, y, max_n=max_n, seed=seed, sampler=sampler, min_rows=4, flatten=flatten,
                        drop_nonfinite=drop_nonfinite, device=device, dtype=dtype)
    dev, dt = rows.device, rows.working_dtype("float32")  # resolved once, for every step below
    yv = rows.reference
    import torch

    with Collect(rows.warnings) as notes:
        classes, ya = split_reference(yv, ref_kind=ref_kind, n_clusters=10, seed=seed, where=rows.reference_source)
        if classes is not None:
            ym = np.eye(len(classes.names))[classes.codes]
            ref_info: dict[str, Any] = {"reference": "labels (one-hot)", "n_classes": len(classes.names)}
        else:
            assert ya is not None
            ym = ya
            ref_info = {"reference": "continuous", "n_features_y": int(ya.shape[1])}
        xm = _standardize(as_matrix(rows.data))
        ym = _standardize(ym)
        n = xm.shape[0]
        n_hold = min(n - 2, max(2, int(round(holdout_fraction * n))))
        order = np.random.default_rng(seed).permutation(n)
        hold, train = order[:n_hold], order[n_hold:]
        n_train = train.size
        batch = min(batch_size, n_train)

        gen = torch.Generator().manual_seed(seed)
        xt = torch.as_tensor(xm, dtype=dt).to(dev)
        yt = torch.as_tensor(ym, dtype=dt).to(dev)
        x_tr, y_tr = xt[torch.as_tensor(train)], yt[torch.as_tensor(train)]
        x_ho, y_ho = xt[torch.as_tensor(hold)], yt[torch.as_tensor(hold)]
        _check_network_memory(xm.shape[1] + ym.shape[1], hidden_units, hidden_layers, batch, device=dev, dtype=dt)
        net = _StatisticsNetwork(xm.shape[1], ym.shape[1], hidden_units, hidden_layers, gen=gen, device=dev, dtype=dt)
        opt = torch.optim.Adam(net.parameters(), lr=learning_rate)
        shuffles = torch.stack([torch.randperm(n_hold, generator=gen) for _ in range(eval_shuffles)]).to(dev)
        log_keep, log_rate = math.log1p(-ma_rate) if ma_rate < 1 else -math.inf, math.log(ma_rate)

        def holdout_bound() -> float:
            with torch.no_grad():
                hx = x_ho @ net.wx + net.b1
                hy = y_ho @ net.wy
                joint = net.head(hx + hy).mean()
                marg = net.head((hx[None] + hy[shuffles]).reshape(-1, hx.shape[1]))
                return float(joint - (torch.logsumexp(marg, 0) - math.log(marg.numel())))

        history: list[float] = []
        best, best_epoch, since_best = -math.inf, -1, 0
        log_ma: torch.Tensor | None = None
        stopped_early = False
        threads_before = torch.get_num_threads()
        threads_used = cpu_threads if dev.type == "cpu" and cpu_threads is not None else threads_before
        with Timer(dev) as timer, _threads(threads_used):
            for epoch in range(epochs):
                perm = torch.randperm(n_train, generator=gen).to(dev)
                for s in range(0, n_train - 1, batch):
                    idx = perm[s : s + batch]
                    if idx.numel() < 2:
                        break
                    shuf = torch.randperm(idx.numel(), generator=gen).to(dev)
                    hx = x_tr[idx] @ net.wx + net.b1
                    hy = y_tr[idx] @ net.wy
                    t_joint = net.head(hx + hy)
                    t_marg = net.head(hx + hy[shuf])
                    lme = torch.logsumexp(t_marg, 0) - math.log(idx.numel())
                    with torch.no_grad():
                        log_ma = lme.detach() if log_ma is None else torch.logaddexp(log_ma + log_keep, lme + log_rate)
                    # gradient: E[grad T] - E[e^T grad T] / ma  (the moving-average corrected DV gradient)
                    loss = -(t_joint.mean() - torch.exp(lme - log_ma))
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                bound = holdout_bound()
                history.append(bound)
                if bound > best:
                    best, best_epoch, since_best = bound, epoch, 0
                else:
                    since_best += 1
                if patience and since_best >= patience:
                    stopped_early = True
                    break
        last = np.asarray(history[max(0, best_epoch + 1 - average_last) : best_epoch + 1])
        value_nats = float(last.mean())
        std_nats = float(last.std(ddof=1)) if last.size > 1 else 0.0
    params = {
        "hidden_units": hidden_units, "hidden_layers": hidden_layers, "activation": ACTIVATION, "epochs": epochs,
        "batch_size": batch, "learning_rate": learning_rate, "optimizer": "adam", "patience": patience,
        "holdout_fraction": holdout_fraction, "n_train": int(n_train), "n_holdout": int(n_hold), "ma_rate": ma_rate,
        "eval_shuffles": eval_shuffles, "average_last": average_last, "ref_kind": ref_kind, **ref_info,
        "standardized": True, "max_n": max_n, "seed": seed, "sampler": sampler, "device": str(dev),
        "dtype": dtype_name(dt), "n_features": int(xm.shape[1]),
    }
    if dev.type == "cpu":
        params["cpu_threads"] = threads_used
    return MIResult(
        method="mine", value=nats_to(value_nats, base), units=units_for_base(base), base=base, n_used=rows.n_used,
        n_total=rows.n_total, params=params, elapsed_s=time.perf_counter() - start, warnings=tuple(notes),
        extra={
            "std": nats_to(std_nats, base), "value_nats": value_nats, "std_nats": std_nats, "best_nats": best,
            "best_epoch": best_epoch, "epochs_run": len(history), "stopped_early": stopped_early,
            "history_nats": history, "train_s": timer.elapsed_s,
        },
    )
