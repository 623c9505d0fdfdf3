"""Learning-rate schedules."""

from __future__ import annotations

import math


def exp_lr(step: int, lr_init: float, lr_final: float, max_steps: int) -> float:
    """Log-linear interpolation from ``lr_init`` to ``lr_final`` over ``max_steps``, constant afterwards."""
    if lr_init <= 0 or lr_final <= 0:
        return 0.0
    t = min(max(step / max(max_steps, 1), 0.0), 1.0)
    return math.exp((1 - t) * math.log(lr_init) + t * math.log(lr_final))
