"""Does the gradient of the median-rule DSE loss move DSE? The three ``sigma_grad`` settings compared.

``dse_loss(z)`` at ``sigma="median"`` has a scale-invariant value; what the gradient sees of sigma is
chosen by ``sigma_grad`` ("detached", "scale", "smoothed"; dsecli.differentiable). Two checks:

1. free rows: 128 rows of dimension 32 (Gaussian, seed 0) optimised directly with Adam (lr 1e-2, 200
   steps) to minimise or to maximise DSE, raw or L2-normalised (``F.normalize(z, dim=1)``); printed:
   DSE (median rule, bits) at steps 0, 100 and 200, and the mean row norm at the end;
2. one small step through a network: a ReLU MLP (64 -> 128 -> 32, torch's default init, seed s) on 128
   Gaussian inputs, float64; one gradient-descent step of size 1e-4 on DSE of its output (raw or
   normalised); printed over seeds s = 0..9: how often the median-rule DSE went down, and the mean of
   actual / predicted change (predicted = -1e-4 |grad|^2, the first-order change at the loss's own
   gradient; 1 means the gradient is the derivative of the value being reported).

Usage::

    python benchmarks/differentiable_sigma_grad.py
"""

from __future__ import annotations

import copy


def main() -> None:
    import torch

    from dsecli.differentiable import SIGMA_GRADS, dse_loss

    torch.set_num_threads(1)
    functional = torch.nn.functional

    def rows(z, normalised):
        return functional.normalize(z, dim=1) if normalised else z

    print("1. free rows (128 x 32), Adam lr 1e-2: DSE at steps 0, 100, 200; mean row norm at the end")
    print(f"{'sigma_grad':10s} {'rows':10s} {'goal':8s} {'DSE 0':>6s} {'100':>6s} {'200':>6s} {'norm':>6s}")
    for sigma_grad in SIGMA_GRADS:
        for normalised in (False, True):
            for sign, goal in ((1.0, "minimise"), (-1.0, "maximise")):
                torch.manual_seed(0)
                z = torch.randn(128, 32, requires_grad=True)
                opt = torch.optim.Adam([z], lr=1e-2)
                seen = []
                for step in range(201):
                    value = dse_loss(rows(z, normalised), sigma_grad=sigma_grad)
                    if step % 100 == 0:
                        seen.append(value.item())
                    opt.zero_grad()
                    (sign * value).backward()
                    opt.step()
                print(f"{sigma_grad:10s} {'normalised' if normalised else 'raw':10s} {goal:8s} "
                      + " ".join(f"{v:6.2f}" for v in seen) + f" {z.norm(dim=1).mean().item():6.2f}", flush=True)

    print("\n2. one step of 1e-4 through a ReLU MLP (float64, 10 seeds): steps that lowered DSE; actual / predicted")
    print(f"{'sigma_grad':10s} {'rows':10s} {'lowered':>8s} {'actual/predicted':>17s}")
    nn = torch.nn
    for sigma_grad in SIGMA_GRADS:
        for normalised in (False, True):
            lowered, ratios = 0, []
            for seed in range(10):
                torch.manual_seed(seed)
                net = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 32), nn.ReLU()).double()
                x = torch.randn(128, 64, dtype=torch.float64)
                before = dse_loss(rows(net(x), normalised), sigma_grad=sigma_grad)
                before.backward()
                predicted = -1e-4 * sum(float((p.grad**2).sum()) for p in net.parameters())
                stepped = copy.deepcopy(net)
                with torch.no_grad():
                    for p, moved in zip(net.parameters(), stepped.parameters()):
                        moved -= 1e-4 * p.grad
                    change = dse_loss(rows(stepped(x), normalised)).item() - before.item()
                lowered += change < 0
                ratios.append(change / predicted)
            print(f"{sigma_grad:10s} {'normalised' if normalised else 'raw':10s} {lowered:5d}/10 "
                  f"{sum(ratios) / len(ratios):17.2f}", flush=True)


if __name__ == "__main__":
    main()
