"""What ``import dsecli`` does to the process: the OpenMP wait policy of torch's threads.

OpenMP threads that spin while waiting make torch's eigensolvers 10-100x slower whenever
another process holds a core (measured: eigvalsh at N = 1,000 took 8 s instead of 0.09 s on a
busy 2-core machine); sleeping waits cost nothing measurable on an idle machine. So
``OMP_WAIT_POLICY`` is set to PASSIVE unless the user set it. OpenMP reads the variable once,
when torch is first imported: if torch came first, the setting has no effect, and
:data:`OMP_WAIT_POLICY` records the policy in effect instead (read by
:func:`dsecli.device.openmp_wait_policy`).
"""

from __future__ import annotations

import os
import sys

__all__ = ["OMP_WAIT_POLICY"]

_TORCH_FIRST = "torch" in sys.modules
_BEFORE = os.environ.get("OMP_WAIT_POLICY", "")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
#: The wait policy torch's OpenMP runs with ("" when unset: the runtime's default).
OMP_WAIT_POLICY = _BEFORE if _TORCH_FIRST else os.environ["OMP_WAIT_POLICY"]
