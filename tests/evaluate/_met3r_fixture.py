"""The MET3R conformance fixture (``$FEAT2GS_FIXTURES/met3r``, default ``../shared/fixtures`` beside the repository)
and the tiny networks it was made with, loaded into our modules. What the set holds (cases, which tensors each
case records) is read from its own files, so the tests run unchanged on another valid fixture set."""

from __future__ import annotations

import functools
import json
import os

import pytest
import torch

from tests.init._fixtures import ENV_VAR, FIXTURES_ROOT, tiny_kwargs, tiny_overrides

MET3R = FIXTURES_ROOT / "met3r"
# Skipped only when the default location is absent; a root named by $FEAT2GS_FIXTURES must hold the set.
requires_met3r_fixture = pytest.mark.skipif(
    not MET3R.is_dir() and not os.environ.get(ENV_VAR),
    reason=f"MET3R conformance fixture not found at {MET3R} (set ${ENV_VAR} to the fixtures root)")


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
    """The shared tiny DUSt3R (inference variant) with the MET3R fixture's depth-bias change (``depth_bias``
    overrides the amount added)."""
    from safetensors.torch import load_file

    from feat2gs.init.dust3r import Dust3rNet, config_from_kwargs

    cfg = config_from_kwargs(tiny_kwargs("dust3r"), None, inference=False, overrides=tiny_overrides("dust3r"))
    sd = load_file(str(FIXTURES_ROOT / "dust3r" / "dust3r_tiny_state_dict.safetensors"))
    bias = meta()["dust3r_depth_bias"]
    shift = bias["added"] if depth_bias is None else depth_bias
    for key in bias["keys"]:
        sd[key] = sd[key].clone()
        sd[key][bias["index"]] += shift
    net = Dust3rNet(cfg).eval()
    net.load_state_dict(sd, strict=True)
    return net


def tensor_names(file: str = "met3r_fixture.safetensors") -> list[str]:
    return [t["name"] for t in meta()["tensor_index"][file]]


def cases() -> list[str]:
    return list(meta()["cases"])


def cases_with(name: str) -> list[str]:
    """Cases that record tensor ``<case>.<name>``."""
    names = set(tensor_names())
    return [c for c in cases() if f"{c}.{name}" in names]


def tiny_met3r(img_size: int | None = 64, radius: float = 0.01, depth_bias: float | None = None,
               variant: str = "2025-07"):
    from feat2gs.evaluate.met3r import Met3r, Met3rOptions

    feat, jbu = tiny_parts()
    return Met3r(feat, jbu, tiny_dust3r(depth_bias),
                 Met3rOptions(img_size=img_size, backbone="dust3r", radius=radius, variant=variant),
                 sources={"featup": "fixture", "dino": "fixture", "dust3r": "fixture"}, random_weights=True)
