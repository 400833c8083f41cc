"""The published spectral variants of DSE: adjacency spectral entropies and the matrix-entry entropy.

Reference: the package of D. Liao, C. Liu et al., "Assessing Neural Network Representations During
Training Using Noise-Resilient Diffusion Spectral Entropy", arXiv:2312.04823 (docs/method.md#ase,
#matrix-entry). Kernels behind :func:`dsecli.edge.public_method`, as in :mod:`dsecli.measures.dse`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dsecli.diffusion.eigen import diffusion_eigenvalues, general_eigenvalue_moduli
from dsecli.diffusion.kernels import gaussian_kernel, pairwise_sq_dists, symmetric_normalize_
from dsecli.diffusion.plan import check_dense_memory
from dsecli.diffusion.spectral import entropy_of_probabilities, spectral_entropy
from dsecli.edge import Call, Measured, public_method
from dsecli.errors import check_choice, check_neighbors, check_positive_int
from dsecli.inputs.prepare import Prepared
from dsecli.measures.dse import placement, sigma_for, sorted_descending
from dsecli.results import log_n_ceiling

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["ASE_KERNELS", "adjacency_spectral_entropy", "matrix_entry_entropy"]

ASE_KERNELS = ("gaussian", "normalized", "knn")


def _knn_adjacency(xt: torch.Tensor, k: int) -> torch.Tensor:
    """A_ij = 1 if d_ij <= r_i, r_i the k-th smallest distance of row i counting the point itself."""
    import torch

    xc = xt - xt.mean(dim=0, keepdim=True)
    d2 = pairwise_sq_dists(xc)
    kth = torch.kthvalue(d2, k, dim=1, keepdim=True).values
    return (d2 <= kth).to(xt.dtype)


@public_method("ase")
def adjacency_spectral_entropy(
    rows: Prepared,
    call: Call,
    *,
    kernel: str = "gaussian",
    sigma: float | str = "median",
    k: int = 10,
    t: int = 1,
    return_eigenvalues: bool = False,
) -> Measured:
    """Spectral entropy of an adjacency matrix (the published variants; docs/method.md#ase).

    ``kernel="gaussian"``: eigenvalues of G; ``"normalized"``: of Q^-1/2 G Q^-1/2 (equal to
    DSE); ``"knn"``: of the binary kNN adjacency A_ij = [d_ij <= r_i], r_i the k-th smallest
    distance of row i including the point itself. The kNN matrix is not symmetric: a general
    eigensolver is used and |lambda| is the complex modulus. Then alpha = |lambda|^t / sum,
    H = -sum alpha log alpha.

    Returns
    -------
    EntropyResult
        ``method`` "ase-<kernel>", ``value`` in ``units``; ``params`` records the kernel, the
        numeric sigma (or k) and everything else used.
    """
    check_choice(kernel, "kernel", ASE_KERNELS)
    t = check_positive_int(t, "t")
    xt = rows.tensor()
    check_dense_memory(rows.n_used, device=xt.device, dtype=xt.dtype)
    if kernel == "knn":
        k = check_neighbors(k, rows.n_used, method="the kNN adjacency", self_included=True, where=rows.source)
        lam = general_eigenvalue_moduli(_knn_adjacency(xt, k))
        own: dict[str, Any] = {"k": k}
    else:
        choice, own = sigma_for(rows, call, xt, sigma)
        lam, _ = diffusion_eigenvalues(xt, choice.value, normalized=kernel == "normalized")
    value = spectral_entropy(lam, t=t, base=call.base)
    return Measured(value, {"kernel": kernel, **own, "t": t, **placement(xt)},
                    log_n_ceiling(value, rows.n_used, call.base),
                    eigenvalues=sorted_descending(lam) if return_eigenvalues else None, method=f"ase-{kernel}")


@public_method("matrix-entry")
def matrix_entry_entropy(rows: Prepared, call: Call, *, sigma: float | str = "median") -> Measured:
    """Entropy of the entries of the row-normalised diffusion matrix (docs/method.md#matrix-entry).

    P'_ij = K_ij / sum_l K_il with K = Q^-1/2 G Q^-1/2; p_ij = |P'_ij| / N over all N^2
    entries; H = -sum (p + eps) log (p + eps). At most log N^2 = 2 log N.

    Returns
    -------
    EntropyResult
        ``method`` "matrix-entry", ``value`` in ``units``; ``params`` records the numeric sigma.
    """
    xt = rows.tensor()
    check_dense_memory(rows.n_used, device=xt.device, dtype=xt.dtype)
    choice, sigma_params = sigma_for(rows, call, xt, sigma)
    k = symmetric_normalize_(gaussian_kernel(xt, choice.value))
    k.abs_()
    k.div_(k.sum(dim=1, keepdim=True))
    k.div_(k.sum())
    value = entropy_of_probabilities(k.double().cpu().numpy().ravel(), base=call.base)
    del k
    return Measured(value, {**sigma_params, **placement(xt)},
                    log_n_ceiling(value, rows.n_used, call.base, power=2))
