"""Train a small MLP on scikit-learn's digits and save penultimate-layer embeddings over training.

Writes ``digits_trajectory.h5`` next to this script (or the path given as the first argument):
embeddings of a fixed evaluation set at epochs 0, 1, 2, 4, ..., 256 for two runs that differ only
in their training labels:

- ``true``: the real digit labels (the network learns the classes);
- ``shuffled``: the same labels randomly permuted over the training rows (the network can only
  memorise them).

Both runs start from the same initial weights and see the same mini-batch order, so epoch 0 is
identical in both and every difference comes from the labels. Everything random draws from local
generators seeded here; torch runs single-threaded with deterministic algorithms, so a rerun on
the same platform and torch version writes the same numbers.

Usage::

    python sample_data/make_digits_trajectory.py [OUTPUT.h5]

Layout of the file (see sample_data/README.md)::

    /labels                          int64 (N_eval,)      true digit of each evaluation row
    /eval_index                      int64 (N_eval,)      row numbers in sklearn.datasets.load_digits()
    /shuffled_labels                 int64 (N_eval,)      the labels the shuffled run was trained on
    /true/epoch_000/embeddings       float32 (N_eval, 64) penultimate layer, before its ReLU
    ...
    /shuffled/epoch_256/embeddings
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

SCRIPT_VERSION = 1
SEED = 0
N_TRAIN = 1000  # training rows; the evaluation set is these rows (the memorised ones)
HIDDEN = (256, 256, 256, 256)
WIDTH = 64  # penultimate layer: the embeddings
EPOCHS = (0, 1, 2, 4, 8, 16, 32, 64, 128, 256)
BATCH_SIZE = 64
LEARNING_RATE = 1e-3
N_CLASSES = 10


def load_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Digits scaled to [0, 1]; a seeded split into training rows and held-out rows."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    perm = np.random.default_rng(SEED).permutation(len(x))
    return x, y.astype(np.int64), np.sort(perm[:N_TRAIN]), np.sort(perm[N_TRAIN:])


def build_model(generator, hidden: tuple[int, ...] = HIDDEN, width: int = WIDTH):
    """MLP 64 -> hidden (256 x4) -> width (64) -> 10 with ReLU; PyTorch's default uniform init, drawn from
    ``generator`` (benchmarks/training_study.py builds its models here too)."""
    import torch

    sizes = (64, *hidden, width)
    layers: list[torch.nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    layers.append(torch.nn.Linear(width, N_CLASSES))
    model = torch.nn.Sequential(*layers)
    with torch.no_grad():
        for m in model:
            if isinstance(m, torch.nn.Linear):
                # kaiming_uniform(a=sqrt(5)) as nn.Linear does, which reduces to U(-1/sqrt(fan_in), 1/sqrt(fan_in))
                bound = 1.0 / np.sqrt(m.in_features)
                m.weight.uniform_(-bound, bound, generator=generator)
                m.bias.uniform_(-bound, bound, generator=generator)
    return model


def train_run(x, y_train_labels, train_idx, eval_idx, heldout_idx, y_true):
    """Train on (x[train_idx], y_train_labels); return {epoch: (embeddings, stats)}."""
    import torch

    init_gen = torch.Generator().manual_seed(SEED)
    batch_gen = torch.Generator().manual_seed(SEED + 1)
    model = build_model(init_gen)
    opt = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    xt = torch.from_numpy(x[train_idx])
    yt = torch.from_numpy(y_train_labels)
    xe = torch.from_numpy(x[eval_idx])
    xh = torch.from_numpy(x[heldout_idx])
    yh = torch.from_numpy(y_true[heldout_idx])
    # pre-activation output of the 64-unit layer: after its ReLU many units are zero on every
    # row (constant columns), which adds nothing but warnings
    embed = model[:-2]
    out = {}
    last_loss = float("nan")
    for epoch in range(max(EPOCHS) + 1):
        if epoch in EPOCHS:
            model.eval()
            with torch.no_grad():
                z = embed(xe).numpy().astype(np.float32)
                train_acc = float((model(xt).argmax(1) == yt).float().mean())
                heldout_acc = float((model(xh).argmax(1) == yh).float().mean())
            out[epoch] = (z, {"epoch": epoch, "train_accuracy": train_acc, "heldout_accuracy": heldout_acc,
                              "train_loss_last_epoch": last_loss})
            model.train()
        if epoch == max(EPOCHS):
            break
        perm = torch.randperm(len(train_idx), generator=batch_gen)
        total = 0.0
        for i in range(0, len(train_idx), BATCH_SIZE):
            b = perm[i : i + BATCH_SIZE]
            loss = torch.nn.functional.cross_entropy(model(xt[b]), yt[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(b)
        last_loss = total / len(train_idx)
    return out


def main(argv: list[str]) -> int:
    import h5py
    import torch

    output = Path(argv[0]) if argv else Path(__file__).with_name("digits_trajectory.h5")
    start = time.perf_counter()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    x, y, train_idx, heldout_idx = load_data()
    eval_idx = train_idx
    y_train = y[train_idx]
    shuffled = y_train[np.random.default_rng(SEED + 2).permutation(len(y_train))]
    runs = {
        "true": train_run(x, y_train, train_idx, eval_idx, heldout_idx, y),
        "shuffled": train_run(x, shuffled, train_idx, eval_idx, heldout_idx, y),
    }
    tmp = output.with_name(output.name + ".tmp")
    with h5py.File(tmp, "w", track_order=True) as f:
        f.attrs["description"] = (
            "Penultimate-layer embeddings of an MLP trained on sklearn digits, with true and with shuffled labels"
        )
        f.attrs["script"] = "sample_data/make_digits_trajectory.py"
        f.attrs["script_version"] = SCRIPT_VERSION
        f.attrs["seed"] = SEED
        f.attrs["torch_version"] = str(torch.__version__)
        f.attrs["architecture"] = f"64-{'-'.join(map(str, HIDDEN))}-{WIDTH}-{N_CLASSES} MLP, ReLU; embeddings = the {WIDTH}-unit layer before its ReLU"
        f.attrs["optimizer"] = f"Adam lr={LEARNING_RATE}, batch {BATCH_SIZE}, cross-entropy"
        f.attrs["eval_set"] = f"the {N_TRAIN} training rows (the rows the shuffled run memorises)"
        f.attrs["epochs"] = np.asarray(EPOCHS, dtype=np.int64)
        f.attrs["recommended_sigma"] = "median"
        f.create_dataset("labels", data=y[eval_idx], compression="gzip", compression_opts=9)
        f.create_dataset("eval_index", data=eval_idx.astype(np.int64), compression="gzip", compression_opts=9)
        f.create_dataset("shuffled_labels", data=shuffled, compression="gzip", compression_opts=9)
        for regime, checkpoints in runs.items():
            grp = f.create_group(regime, track_order=True)
            grp.attrs["labels_used_for_training"] = "true digit labels" if regime == "true" else "shuffled_labels"
            for epoch, (z, stats) in checkpoints.items():
                eg = grp.create_group(f"epoch_{epoch:03d}")
                for k, v in stats.items():
                    eg.attrs[k] = v
                ds = eg.create_dataset("embeddings", data=z, compression="gzip", compression_opts=9, shuffle=True)
                ds.attrs["epoch"] = epoch
    tmp.replace(output)
    elapsed = time.perf_counter() - start
    for regime, checkpoints in runs.items():
        last = checkpoints[max(EPOCHS)][1]
        print(f"{regime:9s} epoch {max(EPOCHS)}: train accuracy {last['train_accuracy']:.3f}, "
              f"held-out accuracy {last['heldout_accuracy']:.3f}")
    print(f"wrote {output} ({output.stat().st_size / 1e6:.2f} MB) in {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
