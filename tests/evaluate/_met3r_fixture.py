"""The MET3R conformance fixture (``$FEAT2GS_FIXTURES/met3r``, default ``../shared/fixtures`` beside the repository)
and the tiny networks it was made with, loaded into our modules."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import pytest
import torch


def fixture_root() -> Path:
    env = os.environ.get("FEAT2GS_FIXTURES")
    return Path(env).expanduser() if env else Path(__file__).resolve().parents[3] / "shared" / "fixtures"


MET3R = fixture_root() / "met3r"
DUST3R = fixture_root() / "dust3r"
requires_met3r_fixture = pytest.mark.skipif(
    not (MET3R / "met3r_fixture.safetensors").is_file() or not (DUST3R / "dust3r_tiny_config.json").is_file(),
    reason=f"MET3R conformance fixture not found under {fixture_root()} (set $FEAT2GS_FIXTURES)")


@functools.lru_cache(maxsize=None)
def tensors(name: str = "met3r_fixture.safetensors") -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(MET3R / name))


@functools.lru_cache(maxsize=None)
def meta() -> dict:
    return json.loads((MET3R / "met3r_fixture.json").read_text())


def sub(prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in tensors().items() if k.startswith(prefix)}


def tiny_parts():
    """(DinoFeaturizer, JBUStack) holding the fixture's tiny weights (eval mode)."""
    from feat2gs.evaluate.met3r.dino import ChannelNorm, DinoFeaturizer, build_vit
    from feat2gs.evaluate.met3r.jbu import JBUStack

    d = meta()["tiny_dino"]
    vit = build_vit(d["embed_dim"], d["depth"], d["num_heads"], float(d["mlp_ratio"]), d["img_size"])
    vit.load_state_dict(sub("weights.dino_vit."), strict=True)
    norm = ChannelNorm(meta()["channel_norm"]["dim"])
    norm.load_state_dict(sub("weights.channel_norm."), strict=True)
    jbu = JBUStack(d["embed_dim"])
    jbu.load_state_dict(sub("weights.jbu."), strict=True)
    return DinoFeaturizer(vit, norm).eval(), jbu.eval()


def tiny_dust3r(depth_bias: float | None = None):
    """The shared tiny DUSt3R (inference variant) with the fixture's +1 depth-bias change (``depth_bias``)."""
    from safetensors.torch import load_file

    from feat2gs.init.dust3r import Dust3rNet, config_from_kwargs

    cfg_meta = json.loads((DUST3R / "dust3r_tiny_config.json").read_text())
    o = cfg_meta["head_factory_overrides"]
    cfg = config_from_kwargs(cfg_meta["constructor_kwargs_inference_variant"], None, inference=False,
                             overrides={"dpt_feature_dim": o["feature_dim"], "dpt_last_dim": o["last_dim"],
                                        "dpt_layer_dims": tuple(o["layer_dims"]),
                                        "local_feat_hidden_factor": o["hidden_dim_factor"]})
    sd = load_file(str(DUST3R / "dust3r_tiny_state_dict.safetensors"))
    bias = meta()["dust3r_depth_bias"]
    shift = bias["added"] if depth_bias is None else depth_bias
    for key in bias["keys"]:
        sd[key] = sd[key].clone()
        sd[key][bias["index"]] += shift
    net = Dust3rNet(cfg).eval()
    net.load_state_dict(sd, strict=True)
    return net


def tiny_met3r(img_size: int | None = 64, radius: float = 0.01, depth_bias: float | None = None,
               variant: str = "2025-07"):
    from feat2gs.evaluate.met3r import Met3r, Met3rOptions

    feat, jbu = tiny_parts()
    return Met3r(feat, jbu, tiny_dust3r(depth_bias),
                 Met3rOptions(img_size=img_size, backbone="dust3r", radius=radius, variant=variant),
                 sources={"featup": "fixture", "dino": "fixture", "dust3r": "fixture"}, random_weights=True)
