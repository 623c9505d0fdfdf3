"""Step 4 core: refine a test pose against the frozen Gaussians with a masked L1, keeping the best pose."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from feat2gs.geometry.rotation import pose_vec_to_viewmat, viewmat_to_pose_vec
from feat2gs.render import Gaussians, RenderSettings, rasterize


@dataclass
class RefinedPose:
    viewmat: torch.Tensor  # [4, 4] the pose that gave the lowest loss (the initial one if no loss was finite)
    best_loss: float | None  # None: no step gave a finite loss
    initial_loss: float | None  # None: not finite
    best_iteration: int


def masked_l1(render: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """mean(|mask·(gt − render)|) over all 3·H·W values (the protocol's refinement loss)."""
    return ((gt - render) * mask[..., None]).abs().mean()


def refine_test_pose(
    gaussians: Gaussians, viewmat: torch.Tensor, K: torch.Tensor, width: int, height: int, gt: torch.Tensor,
    mask: torch.Tensor, iterations: int, lr_t: float, lr_q: float, settings: RenderSettings, backend: str = "auto",
) -> RefinedPose:
    """Adam on (q, t) of the w2c for ``iterations`` steps.

    Each step's loss is that of the pose it was rendered with, so the pose kept is the one that produced the
    lowest loss (the reference kept the pose one step after it).
    """
    pose = viewmat_to_pose_vec(viewmat.detach().float())
    q = pose[:4].clone().requires_grad_(True)
    t = pose[4:].clone().requires_grad_(True)
    opt = torch.optim.Adam([{"params": [t], "lr": lr_t}, {"params": [q], "lr": lr_q}])
    best = (float("inf"), pose.clone(), 0)
    initial = None
    for it in range(max(iterations, 1)):
        current = torch.cat([q, t])
        out = rasterize(gaussians, pose_vec_to_viewmat(current), K, width, height, settings, backend=backend)
        loss = masked_l1(out.image, gt, mask)
        value = float(loss.detach())
        initial = value if initial is None else initial
        if value < best[0]:
            best = (value, current.detach().clone(), it)
        if iterations == 0:
            break
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    finite = math.isfinite(best[0])
    return RefinedPose(pose_vec_to_viewmat(best[1]), best[0] if finite else None,
                       initial if initial is not None and math.isfinite(initial) else None, best[2])
