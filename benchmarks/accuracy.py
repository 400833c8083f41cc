"""Accuracy of every entropy and mutual-information method on distributions with known answers.

Printed, not asserted. Entropy (bits) of

- ``gaussian``: N(0, S), S_ij = 0.5^|i-j|; H = 0.5 log2((2 pi e)^D det S);
- ``uniform``: box with sides linspace(0.5, 2, D); H = sum log2 a_k;
- ``student-t``: multivariate t, nu = 5, scale I;
  H = (D/2) log(nu pi) + log Gamma(nu/2) - log Gamma((nu+D)/2) + (nu+D)/2 [psi((nu+D)/2) - psi(nu/2)] nats.

Mutual information (bits) between X and Y in R^D made of D independent coordinate pairs with
correlation rho_D, chosen so that the total is 1 bit at every D (rho_D^2 = 1 - 2^(-2/D)):

- ``gaussian``: I = -D/2 log2(1 - rho_D^2) = 1;
- ``student-t``: (X, Y) jointly t (nu = 5) with the same scale matrix; I = H(X) + H(Y) - H(X, Y)
  from the t entropy above (more than 1 bit: heavy tails add dependence);
- ``monotone``: the gaussian pairs after x -> exp(x), y -> y^3 per coordinate; I = 1 (invariant).

N = 5,000 rows, D in 1, 2, 5, 10, 20, 50. DSE/DSMI and the binned CSE/CSMI have no
differential-entropy truth; their error column reads n/a. DSE/DSMI run on ``--dse-max-n`` rows
(default 1,000) so the table finishes in minutes (a 5,000-row eigendecomposition takes ~10-40 s on
2 cores); the timing section at the end runs every method on all 5,000 rows at D = 32. The whole
run takes about 9 minutes on 2 shared cores (load average ~6; 14 minutes at load ~9).

Usage::

    python benchmarks/accuracy.py [--n 5000] [--dims 1,2,5,10,20,50] [--dse-max-n 1000] [--device cpu]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import digamma, gammaln

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dsecli.errors import DseWarning  # noqa: E402
from dsecli.methods import ENTROPY_METHODS, MI_METHODS  # noqa: E402

NU = 5.0
LN2 = math.log(2.0)


# ------------------------------------------------------------------ truths (bits)


def gaussian_entropy_bits(cov: np.ndarray) -> float:
    d = cov.shape[0]
    return 0.5 * (d * math.log(2 * math.pi * math.e) + np.linalg.slogdet(cov)[1]) / LN2


def student_t_entropy_bits(d: int, nu: float = NU, logdet_scale: float = 0.0) -> float:
    h = (0.5 * logdet_scale + 0.5 * d * math.log(nu * math.pi) + gammaln(nu / 2) - gammaln((nu + d) / 2)
         + 0.5 * (nu + d) * (digamma((nu + d) / 2) - digamma(nu / 2)))
    return float(h) / LN2


def rho_for_one_bit(d: int) -> float:
    return math.sqrt(1.0 - 2.0 ** (-2.0 / d))


# ------------------------------------------------------------------ samplers


def entropy_case(name: str, d: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    if name == "gaussian":
        idx = np.arange(d)
        cov = 0.5 ** np.abs(idx[:, None] - idx[None, :])
        return rng.multivariate_normal(np.zeros(d), cov, size=n), gaussian_entropy_bits(cov)
    if name == "uniform":
        sides = np.linspace(0.5, 2.0, d) if d > 1 else np.array([1.5])
        return rng.uniform(size=(n, d)) * sides, float(np.log2(sides).sum())
    if name == "student-t":
        z = rng.normal(size=(n, d))
        w = rng.chisquare(NU, size=(n, 1))
        return z / np.sqrt(w / NU), student_t_entropy_bits(d)
    raise ValueError(name)


def mi_case(name: str, d: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float]:
    rho = rho_for_one_bit(d)
    x = rng.normal(size=(n, d))
    y = rho * x + math.sqrt(1 - rho**2) * rng.normal(size=(n, d))
    if name == "gaussian":
        return x, y, 1.0
    if name == "monotone":
        return np.exp(x), y**3, 1.0
    if name == "student-t":
        s = np.sqrt(rng.chisquare(NU, size=(n, 1)) / NU)
        truth = 2 * student_t_entropy_bits(d) - student_t_entropy_bits(2 * d, logdet_scale=d * math.log(1 - rho**2))
        return x / s, y / s, truth
    raise ValueError(name)


# ------------------------------------------------------------------ running


def _run(fn: Any, *args: Any, **kw: Any) -> tuple[Any, float]:
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DseWarning)
        r = fn(*args, **kw)
    return r, time.perf_counter() - t


def _fmt(v: float | None, width: int = 8, prec: int = 3) -> str:
    return f"{'n/a':>{width}}" if v is None else f"{v:>{width}.{prec}f}"


def _try(fn: Any, *args: Any, **kw: Any) -> tuple[Any, float]:
    from dsecli.errors import DseError

    try:
        return _run(fn, *args, **kw)
    except DseError:
        return None, float("nan")


# entropy methods without a differential-entropy truth, run on --dse-max-n rows (sigma: each one's default)
SPECTRAL_COLUMNS = ("ase-gaussian", "ase-normalized", "ase-knn", "matrix-entry", "renyi-gram", "vne-cov", "rankme")


def entropy_table(dims: list[int], n: int, dse_max_n: int, device: str, seed: int) -> None:
    print(f"\nENTROPY (bits), N = {n}; knn: Kozachenko-Leonenko k=3 Euclidean; wkl: weighted KL (Berrett-Samworth-"
          f"Yuan, floor(D/4) constraints, K = max(10, 4 (floor(D/4) + 1)); 'fail': weights of norm > 1e9); wkl1: "
          f"the same K with 1 constraint; cse: 2 bins/dim; dse: sigma=median, t=1, max_n={dse_max_n}; "
          f"then, without a differential-entropy truth (max_n={dse_max_n}, default settings): "
          + ", ".join(SPECTRAL_COLUMNS) + " (renyi-gram: sigma=median)")
    head = (f"{'distribution':<11} {'D':>3} {'truth':>8} | {'knn':>8} {'err':>7} {'s':>5} | {'wkl':>8} {'err':>7} "
            f"{'|w|':>7} | {'wkl1':>8} {'err':>7} | {'cse':>7} | {'dse':>7} | "
            + " ".join(f"{m[:6]:>6}" for m in SPECTRAL_COLUMNS))
    print(head)
    print("-" * len(head))
    for name in ("gaussian", "uniform", "student-t"):
        for d in dims:
            x, truth = entropy_case(name, d, n, np.random.default_rng([seed, d]))
            knn, t_knn = _run(ENTROPY_METHODS["knn"], x, device=device, max_n=None)
            wkl, _ = _try(ENTROPY_METHODS["knn-weighted"], x, device=device, max_n=None)
            wkl1, _ = _try(ENTROPY_METHODS["knn-weighted"], x, n_constraints=min(1, d // 4), device=device, max_n=None)
            cse, _ = _run(ENTROPY_METHODS["cse"], x, max_n=None)
            dse, _ = _run(ENTROPY_METHODS["dse"], x, sigma="median", max_n=dse_max_n, seed=seed, device=device)
            spec = [_run(ENTROPY_METHODS[m], x, max_n=dse_max_n, seed=seed, device=device)[0].value
                    for m in SPECTRAL_COLUMNS]
            w_cells = (f"{'fail':>8} {'':>7} {'>1e9':>7}" if wkl is None else
                       f"{wkl.value:>8.3f} {wkl.value - truth:>+7.3f} {wkl.extra['weights_norm']:>7.3g}")
            w1_cells = f"{'fail':>8} {'':>7}" if wkl1 is None else f"{wkl1.value:>8.3f} {wkl1.value - truth:>+7.3f}"
            print(f"{name:<11} {d:>3} {truth:>8.3f} | {knn.value:>8.3f} {knn.value - truth:>+7.3f} {t_knn:>5.1f} | "
                  f"{w_cells} | {w1_cells} | {cse.value:>7.3f} | {dse.value:>7.3f} | "
                  + " ".join(f"{v:>6.2f}" for v in spec), flush=True)


def mi_table(dims: list[int], n: int, dse_max_n: int, device: str, seed: int) -> None:
    print(f"\nMUTUAL INFORMATION (bits), N = {n}; X, Y in R^D; ksg: k=3, defaults (standardised Euclidean norm per variable); mine: defaults "
          f"(2x100, lr 1e-3, batch 500, <=200 epochs, patience 20), +- std of the 5 held-out evaluations ending at "
          f"the best epoch; infonce: defaults (separable critic 2x100 -> 32, batch 500, held-out groups <= 2048; "
          f"ceil = log2 K); "
          f"csmi: 2 bins/dim, Y k-means into 10 clusters; dsmi: sigma=median, max_n={dse_max_n}")
    head = (f"{'distribution':<11} {'D':>3} {'truth':>6} | {'ksg':>7} {'err':>7} {'s':>5} | {'mine':>7} {'+-':>5} "
            f"{'err':>7} {'s':>5} | {'infonce':>7} {'err':>7} {'ceil':>5} {'s':>5} | {'csmi':>7} {'err':>4} | {'dsmi':>7} {'err':>4}")
    print(head)
    print("-" * len(head))
    for name in ("gaussian", "student-t", "monotone"):
        for d in dims:
            x, y, truth = mi_case(name, d, n, np.random.default_rng([seed, 100 + d]))
            ksg, t_ksg = _run(MI_METHODS["ksg"], x, y, device=device, max_n=None, seed=seed)
            mine, t_mine = _run(MI_METHODS["mine"], x, y, device=device, max_n=None, seed=seed)
            nce, t_nce = _run(MI_METHODS["infonce"], x, y, device=device, max_n=None, seed=seed)
            csmi, _ = _run(MI_METHODS["csmi"], x, y, max_n=None, seed=seed)
            dsmi, _ = _run(MI_METHODS["dsmi"], x, y, sigma="median", max_n=dse_max_n, seed=seed, device=device)
            print(f"{name:<11} {d:>3} {truth:>6.3f} | {ksg.value:>7.3f} {ksg.value - truth:>+7.3f} {t_ksg:>5.1f} | "
                  f"{mine.value:>7.3f} {mine.extra['std']:>5.3f} {mine.value - truth:>+7.3f} {t_mine:>5.1f} | "
                  f"{nce.value:>7.3f} {nce.value - truth:>+7.3f} {nce.extra['ceiling']:>5.2f} {t_nce:>5.1f} | "
                  f"{csmi.value:>7.3f} {'n/a':>4} | {dsmi.value:>7.3f} {'n/a':>4}", flush=True)


KSG_CONFIGS = {  # label -> keyword arguments of ksg_mutual_information
    "eu+std": {"metric": "euclidean", "standardize": True},
    "max+std": {"metric": "max", "standardize": True},
    "eu": {"metric": "euclidean", "standardize": False},
    "max": {"metric": "max", "standardize": False},
}
BMI_PYTHON = Path("/work/venvs/bmi/bin/python")


def ksg_table(n: int, seeds: list[int], ks: list[int], device: str, bmi_python: Path) -> None:
    """KSG on the bmi-style tasks of benchmarks/bmi_style.py: each norm/standardisation setting at
    each k, beside bmi's own KSG (k = 5, standardised, Euclidean; run in bmi's venv on the same
    samples when ``bmi_python`` exists). Absolute errors in nats, averaged over ``seeds``."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from bmi_style import TASKS

    cols = [f"{c} k{k}" for k in ks for c in KSG_CONFIGS]
    samples = {f"{t.name}|{s}": t.sample(n, np.random.default_rng([s, i])) for i, t in enumerate(TASKS) for s in seeds}
    bmi = _bmi_run(bmi_python, samples) if bmi_python.exists() else {}
    print(f"\nKSG vs bmi (nats), N = {n}, seeds {seeds}: mean absolute error per task; settings = norm of each "
          f"variable (eu: Euclidean, max: max-norm; joint = max of the two) + per-column standardisation (std); "
          f"bmi: KSGEnsembleFirstEstimator(neighborhoods=(5,)), standardised Euclidean, clipped at 0"
          + ("" if bmi else f" [not run: {bmi_python} missing]"))
    head = f"{'task':<22} {'truth':>6} | " + " ".join(f"{c:>11}" for c in cols) + f" | {'bmi k5':>7}"
    print(head)
    print("-" * len(head))
    errs: dict[str, list[float]] = {c: [] for c in cols + ["bmi"]}
    seconds: dict[str, float] = dict.fromkeys(cols + ["bmi"], 0.0)
    for t in TASKS:
        row = []
        for k in ks:
            for label, kw in KSG_CONFIGS.items():
                e = []
                for s in seeds:
                    x, y = samples[f"{t.name}|{s}"]
                    r, sec = _run(MI_METHODS["ksg"], x, y, k=k, base=math.e, device=device, max_n=None, seed=s, **kw)
                    e.append(abs(r.value - t.truth_nats))
                    seconds[f"{label} k{k}"] += sec
                errs[f"{label} k{k}"].append(float(np.mean(e)))
                row.append(float(np.mean(e)))
        b = None
        if bmi:
            b = float(np.mean([abs(bmi[f"{t.name}|{s}"]["value"] - t.truth_nats) for s in seeds]))
            errs["bmi"].append(b)
            seconds["bmi"] += sum(bmi[f"{t.name}|{s}"]["seconds"] for s in seeds)
        print(f"{t.name:<22} {t.truth_nats:>6.3f} | " + " ".join(f"{v:>11.3f}" for v in row) + f" | {_fmt(b, 7)}",
              flush=True)
    print("-" * len(head))
    print(f"{'mean':<22} {'':>6} | " + " ".join(f"{np.mean(errs[c]):>11.3f}" for c in cols)
          + f" | {_fmt(float(np.mean(errs['bmi'])) if errs['bmi'] else None, 7)}")
    print(f"{'seconds (all tasks)':<22} {'':>6} | " + " ".join(f"{seconds[c]:>11.1f}" for c in cols)
          + f" | {_fmt(seconds['bmi'] if bmi else None, 7, 1)}")


def _bmi_run(bmi_python: Path, samples: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """bmi's KSG (k = 5) on each sample, in bmi's venv: {key: {"value", "seconds"}}."""
    import json
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        arrays = {f"{key}|{v}": a for key, (x, y) in samples.items() for v, a in (("x", x), ("y", y))}
        np.savez(Path(tmp) / "in.npz", **arrays)
        subprocess.run([str(bmi_python), str(REPO / "benchmarks" / "bmi_style.py"), str(Path(tmp) / "in.npz"),
                        str(Path(tmp) / "out.json")], check=True)
        return json.loads((Path(tmp) / "out.json").read_text())


def ksg_timing(n: int, device: str, bmi_python: Path) -> None:
    """Seconds of one KSG estimate (k = 5) at N rows: dsecli (defaults and max-norm), bmi's
    KSGEnsembleFirstEstimator (bmi's venv), scikit-learn's mutual_info_regression (1-D Y only)."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from bmi_style import task_by_name

    names = ["normal-1-1", "dense-5-5", "dense-25-25"]
    samples = {name: task_by_name(name).sample(n, np.random.default_rng(0)) for name in names}
    bmi = _bmi_run(bmi_python, samples) if bmi_python.exists() else {}
    _run(MI_METHODS["ksg"], *task_by_name("dense-2-2").sample(200, np.random.default_rng(1)), device=device)  # imports
    print(f"\nKSG SECONDS at N = {n}, k = 5 (values in nats)")
    print(f"{'task':<12} | {'dsecli':>7} {'value':>7} {'search':>6} | {'max-norm':>8} {'value':>7} | "
          f"{'bmi':>7} {'value':>7} {'ratio':>6} | {'sklearn':>7} {'value':>7}")
    for name in names:
        x, y = samples[name]
        ours, s_ours = _run(MI_METHODS["ksg"], x, y, k=5, base=math.e, device=device, max_n=None)
        mx, s_mx = _run(MI_METHODS["ksg"], x, y, k=5, metric="max", base=math.e, device=device, max_n=None)
        b = bmi.get(name)
        sk = sk_s = None
        if y.shape[1] == 1:
            from sklearn.feature_selection import mutual_info_regression

            t = time.perf_counter()
            sk = float(mutual_info_regression(x, y[:, 0], n_neighbors=5, random_state=0)[0]) if x.shape[1] == 1 else None
            sk_s = time.perf_counter() - t
        print(f"{name:<12} | {s_ours:>7.2f} {ours.value:>7.4f} {ours.params['neighbor_method']:>6} | {s_mx:>8.2f} "
              f"{mx.value:>7.4f} | {_fmt(b and b['seconds'], 7, 2)} {_fmt(b and b['value'], 7, 4)} "
              f"{_fmt(b and b['seconds'] / s_ours, 6, 1)} | {_fmt(sk_s, 7, 2)} {_fmt(sk, 7, 4)}", flush=True)


def timing(n: int, d: int, device: str, seed: int) -> None:
    print(f"\nSECONDS PER METHOD at N = {n}, D = {d} (all rows; Y for MI: a {d}-dim Gaussian partner, 1 bit)")
    rng = np.random.default_rng([seed, 7])
    x, _ = entropy_case("gaussian", d, n, rng)
    xm, ym, _ = mi_case("gaussian", d, n, rng)
    rows = []
    for name in ("knn", "cse", "dse"):
        kw: dict[str, Any] = {"max_n": None}
        if name != "cse":
            kw["device"] = device
        if name == "dse":
            kw["sigma"] = "median"
        r, s = _run(ENTROPY_METHODS[name], x, **kw)
        rows.append(("entropy", name, s, r.value, r.params.get("neighbor_method", "")))
    for name in ("ksg", "mine", "csmi", "dsmi"):
        kw = {"max_n": None, "seed": seed}
        if name != "csmi":
            kw["device"] = device
        if name == "dsmi":
            kw["sigma"] = "median"
        r, s = _run(MI_METHODS[name], xm, ym, **kw)
        note = r.params.get("neighbor_method", "")
        if name == "mine":
            note = f"{r.extra['epochs_run']} epochs, {r.params['cpu_threads'] if 'cpu_threads' in r.params else ''} thread"
        rows.append(("mi", name, s, r.value, note))
    print(f"{'kind':<8} {'method':<6} {'seconds':>8} {'value':>8}  note")
    for kind, name, s, v, note in rows:
        print(f"{kind:<8} {name:<6} {s:>8.2f} {v:>8.3f}  {note}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--dims", default="1,2,5,10,20,50")
    ap.add_argument("--dse-max-n", type=int, default=1000)
    ap.add_argument("--timing-dim", type=int, default=32)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip", default="", help="comma list of sections to skip: entropy,mi,ksg,ksg-timing,timing")
    ap.add_argument("--ksg-timing-n", type=int, default=10000)
    ap.add_argument("--ksg-n", type=int, default=5000, help="rows per bmi-style task in the ksg section")
    ap.add_argument("--ksg-seeds", default="0,1")
    ap.add_argument("--ksg-k", default="3,5")
    ap.add_argument("--bmi-python", type=Path, default=BMI_PYTHON, help="python of a venv with benchmark-mi 0.1.3")
    args = ap.parse_args(argv)
    dims = [int(v) for v in args.dims.split(",") if v]
    skip = set(args.skip.split(","))
    start = time.perf_counter()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"dsecli accuracy benchmark: N = {args.n}, dims {dims}, device {args.device}, seed {args.seed}, "
          f"{os.cpu_count()} CPUs, load average {load:.1f}")
    if "entropy" not in skip:
        entropy_table(dims, args.n, args.dse_max_n, args.device, args.seed)
    if "mi" not in skip:
        mi_table(dims, args.n, args.dse_max_n, args.device, args.seed)
    if "ksg" not in skip:
        ksg_table(args.ksg_n, [int(v) for v in args.ksg_seeds.split(",")], [int(v) for v in args.ksg_k.split(",")],
                  args.device, args.bmi_python)
    if "ksg-timing" not in skip:
        ksg_timing(args.ksg_timing_n, args.device, args.bmi_python)
    if "timing" not in skip:
        timing(args.n, args.timing_dim, args.device, args.seed)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
