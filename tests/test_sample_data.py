"""The committed digits training trajectory: layout, provenance, and the DSMI finding it illustrates."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data" / "digits_trajectory.h5"
SCRIPT = ROOT / "sample_data" / "make_digits_trajectory.py"
EPOCHS = [0, 1, 2, 4, 8, 16, 32, 64, 128, 256]

h5py = pytest.importorskip("h5py")
pytestmark = pytest.mark.skipif(not SAMPLE.exists(), reason=f"{SAMPLE} is missing; run {SCRIPT}")


def test_layout_shapes_and_attributes() -> None:
    assert SAMPLE.stat().st_size <= 10 * 2**20
    with h5py.File(SAMPLE, "r") as f:
        labels = f["labels"][()]
        assert labels.dtype == np.int64 and labels.shape == (1000,)
        assert sorted(np.unique(labels).tolist()) == list(range(10))
        shuffled = f["shuffled_labels"][()]
        # a permutation of the same labels: same class sizes, mostly different assignments
        np.testing.assert_array_equal(np.sort(shuffled), np.sort(labels))
        assert (shuffled == labels).mean() < 0.2
        from sklearn.datasets import load_digits

        np.testing.assert_array_equal(load_digits().target[f["eval_index"][()]], labels)
        assert list(f.attrs["epochs"]) == EPOCHS and f.attrs["recommended_sigma"] == "median"
        for regime in ("true", "shuffled"):
            assert sorted(f[regime]) == [f"epoch_{e:03d}" for e in EPOCHS]
            for e in EPOCHS:
                ds = f[f"{regime}/epoch_{e:03d}/embeddings"]
                assert ds.shape == (1000, 64) and ds.dtype == np.float32 and ds.compression == "gzip"
                assert int(ds.attrs["epoch"]) == e == int(ds.parent.attrs["epoch"])
                assert np.isfinite(ds[()]).all()
        # same initial weights in both runs; both fit their training labels in the end
        np.testing.assert_array_equal(f["true/epoch_000/embeddings"][()], f["shuffled/epoch_000/embeddings"][()])
        last_true, last_shuf = f["true/epoch_256"].attrs, f["shuffled/epoch_256"].attrs
        assert last_true["train_accuracy"] == 1.0 and last_shuf["train_accuracy"] == 1.0
        assert last_true["heldout_accuracy"] > 0.9 and last_shuf["heldout_accuracy"] < 0.2


def test_dse_batch_shows_dsmi_rising_with_true_labels_and_not_with_shuffled(tmp_path) -> None:
    from dsecli.batch.run import run_batch

    summary = run_batch(
        [f"{SAMPLE}:/true/epoch_000/embeddings", f"{SAMPLE}:/true/epoch_256/embeddings",
         f"{SAMPLE}:/shuffled/epoch_256/embeddings"],
        reference=f"{SAMPLE}:/labels", methods="dsmi", sigma="median", device="cpu", output=tmp_path / "r.jsonl",
        threads=1,  # small eigenproblems: one thread avoids OpenMP oversubscription on a busy machine
    )
    value = {r["dataset"]: r["value"] for r in summary.rows}
    first = value["/true/epoch_000/embeddings"]
    true_last = value["/true/epoch_256/embeddings"]
    shuffled_last = value["/shuffled/epoch_256/embeddings"]
    assert true_last > first + 0.5  # learning the classes raises DSMI(Z; Y)
    assert true_last > 1.5 and shuffled_last < 0.35  # memorising shuffled labels leaves little
    assert shuffled_last < 0.2 * true_last
    # the figures quoted in sample_data/README.md
    assert (round(first, 3), round(true_last, 3), round(shuffled_last, 3)) == (1.085, 2.201, 0.212)


@pytest.mark.slow
def test_script_regenerates_the_committed_file(tmp_path) -> None:
    out = tmp_path / "again.h5"
    subprocess.run([sys.executable, str(SCRIPT), str(out)], check=True, capture_output=True)
    with h5py.File(SAMPLE, "r") as a, h5py.File(out, "r") as b:
        names: list[str] = []
        a.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        for name in names:
            np.testing.assert_allclose(b[name][()], a[name][()], rtol=1e-5, atol=1e-6, err_msg=name)
