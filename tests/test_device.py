"""The torch/numpy compatibility guard of dsecli.device (torch < 2.3 is built against numpy 1.x)."""

from __future__ import annotations

import importlib.metadata
import re

import pytest

from dsecli import device
from dsecli.errors import DeviceError


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch):
    """Pretend the given torch and numpy versions are installed."""

    def pretend(torch_v: str, numpy_v: str) -> None:
        versions = {"torch": torch_v, "numpy": numpy_v}
        real = importlib.metadata.version
        monkeypatch.setattr(importlib.metadata, "version", lambda name: versions.get(name) or real(name))
        device._torch_numpy_mismatch.cache_clear()

    yield pretend
    device._torch_numpy_mismatch.cache_clear()


@pytest.mark.parametrize(("torch_v", "numpy_v"), [("2.2.2", "2.1.0"), ("2.2.0", "2.0.0"), ("2.2.1+cu121", "2.4.6")])
def test_old_torch_with_numpy_2_is_one_line_naming_the_fix(installed, torch_v: str, numpy_v: str) -> None:
    installed(torch_v, numpy_v)
    expected = (f"torch {torch_v} was built against numpy 1.x and cannot run with numpy {numpy_v}; "
                'install numpy 1.x (pip install "numpy<2") or torch >= 2.3')
    with pytest.raises(DeviceError, match=re.escape(expected)):
        device.resolve_device("cpu")


@pytest.mark.parametrize(("torch_v", "numpy_v"), [("2.2.2", "1.26.4"), ("2.3.0", "2.0.0"), ("2.3.1+cu121", "2.4.6"),
                                                  ("2.13.0+cpu", "2.4.6"), ("2.13.0", "1.26.4")])
def test_compatible_pairs_pass(installed, torch_v: str, numpy_v: str) -> None:
    installed(torch_v, numpy_v)
    assert device._torch_numpy_mismatch() is None
    assert str(device.resolve_device("cpu")) == "cpu"
