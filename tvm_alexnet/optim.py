"""The paper's update rule and learning-rate schedule (Krizhevsky et al. 2012, section 5).

PaperSGD is the rule as the paper writes it, the velocity holding the
learning rate; torch.optim.SGD keeps its velocity without it. The two take
the same steps while the rate is constant and differ right after it changes
(see docs/training.md). PlateauSchedule divides the rate when the validation
error stops improving, a fixed number of times at most.
"""

from __future__ import annotations

import math

import torch


class PaperSGD(torch.optim.Optimizer):
    """v <- m*v - wd*lr*w - lr*grad;  w <- w + v  (every parameter decayed, biases too).

    The velocity ("velocity" in the optimizer's state, zero before the first
    step) is in weight units: it carries the steps taken at the old learning
    rate on after a change, which torch's SGD (v' = m*v + g + wd*w,
    w -= lr*v') rescales at once."""

    def __init__(self, params, lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 5e-4):
        if not lr > 0 or not 0 <= momentum <= 1 or not weight_decay >= 0:
            raise ValueError(f"lr {lr}, momentum {momentum}, weight_decay {weight_decay}: out of range")
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            velocities = []
            for p in params:
                state = self.state[p]
                if "velocity" not in state:
                    state["velocity"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                velocities.append(state["velocity"])
            lr, momentum, decay = group["lr"], group["momentum"], group["weight_decay"]
            # v = m*v - lr*(grad + wd*w), one pass per operand over the lists
            direction = torch._foreach_add(grads, params, alpha=decay) if decay else grads
            torch._foreach_mul_(velocities, momentum)
            torch._foreach_add_(velocities, direction, alpha=-lr)
            torch._foreach_add_(params, velocities)
        return loss


class PlateauSchedule:
    """Multiply every group's learning rate by `factor` when the validation
    error has not improved (fallen below its best) for more than `patience`
    epochs in a row, at most `max_drops` times. After a drop the count of
    epochs without improvement starts again; the best error is kept.

    Its state (drops, best, since) goes into checkpoints with state_dict."""

    def __init__(self, optimizer: torch.optim.Optimizer, factor: float = 0.1, patience: int = 1,
                 max_drops: int = 3):
        self.optimizer, self.factor, self.patience, self.max_drops = optimizer, factor, patience, max_drops
        self.drops, self.best, self.since = 0, math.inf, 0

    def step(self, error: float) -> bool:
        """Record an epoch's validation error; True if the rate was divided."""
        if error < self.best:
            self.best, self.since = float(error), 0
            return False
        self.since += 1
        if self.since > self.patience and self.drops < self.max_drops:
            for group in self.optimizer.param_groups:
                group["lr"] *= self.factor
            self.drops, self.since = self.drops + 1, 0
            return True
        return False

    def state_dict(self) -> dict:
        return dict(drops=self.drops, best=self.best, since=self.since)

    def load_state_dict(self, state: dict, initial_lr: float | None = None) -> None:
        """Ours, or (checkpoints from before it) torch's ReduceLROnPlateau's:
        then the drops so far are counted from the optimizer's rate against `initial_lr`."""
        if "drops" in state:
            self.drops, self.best, self.since = int(state["drops"]), float(state["best"]), int(state["since"])
            return
        self.best, self.since = float(state.get("best", math.inf)), int(state.get("num_bad_epochs", 0))
        lr = self.optimizer.param_groups[0]["lr"]
        self.drops = round(math.log(lr / initial_lr) / math.log(self.factor)) if initial_lr and lr != initial_lr else 0
