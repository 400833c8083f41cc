"""Tests aimed at one-line slips: each pins a boundary, a closed form or a field that a small edit
of the library (``<`` for ``<=``, N for D, a dropped term, a wrong row number) would break."""

from __future__ import annotations

import math
import os
import stat
import sys

import numpy as np
import pytest

from dsecli.errors import InputError
from dsecli.report.writing import output_target, write_atomic

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes and umask")


# --- 1. the mode of a newly written output file --------------------------------------------------

@posix_only
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_new_output_file_gets_0666_less_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        out = tmp_path / "new.json"
        write_atomic(out, "{}\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o666 & ~umask
    assert out.read_text() == "{}\n"


@posix_only
@pytest.mark.parametrize("mode", [0o640, 0o604, 0o755])
def test_replaced_output_file_keeps_its_mode(tmp_path, mode):
    out = tmp_path / "old.json"
    out.write_text("old\n")
    os.chmod(out, mode)
    old = os.umask(0o077)
    try:
        write_atomic(out, "new\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(out).st_mode) == mode
    assert out.read_text() == "new\n"


# --- 2. the file-name length boundary -------------------------------------------------------------

def _name_max(directory) -> int:
    try:
        limit = os.pathconf(directory, "PC_NAME_MAX")
    except (AttributeError, OSError, ValueError):
        pytest.skip("pathconf(PC_NAME_MAX) is not available here")
    if not limit or limit > 4096:
        pytest.skip(f"no usable NAME_MAX here ({limit})")
    return limit


def test_output_name_of_exactly_name_max_bytes_is_written(tmp_path):
    limit = _name_max(tmp_path)
    name = "a" * (limit - 5) + ".json"
    assert len(os.fsencode(name)) == limit
    out = tmp_path / name
    try:  # some file systems (eCryptfs) report a NAME_MAX longer than the names they take
        out.write_text("")
        out.unlink()
    except OSError:
        pytest.skip(f"this file system does not take a {limit}-byte name although pathconf says so")
    assert output_target(out).kind == "new"
    write_atomic(out, "{}\n")
    assert out.read_text() == "{}\n"


def test_output_name_one_byte_over_name_max_is_refused_with_the_limit(tmp_path):
    limit = _name_max(tmp_path)
    name = "a" * (limit - 4) + ".json"
    assert len(os.fsencode(name)) == limit + 1
    with pytest.raises(InputError, match=rf"is {limit + 1} bytes long; this file system allows at most {limit}\b"):
        output_target(tmp_path / name)
    with pytest.raises(InputError, match=rf"at most {limit}\b"):
        write_atomic(tmp_path / name, "{}\n")
    assert list(tmp_path.iterdir()) == []


def test_output_name_length_counts_bytes_not_characters(tmp_path):
    limit = _name_max(tmp_path)
    if sys.getfilesystemencoding().lower().replace("-", "") != "utf8":
        pytest.skip("file names are not UTF-8 here")
    # "é" is two bytes in UTF-8: limit // 2 + 1 of them is over the limit, although fewer characters
    name = "é" * (limit // 2 + 1)
    assert len(name) <= limit < len(os.fsencode(name))
    with pytest.raises(InputError, match=r"bytes long"):
        output_target(tmp_path / name)


# --- 3. ceilings against closed forms -------------------------------------------------------------

def _equal_singular_values(n: int, d: int, r: int, seed: int = 0) -> np.ndarray:
    """An (n, d) matrix of rank exactly r with r equal singular values (3.0)."""
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.normal(size=(n, r)))
    v, _ = np.linalg.qr(rng.normal(size=(d, r)))
    return 3.0 * u @ v.T


@pytest.mark.parametrize(("n", "d", "r"), [(6, 20, 3), (30, 7, 7), (25, 9, 2)])
def test_rankme_value_and_ceiling_log_min_n_d(n, d, r):
    from dsecli import rankme_entropy

    got = rankme_entropy(_equal_singular_values(n, d, r), eps=0.0, base=2, device="cpu")
    assert got.value == pytest.approx(math.log2(r), abs=1e-9)
    assert got.extra["effective_rank"] == pytest.approx(r, rel=1e-9)
    assert got.extra["ceiling_rank"] == pytest.approx(math.log2(min(n, d)))
    assert got.extra["ceiling"] == pytest.approx(math.log2(min(n, d)))
    assert got.extra["ceiling_nats"] == pytest.approx(math.log(min(n, d)))
    assert got.extra["value_nats"] == pytest.approx(math.log(r), abs=1e-9)
    assert got.extra["fraction_of_ceiling"] == pytest.approx(math.log(r) / math.log(min(n, d)), abs=1e-9)


def test_renyi_min_entropy_of_unequal_clusters_and_its_ceiling_log_n():
    from dsecli import renyi_gram_entropy

    # two far-apart groups of 6 and 2 identical-up-to-1e-9 rows in 3 dimensions: the Gram matrix is
    # block-constant, its trace-normalised spectrum is (6/8, 2/8, 0, ...); min-entropy -log max p = log(8/6)
    rng = np.random.default_rng(4)
    x = np.vstack([np.zeros((6, 3)), np.full((2, 3), 100.0)]) + 1e-9 * rng.normal(size=(8, 3))
    for alpha in ("inf", math.inf):
        got = renyi_gram_entropy(x, alpha=alpha, sigma=1.0, base=2, device="cpu")
        assert got.params["alpha"] == math.inf
        assert got.value == pytest.approx(math.log2(8 / 6), abs=1e-6)
        assert got.extra["value_nats"] == pytest.approx(math.log(8 / 6), abs=1e-6)
        assert got.extra["ceiling_n"] == pytest.approx(math.log2(8))  # N = 8 rows, not D = 3
        assert got.extra["ceiling_nats"] == pytest.approx(math.log(8))
    # Shannon (alpha = 1) of the same spectrum differs: the inf branch is really taken
    shannon = renyi_gram_entropy(x, alpha=1.0, sigma=1.0, base=math.e, device="cpu").value
    assert shannon == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)), abs=1e-6)


def test_renyi_min_entropy_far_rows_reach_log_n_with_n_not_d():
    from dsecli import renyi_gram_entropy

    x = 100.0 * np.eye(12)[:, :]  # 12 rows
    x = np.hstack([x, np.zeros((12, 3))])  # D = 15 != N
    got = renyi_gram_entropy(x, alpha="inf", sigma=1.0, base=math.e, device="cpu")
    assert got.value == pytest.approx(math.log(12), abs=1e-9)
    assert got.extra["ceiling_n"] == pytest.approx(math.log(12))


_TINY_NCE = {"epochs": 1, "batch_size": 16, "hidden_units": 4, "hidden_layers": 1, "embed_dim": 2,
             "device": "cpu", "patience": 0}


def test_infonce_with_labels_ceiling_is_h_of_y_when_below_log_k():
    import warnings

    from dsecli import infonce_mutual_information

    # 4 equal classes of 20 rows: H(Y) = log 4 = 2 bits < log K (K = 16 held-out rows)
    rng = np.random.default_rng(5)
    y = np.repeat(np.arange(4), 20)
    x = rng.normal(size=(80, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = infonce_mutual_information(x, y, base=2, **_TINY_NCE)
    assert got.extra["ceiling"] == pytest.approx(2.0)
    assert got.extra["ceiling_nats"] == pytest.approx(math.log(4))
    assert "H(Y)" in got.extra["ceiling_rule"]


def test_infonce_with_labels_ceiling_is_log_k_when_below_h_of_y():
    import warnings

    from dsecli import infonce_mutual_information

    # 18 equal classes of 5 rows: H(Y) = log 18; 18 held-out rows in groups of at most 4, sizes
    # 4, 4, 4, 3, 3: K is the smallest group, 3, and log K < H(Y)
    rng = np.random.default_rng(6)
    y = np.repeat(np.arange(18), 5)
    x = rng.normal(size=(90, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = infonce_mutual_information(x, y, base=2, eval_batch=4, **_TINY_NCE)
    assert got.params["eval_batch"] == 3
    assert got.extra["ceiling"] == pytest.approx(math.log2(3))
    assert got.extra["ceiling_nats"] == pytest.approx(math.log(3))
    assert got.extra["ceiling_rule"].startswith("log K")


# --- 4. row numbers in messages: after a subsample, after dropped rows, across Parquet row groups ------

def _sample_holding(n_total: int, max_n: int, row: int, avoid=()) -> tuple[int, np.ndarray]:
    """A seed whose subsample holds ``row`` at a position other than ``row``, and none of ``avoid``."""
    from dsecli.inputs.sampling import choose_rows

    for seed in range(200):
        idx = choose_rows(n_total, max_n, seed=seed)
        pos = np.flatnonzero(idx == row)
        if pos.size and pos[0] != row and pos[0] != row - 1 and not set(avoid) & set(idx.tolist()):
            return seed, idx
    raise AssertionError("no seed found")  # pragma: no cover


def test_nan_row_is_numbered_as_in_the_input_after_a_subsample():
    from dsecli.inputs.prepare import prepare_rows

    x = np.random.default_rng(7).normal(size=(60, 3))
    x[41, 1] = np.nan
    seed, _ = _sample_holding(60, 20, 41)
    with pytest.raises(InputError, match=r"1 of the 20 sampled rows \(of 60\), first at row 41:"):
        prepare_rows(x, max_n=20, seed=seed)
    with pytest.raises(InputError, match=r"in 1 of 60 rows, first at row 41:"):
        prepare_rows(x, max_n=0, seed=0)


def test_dropped_rows_and_later_findings_are_numbered_as_in_the_input():
    from dsecli.errors import DseWarning
    from dsecli.inputs.prepare import prepare_rows

    x = np.random.default_rng(8).normal(size=(12, 3))
    x[2, 0] = np.inf
    x[9] = x[6]  # after dropping row 2, positions shift by one: a slip would name rows 8 and 5
    with pytest.warns(DseWarning) as record:
        rows = prepare_rows(x, max_n=0, seed=0, drop_nonfinite=True)
    text = "\n".join(str(w.message) for w in record)
    assert "(--drop-nonfinite): rows 2; 11 rows remain" in text
    assert "e.g. row 9 repeats row 6" in text
    assert rows.n_used == 11


def test_dropped_rows_after_a_subsample_are_numbered_as_in_the_input():
    from dsecli.errors import DseWarning
    from dsecli.inputs.prepare import prepare_rows

    x = np.random.default_rng(9).normal(size=(60, 3))
    x[41, 1] = np.nan
    seed, _ = _sample_holding(60, 20, 41)
    with pytest.warns(DseWarning, match=r"\(--drop-nonfinite\): rows 41; 19 rows remain"):
        prepare_rows(x, max_n=20, seed=seed, drop_nonfinite=True)


def test_reference_nan_is_numbered_as_in_the_input_after_a_subsample():
    from dsecli.inputs.prepare import prepare_reference, prepare_rows

    x = np.random.default_rng(10).normal(size=(60, 3))
    y = np.arange(60, dtype=np.float64)
    y[41] = np.nan
    seed, _ = _sample_holding(60, 20, 41)
    rows = prepare_rows(x, max_n=20, seed=seed)
    with pytest.raises(InputError, match=r"`reference` must be finite; got NaN or Inf in 1 of 20 rows, first at row 41:"):
        prepare_reference(y, rows)


def _parquet(tmp_path, name, column):
    pa = pytest.importorskip("pyarrow")
    path = tmp_path / name
    table = pa.table({"c": pa.array(column)})
    if name.endswith(".feather"):
        feather = pytest.importorskip("pyarrow.feather")
        feather.write_feather(table, str(path), chunksize=10)  # record batches start at 0, 10, 20, 30
    else:
        pq = pytest.importorskip("pyarrow.parquet")
        pq.write_table(table, path, row_group_size=10)  # row groups start at 0, 10, 20, 30
    return path


@pytest.mark.parametrize("ext", [".parquet", ".feather"])
@pytest.mark.parametrize("rows", [None, [3, 21, 23, 30], [23]])
def test_parquet_null_is_numbered_as_in_the_file_across_row_groups(tmp_path, rows, ext):
    from dsecli.inputs.readers import open_array

    vals: list = [float(i) for i in range(35)]
    vals[23] = None
    path = _parquet(tmp_path, "gap" + ext, vals)
    src = open_array(f"{path}:c")
    with pytest.raises(InputError, match=r"missing values \(null\), first at row 23;"):
        src.read() if rows is None else src.read(np.array(rows))


@pytest.mark.parametrize("rows", [None, [3, 21, 25, 27, 30]])
def test_parquet_ragged_vector_is_numbered_as_in_the_file_across_row_groups(tmp_path, rows):
    from dsecli.inputs.readers import open_array

    emb = [[float(i), 1.0] for i in range(35)]
    emb[27] = [1.0]
    path = _parquet(tmp_path, "ragged.parquet", emb)
    src = open_array(f"{path}:c")
    with pytest.raises(InputError, match=r"column 'c' row 27 has 1 values, the first row 2;"):
        src.read() if rows is None else src.read(np.array(rows))


def test_parquet_nan_in_a_later_row_group_is_numbered_as_in_the_file_after_a_subsample(tmp_path):
    from dsecli.inputs.prepare import prepare_rows
    from dsecli.inputs.readers import open_array

    emb = [[float(i), float(i % 7)] for i in range(60)]
    emb[41] = [float("nan"), 1.0]
    path = _parquet(tmp_path, "nan.parquet", emb)
    seed, _ = _sample_holding(60, 20, 41)
    with pytest.raises(InputError, match=r"1 of the 20 sampled rows \(of 60\), first at row 41:"):
        prepare_rows(open_array(f"{path}:c"), max_n=20, seed=seed)
    with pytest.raises(InputError, match=r"in 1 of 60 rows, first at row 41:"):
        prepare_rows(open_array(f"{path}:c"), max_n=0, seed=0)


# --- 5. UTF-16 text input, both byte orders ------------------------------------------------------------

_X16 = np.array([[1.5, -2.0], [3.25, 4.0], [0.0, 1e-3], [-7.0, 0.5]])
_CSV16 = "x,y\n" + "\n".join(",".join(repr(float(v)) for v in row) for row in _X16) + "\n"


@pytest.mark.parametrize("encoding", ["utf-16-be", "utf-16-le"])
def test_utf16_csv_with_a_bom_reads_as_utf8_does(tmp_path, encoding):
    from dsecli.inputs.readers import open_array

    raw = "\ufeff".encode(encoding) + _CSV16.encode(encoding)
    assert raw[:2] == (b"\xfe\xff" if encoding.endswith("be") else b"\xff\xfe")
    (tmp_path / "u8.csv").write_bytes(_CSV16.encode("utf-8"))
    (tmp_path / "u16.csv").write_bytes(raw)
    want = open_array(str(tmp_path / "u8.csv")).read()
    got = open_array(str(tmp_path / "u16.csv")).read()
    np.testing.assert_array_equal(want, _X16)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


# --- 6. a partly written HDF5 dataset, at its last (partial) chunk ---------------------------------------

@pytest.mark.parametrize(("shape", "chunks", "written", "counts"), [
    ((10, 3), (4, 3), (slice(0, 8), slice(None)), "1 of 3"),  # rows: chunks of 4, 4 and the partial 2
    ((8, 5), (8, 2), (slice(None), slice(0, 4)), "1 of 3"),  # columns: 2, 2 and the partial 1
    ((10, 5), (4, 2), (slice(0, 8), slice(0, 4)), "5 of 9"),  # both
])
def test_hdf5_dataset_missing_only_its_partial_last_chunk_is_refused(tmp_path, shape, chunks, written, counts):
    h5py = pytest.importorskip("h5py")
    from dsecli.inputs.readers import load_array

    path = tmp_path / "p.h5"
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("x", shape=shape, dtype="f8", chunks=chunks)
        ds[written] = 1.0
    with pytest.raises(InputError, match=rf"was only partly written \({counts} chunks never written\)"):
        load_array(f"{path}:/x")


def test_hdf5_dataset_with_every_chunk_written_reads(tmp_path):
    h5py = pytest.importorskip("h5py")
    from dsecli.inputs.readers import load_array

    path = tmp_path / "full.h5"
    x = np.arange(30.0).reshape(10, 3)
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=x, chunks=(4, 3))
    np.testing.assert_array_equal(load_array(f"{path}:/x"), x)


# --- 7. the fields of the batch resume key and of the monitor's row key ------------------------------------

def test_batch_row_key_changes_with_each_field_and_only_then():
    from dsecli.batch.store import row_key

    base = {"input_identity": "emb.npy#sha=abc", "method": "dse", "request": {"t": 1, "sigma": 10.0},
            "reference": "labels.npy#sha=def"}
    key = row_key(**base)
    assert row_key(**dict(base)) == key  # nothing changed
    assert row_key(**{**base, "request": {"sigma": 10.0, "t": 1}}) == key  # order of parameters is not a change
    changed = {
        "input_identity": "emb.npy#sha=abd",
        "method": "cse",
        "request": {"t": 2, "sigma": 10.0},
        "reference": "labels.npy#sha=deg",
    }
    for field, value in changed.items():
        assert row_key(**{**base, field: value}) != key, field
    assert row_key(**{**base, "request": {"t": 1}}) != key  # a parameter dropped
    assert row_key(**{**base, "reference": None}) != key  # no reference


def test_batch_request_params_keep_each_non_default_parameter_and_drop_defaults():
    from dsecli.batch.store import request_params, row_key
    from dsecli.methods import ENTROPY_METHODS

    fn = ENTROPY_METHODS["dse"]

    def key(**given):
        return row_key("in", "dse", request_params("dse", fn, given), None)

    plain = key()
    assert key(device="cpu", cpu_threads=3) == plain  # where it runs is not part of the key
    assert key(sigma=None) == plain
    for name, value in [("t", 3), ("sigma", 2.5), ("max_n", 17), ("seed", 12345), ("base", 10.0),
                        ("drop_nonfinite", True), ("flatten", True), ("sampler", "published")]:
        k = key(**{name: value})
        assert k != plain, name
        assert key(**{name: value}) == k, name
    assert key(sigma="10") == key(sigma=10.0)  # one canonical form
    assert key(t=3) != key(t=4)
    assert key(seed=1) != key(seed=2)


def _monitor_for_keys(**attrs):
    from dsecli.monitor.monitor import TrainingMonitor

    m = object.__new__(TrainingMonitor)  # only the attributes _key reads; no model is needed
    defaults = {"name": "run-a", "run_id": "0" * 32, "max_n": 100, "seed": 0, "dtype": "float64",
                "params": {}, "n_clusters": 10}
    for k, v in {**defaults, **attrs}.items():
        setattr(m, k, v)
    return m


def test_monitor_row_key_changes_with_each_field_and_only_then():
    args = ("layer1", 3, "entropy", "dse", None)
    key = _monitor_for_keys()._key(*args)
    assert _monitor_for_keys()._key(*args) == key
    for field, value in [("name", "run-b"), ("run_id", "1" * 32), ("max_n", 101), ("seed", 1),
                         ("params", {"t": 3})]:
        assert _monitor_for_keys(**{field: value})._key(*args) != key, field
    m = _monitor_for_keys()
    assert m._key("layer2", 3, "entropy", "dse", None) != key
    assert m._key("layer1", 4, "entropy", "dse", None) != key
    assert m._key("layer1", 3, "entropy", "cse", None) != key
    mi = m._key("layer1", 3, "mi", "dsmi", "labels")
    assert mi != m._key("layer1", 3, "mi", "dsmi", "inputs")
    assert mi != m._key("layer1", 3, "mi", "dsmi", None)
    other = next(name for name in _mi_methods() if name != "dsmi")
    assert mi != m._key("layer1", 3, "mi", other, "labels")
    # k-means' k is part of the key of an MI against the inputs' clusters only
    inputs = m._key("layer1", 3, "mi", "dsmi", "inputs")
    assert _monitor_for_keys(n_clusters=11)._key("layer1", 3, "mi", "dsmi", "inputs") != inputs
    assert _monitor_for_keys(n_clusters=11)._key("layer1", 3, "mi", "dsmi", "labels") == mi


def _mi_methods():
    from dsecli.methods import MI_METHODS

    return MI_METHODS


# --- 8. independent probes behind approximate DSMI's error bound ------------------------------------------

@pytest.mark.parametrize("seed", [0, 7])
def test_approximate_dsmi_gives_every_run_its_own_seed(monkeypatch, seed):
    import dsecli.measures.dse as dse_module
    from dsecli import diffusion_spectral_mutual_information

    seen: list[int] = []

    def record(xt, sigma, *, plan, t, base, seed, tol_bits, warn_unmet=True):
        seen.append(seed)
        return 1.0, {"error_estimate": 0.01, "noise_estimate": 0.005}

    monkeypatch.setattr(dse_module, "_approximate_dse", record)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(60, 3))
    y = np.repeat(np.arange(3), 20)
    got = diffusion_spectral_mutual_information(x, y, sigma=1.0, device="cpu", repetitions=2, solver="approx",
                                                seed=seed)
    assert got.extra["solvers"] == {"20": "approx"}
    # per class: its own rows once and a size-matched marginal subset per repetition, 3 x (1 + 2) runs,
    # each with probes of its own (seed + run number)
    assert len(seen) == got.extra["approx_runs"] == 3 * (1 + 2)
    assert len(set(seen)) == len(seen)
    assert sorted(seen) == list(range(seed, seed + len(seen)))


def test_approximate_dsmi_numbers_its_runs_across_exact_ones(monkeypatch):
    # class sizes 30, 20, 10 with the 20-row sets solved exactly: the approximate runs still get
    # consecutive seeds (seed + run number), not seeds counted over every set
    import dsecli.measures.dse as dse_module
    from dsecli import diffusion_spectral_mutual_information

    seen: list[int] = []

    def record(xt, sigma, *, plan, t, base, seed, tol_bits, warn_unmet=True):
        seen.append(seed)
        return 1.0, {"error_estimate": 0.01, "noise_estimate": 0.005}

    real_plan = dse_module.require_mi_plan

    def mixed_plan(*args, **kwargs):
        plans, shared = real_plan(*args, **kwargs)
        plans = {n: ({**p, "solver": "exact"} if n == 20 else p) for n, p in plans.items()}
        return plans, shared

    monkeypatch.setattr(dse_module, "_approximate_dse", record)
    monkeypatch.setattr(dse_module, "require_mi_plan", mixed_plan)
    rng = np.random.default_rng(4)
    x = rng.normal(size=(60, 3))
    y = np.repeat(np.arange(3), [30, 20, 10])
    got = diffusion_spectral_mutual_information(x, y, sigma=1.0, device="cpu", repetitions=2, solver="approx",
                                                seed=5)
    assert got.extra["solvers"] == {"10": "approx", "20": "exact", "30": "approx"}
    assert len(seen) == got.extra["approx_runs"] == 2 * (1 + 2)
    assert sorted(seen) == list(range(5, 5 + len(seen)))


@pytest.mark.parametrize("base", [2.0, 10.0])
def test_mine_with_labels_ceiling_is_h_of_y_of_unequal_classes(base):
    import warnings

    from dsecli import mine_mutual_information

    # classes of 40, 20 and 20 rows: H(Y) = 1.5 bits; MINE has no log K of its own
    rng = np.random.default_rng(12)
    y = np.repeat(np.arange(3), [40, 20, 20])
    x = rng.normal(size=(80, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = mine_mutual_information(x, y, base=base, epochs=1, batch_size=16, hidden_units=4, hidden_layers=1,
                                      patience=0, eval_shuffles=1, device="cpu")
    assert got.extra["ceiling"] == pytest.approx(1.5 * math.log(2) / math.log(base))
    assert got.extra["ceiling_nats"] == pytest.approx(1.5 * math.log(2))
    assert "H(Y)" in got.extra["ceiling_rule"]
