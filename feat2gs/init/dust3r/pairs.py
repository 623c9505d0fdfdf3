"""Pair graph and batched pairwise inference, as Feat2GS runs DUSt3R / MASt3R."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from tqdm import tqdm

from feat2gs.errors import ConfigError
from feat2gs.init.dust3r.model import Dust3rNet


def make_pairs_complete(n: int, symmetrize: bool = True) -> list[tuple[int, int]]:
    """All ordered pairs (i, j), i != j, in DUSt3R's ``make_pairs('complete', symmetrize=True)`` order:
    first (i, j) for i in 0..n-1, j < i, then the same list swapped. n=3 gives
    (1,0), (2,0), (2,1), (0,1), (0,2), (1,2). The order matters for the global aligner."""
    if n < 2:
        raise ConfigError(f"pairwise inference needs at least 2 images, got {n}")
    pairs = [(i, j) for i in range(n) for j in range(i)]
    if symmetrize:
        pairs += [(j, i) for i, j in pairs]
    return pairs


@dataclass
class PairPredictions:
    """Outputs of :func:`run_pairs` on the CPU in float32, edge e = ``edges[e]`` = (i, j) (view1 = image i).

    pred1 / pred2 map each output key to a tensor stacked over edges ([E, ...], batch dim removed) when every edge
    has the same shape, else to a list of per-edge tensors (mixed portrait/landscape sets).
    encoder_features[k]: encoder output of image k after enc_norm, [H/16, W/16, enc_dim] (Feat2GS ``feat``).
    """

    edges: list[tuple[int, int]]
    pred1: dict[str, torch.Tensor | list[torch.Tensor]] = field(default_factory=dict)
    pred2: dict[str, torch.Tensor | list[torch.Tensor]] = field(default_factory=dict)
    encoder_features: list[torch.Tensor] = field(default_factory=list)


def _as_batch(img: torch.Tensor, k: int) -> torch.Tensor:
    if img.ndim == 3:
        img = img[None]
    if img.ndim != 4 or img.shape[0] != 1 or img.shape[1] != 3:
        raise ConfigError(f"image {k} must be a [1, 3, H, W] (or [3, H, W]) tensor in [-1, 1], got {tuple(img.shape)}")
    return img


def _stack(items: list[torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:
    if all(t.shape == items[0].shape for t in items):
        return torch.stack(items)
    return items


@torch.no_grad()
def run_pairs(model: Dust3rNet, imgs: list[torch.Tensor], pairs: list[tuple[int, int]] | None = None,
              batch_size: int = 1, device: torch.device | str | None = None, autocast: torch.dtype | None = None,
              progress: bool = True, keys: set[str] | None = None) -> PairPredictions:
    """Run the network on every ordered pair (``make_pairs_complete`` when pairs is None).

    Pairs are processed ``batch_size`` at a time (consecutive pairs whose two images have the same shapes go in one
    batch; Feat2GS uses batch_size=1). ``keys`` limits which outputs are kept (e.g. {"pts3d", "conf",
    "pts3d_in_other_view"}; MASt3R descriptors are large); ``feat`` is always used for ``encoder_features``.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    imgs = [_as_batch(im, k) for k, im in enumerate(imgs)]
    if pairs is None:
        pairs = make_pairs_complete(len(imgs))
    for i, j in pairs:
        if not (0 <= i < len(imgs) and 0 <= j < len(imgs)):
            raise ConfigError(f"pair ({i}, {j}) refers to an image outside 0..{len(imgs) - 1}")
    if device is None:
        device = next(model.parameters()).device
    device = torch.device(device)
    model.eval()

    per_edge1: list[dict[str, torch.Tensor]] = []
    per_edge2: list[dict[str, torch.Tensor]] = []
    chunks = [pairs[s:s + batch_size] for s in range(0, len(pairs), batch_size)]
    for chunk in tqdm(chunks, desc="dust3r pairs", disable=not progress, mininterval=0.5):
        # split a chunk into runs of equal shapes, keeping the pair order
        runs: list[list[tuple[int, int]]] = []
        for i, j in chunk:
            sig = (imgs[i].shape, imgs[j].shape)
            if runs and (imgs[runs[-1][0][0]].shape, imgs[runs[-1][0][1]].shape) == sig:
                runs[-1].append((i, j))
            else:
                runs.append([(i, j)])
        for run in runs:
            views = []
            for side in (0, 1):
                img = torch.cat([imgs[p[side]] for p in run]).to(device)
                shape = torch.tensor([list(img.shape[-2:])] * len(run), dtype=torch.int32, device=device)
                views.append({"img": img, "true_shape": shape})
            res1, res2 = model(views[0], views[1], autocast=autocast)
            for b in range(len(run)):
                per_edge1.append({k: v[b].float().cpu() for k, v in res1.items() if keys is None or k in keys
                                  or k == "feat"})
                per_edge2.append({k: v[b].float().cpu() for k, v in res2.items() if keys is None or k in keys})

    out = PairPredictions(edges=list(pairs))
    for src, dst in ((per_edge1, out.pred1), (per_edge2, out.pred2)):
        for k in src[0]:
            dst[k] = _stack([e[k] for e in src])
    # Feat2GS stacked_feat: feat of the last edge whose view1 is image k (depends on the image only)
    feats: dict[int, torch.Tensor] = {}
    for e, (i, _) in enumerate(pairs):
        feats[i] = per_edge1[e]["feat"]
    for k in range(len(imgs)):
        if k not in feats:  # image never used as view1: encode it directly
            feats[k] = model.encoder_features(imgs[k].to(device), autocast=autocast)[0].float().cpu()
    out.encoder_features = [feats[k] for k in range(len(imgs))]
    if keys is not None and "feat" not in keys:
        out.pred1.pop("feat", None)
    return out
