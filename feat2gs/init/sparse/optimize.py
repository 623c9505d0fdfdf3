"""The two optimisation stages of the sparse alignment (spec §10).

Each stage builds a fresh Adam (betas (0.9, 0.9), eps 1e-8, no weight decay) over the parameter list
pps + log_focals + quats + trans + log_sizes + core depths and runs ``niter`` iterations with the cosine schedule
lr_t = lr·(1 + cos(π·t/niter))/2 (no warm-up). Stage 1 (3D matching loss) trains the poses and sizes; stage 2
(2D reprojection loss) also the principal point and focal. Core depths stay fixed (Feat2GS: opt_depth False).

Reproduced quirks:

* With shared intrinsics the same pp and log_focal tensor occurs N times in the list, and the reference's
  optimiser (torch's single-tensor Adam) applies one update per occurrence with the same gradient: N updates per
  iteration, step counts N·t+1 … N·t+N. :class:`ListAdam` does this explicitly on any device.
* Quaternions are renormalised after every step.
* A stage's result (K, cameras, depths, points) is the forward model at the start of its last iteration, i.e.
  before the last step; the next stage starts from the parameters after it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from tqdm import tqdm

from feat2gs.init.sparse.losses import SparseLoss
from feat2gs.init.sparse.model import Frame, SparseModel, SparseParams
from feat2gs.init.sparse.settings import SparseAlignmentError, SparseGAConfig


def cosine_lr(lr: float, t: int, niter: int) -> float:
    """Cosine decay from ``lr`` (t = 0) towards 0 (t = niter), no warm-up."""
    return lr * (1 + math.cos(math.pi * (t / niter))) / 2


class ListAdam:
    """Adam over a parameter *list* in which a tensor may occur several times (torch's single-tensor semantics:
    every occurrence with a gradient makes one update with that gradient and the tensor's shared state)."""

    def __init__(self, params: list[torch.Tensor], betas: tuple[float, float] = (0.9, 0.9), eps: float = 1e-8):
        self.params = params
        self.betas, self.eps = betas, eps
        self.state: dict[int, dict] = {}

    @torch.no_grad()
    def step(self, lr: float) -> None:
        b1, b2 = self.betas
        for p in self.params:
            if p.grad is None:
                continue
            g = p.grad
            st = self.state.get(id(p))
            if st is None:
                st = self.state[id(p)] = {"step": 0, "m": torch.zeros_like(p), "v": torch.zeros_like(p)}
            st["step"] += 1
            k = st["step"]
            st["m"].lerp_(g, 1 - b1)
            st["v"].mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (st["v"].sqrt() / math.sqrt(1 - b2**k)).add_(self.eps)
            p.addcdiv_(st["m"], denom, value=-lr / (1 - b1**k))

    def steps(self, p: torch.Tensor) -> int:
        """Number of updates applied to ``p`` so far."""
        return self.state.get(id(p), {}).get("step", 0)


@dataclass
class StageResult:
    frame: Frame  # forward model before the last step (detached)
    losses: list[float] = field(default_factory=list)  # total loss before each step
    lrs: list[float] = field(default_factory=list)
    adam_steps: list[int] = field(default_factory=list)  # per entry of the parameter list


def set_trainable(params: SparseParams, stage: int, cfg: SparseGAConfig, intrinsics_frozen: bool = False) -> None:
    """Stage 1: poses and sizes; stage 2 adds focal and (opt_pp) principal point, unless frozen."""
    for t in params.as_list():
        t.requires_grad_(False)
    for name in ("quat", "trans", "log_size"):
        for t in getattr(params, name):
            t.requires_grad_(True)
    if stage == 2 and not intrinsics_frozen:
        for t in params.log_focal:
            t.requires_grad_(True)
        if cfg.opt_pp:
            for t in params.pp:
                t.requires_grad_(True)


def run_stage(model: SparseModel, loss: SparseLoss, params: SparseParams, stage: int, lr: float, niter: int,
              cfg: SparseGAConfig = SparseGAConfig(), intrinsics_frozen: bool = False,
              progress: bool = True, max_iter: int | None = None) -> StageResult:
    """Optimise ``params`` in place for ``niter`` iterations of stage 1 or 2 (only the first ``max_iter`` of them
    when given: the schedule is still that of ``niter``)."""
    set_trainable(params, stage, cfg, intrinsics_frozen)
    plist = params.as_list()
    opt = ListAdam(plist, cfg.betas, cfg.adam_eps)
    unique = params.unique()
    result = StageResult(frame=None)  # type: ignore[arg-type]
    trace: list[torch.Tensor] = []
    last = niter if max_iter is None else min(niter, max_iter)
    bar = tqdm(range(last), desc=f"mast3r sparse alignment stage {stage}", disable=not progress, mininterval=0.5)
    for t in bar:
        with torch.enable_grad():
            frame = model(params)
            lr_t = cosine_lr(lr, t, niter)
            for p in unique:
                p.grad = None
            total = loss(frame, stage).total
            if total.requires_grad:
                total.backward()
        opt.step(lr_t)
        with torch.no_grad():
            for q in params.quat:
                q.div_(q.norm())
        trace.append(total.detach())
        result.lrs.append(lr_t)
        if t % 50 == 49 or t == last - 1:
            if not bool(torch.isfinite(torch.stack(trace[-50:])).all()):
                raise SparseAlignmentError(f"sparse alignment diverged in stage {stage} (non-finite loss by "
                                           f"iteration {t}); degenerate pointmaps or matches")
            bar.set_postfix(loss=f"{float(trace[-1]):.4g}", refresh=False)
        if t == last - 1:
            result.frame = Frame(*(x.detach() for x in (frame.K, frame.cam2w, frame.depthmaps, frame.pts3d,
                                                        frame.focals)))
    for p in params.as_list():
        p.requires_grad_(False)
    result.losses = torch.stack(trace).double().tolist() if trace else []
    result.adam_steps = [opt.steps(p) for p in plist]
    if result.frame is None:  # niter == 0: the forward model at the current parameters
        with torch.no_grad():
            result.frame = model(params)
    return result
