"""Step 2: warm start + photometric training of the readout with joint training-pose optimisation."""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from feat2gs.config import TrainConfig
from feat2gs.errors import TrainingDivergedError
from feat2gs.gaussians import FeatureReadout, ProbeMode, activate, initial_params
from feat2gs.gaussians.initial import noised_positions
from feat2gs.geometry.rotation import pose_vec_to_viewmat, viewmat_to_pose_vec
from feat2gs.render import RenderSettings, rasterize
from feat2gs.train.losses import photometric_loss
from feat2gs.train.schedules import exp_lr
from feat2gs.train.views import View, scene_extent


@dataclass
class TrainResult:
    raw: dict[str, torch.Tensor]  # final raw Gaussian parameters (detached, CPU)
    poses_init: np.ndarray  # [N, 4, 4] w2c
    poses_final: np.ndarray  # [N, 4, 4] w2c
    history: list[dict[str, float]]  # sampled losses
    seconds: float
    iterations_per_second: float
    coverage: list[float]  # per training view: mean alpha of the final Gaussians from the final pose
    features: torch.Tensor | None = None  # fine-tuned per-Gaussian features (ft modes only), CPU


class _LossLog:
    """Losses of the iterations since the last read-back, kept on the device.

    Reading a loss back (``float(loss)``) makes the host wait for the device, so it is done once per
    ``log_every`` iterations, not every iteration. The first non-finite loss is still named exactly: its
    iteration, phase and value are kept with it and checked when the window is read back.
    """

    def __init__(self, warm_iterations: int, log_every: int) -> None:
        self.warm_iterations = warm_iterations
        self.log_every = log_every
        self.pending: list[tuple[int, str, torch.Tensor]] = []
        self.ema: float | None = None

    def add(self, it: int, phase: str, loss: torch.Tensor) -> None:
        self.pending.append((it, phase, loss.detach()))

    def flush(self) -> float | None:
        """Read the pending losses back (one synchronisation), update the EMA and return the last loss.

        Raises TrainingDivergedError at the first non-finite one. The window is emptied first, so a second call
        from an error handler is a no-op.
        """
        pending, self.pending = self.pending, []
        if not pending:
            return None
        values = torch.stack([loss for _, _, loss in pending]).tolist()
        for (it, phase, _), value in zip(pending, values):
            if not math.isfinite(value):
                raise TrainingDivergedError(
                    f"loss became {value} at iteration {it} ({phase} phase; losses are read back every "
                    f"{self.log_every} iterations, this check covered iterations {pending[0][0]}-{pending[-1][0]}); "
                    "nothing was saved as final. Try a lower learning rate or check the features for NaN/inf."
                )
            reset = self.ema is None or it == self.warm_iterations + 1
            self.ema = value if reset else 0.9 * self.ema + 0.1 * value
        return values[-1]


def _render_lrs(cfg: TrainConfig, extent: float) -> dict[str, float]:
    return {"xyz": cfg.position_lr_init * extent, "f_dc": cfg.feature_lr, "f_rest": cfg.feature_sh_lr,
            "opacity": cfg.opacity_lr, "scaling": cfg.scaling_lr, "rotation": cfg.rotation_lr,
            "pc_feat": cfg.pc_feat_lr}


def _optimizer(readout: FeatureReadout, poses: torch.Tensor) -> torch.optim.Adam:
    groups = [{"name": k, "params": list(h.parameters())} for k, h in readout.heads.items()]
    groups += [{"name": k, "params": [p]} for k, p in readout.free.items()]
    if isinstance(readout.features, torch.nn.Parameter):
        groups.append({"name": "pc_feat", "params": [readout.features]})
    groups.append({"name": "pose", "params": [poses]})
    return torch.optim.Adam(groups, lr=0.0, eps=1e-15)


def train_readout(
    points: torch.Tensor, colors: torch.Tensor, features: torch.Tensor, views: list[View], mode: ProbeMode,
    scale_regularised: bool, cfg: TrainConfig, device: torch.device, backend: str = "auto", progress: bool = True,
) -> TrainResult:
    """Train the readout for ``mode`` on ``views`` (training cameras sorted by name).

    points [M, 3], colors [M, 3] in [0, 1], features [M, C] — one row per Gaussian. ``scale_regularised``: add
    ``scale_reg_weight`` · L1(log-scale − initial) (the feature is a tiny one such as iuv/iuvrgb).
    """
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    points = noised_positions(points.float().cpu(), cfg.noise_std, cfg.seed)  # the warm-start target moves too
    init = {k: v.to(device) for k, v in initial_params(points, colors, cfg.sh_degree).items()}
    readout = FeatureReadout(features.to(device), init, mode, detach_rest=cfg.ft_detach_rest).to(device)
    poses = torch.stack([viewmat_to_pose_vec(torch.as_tensor(v.camera.w2c, dtype=torch.float32)) for v in views])
    poses = poses.to(device).requires_grad_(cfg.optim_pose)
    poses_init = pose_vec_to_viewmat(poses.detach()).cpu().double().numpy()
    Ks = [torch.as_tensor(v.camera.K, dtype=torch.float32, device=device) for v in views]
    opt = _optimizer(readout, poses)
    render_lrs = _render_lrs(cfg, scene_extent([v.camera for v in views]))
    bg = (1.0, 1.0, 1.0) if cfg.white_background else (0.0, 0.0, 0.0)
    settings = RenderSettings(sh_degree=cfg.sh_degree, background=bg)
    scale_reg = cfg.scale_reg_weight if scale_regularised else 0.0

    history: list[dict[str, float]] = []
    order: list[int] = []
    losses = _LossLog(cfg.warm_iterations, cfg.log_every)
    t0 = time.perf_counter()
    bar = tqdm(range(1, cfg.iterations + 1), desc=f"train {mode.name}", disable=not progress, mininterval=0.5,
               unit="it", dynamic_ncols=True)
    try:
        for it in bar:
            if it <= cfg.warm_iterations:
                lr = exp_lr(it, cfg.warm_lr_init, cfg.warm_lr_final, cfg.warm_iterations)
                for group in opt.param_groups:
                    group["lr"] = lr
                raw = readout()
                loss = sum((raw[k] - init[k]).abs().mean() for k in mode.heads)
                ll1 = torch.zeros(())
                phase = "warm"
            else:
                step = it - cfg.warm_iterations
                if step == 1 and mode.finetune_features and not cfg.ft_render_phase:
                    readout.features.requires_grad_(False)
                for group in opt.param_groups:
                    name = group["name"]
                    if name == "pose":
                        group["lr"] = exp_lr(step, cfg.pose_lr_init, cfg.pose_lr_final, cfg.pose_lr_max_steps)
                    elif name == "xyz":
                        group["lr"] = exp_lr(step, cfg.position_lr_init, cfg.position_lr_final,
                                             cfg.position_lr_max_steps) * render_lrs["xyz"] / cfg.position_lr_init
                    else:
                        group["lr"] = render_lrs[name]
                if not order:
                    order = list(range(len(views)))
                    rng.shuffle(order)
                idx = order.pop()
                raw = readout()
                out = rasterize(activate(raw), pose_vec_to_viewmat(poses[idx]), Ks[idx], views[idx].camera.width,
                                views[idx].camera.height, settings, backend=backend)
                loss, ll1 = photometric_loss(out.image, views[idx].image, cfg.lambda_dssim)
                if scale_reg:
                    loss = loss + scale_reg * (raw["scaling"] - init["scaling"]).abs().mean()
                phase = "render"
            losses.add(it, phase, loss)
            loss.backward()
            if it < cfg.iterations:  # as the reference: the last iteration does not step
                opt.step()
            opt.zero_grad(set_to_none=True)
            if it % cfg.log_every == 0 or it == cfg.iterations:
                value = losses.flush()
                history.append({"iteration": it, "phase": phase, "loss": value, "l1": float(ll1.detach())})
                bar.set_postfix(loss=f"{losses.ema:.4f}", phase=phase)
    except Exception:
        bar.close()
        losses.flush()  # a loss that had already become NaN/inf is the real cause of a later failure: name it
        raise
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        final = readout()
        gaussians = activate(final)
        coverage = [float(rasterize(gaussians, pose_vec_to_viewmat(poses[i]), Ks[i], v.camera.width,
                                    v.camera.height, settings, backend=backend).alpha.mean())
                    for i, v in enumerate(views)]
        raw = {k: v.detach().cpu() for k, v in final.items()}
    return TrainResult(
        raw=raw,
        poses_init=poses_init,
        poses_final=pose_vec_to_viewmat(poses.detach()).cpu().double().numpy(),
        history=history,
        seconds=seconds,
        iterations_per_second=cfg.iterations / max(seconds, 1e-9),
        coverage=coverage,
        features=readout.features.detach().cpu() if mode.finetune_features else None,
    )
