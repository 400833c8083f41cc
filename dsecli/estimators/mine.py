"""MINE: mutual information neural estimation (Belghazi et al. 2018), "mine"."""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from dsecli.device import Timer, cpu_threads, dtype_name
from dsecli.edge import Call, Measured, public_method
from dsecli.errors import DataQualityWarning, InputError, check_choice, check_finite_number, check_positive_int
from dsecli.estimators.common import (
    as_matrix,
    nats_to,
    standardize_columns,
)
from dsecli.inputs.prepare import Prepared
from dsecli.inputs.reference import REF_KINDS
from dsecli.results import ceiling_fields, reference_ceiling, units_for_base

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["mine_mutual_information", "infonce_mutual_information"]

ACTIVATION = "elu"


def _uniform(shape: tuple[int, ...], fan_in: int, gen: torch.Generator, device: torch.device,
             dtype: torch.dtype) -> torch.Tensor:
    # torch.nn.Linear's initialisation, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), from a local generator
    import torch

    bound = 1.0 / math.sqrt(fan_in)
    t = torch.empty(shape, dtype=dtype).uniform_(-bound, bound, generator=gen)
    return t.to(device).requires_grad_(True)


def _mlp_layers(din: int, hidden: int, layers: int, dout: int, **init: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    sizes = [din] + [hidden] * layers + [dout]
    return [(_uniform((a, b), a, **init), _uniform((b,), a, **init)) for a, b in zip(sizes[:-1], sizes[1:])]


def _mlp(h: torch.Tensor, layers: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    import torch

    for i, (w, b) in enumerate(layers):
        h = torch.addmm(b, h, w)
        if i < len(layers) - 1:
            h = torch.nn.functional.elu(h)
    return h


def _check_network_memory(fan_in: int, hidden: int, layers: int, batch: int, *, what: str, device: Any,
                          dtype: Any) -> None:
    """Stop before building a network that cannot fit (a huge --hidden-units or --hidden-layers)."""
    from dsecli.diffusion.plan import check_memory

    params = (fan_in + 1) * hidden + (layers - 1) * (hidden + 1) * hidden + hidden + 1
    itemsize = 4 if dtype_name(dtype) == "float32" else 8
    # weights, gradients and Adam's two moments, plus the activations of a joint and a shuffled batch
    need = (4 * params + 2 * 3 * batch * hidden * layers) * itemsize
    check_memory(need, what=what, detail=f" ({params:,} parameters: hidden_units = {hidden}, "
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
        init = {"gen": gen, "device": device, "dtype": dtype}
        fan = dx + dy
        self.wx = _uniform((dx, hidden), fan, **init)
        self.wy = _uniform((dy, hidden), fan, **init)
        self.b1 = _uniform((hidden,), fan, **init)
        self.rest = _mlp_layers(hidden, hidden, layers - 1, 1, **init)

    def parameters(self) -> list[torch.Tensor]:
        return [self.wx, self.wy, self.b1] + [p for pair in self.rest for p in pair]

    def head(self, h1: torch.Tensor) -> torch.Tensor:
        import torch

        return _mlp(torch.nn.functional.elu(h1), self.rest)[:, 0]


class _SeparableCritic:
    """f(x, y) = g(x) . h(y): two ELU MLPs (``layers`` hidden layers of ``hidden`` units) mapping
    x and y to ``embed`` dimensions. One matrix product scores all K^2 pairs of a batch, which a
    critic on the concatenation would have to evaluate K^2 times (Poole et al. 2019, section 2.3)."""

    def __init__(self, dx: int, dy: int, hidden: int, layers: int, embed: int, *, gen: torch.Generator,
                 device: torch.device, dtype: torch.dtype) -> None:
        init = {"gen": gen, "device": device, "dtype": dtype}
        self.g = _mlp_layers(dx, hidden, layers, embed, **init)
        self.h = _mlp_layers(dy, hidden, layers, embed, **init)

    def parameters(self) -> list[torch.Tensor]:
        return [p for pair in self.g + self.h for p in pair]

    def scores(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(K, K) matrix f(x_i, y_j)."""
        return _mlp(x, self.g) @ _mlp(y, self.h).T


class _DonskerVaradhan:
    """MINE's objective: the DV bound with the moving-average corrected gradient."""

    method = "mine"
    network_name = "MINE's network"

    def __init__(self, ma_rate: float) -> None:
        self.ma_rate = ma_rate
        self.log_keep = math.log1p(-ma_rate) if ma_rate < 1 else -math.inf
        self.log_rate = math.log(ma_rate)
        self.log_ma: torch.Tensor | None = None

    def network(self, dx: int, dy: int, st: dict[str, Any], **init: Any) -> _StatisticsNetwork:
        return _StatisticsNetwork(dx, dy, st["hidden_units"], st["hidden_layers"], **init)

    def prepare_holdout(self, n_hold: int, st: dict[str, Any], gen: torch.Generator, dev: torch.device) -> None:
        import torch

        self.shuffles = torch.stack([torch.randperm(n_hold, generator=gen) for _ in range(st["eval_shuffles"])]).to(dev)

    def loss(self, net: _StatisticsNetwork, xb: torch.Tensor, yb: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        import torch

        shuf = torch.randperm(xb.shape[0], generator=gen).to(xb.device)
        hx = xb @ net.wx + net.b1
        hy = yb @ net.wy
        t_joint = net.head(hx + hy)
        t_marg = net.head(hx + hy[shuf])
        lme = torch.logsumexp(t_marg, 0) - math.log(xb.shape[0])
        with torch.no_grad():
            lm = self.log_ma
            self.log_ma = lme.detach() if lm is None else torch.logaddexp(lm + self.log_keep, lme + self.log_rate)
        # gradient: E[grad T] - E[e^T grad T] / ma  (the moving-average corrected DV gradient)
        return -(t_joint.mean() - torch.exp(lme - self.log_ma))

    def holdout(self, net: _StatisticsNetwork, x_ho: torch.Tensor, y_ho: torch.Tensor) -> float:
        import torch

        hx = x_ho @ net.wx + net.b1
        hy = y_ho @ net.wy
        joint = net.head(hx + hy).mean()
        marg = net.head((hx[None] + hy[self.shuffles]).reshape(-1, hx.shape[1]))
        return float(joint - (torch.logsumexp(marg, 0) - math.log(marg.numel())))

    def params(self, st: dict[str, Any]) -> dict[str, Any]:
        return {"objective": "donsker-varadhan", "ma_rate": self.ma_rate, "eval_shuffles": st["eval_shuffles"]}

    def extra(self, value_nats: float, base: float) -> dict[str, Any]:
        return {}


class _InfoNCE:
    """InfoNCE (van den Oord et al. 2018): E_i[f(x_i, y_i) - log (1/K) sum_j e^{f(x_i, y_j)}] <= I,
    and <= log K for any critic (Poole et al. 2019, eq. 12)."""

    network_name = "InfoNCE's critic"

    method = "infonce"

    def __init__(self, embed_dim: int, eval_batch: int) -> None:
        self.embed_dim = embed_dim
        self.eval_batch = eval_batch

    def network(self, dx: int, dy: int, st: dict[str, Any], **init: Any) -> _SeparableCritic:
        return _SeparableCritic(dx, dy, st["hidden_units"], st["hidden_layers"], self.embed_dim, **init)

    def prepare_holdout(self, n_hold: int, st: dict[str, Any], gen: torch.Generator, dev: torch.device) -> None:
        # held-out rows in near-equal groups of at most eval_batch: the bound of each group uses all its pairs
        self.groups = np.array_split(np.arange(n_hold), -(-n_hold // self.eval_batch))
        self.eval_k = min(g.size for g in self.groups)

    @staticmethod
    def bound(s: torch.Tensor) -> torch.Tensor:
        import torch

        return (s.diagonal() - torch.logsumexp(s, dim=1)).mean() + math.log(s.shape[0])

    def loss(self, net: _SeparableCritic, xb: torch.Tensor, yb: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return -self.bound(net.scores(xb, yb))

    def holdout(self, net: _SeparableCritic, x_ho: torch.Tensor, y_ho: torch.Tensor) -> float:
        vals = [float(self.bound(net.scores(x_ho[g], y_ho[g]))) * g.size for g in self.groups]
        return sum(vals) / x_ho.shape[0]

    def params(self, st: dict[str, Any]) -> dict[str, Any]:
        return {"objective": "infonce", "critic": "separable g(x).h(y)", "embed_dim": self.embed_dim,
                "eval_batch": self.eval_k}

    def extra(self, value_nats: float, base: float) -> dict[str, Any]:
        ceiling = math.log(self.eval_k)
        return {"ceiling": nats_to(ceiling, base), "ceiling_nats": ceiling, "ceiling_rule": "log K, K = eval_batch",
                "train_ceiling_nats": math.log(self.train_k)}


def _check_training(**kw: Any) -> dict[str, Any]:
    """Validate the settings shared by the neural estimators; returns them checked."""
    st = dict(kw)
    for name in ("hidden_units", "hidden_layers", "epochs", "eval_shuffles", "average_last"):
        st[name] = check_positive_int(st[name], name)
    st["batch_size"] = check_positive_int(st["batch_size"], "batch_size", minimum=2)
    st["patience"] = check_positive_int(st["patience"], "patience", minimum=0)
    if st["cpu_threads"] is not None:
        st["cpu_threads"] = check_positive_int(st["cpu_threads"], "cpu_threads")
    st["learning_rate"] = check_finite_number(st["learning_rate"], "learning_rate")
    if st["learning_rate"] <= 0:
        raise InputError(f"`learning_rate` must be > 0; got {st['learning_rate']!r}")
    st["holdout_fraction"] = check_finite_number(st["holdout_fraction"], "holdout_fraction")
    if not 0 < st["holdout_fraction"] < 1:
        raise InputError(f"`holdout_fraction` must be in (0, 1); got {st['holdout_fraction']!r}")
    return st


def _neural_ceiling(value: float, extra_obj: dict[str, Any], classes: Any, base: float) -> dict[str, Any]:
    """The value's range: the smaller of InfoNCE's log K and H(Y) of labels; none for MINE on a continuous Y."""
    if classes is not None:
        labels = reference_ceiling(value, np.bincount(classes.codes), base)
        if "ceiling" not in extra_obj or labels["ceiling"] < extra_obj["ceiling"]:
            return {**labels, "ceiling_nats": labels["ceiling"] * math.log(base)}
    if "ceiling" in extra_obj:
        return ceiling_fields(value, extra_obj["ceiling"], extra_obj["ceiling_rule"])
    return ceiling_fields(value, None, "none: continuous reference (I(X;Y) has no finite bound)")


def _train_neural(rows: Prepared, call: Call, *, objective: Any, settings: dict[str, Any], ref_kind: str) -> Measured:
    """The training loop and held-out reporting shared by MINE and InfoNCE.

    Standardise x and y, split off ``holdout_fraction`` of the rows, train the objective's critic
    with Adam on shuffled batches, evaluate the bound on the held-out rows after every epoch, stop
    after ``epochs`` or ``patience`` epochs without a new best, and report the mean of the last
    ``average_last`` held-out values up to and including the best epoch.
    """
    import torch

    st = settings
    seed, base = call.seed, call.base
    dev, dt = rows.device, rows.working_dtype("float32")
    reading = rows.reference_reading(ref_kind=ref_kind, seed=seed)
    classes = reading.classes() if reading.discrete else None
    ya = None if classes is not None else reading.values
    if classes is not None:
        ym = np.eye(len(classes.names))[classes.codes]
        ref_info: dict[str, Any] = {"reference": "labels (one-hot)", "n_classes": len(classes.names),
                                    "reference_reading": reading.params()}
    else:
        assert ya is not None
        ym = ya
        ref_info = {"reference": "continuous", "n_features_y": int(ya.shape[1]),
                    "reference_reading": reading.params()}
    xm = standardize_columns(as_matrix(rows.data))
    ym = standardize_columns(ym)
    n = xm.shape[0]
    n_hold = min(n - 2, max(2, int(round(st["holdout_fraction"] * n))))
    order = np.random.default_rng(seed).permutation(n)
    hold, train = order[:n_hold], order[n_hold:]
    n_train = train.size
    batch = min(st["batch_size"], n_train)
    objective.train_k = batch
    _check_network_memory(xm.shape[1] + ym.shape[1], st["hidden_units"], st["hidden_layers"], batch,
                          what=objective.network_name, device=dev, dtype=dt)

    gen = torch.Generator().manual_seed(seed)
    xt = torch.as_tensor(xm, dtype=dt).to(dev)
    yt = torch.as_tensor(ym, dtype=dt).to(dev)
    x_tr, y_tr = xt[torch.as_tensor(train)], yt[torch.as_tensor(train)]
    x_ho, y_ho = xt[torch.as_tensor(hold)], yt[torch.as_tensor(hold)]
    net = objective.network(xm.shape[1], ym.shape[1], st, gen=gen, device=dev, dtype=dt)
    opt = torch.optim.Adam(net.parameters(), lr=st["learning_rate"])
    objective.prepare_holdout(n_hold, st, gen, dev)

    history: list[float] = []
    best, best_epoch, since_best = -math.inf, -1, 0
    stopped_early = False
    threads_before = torch.get_num_threads()
    threads_used = st["cpu_threads"] if dev.type == "cpu" and st["cpu_threads"] is not None else threads_before
    with Timer(dev) as timer, cpu_threads(threads_used):
        for epoch in range(st["epochs"]):
            perm = torch.randperm(n_train, generator=gen).to(dev)
            for s in range(0, n_train - 1, batch):
                idx = perm[s : s + batch]
                if idx.numel() < 2:
                    break
                loss = objective.loss(net, x_tr[idx], y_tr[idx], gen)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            with torch.no_grad():
                bound = objective.holdout(net, x_ho, y_ho)
            history.append(bound)
            if bound > best:
                best, best_epoch, since_best = bound, epoch, 0
            else:
                since_best += 1
            if st["patience"] and since_best >= st["patience"]:
                stopped_early = True
                break
    last = np.asarray(history[max(0, best_epoch + 1 - st["average_last"]) : best_epoch + 1])
    value_nats = float(last.mean())
    std_nats = float(last.std(ddof=1)) if last.size > 1 else 0.0
    extra_obj = objective.extra(value_nats, base)
    if "ceiling_nats" in extra_obj and value_nats > extra_obj["ceiling_nats"] - math.log(2):
        warnings.warn(
            f"the InfoNCE estimate {nats_to(value_nats, base):.3g} is within log 2 of its ceiling log K = "
            f"{extra_obj['ceiling']:.3g} ({units_for_base(base)}, K = {objective.eval_k} held-out rows per group); "
            "the mutual information may be larger: use more rows or a larger eval_batch",
            DataQualityWarning,
            stacklevel=3,
        )
    extra_obj.update(_neural_ceiling(nats_to(value_nats, base), extra_obj, classes, base))
    params = {
        "hidden_units": st["hidden_units"], "hidden_layers": st["hidden_layers"], "activation": ACTIVATION,
        "epochs": st["epochs"], "batch_size": batch, "learning_rate": st["learning_rate"], "optimizer": "adam",
        "patience": st["patience"], "holdout_fraction": st["holdout_fraction"], "n_train": int(n_train),
        "n_holdout": int(n_hold), **objective.params(st), "average_last": st["average_last"], "ref_kind": ref_kind,
        **ref_info, "standardized": True, "device": str(dev),
        "dtype": dtype_name(dt), "n_features": int(xm.shape[1]),
    }
    if dev.type == "cpu":
        params["cpu_threads"] = threads_used
    return Measured(call.from_nats(value_nats), params, {
        "std": nats_to(std_nats, base), "value_nats": value_nats, "std_nats": std_nats, "best_nats": best,
        "best_epoch": best_epoch, "epochs_run": len(history), "stopped_early": stopped_early,
        "history_nats": history, "train_s": timer.elapsed_s, **extra_obj,
    }, method=objective.method)


@public_method("mine", quantity="mi", min_rows=4)
def mine_mutual_information(
    rows: Prepared,
    call: Call,
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
) -> Measured:
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
    x : array-like, shape (N, D), a tensor, a lazy source or :class:`~dsecli.inputs.sampling.Rows`
    y : array-like, shape (N,) or (N, D'), a lazy source or :class:`~dsecli.inputs.sampling.Rows`
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
        Training precision (None: float32, the bound's noise being far above its rounding, or a
        Prepared ``x``'s dtype).
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
    settings = _check_training(
        hidden_units=hidden_units, hidden_layers=hidden_layers, epochs=epochs, batch_size=batch_size,
        learning_rate=learning_rate, patience=patience, holdout_fraction=holdout_fraction,
        eval_shuffles=eval_shuffles, average_last=average_last, cpu_threads=cpu_threads,
    )
    ma_rate = check_finite_number(ma_rate, "ma_rate")
    if not 0 < ma_rate <= 1:
        raise InputError(f"`ma_rate` must be in (0, 1]; got {ma_rate!r}")
    check_choice(ref_kind, "ref_kind", REF_KINDS)
    return _train_neural(
        rows, call, objective=_DonskerVaradhan(ma_rate), settings=settings, ref_kind=ref_kind)


@public_method("infonce", quantity="mi", min_rows=4)
def infonce_mutual_information(
    rows: Prepared,
    call: Call,
    *,
    hidden_units: int = 100,
    hidden_layers: int = 2,
    embed_dim: int = 32,
    epochs: int = 200,
    batch_size: int = 500,
    learning_rate: float = 1e-3,
    patience: int = 20,
    holdout_fraction: float = 0.2,
    eval_batch: int = 2048,
    average_last: int = 5,
    ref_kind: str = "auto",
    cpu_threads: int | None = 1,
) -> Measured:
    """Mutual information by InfoNCE: a contrastive lower bound trained on the rows, evaluated on held-out rows.

    For a batch of K pairs and a critic f,

    .. math::

        I(X; Y) \\ge \\frac{1}{K} \\sum_{i=1}^K \\Big[ f(x_i, y_i) - \\log \\frac{1}{K} \\sum_{j=1}^K e^{f(x_i, y_j)} \\Big]

    and the right-hand side never exceeds log K whatever f is: InfoNCE cannot report more than
    log K (K = rows per group of the held-out evaluation), reported as ``extra["ceiling"]``
    (in ``units``) and ``extra["ceiling_nats"]``; a :class:`~dsecli.errors.DataQualityWarning`
    is raised when the estimate comes within log 2 of it. Low variance, high bias at large MI:
    the complement of MINE.

    The critic is separable, f(x, y) = g(x) . h(y), g and h ELU MLPs of ``hidden_layers`` x
    ``hidden_units`` to ``embed_dim`` outputs: one matrix product scores all K^2 pairs. Training
    (Adam, batches of ``batch_size``, held-out evaluation after every epoch, early stopping,
    reported value = mean of the last ``average_last`` held-out bounds up to the best epoch, with
    their std in ``extra["std"]``) is MINE's loop (:func:`mine_mutual_information`). The held-out
    rows are split into near-equal groups of at most ``eval_batch`` and the bound of each group
    uses all its K^2 pairs.

    Parameters
    ----------
    x : array-like, shape (N, D), a tensor, a lazy source or :class:`~dsecli.inputs.sampling.Rows`
    y : array-like, shape (N,) or (N, D'); continuous, or labels (one-hot encoded)
    hidden_units, hidden_layers, embed_dim : int
        Sizes of g and h.
    epochs, batch_size, learning_rate, patience, holdout_fraction, average_last, ref_kind, cpu_threads
        As for :func:`mine_mutual_information` (the training ceiling is log ``batch_size``).
    eval_batch : int >= 2
        Largest held-out group; the ceiling is log of the smallest group's size.
    max_n, seed, sampler, device, dtype, base, flatten, drop_nonfinite
        As for :func:`mine_mutual_information`.

    Returns
    -------
    MIResult
        ``value`` in ``units``; ``extra``: ``ceiling``/``ceiling_nats`` (log K of the held-out
        evaluation), ``train_ceiling_nats`` (log batch size), ``std``, ``history_nats``, ...

    References
    ----------
    A. van den Oord, Y. Li, O. Vinyals, "Representation Learning with Contrastive Predictive Coding",
    arXiv:1807.03748 (2018). B. Poole, S. Ozair, A. van den Oord, A. Alemi, G. Tucker, "On Variational
    Bounds of Mutual Information", ICML 2019 (eq. 12, the log K limit; separable critics, section 2.3).
    """
    settings = _check_training(
        hidden_units=hidden_units, hidden_layers=hidden_layers, epochs=epochs, batch_size=batch_size,
        learning_rate=learning_rate, patience=patience, holdout_fraction=holdout_fraction,
        eval_shuffles=1, average_last=average_last, cpu_threads=cpu_threads,
    )
    embed_dim = check_positive_int(embed_dim, "embed_dim")
    eval_batch = check_positive_int(eval_batch, "eval_batch", minimum=2)
    check_choice(ref_kind, "ref_kind", REF_KINDS)
    return _train_neural(
        rows, call, objective=_InfoNCE(embed_dim, eval_batch), settings=settings, ref_kind=ref_kind)
