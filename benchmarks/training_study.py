"""What DSE and DSMI say about real training: the paper's neural-network claims and a model zoo, on digits.

Everything trains on scikit-learn's digits (1,797 images of 8 x 8, no download): a seeded split into
1,000 training rows and 797 held-out rows. Every measurement is made on the held-out rows, by
``dsecli.run_batch`` over an HDF5 file of embeddings (the same path as ``dse batch``), under three
σ policies:

- ``fixed``: σ = 10 in the embeddings' units, the published implementation's setting;
- ``median``: the median rule on each input's own rows (one σ per checkpoint or model; scale-free);
- ``pooled``: one median-rule σ from a seeded sample pooled over every input that is compared
  (``--sigma median-pooled``: the checkpoints of one run, or every model of the zoo).

Three parts (``--parts``):

1. ``trajectory``: the MLP of ``sample_data/`` (64-256x4-64-10), trained 256 epochs with true and
   with shuffled labels, 3 seeds; DSE(Z), DSMI(Z;Y) (true digits of the held-out rows) and DSMI(Z;X)
   (the held-out pixels, k-means into 10 clusters) at epochs 0, 1, 2, 4, ..., 256; DSE at t = 1, 2
   and 5 under the median policy. Claims checked: DSE rises during training; DSMI(Z;Y) rises with
   true labels and stays flat with shuffled ones; DSMI(Z;X) rises (the paper's MNIST finding).
2. ``init``: a small CNN (conv 1-16-32, fc 2048-64-10) whose weights are drawn N(0, std²) for std in
   0.01 ... 0.5, 3 seeds, trained 20 epochs. Claims checked: initial DSE ≈ 0 for std <= 0.03 and
   ≈ log N for std >= 0.05; the low-DSE initialization trains better.
3. ``zoo``: 80 MLPs (hidden width, depth, epochs, weight decay, label noise and seed drawn from a
   seeded generator; the embedding layer is 64 wide in every model so that one pooled σ fits all).
   Every method of the tool on each model's held-out embeddings; Spearman and Kendall correlations
   of each measure with held-out accuracy and with the generalization gap, with 95% percentile
   bootstrap intervals over models (``dsecli.rank_correlation``).

A claim *holds* under a policy when its stated criterion (printed next to it) is met in every seed.

Writes ``training.json``, ``training.md`` and three figures into ``--out`` (``docs/paper``). Training
runs on one torch thread with deterministic algorithms, so a rerun on the same platform and torch
version gives the same numbers.

Usage::

    python benchmarks/training_study.py [--out docs/paper] [--quick] [--parts trajectory,init,zoo]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

# the digits, their split and the MLP of the bundled trajectory: one definition, in its generator script
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sample_data"))
import make_digits_trajectory as digits  # noqa: E402

SEED = digits.SEED
N_TRAIN = digits.N_TRAIN
POLICIES = {"fixed": 10.0, "median": "median", "pooled": "median-pooled"}
POLICY_TEXT = {"fixed": "σ = 10 (published)", "median": "median rule per input", "pooled": "one pooled median σ"}
EPOCHS = (0, 1, 2, 4, 8, 16, 32, 64, 128, 256)
INIT_STDS = (0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.3, 0.5)
INIT_EPOCHS = 20
ZOO_SIZE = 80
RISE_BITS = 0.1  # a change smaller than this is not a trend


# ------------------------------------------------------------------------------------------- data, models


def load_data() -> dict[str, np.ndarray]:
    """The split of ``sample_data/make_digits_trajectory.py``: its training rows, its held-out rows."""
    x, y, tr, ho = digits.load_data()
    return {"x_train": x[tr], "y_train": y[tr], "x_test": x[ho], "y_test": y[ho]}


def mlp(hidden: tuple[int, ...], generator, emb: int = 64):
    """The bundled trajectory's MLP (64 -> hidden... -> emb -> 10, ReLU, nn.Linear's default init drawn from
    ``generator``) and its embedding module: the ``emb`` layer before its ReLU."""
    model = digits.build_model(generator, hidden=hidden, width=emb)
    return model, model[:-2]


def cnn(std: float, generator):
    """conv 1->16 (3x3) -> conv 16->32 (3x3) -> fc 2048->64 (embedding, before its ReLU) -> fc 64->10;
    every weight N(0, std²), biases 0 (the paper's initialization study varies the conv std)."""
    import torch

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = torch.nn.Conv2d(1, 16, 3, padding=1)
            self.conv2 = torch.nn.Conv2d(16, 32, 3, padding=1)
            self.fc1 = torch.nn.Linear(32 * 64, 64)
            self.fc2 = torch.nn.Linear(64, 10)

        def embed(self, x):
            h = torch.relu(self.conv1(x.view(-1, 1, 8, 8)))
            h = torch.relu(self.conv2(h))
            return self.fc1(h.flatten(1))

        def forward(self, x):
            return self.fc2(torch.relu(self.embed(x)))

    net = Net()
    with torch.no_grad():
        for p in net.parameters():
            if p.dim() > 1:
                p.normal_(0.0, std, generator=generator)
            else:
                p.zero_()
    return net, net.embed


def train(model, embed, data, labels, *, epochs: int, checkpoints, seed: int, lr: float = 1e-3,
          weight_decay: float = 0.0, batch_size: int = 64):
    """Adam on (x_train, labels); at each epoch in ``checkpoints`` (0 = before training) the held-out
    embeddings and accuracies. Returns {epoch: (z, stats)}."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    xt, yt = torch.from_numpy(data["x_train"]), torch.from_numpy(labels)
    ytrue = torch.from_numpy(data["y_train"])
    xh, yh = torch.from_numpy(data["x_test"]), torch.from_numpy(data["y_test"])
    out = {}
    for epoch in range(epochs + 1):
        if epoch in checkpoints:
            model.eval()
            with torch.no_grad():
                z = embed(xh).double().numpy()
                pred_tr = model(xt).argmax(1)
                stats = {"epoch": epoch, "train_accuracy": float((pred_tr == yt).float().mean()),
                         "train_accuracy_true_labels": float((pred_tr == ytrue).float().mean()),
                         "heldout_accuracy": float((model(xh).argmax(1) == yh).float().mean())}
            out[epoch] = (z, stats)
            model.train()
        if epoch == epochs:
            break
        perm = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt), batch_size):
            b = perm[i:i + batch_size]
            loss = torch.nn.functional.cross_entropy(model(xt[b]), yt[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return out


# ------------------------------------------------------------------------------------------- measuring


def measure(h5: Path, pattern: str, reference: Path, methods: list[str], policies: dict[str, object],
            **params) -> dict[str, dict[str, dict]]:
    """``dsecli.run_batch`` over ``h5:pattern`` once per σ policy; {policy: {input key: {method: value,
    "sigma": {method: σ}}}}.
    Methods without σ are measured under the first policy only and filed under every policy."""
    import dsecli
    from dsecli.methods import METHOD_OPTIONS

    out: dict[str, dict[str, dict]] = {}
    free = [m for m in methods if "sigma" not in METHOD_OPTIONS[m]]
    first = True
    for name, sigma in policies.items():
        todo = methods if first else [m for m in methods if m not in free]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            summary = dsecli.run_batch(f"{h5}:{pattern}", reference=str(reference), methods=todo, sigma=sigma,
                                       max_n=None, seed=SEED, keep_going=True, **params)
        for failure in summary.failures:
            # a collapsed model (every row the same point) is an outcome of the zoo, not a crash: its
            # measures are left out of the correlations, which report their n
            print(f"  {name}: {failure['input']}: {failure['error']}", flush=True)
        table: dict[str, dict] = {}
        for row in summary.rows:
            key = "/".join(row["input"].rsplit(":", 1)[1].strip("/").split("/")[:-1])
            entry = table.setdefault(key, {"sigma": {}})
            entry[row["method"]] = float(row["value"])
            if "sigma" in (row.get("params") or {}):
                entry["sigma"][row["method"]] = row["params"]["sigma"]
        if first:
            first_table = table
        else:
            for key, vals in first_table.items():
                for m in free:
                    if m in vals:
                        table.setdefault(key, {"sigma": {}})[m] = vals[m]
        out[name] = table
        first = False
    return out


def write_h5(path: Path, arrays: dict[str, np.ndarray]) -> None:
    import h5py

    with h5py.File(path, "w", track_order=True) as f:
        for key, z in arrays.items():
            f.create_dataset(f"{key}/z", data=z.astype(np.float32))


# ------------------------------------------------------------------------------------------- part 1


def part_trajectory(data, tmp: Path, seeds: list[int], epochs: tuple[int, ...]) -> dict:
    import torch

    y, x = tmp / "y_test.npy", tmp / "x_test.npy"
    np.save(y, data["y_test"])
    np.save(x, data["x_test"].astype(np.float64))
    shuffled_all = {s: data["y_train"][np.random.default_rng([SEED, 2, s]).permutation(N_TRAIN)] for s in seeds}
    runs: dict[str, dict] = {}
    for labels_kind in ("true", "shuffled"):
        for s in seeds:
            model, embed = mlp((256, 256, 256, 256), torch.Generator().manual_seed(s))
            labels = data["y_train"] if labels_kind == "true" else shuffled_all[s]
            ckpts = train(model, embed, data, labels, epochs=max(epochs), checkpoints=set(epochs), seed=1000 + s)
            run = f"{labels_kind}_s{s}"
            h5 = tmp / f"traj_{run}.h5"
            write_h5(h5, {f"epoch_{e:03d}": z for e, (z, _) in ckpts.items()})
            with_y = measure(h5, "/epoch_*/z", y, ["dse", "dsmi"], POLICIES)
            with_x = measure(h5, "/epoch_*/z", x, ["dsmi"], POLICIES, n_clusters=10)
            t_scan = {t: measure(h5, "/epoch_*/z", y, ["dse"], {"median": "median"}, t=t)["median"] for t in (2, 5)}
            series = {}
            for pol in POLICIES:
                series[pol] = {
                    "dse": [with_y[pol][f"epoch_{e:03d}"]["dse"] for e in epochs],
                    "dsmi_y": [with_y[pol][f"epoch_{e:03d}"]["dsmi"] for e in epochs],
                    "dsmi_x": [with_x[pol][f"epoch_{e:03d}"]["dsmi"] for e in epochs],
                    "sigma": [with_y[pol][f"epoch_{e:03d}"]["sigma"]["dse"] for e in epochs],
                }
            series["median"]["dse_t2"] = [t_scan[2][f"epoch_{e:03d}"]["dse"] for e in epochs]
            series["median"]["dse_t5"] = [t_scan[5][f"epoch_{e:03d}"]["dse"] for e in epochs]
            runs[run] = {"labels": labels_kind, "seed": s, "epochs": list(epochs), "series": series,
                         "heldout_accuracy": [ckpts[e][1]["heldout_accuracy"] for e in epochs],
                         "train_accuracy": [ckpts[e][1]["train_accuracy"] for e in epochs]}
            print(f"  trajectory {run}: held-out accuracy {runs[run]['heldout_accuracy'][-1]:.3f}", flush=True)
    return {"runs": runs, "epochs": list(epochs), "n_rows": int(len(data["y_test"])),
            "claims": trajectory_claims(runs, seeds)}


def _rise(values: list[float], epochs: list[int]) -> dict:
    """A series' change (last − first), its largest excursion from epoch 0, and its direction by the trend
    rule of ``dse plot`` (:func:`dsecli.trend_direction`: Spearman ρ with the epoch >= 0.5 rises)."""
    import dsecli

    v = np.asarray(values, dtype=float)
    trend = dsecli.trend_direction(epochs, v)
    return {"change": float(v[-1] - v[0]), "excursion": float(np.max(np.abs(v - v[0]))),
            "rho": trend.rho if trend.rho is not None else 0.0, "direction": trend.direction}


def trajectory_claims(runs: dict, seeds: list[int]) -> list[dict]:
    """Each claim per σ policy. *Rises*: last − first > RISE_BITS and Spearman ρ(epoch, value) >= 0.5 (the
    trend rule of ``dse plot``) in every seed. *Stays flat*: the shuffled run never moves further from its
    epoch-0 value than a quarter of the true-label run's largest excursion (same seed)."""
    claims = []
    rises = f"last − first > {RISE_BITS} bit and the trend rule says rises (Spearman ρ with the epoch >= 0.5), every seed"

    def per_seed(labels: str, pol: str, key: str) -> list[dict]:
        return [_rise(runs[f"{labels}_s{s}"]["series"][pol][key], runs[f"{labels}_s{s}"]["epochs"]) for s in seeds]

    def rising(trend: list[dict]) -> bool:
        return all(t["change"] > RISE_BITS and t["direction"] == "rises" for t in trend)

    def shown(trend: list[dict]) -> str:
        return "; ".join(f"{t['change']:+.2f} (ρ {t['rho']:+.2f})" for t in trend)

    for pol in POLICIES:
        for labels in ("true", "shuffled"):
            tr = per_seed(labels, pol, "dse")
            claims.append({"claim": f"DSE(Z) rises during training ({labels} labels)", "policy": pol,
                           "criterion": rises, "measured": shown(tr), "holds": rising(tr)})
        tr_true = per_seed("true", pol, "dsmi_y")
        claims.append({"claim": "DSMI(Z;Y) rises with true labels", "policy": pol,
                       "criterion": rises, "measured": shown(tr_true), "holds": rising(tr_true)})
        tr_sh = per_seed("shuffled", pol, "dsmi_y")
        claims.append({"claim": "DSMI(Z;Y) stays flat with shuffled labels", "policy": pol,
                       "criterion": "largest excursion from epoch 0 under a quarter of the true-label run's, every seed",
                       "measured": "; ".join(f"{a['excursion']:.2f} vs {b['excursion']:.2f}"
                                             for a, b in zip(tr_sh, tr_true)),
                       "holds": all(a["excursion"] < 0.25 * b["excursion"] for a, b in zip(tr_sh, tr_true))})
        tr_x = per_seed("true", pol, "dsmi_x")
        claims.append({"claim": "DSMI(Z;X) rises during training (true labels; the paper's MNIST trend)",
                       "policy": pol, "criterion": rises, "measured": shown(tr_x), "holds": rising(tr_x)})
    return claims


# ------------------------------------------------------------------------------------------- part 2


def part_init(data, tmp: Path, seeds: list[int], stds: tuple[float, ...], epochs: int) -> dict:
    import torch

    y = tmp / "y_test.npy"
    np.save(y, data["y_test"])
    arrays, models = {}, []
    for std in stds:
        for s in seeds:
            net, embed = cnn(std, torch.Generator().manual_seed(s))
            ck = train(net, embed, data, data["y_train"], epochs=epochs, checkpoints={0, 1, 5, epochs}, seed=1000 + s)
            key = f"std{std:g}_s{s}".replace(".", "p")
            arrays[key] = ck[0][0]
            models.append({"key": key, "std": std, "seed": s,
                           "accuracy": {str(e): ck[e][1]["heldout_accuracy"] for e in sorted(ck)}})
    h5 = tmp / "init.h5"
    write_h5(h5, arrays)
    values = measure(h5, "/*/z", y, ["dse"], POLICIES)
    n = len(data["y_test"])
    for m in models:
        m["initial_dse"] = {pol: values[pol][m["key"]]["dse"] for pol in POLICIES}
        m["initial_sigma"] = {pol: values[pol][m["key"]]["sigma"]["dse"] for pol in POLICIES}
    return {"models": models, "log2_n": math.log2(n), "epochs": epochs, "claims": init_claims(models, stds, n)}


def init_claims(models: list[dict], stds, n: int) -> list[dict]:
    import dsecli

    claims = []
    top = math.log2(n)
    for pol in POLICIES:
        small = [m["initial_dse"][pol] for m in models if m["std"] <= 0.03]
        large = [m["initial_dse"][pol] for m in models if m["std"] >= 0.05]
        claims.append({"claim": "initial DSE ≈ 0 for std <= 0.03 and ≈ log N for std >= 0.05", "policy": pol,
                       "criterion": f"every std <= 0.03 below 10% of log2 N = {top:.2f}, every std >= 0.05 above 90%",
                       "measured": {"std<=0.03 max": max(small), "std>=0.05 min": min(large)},
                       "holds": max(small) < 0.1 * top and min(large) > 0.9 * top})
        means = {std: float(np.mean([m["initial_dse"][pol] for m in models if m["std"] == std])) for std in stds}
        half = [std for std in stds if means[std] >= 0.5 * top]
        claims.append({"claim": "initial DSE goes from ≈ 0 to ≈ log N as the std grows (the threshold depends on "
                                "the architecture)", "policy": pol,
                       "criterion": "mean at the smallest std below 10% of log2 N, at the largest above 90%",
                       "measured": {"smallest": means[min(stds)], "largest": means[max(stds)],
                                    "half of log N first at std": half[0] if half else "never"},
                       "holds": means[min(stds)] < 0.1 * top and means[max(stds)] > 0.9 * top})
        for e in ("1", "5"):
            dse0 = [m["initial_dse"][pol] for m in models]
            acc = [m["accuracy"][e] for m in models]
            if np.ptp(dse0) == 0 or np.ptp(acc) == 0:
                claims.append({"claim": f"lower initial DSE trains better (held-out accuracy after {e} epoch(s))",
                               "policy": pol, "criterion": "Spearman ρ(initial DSE, accuracy) < 0, 95% CI below 0",
                               "measured": "constant", "holds": False})
                continue
            rc = dsecli.rank_correlation(dse0, acc, bootstrap=2000, confidence=0.95, seed=SEED)
            claims.append({"claim": f"lower initial DSE trains better (held-out accuracy after {e} epoch(s))",
                           "policy": pol, "criterion": "Spearman ρ(initial DSE, accuracy) < 0, 95% CI below 0",
                           "measured": {"spearman": rc.spearman, "ci": list(rc.spearman_ci)},
                           "holds": bool(rc.spearman_ci[1] < 0)})
    return claims


# ------------------------------------------------------------------------------------------- part 3

ZOO_METHODS = ["dse", "dsmi", "csmi", "ksg", "mine", "infonce", "rankme", "vne-cov", "renyi-gram"]
PAPER_IMAGENET = {"dsmi": {"spearman": 0.144, "pearson": 0.216}}


def zoo_configs(size: int) -> list[dict]:
    rng = np.random.default_rng([SEED, 3])
    widths, depths, epochs = (32, 64, 128, 256), (1, 2, 3), (5, 20, 60)
    decays, noises = (0.0, 1e-4, 1e-3, 3e-3), (0.0, 0.1, 0.3, 0.5)
    return [{"width": int(rng.choice(widths)), "depth": int(rng.choice(depths)), "epochs": int(rng.choice(epochs)),
             "weight_decay": float(rng.choice(decays)), "label_noise": float(rng.choice(noises)), "seed": i}
            for i in range(size)]


def part_zoo(data, tmp: Path, size: int) -> dict:
    import torch

    y, x = tmp / "y_test.npy", tmp / "x_test.npy"
    np.save(y, data["y_test"])
    np.save(x, data["x_test"].astype(np.float64))
    arrays, models = {}, []
    for i, cfg in enumerate(zoo_configs(size)):
        rng = np.random.default_rng([SEED, 4, i])
        labels = data["y_train"].copy()
        flip = rng.random(N_TRAIN) < cfg["label_noise"]
        labels[flip] = rng.integers(0, 10, int(flip.sum()))
        model, embed = mlp((cfg["width"],) * cfg["depth"], torch.Generator().manual_seed(100 + i))
        ck = train(model, embed, data, labels, epochs=cfg["epochs"], checkpoints={cfg["epochs"]},
                   seed=2000 + i, weight_decay=cfg["weight_decay"])
        z, stats = ck[cfg["epochs"]]
        key = f"m{i:02d}"
        arrays[key] = z
        models.append({"key": key, **cfg, "heldout_accuracy": stats["heldout_accuracy"],
                       "train_accuracy": stats["train_accuracy"],
                       "gap": stats["train_accuracy"] - stats["heldout_accuracy"]})
    h5 = tmp / "zoo.h5"
    write_h5(h5, arrays)
    t0 = time.perf_counter()
    with_y = measure(h5, "/*/z", y, ZOO_METHODS, POLICIES)
    with_x = measure(h5, "/*/z", x, ["dsmi"], POLICIES, n_clusters=10)
    for m in models:
        m["measures"] = {}
        for pol in POLICIES:
            got = with_y[pol].get(m["key"], {})
            vals = {k: got.get(k) for k in ZOO_METHODS}
            vals["dsmi_x"] = with_x[pol].get(m["key"], {}).get("dsmi")
            m["measures"][pol] = vals
        m["sigma"] = {pol: with_y[pol].get(m["key"], {}).get("sigma", {}).get("dse") for pol in POLICIES}
    print(f"  zoo measured in {time.perf_counter() - t0:.0f} s", flush=True)
    return {"models": models, "correlations": zoo_correlations(models)}


def zoo_correlations(models: list[dict]) -> list[dict]:
    import dsecli
    from dsecli.methods import METHOD_OPTIONS

    rows = []
    names = [*ZOO_METHODS, "dsmi_x"]
    for name in names:
        method = "dsmi" if name == "dsmi_x" else name
        pols = list(POLICIES) if "sigma" in METHOD_OPTIONS[method] else ["median"]
        for pol in pols:
            have = [m for m in models if m["measures"][pol][name] is not None]
            vals = [m["measures"][pol][name] for m in have]
            for outcome in ("heldout_accuracy", "gap"):
                rc = dsecli.rank_correlation(vals, [m[outcome] for m in have], bootstrap=2000, confidence=0.95,
                                             seed=SEED)
                rows.append({"measure": name, "policy": pol if len(pols) > 1 else "-", "outcome": outcome,
                             "n": rc.n, "spearman": rc.spearman, "spearman_ci": list(rc.spearman_ci),
                             "kendall": rc.kendall, "kendall_ci": list(rc.kendall_ci)})
    return rows


# ------------------------------------------------------------------------------------------- report


def _fmt(v) -> str:
    if isinstance(v, list):
        return ", ".join(f"{x:+.2f}" for x in v)
    if isinstance(v, dict):
        return "; ".join(f"{k} {_fmt(x)}" for k, x in v.items())
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def write_markdown(result: dict, path: Path) -> None:
    lines = ["# Training on digits: what DSE and DSMI say, under three σ policies", "",
             f"Generated by `python benchmarks/training_study.py` ({result['meta']['mode']} mode, seed {SEED}, "
             f"{result['meta']['minutes']:.1f} min on {result['meta']['machine']}). Do not edit by hand.", "",
             "σ policies: " + "; ".join(f"**{k}** = {v}" for k, v in POLICY_TEXT.items()) + ".", ""]
    claims = [c for part in ("trajectory", "init") if part in result for c in result[part]["claims"]]
    if claims:
        lines += ["## The paper's claims", "",
                  "A claim holds under a policy when its criterion is met (in every seed, where there are seeds).", "",
                  "| claim | " + " | ".join(POLICIES) + " | criterion |", "|---|" + "---|" * len(POLICIES) + "---|"]
        by_claim: dict[str, dict] = {}
        for c in claims:
            by_claim.setdefault(c["claim"], {"criterion": c["criterion"]})[c["policy"]] = c
        for claim, per in by_claim.items():
            cells = [("holds" if per[p]["holds"] else "does not hold") + f" ({_fmt(per[p]['measured'])})"
                     for p in POLICIES]
            lines.append(f"| {claim} | " + " | ".join(cells) + f" | {per['criterion']} |")
        lines.append("")
    if "trajectory" in result:
        tr = result["trajectory"]
        lines += ["## Trajectories", "",
                  f"Held-out rows: {tr['n_rows']} (ceiling log2 N = {math.log2(tr['n_rows']):.2f} bits). "
                  "Mean over seeds at each epoch; bits.", "",
                  "| run | policy | measure | " + " | ".join(f"ep {e}" for e in tr["epochs"]) + " |",
                  "|---|---|---|" + "---|" * len(tr["epochs"])]
        for labels in ("true", "shuffled"):
            runs = [r for r in tr["runs"].values() if r["labels"] == labels]
            for pol in POLICIES:
                for key in ("dse", "dsmi_y", "dsmi_x", "sigma", "dse_t2", "dse_t5"):
                    if key not in runs[0]["series"][pol]:
                        continue
                    mean = np.mean([r["series"][pol][key] for r in runs], axis=0)
                    lines.append(f"| {labels} | {pol} | {key} | " + " | ".join(f"{v:.3g}" for v in mean) + " |")
            acc = np.mean([r["heldout_accuracy"] for r in runs], axis=0)
            lines.append(f"| {labels} | - | held-out accuracy | " + " | ".join(f"{v:.3f}" for v in acc) + " |")
        lines.append("")
    if "init" in result:
        ini = result["init"]
        lines += ["## Initialization study", "",
                  f"CNN, weights N(0, std²), {ini['epochs']} epochs; initial DSE in bits (log2 N = {ini['log2_n']:.2f}); "
                  "mean over seeds.", "",
                  "| std | DSE fixed | DSE median | DSE pooled | σ median | acc ep 1 | acc ep 5 | acc final |",
                  "|---|---|---|---|---|---|---|---|"]
        for std in sorted({m["std"] for m in ini["models"]}):
            ms = [m for m in ini["models"] if m["std"] == std]
            d = {p: np.mean([m["initial_dse"][p] for m in ms]) for p in POLICIES}
            sig = np.mean([m["initial_sigma"]["median"] for m in ms])
            acc = {e: np.mean([m["accuracy"][e] for m in ms]) for e in ("1", "5", str(ini["epochs"]))}
            lines.append(f"| {std:g} | {d['fixed']:.2f} | {d['median']:.2f} | {d['pooled']:.2f} | {sig:.3g} | "
                         f"{acc['1']:.3f} | {acc['5']:.3f} | {acc[str(ini['epochs'])]:.3f} |")
        lines.append("")
    if "zoo" in result:
        zoo = result["zoo"]
        accs = [m["heldout_accuracy"] for m in zoo["models"]]
        gaps = [m["gap"] for m in zoo["models"]]
        lines += ["## Model zoo", "",
                  f"{len(zoo['models'])} MLPs; held-out accuracy {min(accs):.3f} – {max(accs):.3f}, "
                  f"generalization gap {min(gaps):.3f} – {max(gaps):.3f}. Rank correlations over models with 95% "
                  "percentile bootstrap intervals (2,000 resamples of models). Paper (962 ImageNet models): "
                  "DSMI(Z;Y) Spearman 0.144 with top-1 accuracy, DSE not correlated.", "",
                  "| measure | σ policy | Spearman vs accuracy | Kendall vs accuracy | Spearman vs gap | Kendall vs gap |",
                  "|---|---|---|---|---|---|"]
        pairs: dict[tuple, dict] = {}
        for r in zoo["correlations"]:
            pairs.setdefault((r["measure"], r["policy"]), {})[r["outcome"]] = r

        def cell(r, k):
            lo, hi = r[f"{k}_ci"]
            return f"{r[k]:+.2f} [{lo:+.2f}, {hi:+.2f}]"

        for (measure_name, pol), per in pairs.items():
            a, g = per["heldout_accuracy"], per["gap"]
            lines.append(f"| {measure_name} | {pol} | {cell(a, 'spearman')} | {cell(a, 'kendall')} | "
                         f"{cell(g, 'spearman')} | {cell(g, 'kendall')} |")
        lines.append("")
    lines += ["Figures: `training_curves.png`, `training_init.png`, `training_zoo.png`.", ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def write_figures(result: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if "trajectory" in result:
        tr = result["trajectory"]
        keys = (("dse", "DSE(Z)"), ("dsmi_y", "DSMI(Z;Y)"), ("dsmi_x", "DSMI(Z;X)"))
        fig, axes = plt.subplots(len(keys), len(POLICIES), figsize=(12, 9), sharex=True)
        x = np.asarray(tr["epochs"], dtype=float) + 1
        for j, pol in enumerate(POLICIES):
            for i, (key, title) in enumerate(keys):
                ax = axes[i, j]
                for labels, color in (("true", "tab:blue"), ("shuffled", "tab:orange")):
                    vals = np.array([r["series"][pol][key] for r in tr["runs"].values() if r["labels"] == labels])
                    ax.plot(x, vals.mean(0), color=color, label=f"{labels} labels")
                    ax.fill_between(x, vals.min(0), vals.max(0), color=color, alpha=0.2)
                ax.set_xscale("log")
                ax.set_title(f"{title}, {POLICY_TEXT[pol]}", fontsize=9)
                if i == len(keys) - 1:
                    ax.set_xlabel("epoch + 1")
                if j == 0:
                    ax.set_ylabel("bits")
        axes[0, 0].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "training_curves.png", dpi=110)
        plt.close(fig)
    if "init" in result:
        ini = result["init"]
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        stds = sorted({m["std"] for m in ini["models"]})
        for pol, style in zip(POLICIES, ("o-", "s--", "^:")):
            axes[0].plot(stds, [np.mean([m["initial_dse"][pol] for m in ini["models"] if m["std"] == s])
                                for s in stds], style, label=POLICY_TEXT[pol])
        axes[0].axhline(ini["log2_n"], color="0.5", lw=0.8, ls="-.", label="log2 N")
        axes[0].set_xscale("log")
        axes[0].set_xlabel("initial weight std")
        axes[0].set_ylabel("initial DSE (bits)")
        axes[0].legend(fontsize=8)
        for e, style in (("1", "o-"), ("5", "s--"), (str(ini["epochs"]), "^:")):
            axes[1].plot(stds, [np.mean([m["accuracy"][e] for m in ini["models"] if m["std"] == s]) for s in stds],
                         style, label=f"epoch {e}")
        axes[1].set_xscale("log")
        axes[1].set_xlabel("initial weight std")
        axes[1].set_ylabel("held-out accuracy")
        axes[1].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "training_init.png", dpi=110)
        plt.close(fig)
    if "zoo" in result:
        fig, axes = plt.subplots(2, 1, figsize=(11, 8), sharex=True)
        for ax, outcome, text in zip(axes, ("heldout_accuracy", "gap"), ("held-out accuracy", "generalization gap")):
            rows = [r for r in result["zoo"]["correlations"] if r["outcome"] == outcome]
            labels = [r["measure"] + (f" ({r['policy']})" if r["policy"] != "-" else "") for r in rows]
            rho = np.array([r["spearman"] for r in rows])
            lo = np.array([r["spearman_ci"][0] for r in rows])
            hi = np.array([r["spearman_ci"][1] for r in rows])
            pos = np.arange(len(rows))
            ax.errorbar(pos, rho, yerr=[rho - lo, hi - rho], fmt="o", color="tab:blue", capsize=3,
                        label=f"digits zoo ({rows[0]['n']} models): Spearman ρ with {text}, 95% CI")
            if outcome == "heldout_accuracy":
                ax.scatter([labels.index("dsmi (fixed)")], [PAPER_IMAGENET["dsmi"]["spearman"]], marker="*", s=150,
                           color="tab:red", zorder=3,
                           label="paper, 962 ImageNet models, σ = 10: DSMI(Z;Y) ρ = 0.144 with top-1 (DSE: none)")
            ax.axhline(0, color="0.5", lw=0.8)
            ax.set_ylabel("Spearman ρ")
            ax.set_ylim(-1, 1)
            ax.legend(fontsize=8, loc="lower left")
            ax.set_xticks(pos)
            ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "training_zoo.png", dpi=110)
        plt.close(fig)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "docs" / "paper"))
    p.add_argument("--quick", action="store_true", help="a smoke run: 1 seed, few epochs, 8 models")
    p.add_argument("--parts", default="trajectory,init,zoo")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    parts = [s.strip() for s in args.parts.split(",") if s.strip()]
    start = time.perf_counter()
    data = load_data()
    seeds = [0] if args.quick else [0, 1, 2]
    result: dict = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if "trajectory" in parts:
            t0 = time.perf_counter()
            result["trajectory"] = part_trajectory(data, tmp, seeds, EPOCHS[:5] if args.quick else EPOCHS)
            print(f"trajectory: {time.perf_counter() - t0:.0f} s", flush=True)
        if "init" in parts:
            t0 = time.perf_counter()
            result["init"] = part_init(data, tmp, seeds, INIT_STDS, 5 if args.quick else INIT_EPOCHS)
            print(f"init: {time.perf_counter() - t0:.0f} s", flush=True)
        if "zoo" in parts:
            t0 = time.perf_counter()
            result["zoo"] = part_zoo(data, tmp, 8 if args.quick else ZOO_SIZE)
            print(f"zoo: {time.perf_counter() - t0:.0f} s", flush=True)
    import dsecli

    result["meta"] = {"mode": "quick" if args.quick else "full", "minutes": (time.perf_counter() - start) / 60,
                      "machine": f"{os.cpu_count()} CPU cores, {platform.machine()}",
                      "dsecli": dsecli.__version__, "torch": str(torch.__version__), "seed": SEED,
                      "policies": {k: str(v) for k, v in POLICIES.items()}}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "training.json").write_text(json.dumps(result, indent=1, default=float) + "\n", encoding="utf-8")
    write_markdown(result, out / "training.md")
    write_figures(result, out)
    print(f"wrote {out}/training.md, training.json and figures in {result['meta']['minutes']:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
