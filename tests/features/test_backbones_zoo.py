"""DIFT (diffusers), VGGT (our aggregator) and RADIO (NVIDIA's code via torch.hub) backbones.

Full-size random-weight builds of the real architectures (slow), then small versions of the same code for
what needs many forward passes or a checkpoint on disk: the up-block DIFT takes, per-image seeded noise, VGGT's
frame/global coupling and its 518-wide preprocessing geometry, official-layout checkpoints, missing-weight errors.
"""

import dataclasses

import pytest
import torch

from feat2gs.features import FeatureInputs
from feat2gs.features import backbones as bb
from feat2gs.features.backbones import dift, radio, vggt
from tests.features.conftest import (
    assert_missing_weights_explained,
    assert_random_weight_grids,
    backbone_inputs,
)

pytest.importorskip("diffusers")

ZOO = ["dift", "dift_pm1", "radio", "vggt_e", "vggt_d"]
SMALL_VGGT = "vit_small_patch14_reg4_dinov2"  # same timm family as VGGT's ViT-L/14-reg4, 384 wide


@pytest.fixture()
def narrow_vggt(monkeypatch):
    """VGGT's preprocessing width 518 -> 56 (4 patches): same code, a fraction of the CPU time."""
    monkeypatch.setattr(vggt, "WIDTH", 56)


def _small_cfg(name: str, **changes) -> bb.BackboneConfig:
    return dataclasses.replace(bb.load_backbone_config(name), **changes)


# ---------------------------------------------------------------------------------------------- full-size builds

@pytest.mark.slow
@pytest.mark.parametrize("name", ZOO)
def test_zoo_backbone_random_weights(name, offline_empty_caches, narrow_vggt):
    cfg = bb.load_backbone_config(name)
    assert cfg.channels == {"vggt_e": 1024, "vggt_d": 2048}.get(name, 1280)
    loaded = assert_random_weight_grids(name, [(48, 64), (64, 48)])  # DIFT: its noise ignores the chunking too
    m = loaded.module
    if cfg.library == "diffusers":
        assert sum(p.numel() for p in m.unet.parameters()) == 865_910_724  # SD 2.x UNet
        assert m.block == 1 and m.vae.decoder is None and m.prompt_embeds.shape == (1, 77, 1024)
    elif name == "vggt_d":
        assert len(m.frame_blocks) == len(m.global_blocks) == 24 and m.patch_embed.embed_dim == 1024
        assert m.patch_embed.num_prefix_tokens == 5 and m.frame_blocks[0].attn.heads == 16
    elif name == "radio":
        assert isinstance(m, radio.RadioStandIn) and len(m.vit.blocks) == 32 and m.vit.embed_dim == 1280
    bb.clear_model_cache()


# ---------------------------------------------------------------------------------------------- DIFT

def _tiny_sd(root=None):
    """A small SD-shaped pipeline (the real classes, tiny widths); saved under ``root`` in the diffusers layout."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=8, block_out_channels=(32, 64, 64, 64), layers_per_block=1,
                                down_block_types=dift.SD21_UNET["down_block_types"],
                                up_block_types=dift.SD21_UNET["up_block_types"], cross_attention_dim=32,
                                attention_head_dim=(2, 4, 4, 4), norm_num_groups=32, use_linear_projection=True)
    vae = AutoencoderKL(block_out_channels=(32,) * 4, down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=4, norm_num_groups=32)  # 1/8
    text = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=4, max_position_embeddings=77))
    scheduler = DDIMScheduler(**dift.SD21_SCHEDULER)
    if root is not None:
        unet.save_pretrained(root / "unet")
        vae.save_pretrained(root / "vae")
        text.save_pretrained(root / "text_encoder")
        scheduler.save_pretrained(root / "scheduler")
    return unet, vae, text, scheduler


def _tiny_tokenizer(directory):
    """A CLIPTokenizer whose vocabulary has only its special tokens and '!' (what an empty prompt needs)."""
    import json

    from transformers import CLIPTokenizer

    directory.mkdir(parents=True)
    (directory / "vocab.json").write_text(json.dumps({"!": 0, "<|startoftext|>": 49406, "<|endoftext|>": 49407}))
    (directory / "merges.txt").write_text("#version: 0.2\n")
    tok = CLIPTokenizer(str(directory / "vocab.json"), str(directory / "merges.txt"), pad_token="!")
    tok.save_pretrained(directory)
    return tok


def test_dift_takes_up_block_1_of_a_full_forward_with_t1_noise():
    unet, vae, text, scheduler = _tiny_sd()
    model = dift.DiftModel(unet, vae, scheduler, text(dift._empty_prompt_ids())[0].detach(), block=1).eval()
    x = torch.rand(3, 3, 48, 64) * 2 - 1
    with torch.no_grad():
        ours = model(x, first=0, seed=5)
        alone = model(x[2:], first=2, seed=5)  # image 2 alone gets the noise it gets inside the batch
        model.hook.remove()
        seen = {}
        unet.up_blocks[1].register_forward_hook(lambda m, a, out: seen.setdefault("up1", out))
        latents = vae.encode(x).latent_dist.mode() * vae.config.scaling_factor
        noise = torch.stack([torch.randn(latents.shape[1:], generator=torch.Generator().manual_seed(5 * 1_000_003 + i))
                             for i in range(3)])
        ab = scheduler.alphas_cumprod[1]
        noisy = ab.sqrt() * latents + (1 - ab).sqrt() * noise  # t = 1 of the scaled-linear schedule
        unet(noisy, torch.tensor([1, 1, 1]), encoder_hidden_states=model.prompt_embeds.expand(3, -1, -1))
    assert ours.shape == (3, 64, 3, 4)  # 1/16 of the input
    assert torch.allclose(ours, seen["up1"], atol=1e-5)
    assert torch.allclose(alone, ours[2:], atol=1e-4)
    assert dift._empty_prompt_ids()[0, :3].tolist() == [49406, 49407, 0]


def test_dift_loads_a_diffusers_folder_from_the_hf_cache(offline_empty_caches):
    snap = offline_empty_caches / "hf_hub_cache" / "models--stabilityai--stable-diffusion-2-1"
    root = snap / "snapshots" / "abc"
    unet, vae, text, scheduler = _tiny_sd(root)
    tok = _tiny_tokenizer(root / "tokenizer")
    (snap / "refs").mkdir()
    (snap / "refs" / "main").write_text("abc")
    cfg = _small_cfg("dift", channels=64)
    assert bb.resolve_weights(cfg) == root / "unet" / "diffusion_pytorch_model.safetensors"
    loaded = bb.load_backbone(cfg, device="cpu")
    assert not loaded.random_weights
    ids = tok("", padding="max_length", max_length=77, return_tensors="pt").input_ids
    assert ids[0, :3].tolist() == [49406, 49407, 0]
    with torch.no_grad():
        assert torch.allclose(loaded.module.prompt_embeds, text(ids)[0], atol=1e-6)
    feats = bb.run_backbone(loaded, torch.rand(2, 32, 48, 3), seed=1)
    assert feats.shape == (2, 2, 3, 64) and torch.isfinite(feats).all()
    # a snapshot without the text encoder is an incomplete download: named, with the command
    import shutil

    shutil.rmtree(root / "text_encoder")
    bb.clear_model_cache()
    assert bb.get_family(cfg.family).missing_parts(cfg, bb.resolve_weights(cfg)) == [f"{root / 'text_encoder'}/"]
    with pytest.raises(bb.BackboneWeightsError, match="(?s)missing text_encoder/.*huggingface-cli download "
                                                      "stabilityai/stable-diffusion-2-1 --include"):
        bb.load_backbone(cfg, device="cpu")


# ---------------------------------------------------------------------------------------------- VGGT

@pytest.fixture()
def small_vggt(monkeypatch, narrow_vggt):
    monkeypatch.setattr(vggt, "PATCH_EMBED_ARCH", SMALL_VGGT)
    monkeypatch.setattr(vggt, "DEPTH", 2)


def test_vggt_frames_are_coupled_by_global_attention_only(small_vggt):
    torch.manual_seed(0)
    agg = vggt.VGGTAggregator().eval()
    assert agg.patch_embed.embed_dim == 384 and len(agg.frame_blocks) == 2
    with torch.no_grad():  # trained-like special tokens (the init is 1e-6 noise: all frames would look alike)
        agg.camera_token.normal_()
        agg.register_token.normal_()
    x = torch.randn(3, 3, 28, 42)
    with torch.no_grad():
        out = agg(x)
        assert out.shape == (3, 768, 2, 3)
        # frames 1 and 2 share the second camera/register tokens: swapping them swaps their features
        swapped = agg(x[[0, 2, 1]])
        assert torch.allclose(swapped, out[[0, 2, 1]], atol=1e-5)
        # changing frame 2 changes frame 1's aggregator features (global attention), not its patch embedding
        y = x.clone()
        y[2] = torch.randn_like(y[2])
        assert not torch.allclose(agg(y)[1], out[1], atol=1e-4)
        enc = vggt.VGGTEncoder.forward(agg, x)
        assert torch.allclose(vggt.VGGTEncoder.forward(agg, y)[1], enc[1], atol=1e-6)
        # the first frame is the reference: its special tokens differ from the others'
        assert not torch.allclose(agg(x[[1, 0, 2]])[0], out[1], atol=1e-4)


def test_vggt_crop_mode_geometry_and_grid_mapping():
    assert vggt.vggt_frame_size(384, 512) == (392, 0, 392)  # 384 * 518 / 512 / 14 = 27.75 -> 28 rows of patches
    assert vggt.vggt_frame_size(512, 384) == (686, 84, 518)  # portrait: centre-cropped to 518 rows

    class Coordinates(torch.nn.Module):
        """Each cell holds its own centre (y, x) in VGGT-frame pixels."""

        def forward(self, frames):
            s, _, h, w = frames.shape
            ys = (torch.arange(h // 14) + 0.5) * 14
            xs = (torch.arange(w // 14) + 0.5) * 14
            return torch.stack([ys[:, None].expand(-1, len(xs)), xs[None].expand(len(ys), -1)])[None].expand(s, -1, -1, -1)

    for h, w in [(384, 512), (512, 384)]:
        new_h, top, crop_h = vggt.vggt_frame_size(h, w)
        got = vggt.extract_vggt(Coordinates(), torch.zeros(1, 3, h, w), 14)
        oh, ow = round(h / 14), round(w / 14)
        assert got.shape == (1, 2, oh, ow)
        want_y = ((torch.arange(oh) + 0.5) * h / oh * new_h / h - top).clamp(7, crop_h - 7)  # border cells beyond
        want_x = (torch.arange(ow) + 0.5) * w / ow * 518 / w
        assert torch.allclose(got[0, 0, :, 0], want_y.float(), atol=1e-3)
        assert torch.allclose(got[0, 1, 0], want_x.float(), atol=1e-3)


def _official_vggt_state_dict(model: vggt.VGGTAggregator) -> dict:
    """Our aggregator's weights written with the original DINOv2 names under ``aggregator.``, plus a head."""
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    pe = {k[len("patch_embed."):]: sd.pop(k) for k in list(sd) if k.startswith("patch_embed.")}
    pos_cls = torch.randn(1, 1, pe["pos_embed"].shape[-1])
    official = {"cls_token": pe.pop("cls_token") - pos_cls, "pos_embed": torch.cat([pos_cls, pe.pop("pos_embed")], 1),
                "register_tokens": pe.pop("reg_token"), "mask_token": torch.zeros(1, pos_cls.shape[-1]), **pe}
    out = {f"aggregator.patch_embed.{k}": v for k, v in official.items()}
    out.update({f"aggregator.{k}": v for k, v in sd.items()})
    out["camera_head.trunk.0.weight"] = torch.zeros(2, 2)
    return out


def test_vggt_official_checkpoint_loads(small_vggt, offline_empty_caches, monkeypatch):
    from safetensors.torch import save_file

    torch.manual_seed(1)
    ref = vggt.VGGTAggregator().eval()
    ckdir = offline_empty_caches / "ck"
    ckdir.mkdir()
    torch.save(_official_vggt_state_dict(ref), ckdir / "model.pt")
    monkeypatch.setenv("FEAT2GS_CHECKPOINTS", str(ckdir))
    images = torch.rand(3, 28, 42, 3)
    x = ((images.permute(0, 3, 1, 2) - torch.tensor(bb.config.IMAGENET_MEAN).view(1, 3, 1, 1))
         / torch.tensor(bb.config.IMAGENET_STD).view(1, 3, 1, 1))
    for name, channels in [("vggt_d", 768), ("vggt_e", 384)]:
        cfg = _small_cfg(name, channels=channels)
        loaded = bb.load_backbone(cfg, device="cpu")
        assert loaded.origin == str(ckdir / "model.pt")
        with torch.no_grad():
            want = vggt.extract_vggt(ref if name == "vggt_d" else _encoder_of(ref), x, 14)
        assert torch.allclose(bb.run_backbone(loaded, images), want.permute(0, 2, 3, 1), atol=1e-5), name
        bb.clear_model_cache()
    sd = _official_vggt_state_dict(ref)
    del sd["aggregator.frame_blocks.1.attn.q_norm.weight"]
    save_file({k: v.contiguous() for k, v in sd.items()}, str(ckdir / "broken.safetensors"))
    with pytest.raises(bb.BackboneWeightsError, match="missing \\['frame_blocks.1.attn.q_norm.weight'\\]"):
        bb.load_backbone(_small_cfg("vggt_d", channels=768), str(ckdir / "broken.safetensors"))
    torch.save({"model": {"blocks.0.weight": torch.zeros(1)}}, ckdir / "other.pt")
    with pytest.raises(bb.BackboneWeightsError, match="holds no 'aggregator"):
        bb.load_backbone(_small_cfg("vggt_e", channels=384), str(ckdir / "other.pt"))


def _encoder_of(agg: vggt.VGGTAggregator) -> vggt.VGGTEncoder:
    enc = vggt.VGGTEncoder()
    enc.patch_embed.load_state_dict(agg.patch_embed.state_dict())
    return enc.eval()


# ---------------------------------------------------------------------------------------------- RADIO

HUBCONF = '''
from pathlib import Path

import torch

dependencies = ["torch"]


class Fake(torch.nn.Module):
    patch_size = 16

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Conv2d(3, 1280, 16, 16)
        self.external = False

    def make_preprocessor_external(self):
        self.external = True
        return torch.nn.Identity()

    def forward(self, x):
        assert self.external, "the preprocessor must be external"
        tokens = self.proj(x).flatten(2).transpose(1, 2)
        return tokens[:, 0].mean(-1), tokens  # (summary, features), RADIO v2's output order


def radio_model(version="", progress=True, adaptor_names=None, **kwargs):
    Path(__file__).with_name("calls.txt").write_text(repr((version, adaptor_names)))
    torch.manual_seed(0)
    return Fake()
'''


def test_radio_runs_nvidias_code_from_the_torch_hub_cache(offline_empty_caches):
    cfg = bb.load_backbone_config("radio")
    checkpoints = offline_empty_caches / "torch_home" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "radio_v2.pth.tar").write_bytes(b"weights")
    assert bb.resolve_weights(cfg) == checkpoints / "radio_v2.pth.tar"
    with pytest.raises(bb.BackboneWeightsError, match="(?s)NVIDIA's RADIO code, which is not on this machine.*"
                                                      "torch.hub.load\\('NVlabs/RADIO', 'radio_model'"):
        bb.load_backbone(cfg, device="cpu")
    assert bb.backbone_status("radio")[0] is False
    repo = offline_empty_caches / "torch_home" / "hub" / "NVlabs_RADIO_main"
    repo.mkdir()
    (repo / "hubconf.py").write_text(HUBCONF)
    assert bb.backbone_status("radio")[0] is True
    images = torch.rand(2, 40, 56, 3)  # centre-padded to 48 x 64
    feats = bb.extract_backbone("radio", FeatureInputs(images, images), device="cpu")
    assert feats.shape == (2, 3, 4, 1280) and not bb.load_backbone(cfg, device="cpu").random_weights
    assert (repo / "calls.txt").read_text() == repr((str(checkpoints / "radio_v2.pth.tar"), None))


# ---------------------------------------------------------------------------------------------- missing weights

def test_zoo_missing_weights_raise_before_building(offline_empty_caches, monkeypatch):
    def built(*args, **kwargs):
        raise AssertionError("a network was built although no weights exist")

    for module, attr in [(dift, "_load_components"), (vggt, "VGGTAggregator"), (vggt, "VGGTEncoder"),
                         (radio, "RadioOfficial")]:
        monkeypatch.setattr(module, attr, built)
    hints = {"dift": "huggingface-cli download stabilityai/stable-diffusion-2-1",
             "vggt_e": "huggingface-cli download facebook/VGGT-1B",
             "vggt_d": "wget https://huggingface.co/facebook/VGGT-1B/resolve/main/model.pt",
             "radio": "wget https://huggingface.co/nvidia/RADIO/resolve/main/radio_v2.pth.tar"}
    assert_missing_weights_explained(hints, offline_empty_caches)


def test_zoo_configs():
    for name in ZOO:
        cfg = bb.load_backbone_config(name)
        assert cfg.protocol_source and cfg.notes
    assert bb.load_backbone_config("dift").mean == bb.config.IMAGENET_MEAN  # paper-compatible default
    assert bb.load_backbone_config("dift_pm1").mean == (0.5, 0.5, 0.5)  # the flag-like fixed variant
    assert bb.load_backbone_config("vggt_d").padding == "crop518" and bb.load_backbone_config("vggt_e").stride == 14


def test_autocast_names_are_checked_and_cpu_runs_stay_fp32(offline_empty_caches):
    from feat2gs.errors import ConfigError
    from feat2gs.runinfo import autocast_dtype

    assert autocast_dtype("bf16") == torch.bfloat16 and autocast_dtype(None) is None
    with pytest.raises(ConfigError, match="autocast must be one of"):
        autocast_dtype("fp32")
    inputs = backbone_inputs(32, 48)
    plain = bb.extract_backbone("dino_b16", inputs, device="cpu")
    inputs.autocast = "fp16"  # CUDA only: ignored on the CPU
    assert torch.equal(bb.extract_backbone("dino_b16", inputs, device="cpu"), plain)
    bb.clear_model_cache()
