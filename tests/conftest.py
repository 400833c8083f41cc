"""Shared fixtures: golden data location, device list, the --run-slow switch and the hypothesis profile."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

try:
    from hypothesis import settings as _hypothesis_settings
except ImportError:  # pragma: no cover - the property tests skip themselves
    _hypothesis_settings = None

# Property tests are deterministic: examples derive from each test's name (derandomize) and no example
# database (.hypothesis/) replays a failure saved by an earlier run, so every run, local or CI, tries the
# same examples. DSECLI_HYPOTHESIS_PROFILE=hunt draws fresh random examples (with DSECLI_HYPOTHESIS_EXAMPLES).
if _hypothesis_settings is not None:
    _hypothesis_settings.register_profile("dsecli", derandomize=True, database=None)
    _hypothesis_settings.register_profile("hunt", derandomize=False, database=None)
    _hypothesis_settings.load_profile(os.environ.get("DSECLI_HYPOTHESIS_PROFILE", "dsecli"))

# The golden reference data ship with the tests (tests/golden, provenance in its README.md); the shared
# folder next to the development checkouts is only read for a cross-check when it is present.
GOLDEN = Path(__file__).resolve().parent / "golden"
SHARED_GOLDEN = Path(__file__).resolve().parents[2] / "shared" / "golden"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", default=False, help="also run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def _cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:  # pragma: no cover
        return False


CUDA = _cuda_available()
DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(not CUDA, reason="no CUDA device")])]


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def golden_datasets() -> list[dict]:
    """index.json's data sets, each with its values file loaded (the data ship in tests/golden: never empty)."""
    index = json.loads((GOLDEN / "index.json").read_text())
    out = []
    for ds in index["datasets"]:
        values = json.loads((GOLDEN / ds["values"]).read_text())
        out.append({**ds, "values_data": values})
    return out


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    return GOLDEN


@pytest.fixture(autouse=True, scope="session")
def _private_cache_dir(tmp_path_factory: pytest.TempPathFactory):
    """Spectra and the time-model calibration go to a directory of this test session, never the user's cache."""
    import os

    if os.environ.get("DSECLI_CACHE_DIR"):
        yield
        return
    mp = pytest.MonkeyPatch()
    mp.setenv("DSECLI_CACHE_DIR", str(tmp_path_factory.mktemp("dsecli-cache")))
    yield
    mp.undo()
