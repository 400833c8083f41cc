"""Approximate DSE for large N: exact top eigenpairs plus stochastic Lanczos quadrature of the rest.

docs/method.md#approx. With the eigenvalues lambda_i of the diffusion operator A and

.. math::

    S_0 = \\sum_i |\\lambda_i|^t = \\operatorname{tr} |A|^t, \\qquad
    S_1 = \\sum_i |\\lambda_i|^t \\log |\\lambda_i|^t, \\qquad
    \\mathrm{DSE} = \\log S_0 - S_1 / S_0 \\ \\text{(nats)},

DSE needs two spectral sums, not the eigenvalues. Plain stochastic Lanczos quadrature (SLQ,
Ubaru, Chen & Saad 2017) of both sums has too much variance: the eigenvalue 1 and a few large
eigenvalues carry most of S_0 and S_1, and a Rademacher probe sees them with weight ~1 each.
So the estimate is split (deflation, as in Hutch++ / Lin 2017, "Randomized estimation of
spectral densities of large matrices made accurate"):

1. **Top eigenpairs, exactly.** v_1 = q^1/2 / ||q^1/2|| with lambda_1 = 1 is known in closed form.
   A block Lanczos process with full reorthogonalisation (randomized block Krylov; Musco & Musco
   2015) orthogonal to v_1 gives Ritz pairs (theta_i, u_i); those with residual
   ||A u_i - theta_i u_i|| <= ``ritz_tol`` are kept: V = [v_1, u_1..u_k], P = V V^T. It stops
   early once a block step adds no converged pair.
2. **The deflated remainder, stochastically.** R = (I - P) A (I - P) has the remaining
   eigenvalues (and zeros on range P, which add nothing since f(0) = 0). tr f(R) is estimated by
   Lanczos quadrature from m Rademacher probes z (projected: z' = (I - P) z):
   z'^T f(R) z' ~ ||z'||^2 sum_k tau_k^2 f(nu_k), nu_k / tau_k the eigenvalues / first
   eigenvector components of the s x s Lanczos matrix.
3. **Control variates.** tr R = tr A - tr(V^T A V) with tr A = sum 1/q_i, and
   tr R^2 = ||A||_F^2 - 2 ||A V||_F^2 + ||V^T A V||_F^2, are known exactly, and the quadrature
   gives z'^T R z' and z'^T R^2 z' exactly for every probe. The per-probe estimates are
   regressed on these two (least squares over the probes), which removes most of the variance
   (for t = 1, S_0 becomes exact).
4. **Quadrature bracket.** For f(x) = x^t log x^t the derivatives of order > t alternate in
   sign on (0, 1], so the Gauss rule of the Lanczos matrix underestimates each z'^T f(R) z' and
   the Gauss-Radau rule with a node fixed at 0 overestimates it (Golub & Meurant 2010). The
   midpoint is used; half the gap bounds the quadrature error. x^t itself is integrated exactly.

Error estimate (reported): ``z_score`` (3.5) standard errors of the probe mean of the linearised
DSE, dDSE = [dS_0 (1 + S_1/S_0) - dS_1] / S_0, after the control-variate regression (the
standard error is itself estimated from m - 3 residual degrees of freedom, so the multiplier is
the Student-t quantile with the two-sided tail of ``z_score`` on a normal, 3.94 for 32 probes
and 3.5 in the limit; the residuals are leverage-corrected, HC3). ``z_score`` is 3.5, not 3:
the per-probe values are not Gaussian, and |error| / stderr over 2,400 seeded runs (golden
a_uniform, d_cube16, b_blobs; t = 1, 2) exceeded the t quantile of z = 3 in 0.46% of runs
(Gaussian: 0.27%) and that of 3.5 in 0.04%; with 3, golden a_uniform at sigma_med missed for 1
seed in 20 (benchmarks/bound_tightness.py). The bound is meant to hold in every run; plus the
quadrature half-gap; plus the deflation term (second-order effect of the Ritz residuals,
Daleckii-Krein divided differences over the range of R's Lanczos nodes); plus the rounding
uncertainty of the control-variate targets and of the kept Ritz values (a few units of the
operator's storage precision each, which counts in float32 storage). While the estimate exceeds ``tol_bits``, the solver
spends more products where the error is: longer Lanczos runs when the quadrature term
dominates, more probes when the noise does (up to ``max_steps`` / ``max_probes``); the report
says whether the target was met (``converged``).

All randomness comes from a local ``torch.Generator`` seeded with ``seed`` (on the CPU, so a
seed gives the same probes on every device).
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dsecli.errors import ComputationError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from dsecli.diffusion.operators import DiffusionOperator

__all__ = ["ApproxSettings", "approximate_spectral_entropy", "approximate_spectral_entropy_times", "deflate_top"]


@dataclass(frozen=True)
class ApproxSettings:
    """Knobs of the approximate solver (defaults reach <= 0.01 bits on the test sets)."""

    tol_bits: float = 0.01  # stop adding probes / steps when the error estimate is below this
    block: int = 0  # deflation block width; 0 = chosen from N
    depth: int = 0  # deflation block Lanczos steps; 0 = chosen from N
    ritz_tol: float = 1e-5  # keep Ritz pairs with ||A u - theta u|| <= ritz_tol
    steps: int = 0  # Lanczos steps per probe in the first round; 0 = 20 (dense) or 12 (kernel rows)
    probes: int = 0  # first batch of probes; 0 = 32 up to N = 10,000, else 64 (dense: products are memory-bound
    # there), 128 for kernel rows (a product with b vectors costs N^2 (D + 2 + 2 b) flops: b = 128 keeps the
    # product's share near half, and 3 standard errors of 128 probes stay far below 0.01 bits at N >= 20,000)
    max_probes: int = 512
    max_steps: int = 60
    z_score: float = 3.5  # Gaussian-equivalent confidence of the noise term; see the module docstring

    def resolved(self, n: int, operator: str = "dense") -> ApproxSettings:
        """Fill the 0 (automatic) fields for N rows and the operator kind.

        The kernel-rows operator recomputes the kernel at every product, whose cost (N^2 (D + 2)
        flops for the triangle) a wide block shares, so it gets wide blocks and fewer steps; the
        dense operator gets narrow ones (its products are memory-bound).
        """
        block, depth, steps, probes = self.block, self.depth, self.steps, self.probes
        wide = operator == "rows"
        if not block:
            block = 256 if wide else (64 if n <= 20_000 else 128)
        if not depth:
            depth = 4 if wide else 6
        if not steps:
            steps = 12 if wide else 20
        if not probes:
            probes = 128 if wide else (32 if n <= 10_000 else 64)
        # never let the Krylov basis fill more than half the space (small N)
        cap = max(1, (n - 1) // 2)
        if block * depth > cap:
            block = max(1, min(block, cap // depth)) if cap >= depth else 1
            depth = max(1, min(depth, cap // block))
        room = max(2, n - 1 - block * depth)
        return ApproxSettings(self.tol_bits, block, depth, self.ritz_tol, max(2, min(steps, room)), probes,
                              max(self.max_probes, probes), max(2, min(self.max_steps, room)), self.z_score)


@dataclass
class Deflation:
    """Kept eigenpairs of A: theta (k,), V (N, k) orthonormal (v_1 first), A V, residual norms."""

    theta: torch.Tensor
    v: torch.Tensor
    av: torch.Tensor
    residual: torch.Tensor
    krylov_dim: int
    ritz_values: torch.Tensor  # all Ritz values of the Krylov space (descending)
    seconds: float = 0.0


def _orthonormalize(w: torch.Tensor, basis: torch.Tensor | None) -> torch.Tensor:
    import torch

    for _ in range(2):
        if basis is not None and basis.shape[1]:
            w = w - basis @ (basis.T @ w)
        w = torch.linalg.qr(w).Q
    return w


def deflate_top(op: DiffusionOperator, *, block: int, depth: int, ritz_tol: float, generator: torch.Generator,
                min_depth: int = 3) -> Deflation:
    """Top eigenpairs of A by block Lanczos (full reorthogonalisation) orthogonal to v_1.

    Up to ``depth`` products of A with an (N, ``block``) block; Rayleigh-Ritz on the Krylov space
    of dimension block * steps. From ``min_depth`` steps on, the process stops as soon as a step
    adds no converged Ritz pair (residual norms come from the Gram matrix of A Q, without
    forming the Ritz vectors), so spectra with a few dominant eigenvalues cost fewer products.
    While no pair has converged yet, it goes on as long as the smallest residual at least halves
    per step (Krylov convergence is superlinear, so such a run converges pairs soon): clustered
    or slowly decaying spectra converge late and then many at once, and stopping at "0
    converged, 0 added" threw the deflation away for some seeds and not others (golden d_cube8
    at sigma_med/10: seed 17 kept 1 pair after 4 steps, 41 after 6, and its bound was 100x that
    of the other seeds; a 1,500-row class of a uniform 4-d cube at 0.3 x the median sigma kept
    1 pair and ran out of probes at t = 3). Two more block products cost less than the probes a
    deflation-less run then needs.
    """
    import torch

    t0 = time.perf_counter()
    dev = op.device
    v1 = op.top_eigenvector()[:, None]
    x = torch.randn((op.n, block), generator=generator, dtype=torch.float64).to(dev)
    x = _orthonormalize(x, v1)
    qs: list[torch.Tensor] = []
    aqs: list[torch.Tensor] = []
    basis = v1
    converged = -1
    closest = math.inf
    for j in range(depth):
        qs.append(x)
        w = op.matmat(x)
        aqs.append(w)
        basis = torch.cat([basis, x], dim=1)
        if j + 1 >= min_depth and j + 1 < depth:
            q, aq = torch.cat(qs, dim=1), torch.cat(aqs, dim=1)
            tmat = q.T @ aq
            theta, y = torch.linalg.eigh(0.5 * (tmat + tmat.T))
            # ||A Q y - theta Q y||^2 = y^T (AQ)^T (AQ) y - theta^2 for unit y
            r2 = ((aq.T @ aq) @ y * y).sum(dim=0) - theta.square()
            now = int((r2 <= ritz_tol**2).sum())
            smallest = float(r2.min().clamp(min=0.0).sqrt())
            if now <= converged and not (now == 0 and smallest <= 0.5 * closest):
                break
            converged, closest = now, smallest
        if j + 1 < depth:
            x = _orthonormalize(w, basis)
    q = torch.cat(qs, dim=1)
    aq = torch.cat(aqs, dim=1)
    tmat = q.T @ aq
    tmat = 0.5 * (tmat + tmat.T)
    theta, y = torch.linalg.eigh(tmat)
    order = torch.argsort(theta, descending=True)
    theta, y = theta[order], y[:, order]
    u = q @ y
    au = aq @ y
    res = (au - u * theta[None, :]).norm(dim=0)
    keep = res <= ritz_tol
    one = torch.ones(1, dtype=torch.float64, device=dev)
    zero = torch.zeros(1, dtype=torch.float64, device=dev)
    return Deflation(
        theta=torch.cat([one, theta[keep]]),
        v=torch.cat([v1, u[:, keep]], dim=1),
        av=torch.cat([v1, au[:, keep]], dim=1),
        residual=torch.cat([zero, res[keep]]),
        krylov_dim=int(q.shape[1]),
        ritz_values=theta,
        seconds=time.perf_counter() - t0,
    )


class LanczosRun:
    """Lanczos on R = (I - V V^T) A (I - V V^T) from a batch of projected Rademacher probes.

    All probes of the batch advance together (one product with an (N, m) block per step) and
    the run can be extended by more steps later. No reorthogonalisation within a probe's
    sequence: lost orthogonality duplicates converged nodes and splits their weights, which
    Gauss quadrature tolerates (Greenbaum 1989; Ubaru, Chen & Saad 2017); the projection
    against V is applied at every step.
    """

    def __init__(self, op: DiffusionOperator, v: torch.Tensor, *, probes: int, generator: torch.Generator) -> None:
        import torch

        dev = op.device
        z = torch.randint(0, 2, (op.n, probes), generator=generator, dtype=torch.int8).to(dev)
        z = z.to(torch.float64).mul_(2.0).sub_(1.0)
        z -= v @ (v.T @ z)
        self.norm_sq = z.square().sum(dim=0)
        self.cur = z / self.norm_sq.sqrt()[None, :]
        self.prev = torch.zeros_like(self.cur)
        self.beta_prev = torch.zeros(probes, dtype=torch.float64, device=dev)
        self.alphas: list[torch.Tensor] = []
        self.betas: list[torch.Tensor] = []

    @property
    def steps(self) -> int:
        return len(self.alphas)

    def extend(self, op: DiffusionOperator, v: torch.Tensor, steps: int) -> None:
        """Advance every probe to ``steps`` Lanczos steps in all."""
        import torch

        tiny = 1e-12
        while self.steps < steps:
            w = op.matmat(self.cur)
            w -= v @ (v.T @ w)
            a = (self.cur * w).sum(dim=0)
            w -= self.cur * a[None, :] + self.prev * self.beta_prev[None, :]
            b = w.norm(dim=0)
            alive = b > tiny  # an exhausted Krylov space: the rest of T is zero (nodes 0, weight 0)
            b = torch.where(alive, b, torch.zeros_like(b))
            nxt = torch.where(alive[None, :], w / torch.where(alive, b, torch.ones_like(b))[None, :],
                              torch.zeros_like(w))
            self.alphas.append(a)
            self.betas.append(b)
            self.prev, self.cur, self.beta_prev = self.cur, nxt, b

    def quadrature(self) -> Quadrature:
        import torch

        return Quadrature(self.norm_sq, torch.stack(self.alphas, dim=1), torch.stack(self.betas, dim=1))


@dataclass
class Quadrature:
    """Per-probe Lanczos data: squared probe norms (m,), alpha (m, s), beta (m, s)."""

    norm_sq: torch.Tensor
    alpha: torch.Tensor
    beta: torch.Tensor

    def nodes_weights(self, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Gauss nodes (m, steps) and weights (m, steps) of the first ``steps`` Lanczos steps."""
        import torch

        a = self.alpha[:, :steps]
        b = self.beta[:, : steps - 1]
        t = torch.diag_embed(a) + torch.diag_embed(b, offset=1) + torch.diag_embed(b, offset=-1)
        nodes, vecs = torch.linalg.eigh(t)
        return nodes, vecs[:, 0, :].square()

    def radau_nodes_weights(self, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Gauss-Radau rule with ``steps`` + 1 nodes, one fixed at 0 (the spectrum of R is >= 0).

        T_{n+1} gets the last diagonal entry alpha = beta_n^2 [T_n^{-1}]_{nn}, so that 0 is an
        eigenvalue (Golub & Meurant 2010, "Matrices, Moments and Quadrature", ch. 6). Probes whose
        Lanczos run broke down (an exhausted Krylov space: Gauss is exact) keep their Gauss rule,
        padded with a zero-weight node.
        """
        import torch

        m = self.alpha.shape[0]
        a = self.alpha[:, :steps]
        b = self.beta[:, :steps]  # b[:, steps - 1] = beta_n couples the extra node
        tn = torch.diag_embed(a) + torch.diag_embed(b[:, :-1], offset=1) + torch.diag_embed(b[:, :-1], offset=-1)
        en = torch.zeros((m, steps, 1), dtype=a.dtype, device=a.device)
        en[:, -1, 0] = 1.0
        sol, info = torch.linalg.solve_ex(tn, en)
        ok = (info == 0) & (b > 1e-12).all(dim=1) & torch.isfinite(sol[:, -1, 0])
        extra = torch.where(ok, b[:, -1].square() * sol[:, -1, 0], torch.zeros_like(a[:, 0]))
        coupling = torch.where(ok, b[:, -1], torch.zeros_like(a[:, 0]))
        full_a = torch.cat([a, extra[:, None]], dim=1)
        full_b = torch.cat([b[:, :-1], coupling[:, None]], dim=1)
        t = torch.diag_embed(full_a) + torch.diag_embed(full_b, offset=1) + torch.diag_embed(full_b, offset=-1)
        nodes, vecs = torch.linalg.eigh(t)
        return nodes, vecs[:, 0, :].square()

    @staticmethod
    def join(parts: list[Quadrature]) -> Quadrature:
        import torch

        return Quadrature(torch.cat([p.norm_sq for p in parts]), torch.cat([p.alpha for p in parts]),
                          torch.cat([p.beta for p in parts]))


def _f_powers(nodes: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor]:
    """f0 = |x|^t, f1 = |x|^t log |x|^t (0 at 0)."""
    import torch

    m = nodes.abs()
    f0 = m.pow(t)
    logm = torch.log(torch.where(m > 0, m, torch.ones_like(m)))
    f1 = f0 * (t * logm)
    return f0, f1


@dataclass
class _Estimate:
    s0: float
    s1: float
    dse_nats: float
    stderr_nats: float
    extra: dict[str, Any] = field(default_factory=dict)


def _regress(values: torch.Tensor, controls: torch.Tensor, targets: torch.Tensor,
             target_err: torch.Tensor) -> tuple[float, torch.Tensor, float]:
    """Control-variate mean of ``values`` (m,) with ``controls`` (m, p) of known means ``targets`` (p,).

    A control is used only when its target's rounding uncertainty ``target_err`` is below a tenth
    of the standard error of its probe mean (otherwise it would add more error than it removes).
    Returns the adjusted mean, the residuals (m,) whose spread is the remaining noise, and the
    error the targets' uncertainty can add to the mean.
    """
    import torch

    m = values.shape[0]
    vc = values - values.mean()
    cc = controls - controls.mean(dim=0, keepdim=True)
    scale = cc.square().mean(dim=0).sqrt()
    ok = (scale > 1e-14 * (1.0 + controls.abs().max())) & (target_err <= 0.1 * scale / math.sqrt(m))
    if m <= 3 or not bool(ok.any()):
        return float(values.mean()), vc, 0.0
    cs = cc[:, ok] / scale[ok]  # scaled so the least-squares problem is well conditioned
    coef = torch.linalg.lstsq(cs, vc[:, None]).solution[:, 0]
    resid = vc - cs @ coef
    shift = ((controls.mean(dim=0)[ok] - targets[ok]) / scale[ok]) @ coef
    target_bias = float((coef.abs() * target_err[ok] / scale[ok]).sum())
    return float(values.mean() - shift), resid, target_bias


def _combine(defl: Deflation, quad: Quadrature, *, t: int, steps: int, targets: torch.Tensor,
             target_err: torch.Tensor) -> _Estimate:
    import torch

    nodes, weights = quad.nodes_weights(steps)
    f0n, f1n = _f_powers(nodes, t)
    g0 = quad.norm_sq * (weights * f0n).sum(dim=1)
    g1 = quad.norm_sq * (weights * f1n).sum(dim=1)
    # Gauss and Gauss-Radau (node at 0) bracket z'^T f(R) z' for f = x^t log x^t, whose derivatives
    # of order > t alternate in sign: Gauss below, Radau above. The midpoint is the estimate and
    # half the gap bounds the quadrature error of each probe (x^t itself is integrated exactly).
    rn, rw = quad.radau_nodes_weights(steps)
    r0f, r1f = _f_powers(rn, t)
    q0 = quad.norm_sq * (rw * r0f).sum(dim=1)
    q1 = quad.norm_sq * (rw * r1f).sum(dim=1)
    e0, e1 = 0.5 * (g0 + q0), 0.5 * (g1 + q1)
    h0, h1 = float((q0 - g0).abs().mean()) / 2, float((q1 - g1).abs().mean()) / 2
    a1 = quad.alpha[:, 0]
    b1 = quad.beta[:, 0]
    # z'^T R z' and z'^T R^2 z' = ||R z'||^2, exact from the first Lanczos step
    controls = torch.stack([quad.norm_sq * a1, quad.norm_sq * (a1 * a1 + b1 * b1)], dim=1)
    th0, th1 = _f_powers(defl.theta, t)
    d0, d1 = float(th0.sum()), float(th1.sum())
    r0, res0, bias0 = _regress(e0, controls, targets, target_err)
    r1, res1, bias1 = _regress(e1, controls, targets, target_err)
    s0, s1 = d0 + r0, d1 + r1
    if not s0 > 0:
        raise ComputationError("approximate solver: the estimated sum of |lambda|^t is not positive")
    dse = math.log(s0) - s1 / s0
    g = (res0 * (1.0 + s1 / s0) - res1) / s0
    m = g.shape[0]
    dof = max(1, m - 1 - controls.shape[1])
    # leverage-corrected (HC3, jackknife-like) variance of the regression-adjusted mean: a probe
    # with extreme control values pulls the fitted coefficients towards itself and leaves a
    # residual that is too small; dividing by 1 - h_ii undoes that (MacKinnon & White 1985)
    design = torch.cat([torch.ones_like(controls[:, :1]), controls - controls.mean(dim=0, keepdim=True)], dim=1)
    design = design / design.norm(dim=0).clamp(min=1e-300)[None, :]
    lev = torch.linalg.qr(design).Q.square().sum(dim=1).clamp(max=0.99) if m > design.shape[1] else torch.zeros_like(g)
    stderr = float((g / (1.0 - lev)).square().sum()) ** 0.5 / m  # dof residuals: see _stderr_multiplier
    target_bias = (bias0 * abs(1.0 + s1 / s0) + bias1) / s0
    rule_err = (h0 * abs(1.0 + s1 / s0) + h1) / s0
    live = weights > 0
    node_min = float(nodes.abs()[live].min()) if bool(live.any()) else 0.0
    node_max = float(nodes.abs()[live].max()) if bool(live.any()) else 0.0
    return _Estimate(s0, s1, dse, stderr, {"node_min": node_min, "node_max": node_max, "target_bias": target_bias,
                                           "rule_err": rule_err, "dof": dof})


@functools.lru_cache(maxsize=256)
def _stderr_multiplier(z_score: float, dof: int) -> float:
    """Student-t quantile with the two-sided tail probability that ``z_score`` has on a normal.

    The standard error comes from ``dof`` regression residuals, so (mean - truth) / stderr is
    t-distributed with ``dof`` degrees of freedom, not normal (Student 1908): z = 3.5 and 29 dof
    (32 probes, 2 controls) give 3.94.
    """
    from scipy.special import ndtr, stdtrit  # scipy.stats costs 0.7 s to import; these do not

    return float(stdtrit(dof, 1.0 - ndtr(-z_score)))


def _dphi(lam: torch.Tensor, *, t: int, s0: float, s1: float) -> torch.Tensor:
    """Derivative of the linearised DSE contribution phi(x) = [|x|^t (1 + S1/S0) - |x|^t log |x|^t] / S0."""
    import torch

    x = lam.abs().clamp(min=1e-300)
    return t * x.pow(t - 1) * ((1.0 + s1 / s0) - (1.0 + t * torch.log(x))) / s0


def _deflation_bias_nats(defl: Deflation, *, t: int, s0: float, s1: float, lo: float, hi: float) -> float:
    """Bound on the error of splitting A into the kept Ritz block and the remainder R.

    In the basis [V, V_perp], A = [[Theta, E^T], [E, R]] with E's columns the Ritz residuals.
    Dropping E changes tr phi(A) by sum_{i,j} |E_ji|^2 (phi'(theta_i) - phi'(nu_j)) / (theta_i - nu_j)
    to second order (Daleckii-Krein), nu_j the eigenvalues of R; bounded by r_i^2 times the
    largest divided difference over nu in [lo, hi] (the range of R's Lanczos nodes, floored at 1e-12).
    """
    import torch

    th = defl.theta[1:]  # v_1 is exact: no residual
    if th.numel() == 0:
        return 0.0
    lo = max(lo, 1e-12)
    hi = max(hi, lo * 1.0001)
    nu = torch.logspace(math.log10(lo), math.log10(hi), 97, dtype=torch.float64, device=th.device)
    d_th = _dphi(th, t=t, s0=s0, s1=s1)[:, None]
    d_nu = _dphi(nu, t=t, s0=s0, s1=s1)[None, :]
    diff = th[:, None] - nu[None, :]
    close = diff.abs() < 1e-9 * th[:, None].abs().clamp(min=1e-300)
    # near-coincident points: the divided difference becomes phi''; bound it by a nearby chord
    diff = torch.where(close, torch.full_like(diff, 1e-9) * th[:, None], diff)
    dd = ((d_th - d_nu) / diff).abs().amax(dim=1)
    return float((defl.residual[1:].square() * dd).sum())


def _rounding_bias_nats(defl: Deflation, *, t: int, s0: float, s1: float, unit: float) -> float:
    """Error the operator's storage precision puts into the kept Ritz values.

    Products with an operator stored in precision ``unit`` carry absolute errors of a few
    ``unit`` (||A||_2 = 1), and the Ritz values inherit them: they converge only to that
    level and, being Rayleigh quotients from a subspace, err mostly in one direction (below).
    So the errors are summed, not averaged: sum_i |phi'(theta_i)| delta with delta = 2 unit
    (measured in float32 storage: |theta_i - lambda_i| has rms ~unit and max ~3 unit for
    N = 3,000-12,000, 385 kept pairs). Negligible in float64 storage; in float32 storage it
    grows with the number of kept eigenpairs and with |phi'| of the small ones.
    """
    th = defl.theta[1:]  # lambda_1 = 1 is exact
    if th.numel() == 0:
        return 0.0
    return float(_dphi(th, t=t, s0=s0, s1=s1).abs().sum()) * 2.0 * unit


@dataclass
class _Start:
    """What the estimates at every t share for one operator and seed.

    The deflation, the control-variate targets and the first probe batch (run to the first
    round's steps) do not depend on t; ``gen_state`` is the generator's state after that batch,
    from which any further probes are drawn.
    """

    settings: ApproxSettings
    defl: Deflation
    targets: torch.Tensor
    target_err: torch.Tensor
    unit: float
    first: LanczosRun | None
    gen_state: torch.Tensor
    first_seconds: float


def _start(op: DiffusionOperator, *, seed: int, settings: ApproxSettings | None) -> _Start:
    import torch

    settings = (settings or ApproxSettings()).resolved(op.n, op.kind)
    gen = torch.Generator(device="cpu")
    gen.manual_seed(int(seed))
    defl = deflate_top(op, block=settings.block, depth=settings.depth, ritz_tol=settings.ritz_tol, generator=gen)
    # exact traces of R and R^2 (control-variate targets), with their rounding uncertainty:
    # products A V carry ~u sqrt(N) relative error in the operator's storage precision u
    vav = defl.v.T @ defl.av
    av2, vav2 = float(defl.av.square().sum()), float(vav.square().sum())
    tr_vav = float(torch.diagonal(vav).sum())
    u = 2.0**-53 if op.storage == torch.float64 else 2.0**-24
    grow = u * math.sqrt(op.n)
    targets = torch.tensor([op.trace - tr_vav, float(op.frobenius_sq) - 2.0 * av2 + vav2], dtype=torch.float64,
                           device=op.device)
    target_err = torch.tensor([u * op.trace + grow * abs(tr_vav), u * float(op.frobenius_sq) + grow * (2 * av2 + vav2)],
                              dtype=torch.float64, device=op.device)
    batch = min(settings.probes, settings.max_probes)
    first = None
    t_first = time.perf_counter()
    if batch:
        first = LanczosRun(op, defl.v, probes=batch, generator=gen)
        first.extend(op, defl.v, settings.steps)
    # a matrix-free operator evaluates its entries in its own precision, with this relative error:
    # the kept Ritz values inherit it like a storage rounding
    unit = max(u, float(getattr(op, "unit", 0.0)))
    return _Start(settings, defl, targets, target_err, unit, first, gen.get_state(), time.perf_counter() - t_first)


def _copy_run(run: LanczosRun) -> LanczosRun:
    """A copy that can be extended without changing ``run`` (extend appends and rebinds, never writes in place)."""
    out = object.__new__(LanczosRun)
    out.__dict__.update(run.__dict__)
    out.alphas, out.betas = list(run.alphas), list(run.betas)
    return out


def _solve(op: DiffusionOperator, start: _Start, *, t: int) -> tuple[float, dict[str, Any]]:
    import torch

    settings, defl, u = start.settings, start.defl, start.unit
    gen = torch.Generator(device="cpu")
    gen.set_state(start.gen_state)
    t_quad = time.perf_counter()
    runs: list[LanczosRun] = [] if start.first is None else [_copy_run(start.first)]
    steps = settings.steps
    batch = 0
    tol = settings.tol_bits * math.log(2.0)
    while True:
        if batch:
            runs.append(LanczosRun(op, defl.v, probes=batch, generator=gen))
        for run in runs:
            run.extend(op, defl.v, steps)
        quad = Quadrature.join([run.quadrature() for run in runs])
        full = _combine(defl, quad, t=t, steps=steps, targets=start.targets, target_err=start.target_err)
        rule_err = full.extra["rule_err"]
        quad_err = rule_err + full.extra["target_bias"]
        defl_err = _deflation_bias_nats(defl, t=t, s0=full.s0, s1=full.s1, lo=full.extra["node_min"],
                                        hi=full.extra["node_max"])
        defl_err += _rounding_bias_nats(defl, t=t, s0=full.s0, s1=full.s1, unit=u)
        stoch = _stderr_multiplier(settings.z_score, full.extra["dof"]) * full.stderr_nats
        # floor: the exact path itself is only good to rounding (golden spread ~1e-11 bits)
        bound = stoch + quad_err + defl_err + 1e-9
        m = int(quad.norm_sq.shape[0])
        if bound <= tol:
            break
        # spend the next products where the error is: longer Lanczos runs when the quadrature
        # term dominates (cheap: the same narrow block), more probes when the noise does
        if rule_err >= stoch and rule_err > 0.1 * tol and steps < settings.max_steps:
            steps = min(settings.max_steps, steps + max(5, steps // 2))
            batch = 0
            continue
        room = tol - quad_err - defl_err
        if m >= settings.max_probes or room <= 0:
            # out of probes (or no room for noise) but the quadrature term still matters:
            # longer runs shrink it and leave the noise more room
            if rule_err > 0.1 * tol and steps < settings.max_steps:
                steps = min(settings.max_steps, steps + max(5, steps // 2))
                batch = 0
                continue
            break
        want = math.ceil(m * (stoch / room) ** 2 * 1.1)
        batch = int(min(settings.max_probes - m, max(want - m, 16)))
    report = {
        "solver": "approx",
        "error_estimate_nats": bound,
        "converged": bool(bound <= tol),
        "stderr_nats": full.stderr_nats,
        "quadrature_error_nats": quad_err,
        "deflation_error_nats": defl_err,
        "z_score": settings.z_score,
        "stderr_multiplier": _stderr_multiplier(settings.z_score, full.extra["dof"]),
        "tol_bits": settings.tol_bits,
        "deflated_eigenpairs": int(defl.theta.shape[0]),
        "krylov_dim": defl.krylov_dim,
        "deflation_block": settings.block,
        "deflation_depth": defl.krylov_dim // settings.block,
        "deflation_depth_max": settings.depth,
        "ritz_tol": settings.ritz_tol,
        "probes": int(quad.norm_sq.shape[0]),
        "probe_kind": "rademacher",
        "lanczos_steps": steps,
        "s0": full.s0,
        "s1": full.s1,
        "timings_s": {"deflation": defl.seconds, "quadrature": start.first_seconds + time.perf_counter() - t_quad},
    }
    return full.dse_nats, report


def approximate_spectral_entropy(op: DiffusionOperator, *, t: int, seed: int, settings: ApproxSettings | None = None) -> tuple[float, dict[str, Any]]:
    """DSE in **nats** of the operator ``op`` and the solver's report (for ``result.extra``).

    Parameters
    ----------
    op : operator from :func:`dsecli.diffusion.operators.build_operator`
    t : int >= 1
    seed : int
        Seeds the local generator of the deflation start block and the probes.
    settings : ApproxSettings, optional

    Returns
    -------
    value_nats : float
    report : dict
        ``error_estimate_nats`` (the reported bound), ``stderr_nats``, ``quadrature_error_nats``,
        ``deflation_error_nats``, ``deflated_eigenpairs``, ``krylov_dim``, ``probes``,
        ``lanczos_steps``, ``operator_products``, timings.
    """
    nats, report = _solve(op, _start(op, seed=seed, settings=settings), t=t)
    return nats, {**report, "seed": int(seed)}


def approximate_spectral_entropy_times(op: DiffusionOperator, *, ts: list[int], seed: int,
                                       settings: ApproxSettings | None = None) -> list[tuple[float, dict[str, Any]]]:
    """:func:`approximate_spectral_entropy` at several diffusion times, sharing what does not depend on t.

    The deflation and the first probe batch are computed once; each t then continues from the
    same generator state, so every entry equals ``approximate_spectral_entropy(op, t=t,
    seed=seed, settings=settings)`` exactly (same probes, same adaptive rounds, same bound).

    Parameters
    ----------
    op : operator from :func:`dsecli.diffusion.operators.build_operator`
    ts : list of int >= 1
    seed : int
    settings : ApproxSettings, optional

    Returns
    -------
    list of (value_nats, report)
        One pair per entry of ``ts``, in order, as :func:`approximate_spectral_entropy` returns them.
    """
    start = _start(op, seed=seed, settings=settings)
    return [(nats, {**report, "seed": int(seed)}) for nats, report in (_solve(op, start, t=int(t)) for t in ts)]
