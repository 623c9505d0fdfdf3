"""Build :class:`~feat2gs.evaluate.met3r.metric.Met3r` from weights on this machine (or random weights).

Every weight is located before anything is built, so a missing file is reported at once with the command that
fetches it: FeatUp ``dino16`` (:mod:`.weights`) and the DUSt3R / MASt3R checkpoint (``feat2gs.init.dust3r``'s
search: ``--checkpoint``, ``$FEAT2GS_CHECKPOINTS``, ``~/.cache/feat2gs/checkpoints``).
"""

from __future__ import annotations

import logging
import os

import torch

from feat2gs.evaluate.met3r.metric import Met3r, Met3rOptions
from feat2gs.evaluate.met3r.weights import load_featup_dino16, resolve_featup_checkpoint

log = logging.getLogger(__name__)

_CACHE: dict[tuple, Met3r] = {}
# Random-weight pointmap networks are adjusted so that a random run still exercises the whole metric:
# * random heads put most points behind the camera (an empty overlap mask, nothing scored): as the conformance
#   fixture does for its tiny DUSt3R, the raw depth channel of both heads is shifted by +1;
# * the second decoder and head copy the first (as DUSt3R does when it starts from CroCo weights), so the network
#   is symmetric in its two views: two identical images give identical pointmaps and a score of 0, as a trained
#   network nearly does. Without this, two unrelated random heads warp the two views to unrelated places.
RANDOM_DEPTH_BIAS = 1.0


def make_random_pointmaps_usable(model: torch.nn.Module) -> None:
    """Symmetric decoders/heads and a depth shift for a random-weight DUSt3R/MASt3R (see above)."""
    with torch.no_grad():
        model.dec_blocks2.load_state_dict(model.dec_blocks.state_dict())
        model.downstream_head2.load_state_dict(model.downstream_head1.state_dict())
    shift_depth_bias(model)


def shift_depth_bias(model: torch.nn.Module, value: float = RANDOM_DEPTH_BIAS) -> None:
    """Add ``value`` to the z bias of both DPT heads' last conv (``downstream_head{1,2}.dpt.head.4.bias[2]``)."""
    with torch.no_grad():
        for head in (model.downstream_head1, model.downstream_head2):
            head.dpt.head[-1].bias[2] += value


def load_met3r(options: Met3rOptions | None = None, *, device: torch.device | str = "cpu",
               random_weights: bool = False, seed: int = 0, checkpoint: str | os.PathLike | None = None,
               featup_checkpoint: str | os.PathLike | None = None,
               dino_checkpoint: str | os.PathLike | None = None, cache: bool = True) -> Met3r:
    """MET3R with FeatUp dino16 and our DUSt3R/MASt3R (``options.backbone``) on ``device``.

    checkpoint: DUSt3R/MASt3R weights (file, HF directory or cached hub id; default: the official file name in
    the checkpoint directories); featup_checkpoint: FeatUp's ``dino16_jbu_stack_cocostuff.ckpt``;
    dino_checkpoint: DINO ViT-S/16 weights, only needed when the FeatUp file does not contain them.
    random_weights: random networks of the official sizes (tests; the result says ``random_weights``).
    The last metric built is kept (``cache``), so scoring several videos in one process loads the weights once.
    """
    from feat2gs.init.dust3r import load_dust3r
    from feat2gs.init.dust3r.checkpoint import resolve_source

    options = options or Met3rOptions()
    device = torch.device(device)
    key = (options, str(device), random_weights, seed, str(checkpoint), str(featup_checkpoint), str(dino_checkpoint))
    if cache and key in _CACHE:
        return _CACHE[key]
    _CACHE.clear()
    if not random_weights:  # fail before building anything
        resolve_featup_checkpoint(featup_checkpoint, options.use_norm)
        resolve_source(checkpoint, options.backbone)
    parts = load_featup_dino16(featup_checkpoint, use_norm=options.use_norm, dino_source=dino_checkpoint,
                               random_weights=random_weights, seed=seed, device=device)
    if random_weights:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            loaded = load_dust3r(checkpoint, kind=options.backbone, device=device, random_weights=True)
        make_random_pointmaps_usable(loaded.model)
    else:
        loaded = load_dust3r(checkpoint, kind=options.backbone, device=device)
    sources = {"featup": parts.source, "dino": parts.vit_source, options.backbone: loaded.source}
    metric = Met3r(parts.featurizer, parts.upsampler, loaded.model, options, sources,
                   random_weights=random_weights or parts.random_weights or loaded.random_weights)
    if cache:
        _CACHE[key] = metric
    return metric


def clear_cache() -> None:
    _CACHE.clear()
