"""Approximate DSE for large N: exact top eigenpairs plus stochastic Lanczos quadrature of the rest.

METHOD.md section 2. With the eigenvalues lambda_i of the diffusion operator A and

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
   ||A u_i - theta_i u_i|| <= ``ritz_tol`` are kept: V = [v_1, u_1..u_k], P = V V^T.
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

Error estimate (reported, in bits): ``z_score`` (3) standard errors of the probe mean of the
linearised DSE, dDSE = [dS_0 (1 + S_1/S_0) - dS_1] / S_0, after the control-variate regression;
plus the Lanczos quadrature term (the change in DSE when the last quarter of the Lanczos steps
is dropped: the error of the truncated rule, so an over-estimate for the full one); plus the
deflation term sum_i |f'(theta_i)| r_i^2 / gap_i (second-order Ritz error). Probes are added in
batches until the estimate is below ``tol_bits`` or ``max_probes`` is reached.

All randomness comes from a local ``torch.Generator`` seeded with ``seed`` (on the CPU, so a
seed gives the same probes on every device).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import ComputationError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .operators import _Operator

__all__ = ["ApproxSettings", "approximate_spectral_entropy", "deflate_top", "lanczos_quadrature"]


@dataclass(frozen=True)
class ApproxSettings:
    """Knobs of the approximate solver (defaults reach <= 0.01 bits on the test sets)."""

    tol_bits: float = 0.005  # stop adding probes when the error estimate is below this
    block: int = 0  # deflation block width; 0 = chosen from N
    depth: int = 0  # deflation block Lanczos steps; 0 = chosen from N
    ritz_tol: float = 1e-5  # keep Ritz pairs with ||A u - theta u|| <= ritz_tol
    steps: int = 20  # Lanczos steps per probe
    probes: int = 32  # first batch of probes
    max_probes: int = 512
    z_score: float = 3.0

    def resolved(self, n: int) -> ApproxSettings:
        block, depth = self.block, self.depth
        if not block:
            block = 64 if n <= 20_000 else 128
        if not depth:
            depth = 6
        # never let the Krylov basis fill more than half the space (small N)
        cap = max(1, (n - 1) // 2)
        if block * depth > cap:
            block = max(1, min(block, cap // depth)) if cap >= depth else 1
            depth = max(1, min(depth, cap // block))
        steps = max(2, min(self.steps, n - 1 - block * depth))
        return ApproxSettings(self.tol_bits, block, depth, self.ritz_tol, steps, self.probes, self.max_probes,
                              self.z_score)


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


def deflate_top(op: _Operator, *, block: int, depth: int, ritz_tol: float, generator: torch.Generator) -> Deflation:
    """Top eigenpairs of A by block Lanczos (full reorthogonalisation) orthogonal to v_1.

    ``depth`` products of A with an (N, ``block``) block; Rayleigh-Ritz on the Krylov space of
    dimension block * depth.
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
    for j in range(depth):
        qs.append(x)
        w = op.matmat(x)
        aqs.append(w)
        basis = torch.cat([basis, x], dim=1)
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

    def cat(self, other: Quadrature) -> Quadrature:
        import torch

        return Quadrature(torch.cat([self.norm_sq, other.norm_sq]), torch.cat([self.alpha, other.alpha]),
                          torch.cat([self.beta, other.beta]))


def lanczos_quadrature(op: _Operator, v: torch.Tensor, *, probes: int, steps: int,
                       generator: torch.Generator) -> Quadrature:
    """Lanczos on R = (I - V V^T) A (I - V V^T) from ``probes`` projected Rademacher vectors at once.

    No reorthogonalisation within a probe's Lanczos sequence: lost orthogonality duplicates
    converged nodes and splits their weights, which Gauss quadrature tolerates (Greenbaum 1989;
    Ubaru et al. 2017); the projection against V is applied at every step.
    """
    import torch

    dev = op.device
    z = torch.randint(0, 2, (op.n, probes), generator=generator, dtype=torch.int8).to(dev)
    z = z.to(torch.float64).mul_(2.0).sub_(1.0)
    z -= v @ (v.T @ z)
    norm_sq = z.square().sum(dim=0)
    cur = z / norm_sq.sqrt()[None, :]
    prev = torch.zeros_like(cur)
    beta_prev = torch.zeros(probes, dtype=torch.float64, device=dev)
    alphas, betas = [], []
    tiny = 1e-12
    for _ in range(steps):
        w = op.matmat(cur)
        w -= v @ (v.T @ w)
        a = (cur * w).sum(dim=0)
        w -= cur * a[None, :] + prev * beta_prev[None, :]
        b = w.norm(dim=0)
        alive = b > tiny
        b = torch.where(alive, b, torch.zeros_like(b))
        nxt = torch.where(alive[None, :], w / torch.where(alive, b, torch.ones_like(b))[None, :], torch.zeros_like(w))
        alphas.append(a)
        betas.append(b)
        prev, cur, beta_prev = cur, nxt, b
    return Quadrature(norm_sq, torch.stack(alphas, dim=1), torch.stack(betas, dim=1))


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
    e0 = quad.norm_sq * (weights * f0n).sum(dim=1)
    e1 = quad.norm_sq * (weights * f1n).sum(dim=1)
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
    stderr = float(g.square().sum() / dof) ** 0.5 / math.sqrt(m)
    target_bias = (bias0 * abs(1.0 + s1 / s0) + bias1) / s0
    live = weights > 0
    node_min = float(nodes.abs()[live].min()) if bool(live.any()) else 0.0
    node_max = float(nodes.abs()[live].max()) if bool(live.any()) else 0.0
    return _Estimate(s0, s1, dse, stderr, {"node_min": node_min, "node_max": node_max, "target_bias": target_bias})


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


def approximate_spectral_entropy(op: _Operator, *, t: int, seed: int, settings: ApproxSettings | None = None) -> tuple[float, dict[str, Any]]:
    """DSE in **nats** of the operator ``op`` and the solver's report (for ``result.extra``).

    Parameters
    ----------
    op : operator from :func:`dsecli.operators.build_operator`
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
    import torch

    settings = (settings or ApproxSettings()).resolved(op.n)
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
    t_quad = time.perf_counter()
    quad: Quadrature | None = None
    steps = settings.steps
    short = max(2, (3 * steps) // 4)
    batch = min(settings.probes, settings.max_probes)
    while True:
        new = lanczos_quadrature(op, defl.v, probes=batch, steps=steps, generator=gen)
        quad = new if quad is None else quad.cat(new)
        full = _combine(defl, quad, t=t, steps=steps, targets=targets, target_err=target_err)
        trunc = _combine(defl, quad, t=t, steps=short, targets=targets, target_err=target_err)
        quad_err = abs(full.dse_nats - trunc.dse_nats) + full.extra["target_bias"]
        defl_err = _deflation_bias_nats(defl, t=t, s0=full.s0, s1=full.s1, lo=full.extra["node_min"],
                                        hi=full.extra["node_max"])
        # floor: the exact path itself is only good to rounding (golden spread ~1e-11 bits)
        bound = settings.z_score * full.stderr_nats + quad_err + defl_err + 1e-9
        m = quad.norm_sq.shape[0]
        tol = settings.tol_bits * math.log(2.0)
        if bound <= tol or m >= settings.max_probes:
            break
        room = tol - quad_err - defl_err
        if room <= 0:
            break
        want = math.ceil(m * (settings.z_score * full.stderr_nats / room) ** 2 * 1.1)
        batch = int(min(settings.max_probes - m, max(want - m, 16)))
    report = {
        "solver": "approx",
        "error_estimate_nats": bound,
        "stderr_nats": full.stderr_nats,
        "quadrature_error_nats": quad_err,
        "deflation_error_nats": defl_err,
        "z_score": settings.z_score,
        "tol_bits": settings.tol_bits,
        "deflated_eigenpairs": int(defl.theta.shape[0]),
        "krylov_dim": defl.krylov_dim,
        "deflation_block": settings.block,
        "deflation_depth": settings.depth,
        "ritz_tol": settings.ritz_tol,
        "probes": int(quad.norm_sq.shape[0]),
        "probe_kind": "rademacher",
        "lanczos_steps": steps,
        "s0": full.s0,
        "s1": full.s1,
        "timings_s": {"deflation": defl.seconds, "quadrature": time.perf_counter() - t_quad},
        "seed": int(seed),
    }
    return full.dse_nats, report
