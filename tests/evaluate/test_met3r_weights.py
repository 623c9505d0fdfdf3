"""MET3R weights: FeatUp's released checkpoint layout loads (Lightning pickle, nothing foreign executed), missing
weights give one clear error with the fetch command, random weights are flagged."""

from __future__ import annotations

import pytest
import torch

from feat2gs.evaluate.met3r import Met3rOptions, Met3rWeightsError, load_met3r
from feat2gs.evaluate.met3r.dino import VIT_S16, ChannelNorm, build_vit
from feat2gs.evaluate.met3r.jbu import JBUStack
from feat2gs.evaluate.met3r.weights import FEATUP_FILE, load_featup_dino16, read_checkpoint
from feat2gs.init.dust3r import CheckpointError

EXECUTED = []


class LightningLoopState:  # stands for the classes a Lightning checkpoint pickles besides tensors
    def __setstate__(self, state):
        EXECUTED.append(state)  # must never run while our loader reads the file
        self.__dict__.update(state)


@pytest.fixture()
def isolated(monkeypatch, tmp_path):
    """No weights anywhere: empty checkpoint dirs, torch hub and Hugging Face caches."""
    monkeypatch.setenv("FEAT2GS_CHECKPOINTS", str(tmp_path / "ckpts"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "ckpts").mkdir()
    return tmp_path


def featup_state_dict(seed: int = 0, with_vit: bool = True) -> dict[str, torch.Tensor]:
    """FeatUp's dino16 training-module keys: model.0.model.* (ViT), model.1.norm.*, upsampler.*, downsampler.*."""
    torch.manual_seed(seed)
    dim = VIT_S16["embed_dim"]
    sd = {}
    if with_vit:
        sd.update({f"model.0.model.{k}": v for k, v in build_vit(**VIT_S16).state_dict().items()})
    norm = ChannelNorm(dim)
    torch.nn.init.normal_(norm.norm.weight)
    sd.update({f"model.1.{k}": v for k, v in norm.state_dict().items()})
    jbu = JBUStack(dim)
    with torch.no_grad():
        jbu.up2.range_temp.fill_(0.7)
    sd.update({f"upsampler.{k}": v for k, v in jbu.state_dict().items()})
    sd["downsampler.w"] = torch.zeros(3)
    sd["scale_net.net.weight"] = torch.zeros(1, dim, 1, 1)
    return sd


@pytest.mark.slow
def test_released_checkpoint_layout_loads(tmp_path):
    sd = featup_state_dict()
    loop = LightningLoopState()
    loop.__dict__["epoch"] = 3
    path = tmp_path / FEATUP_FILE
    torch.save({"state_dict": sd, "loops": loop, "epoch": 3, "pytorch-lightning_version": "1.9"}, path)
    EXECUTED.clear()
    flat = read_checkpoint(path)
    assert not EXECUTED, "a pickled class ran code while reading"
    assert set(flat) == set(sd)
    parts = load_featup_dino16(path)
    assert not parts.random_weights and parts.source == str(path) and parts.vit_source == str(path)
    assert torch.equal(parts.upsampler.up2.range_temp, torch.tensor(0.7))
    assert torch.equal(parts.featurizer.channel_norm.norm.weight, sd["model.1.norm.weight"])
    assert torch.equal(parts.featurizer.vit.blocks[11].mlp.fc2.weight, sd["model.0.model.blocks.11.mlp.fc2.weight"])
    with torch.no_grad():
        _, lr = parts.featurizer(torch.rand(1, 3, 32, 32))
    assert tuple(lr.shape) == (1, 384, 2, 2)


def test_wrong_file_is_a_clear_error(tmp_path):
    path = tmp_path / FEATUP_FILE
    torch.save({"state_dict": {"upsampler.bogus": torch.zeros(2)}}, path)
    with pytest.raises(Met3rWeightsError, match="do not fit FeatUp dino16"):
        load_featup_dino16(path)
    torch.save({"state_dict": {"model.1.norm.weight": torch.zeros(2)}}, path)
    with pytest.raises(Met3rWeightsError, match="no FeatUp JBU weights"):
        load_featup_dino16(path)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(Met3rWeightsError, match="cannot read"):
        load_featup_dino16(path)


def test_missing_featup_weights_name_the_places_and_the_fetch_command(isolated):
    with pytest.raises(Met3rWeightsError) as err:
        load_met3r(Met3rOptions(backbone="dust3r"))
    msg = str(err.value)
    assert str(isolated / "ckpts" / FEATUP_FILE) in msg and str(isolated / "torch") in msg
    assert "wget https://marhamilresearch4.blob.core.windows.net/" in msg and "--random-weights" in msg


def test_missing_pointmap_weights_name_the_fetch_command(isolated):
    (isolated / "ckpts" / FEATUP_FILE).write_bytes(b"found first, read later")
    with pytest.raises(CheckpointError) as err:
        load_met3r(Met3rOptions(backbone="mast3r"))
    assert "MASt3R_ViTLarge_BaseDecoder_512_catmlpdpt_metric" in str(err.value) and "wget" in str(err.value)


def test_random_featurizer_is_flagged():
    parts = load_featup_dino16(random_weights=True, seed=1)
    assert parts.random_weights and parts.source == "random"
    again = load_featup_dino16(random_weights=True, seed=1)
    assert torch.equal(parts.upsampler.up1.fixup_proj[0].weight, again.upsampler.up1.fixup_proj[0].weight)


@pytest.mark.slow
def test_vit_from_a_separate_dino_file(tmp_path):
    """A FeatUp file without the ViT takes DINO's ViT-S/16 from --dino-checkpoint (DINO's original key layout)."""
    path = tmp_path / FEATUP_FILE
    torch.save({"state_dict": featup_state_dict(with_vit=False)}, path)
    torch.manual_seed(3)
    vit_sd = build_vit(**VIT_S16).state_dict()
    torch.save(vit_sd, tmp_path / "dino_deitsmall16_pretrain.pth")
    parts = load_featup_dino16(path, dino_source=tmp_path / "dino_deitsmall16_pretrain.pth")
    assert parts.vit_source.endswith("dino_deitsmall16_pretrain.pth")
    assert torch.equal(parts.featurizer.vit.blocks[3].attn.qkv.weight, vit_sd["blocks.3.attn.qkv.weight"])
