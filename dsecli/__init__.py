"""dsecli: diffusion spectral entropy and mutual information of embeddings, with baselines.

Library first; the ``dse`` command is a thin layer over these functions. Every function takes
the data first and keyword-only parameters, and returns a frozen result whose ``to_dict()`` is
JSON-safe. Units are bits unless ``base`` says otherwise.
"""

import os as _os

# OpenMP threads that spin while waiting make torch's eigensolvers 10-100x slower whenever
# another process holds a core (measured: eigvalsh at N = 1,000 took 8 s instead of 0.09 s on a
# busy 2-core machine). Sleeping waits cost nothing measurable on an idle machine. This only
# takes effect if torch has not been imported yet, and a user's own setting always wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from dsecli.errors import ComputationError, DeviceError, DseError, InputError, MemoryLimitError
from dsecli.estimators import (
    binned_shannon_entropy,
    binned_shannon_mutual_information,
    kozachenko_leonenko_entropy,
    ksg_mutual_information,
    mine_mutual_information,
)
from dsecli.estimators.kl_weighted import weighted_kl_entropy
from dsecli.estimators.mine import infonce_mutual_information
from dsecli.inputs.readers import open_array
from dsecli.measures.dse import (
    adjacency_spectral_entropy,
    diffusion_spectral_entropy,
    diffusion_spectral_mutual_information,
    matrix_entry_entropy,
)
from dsecli.measures.representation import covariance_von_neumann_entropy, rankme_entropy, renyi_gram_entropy
from dsecli.methods import ENTROPY_METHODS, MI_METHODS, estimate_entropy, estimate_mutual_information
from dsecli.results import EntropyResult, MIResult  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "EntropyResult",
    "MIResult",
    "diffusion_spectral_entropy",
    "diffusion_spectral_mutual_information",
    "adjacency_spectral_entropy",
    "matrix_entry_entropy",
    "binned_shannon_entropy",
    "binned_shannon_mutual_information",
    "kozachenko_leonenko_entropy",
    "ksg_mutual_information",
    "mine_mutual_information",
    "infonce_mutual_information",
    "weighted_kl_entropy",
    "renyi_gram_entropy",
    "covariance_von_neumann_entropy",
    "rankme_entropy",
    "estimate_entropy",
    "estimate_mutual_information",
    "ENTROPY_METHODS",
    "MI_METHODS",
    "open_array",
    "DseError",
    "InputError",
    "ComputationError",
    "DeviceError",
    "MemoryLimitError",
]
