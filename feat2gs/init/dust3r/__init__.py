"""Our own DUSt3R / MASt3R networks (CroCo v2 ViT-L encoder, two ViT-B decoders, DPT / DPT+MLP heads).

State_dict-compatible with the official checkpoints; numerically checked against fixtures produced by the
official code (tests/init/test_dust3r_network.py).

    from feat2gs.init.dust3r import load_dust3r, make_pairs_complete, run_pairs
    loaded = load_dust3r(kind="dust3r", device="cuda")          # or random_weights=True
    out = run_pairs(loaded.model, imgs, make_pairs_complete(len(imgs)), batch_size=1, autocast=torch.bfloat16)
"""

from feat2gs.init.dust3r.checkpoint import (
    CheckpointError,
    LoadedDust3r,
    config_from_constructor,
    load_dust3r,
    parse_constructor,
)
from feat2gs.init.dust3r.config import (
    Dust3rConfig,
    config_from_kwargs,
    dust3r_vitl_512_dpt,
    mast3r_vitl_512_catmlpdpt,
)
from feat2gs.init.dust3r.model import Dust3rNet
from feat2gs.init.dust3r.pairs import PairPredictions, make_pairs_complete, run_pairs

__all__ = [
    "CheckpointError",
    "Dust3rConfig",
    "Dust3rNet",
    "LoadedDust3r",
    "PairPredictions",
    "config_from_constructor",
    "config_from_kwargs",
    "dust3r_vitl_512_dpt",
    "load_dust3r",
    "make_pairs_complete",
    "mast3r_vitl_512_catmlpdpt",
    "parse_constructor",
    "run_pairs",
]
