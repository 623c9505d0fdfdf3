"""MAE (transformers), SAM (segment_anything) and MiDaS (timm + DPT_Large checkpoint) backbones.

Random-weight builds of the real architectures, identity token order for MAE, SAM on a 32x24 token grid, missing
weight errors with empty offline caches, and key mapping from small checkpoints written in the official layouts.
"""

import dataclasses

import numpy as np
import pytest
import torch

from feat2gs.features import backbones as bb
from feat2gs.features.backbones import extra
from tests.features.conftest import assert_missing_weights_explained, backbone_inputs

pytest.importorskip("transformers")
pytest.importorskip("segment_anything")



def _mae_reference_sincos(gh, gw, dim):
    """The original MAE numpy code (util/pos_embed.py), generalised to a gh x gw grid."""
    grid = np.meshgrid(np.arange(gw, dtype=np.float32), np.arange(gh, dtype=np.float32))  # w goes first
    grid = np.stack(grid, axis=0).reshape([2, 1, gh, gw])

    def one_d(d, pos):
        omega = 1.0 / 10000 ** (np.arange(d // 2, dtype=np.float64) / (d / 2.0))
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    return torch.from_numpy(np.concatenate([one_d(dim // 2, grid[0]), one_d(dim // 2, grid[1])], axis=1)).float()


# ---------------------------------------------------------------------------------------------- configs

def test_new_configs():
    want = {"mae_b16": ("transformers", 11, 768, "imagenet"), "mae_l16": ("transformers", 23, 1024, "imagenet"),
            "sam_base": ("segment_anything", 11, 768, "imagenet"),
            "sam_large": ("segment_anything", 23, 1024, "imagenet"), "midas_l16": ("timm", 23, 1024, "pm1")}
    for name, (library, block, channels, norm) in want.items():
        cfg = bb.load_backbone_config(name)
        assert (cfg.library, cfg.block, cfg.channels, cfg.normalisation) == (library, block, channels, norm)
        assert cfg.patch == cfg.stride == 16 and cfg.weight_files
    assert bb.load_backbone_config("midas_l16").mean == (0.5, 0.5, 0.5)
    assert bb.load_backbone_config("midas_l16").checkpoint_prefix == "pretrained.model."


# ---------------------------------------------------------------------------------------------- random weights

def test_mae_identity_order_and_sincos(offline_empty_caches):
    """Our forward == ViTMAEModel's own forward with mask_ratio 0 and an order-keeping noise (ids_restore identity),
    taken at hidden_states[11]; the regenerated table is the original MAE table."""
    for gh, gw, dim in [(14, 14, 768), (3, 5, 64), (24, 32, 1024)]:
        assert torch.allclose(extra.mae_sincos(gh, gw, dim), _mae_reference_sincos(gh, gw, dim), atol=1e-5)
    loaded = bb.load_backbone("mae_b16", random_weights=True, device="cpu")
    model = loaded.module
    assert model.config.mask_ratio == 0.0
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        model.embeddings.position_embeddings[0, 1:] = extra.mae_sincos(14, 14, 768)
        model.embeddings.position_embeddings[0, :1] = 0
        noise = torch.arange(196, dtype=torch.float32).expand(2, -1)
        out = model(pixel_values=x, noise=noise, output_hidden_states=True)
        ours = loaded.grid(x)
    assert out.ids_restore.tolist() == [list(range(196))] * 2 and out.mask.sum() == 0
    ref = out.hidden_states[11][:, 1:].transpose(1, 2).reshape(2, 768, 14, 14)
    assert torch.allclose(ours, ref, atol=1e-4)
    # a random noise (what ViTMAE does by default) would shuffle the patches: our grid is not that
    with torch.no_grad():
        shuffled = model(pixel_values=x, noise=torch.rand(2, 196), output_hidden_states=True).hidden_states[11]
    assert not torch.allclose(shuffled[:, 1:].transpose(1, 2).reshape(2, 768, 14, 14), ours, atol=1e-3)
    # a non-square grid keeps raster order: tokens of a shifted image move with it (translation check on patch embed)
    assert ours.shape == (2, 768, 14, 14)
    bb.clear_model_cache()


def test_sam_on_a_32x24_token_grid(offline_empty_caches):
    inputs = backbone_inputs(384, 512, n=1)
    feats = bb.extract_backbone("sam_base", inputs, device="cpu")
    assert feats.shape == (1, 24, 32, 768) and torch.isfinite(feats).all() and feats.std() > 0
    bb.clear_model_cache()


def test_sam_grid_matches_the_encoder_at_its_native_grid():
    """At the encoder's own grid the position embedding is used as is and the grid is the last block's output."""
    from segment_anything.modeling import ImageEncoderViT

    torch.manual_seed(0)
    enc = ImageEncoderViT(img_size=64, patch_size=16, embed_dim=32, depth=3, num_heads=2, window_size=3,
                          use_rel_pos=True, global_attn_indexes=(2,), out_chans=16).eval()
    grabbed = {}
    enc.blocks[2].register_forward_hook(lambda mod, args, out: grabbed.__setitem__("x", out))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        enc(x)
        native = grabbed["x"]
        ours = extra.sam_grid(enc, x, 2)
        other = extra.sam_grid(enc, torch.randn(1, 3, 80, 48), 2)  # pos-embed resized 4x4 -> 5x3
    assert torch.allclose(ours, native.permute(0, 3, 1, 2), atol=1e-5)
    assert other.shape == (1, 32, 5, 3)


# ---------------------------------------------------------------------------------------------- missing weights

def test_new_backbones_missing_weights(offline_empty_caches, monkeypatch):
    import segment_anything
    import timm
    import transformers

    def built(*args, **kwargs):
        raise AssertionError("a network was built although no weights exist")

    monkeypatch.setattr(timm, "create_model", built)
    monkeypatch.setattr(transformers, "ViTMAEModel", built)
    monkeypatch.setitem(segment_anything.sam_model_registry, "vit_b", built)
    monkeypatch.setitem(segment_anything.sam_model_registry, "vit_l", built)
    hints = {"mae_b16": "huggingface-cli download facebook/vit-mae-base",
             "mae_l16": "huggingface-cli download facebook/vit-mae-large",
             "sam_base": "wget https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
             "sam_large": "wget https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth",
             "midas_l16": "wget https://github.com/isl-org/MiDaS/releases/download/v3/dpt_large_384.pt"}
    assert_missing_weights_explained(hints, offline_empty_caches)
    msg = str(pytest.raises(bb.BackboneWeightsError, bb.resolve_weights, bb.load_backbone_config("sam_base")).value)
    assert "torch_home/hub/checkpoints (sam_vit_b_01ec64.pth)" in msg  # torch.hub's checkpoint dir is searched


# ---------------------------------------------------------------------------------------------- key mapping

_MAE_OFFICIAL = [("attention.q_proj.", "attention.attention.query."), ("attention.k_proj.", "attention.attention.key."),
                 ("attention.v_proj.", "attention.attention.value."), ("attention.o_proj.", "attention.output.dense."),
                 ("mlp.fc1.", "intermediate.dense."), ("mlp.fc2.", "output.dense.")]


def _to_official_mae(sd):
    out = {}
    for k, v in sd.items():
        if k.startswith("layers."):
            _, i, rest = k.split(".", 2)
            for new, old in _MAE_OFFICIAL:
                if rest.startswith(new):
                    rest = old + rest[len(new):]
            k = f"encoder.layer.{i}.{rest}"
        out[f"vit.{k}"] = v.clone().contiguous()
    out["decoder.decoder_embed.weight"] = torch.zeros(4, 4)  # ViTMAEForPreTraining's decoder is ignored
    return out


def test_mae_official_checkpoint_loads_from_the_hf_cache(offline_empty_caches, monkeypatch):
    from safetensors.torch import save_file

    monkeypatch.setitem(extra.MAE_SIZES, "facebook/vit-mae-base",
                        dict(hidden_size=64, num_hidden_layers=3, num_attention_heads=2, intermediate_size=128))
    cfg = dataclasses.replace(bb.load_backbone_config("mae_b16"), channels=64, block=2)
    inputs = backbone_inputs(48, 80)
    loaded = bb.load_backbone(cfg, random_weights=True)
    sd = loaded.module.state_dict()
    sd["embeddings.position_embeddings"] = torch.cat([torch.zeros(1, 64), _mae_reference_sincos(14, 14, 64)])[None]
    ref = bb.run_backbone(loaded, inputs.images)
    official = _to_official_mae(sd)
    assert "vit.encoder.layer.0.attention.attention.query.weight" in official
    snap = offline_empty_caches / "hf_hub_cache" / "models--facebook--vit-mae-base"
    (snap / "snapshots" / "abc").mkdir(parents=True)
    (snap / "refs").mkdir()
    (snap / "refs" / "main").write_text("abc")
    save_file(official, str(snap / "snapshots" / "abc" / "model.safetensors"))
    assert bb.backbone_status("mae_b16")[0] is True
    pre = bb.load_backbone(cfg, device="cpu")
    assert not pre.random_weights and pre.module.feat2gs_pos_layout == "xy"
    assert torch.allclose(bb.run_backbone(pre, inputs.images), ref, atol=1e-5)
    # a checkpoint whose position table is not the sin-cos table is refused (it could not be regenerated)
    official["vit.embeddings.position_embeddings"] = torch.randn(1, 197, 64)
    save_file(official, str(snap / "snapshots" / "abc" / "model.safetensors"))
    bb.clear_model_cache()
    with pytest.raises(bb.BackboneWeightsError, match="not the MAE 2D sin-cos table"):
        bb.load_backbone(cfg, device="cpu")
    # missing keys are named
    del official["vit.encoder.layer.1.output.dense.weight"]
    official["vit.embeddings.position_embeddings"] = sd["embeddings.position_embeddings"]
    save_file(official, str(snap / "snapshots" / "abc" / "model.safetensors"))
    with pytest.raises(bb.BackboneWeightsError, match="layers.1.mlp.fc2.weight"):
        bb.load_backbone(cfg, device="cpu")


def test_sam_official_checkpoint_loads(offline_empty_caches, monkeypatch):
    import segment_anything
    from segment_anything.build_sam import _build_sam

    def tiny(checkpoint=None):
        assert checkpoint is None
        return _build_sam(encoder_embed_dim=64, encoder_depth=3, encoder_num_heads=2, encoder_global_attn_indexes=[2],
                          checkpoint=None)

    monkeypatch.setitem(segment_anything.sam_model_registry, "vit_b", tiny)
    cfg = dataclasses.replace(bb.load_backbone_config("sam_base"), channels=64, block=2)
    inputs = backbone_inputs(48, 80)
    torch.manual_seed(1)
    sam = tiny()
    full = {k: v.clone() for k, v in sam.state_dict().items()}  # the official layout: the whole Sam model
    assert any(k.startswith("mask_decoder.") for k in full) and "image_encoder.pos_embed" in full
    ckdir = offline_empty_caches / "torch_home" / "hub" / "checkpoints"
    ckdir.mkdir(parents=True)
    torch.save(full, ckdir / "sam_vit_b_01ec64.pth")
    assert bb.backbone_status("sam_base") == (True, [str(ckdir / "sam_vit_b_01ec64.pth")])
    pre = bb.load_backbone(cfg, device="cpu")
    assert not pre.random_weights
    x = torch.randn(1, 3, 48, 80)
    with torch.no_grad():
        assert torch.allclose(pre.grid(x), extra.sam_grid(sam.image_encoder.eval(), x, 2), atol=1e-5)
    assert bb.run_backbone(pre, inputs.images).shape == (2, 3, 5, 64)
    # a checkpoint of another size is refused with the keys at fault
    torch.save({"image_encoder.pos_embed": torch.zeros(1, 64, 64, 32)}, ckdir / "sam_vit_b_01ec64.pth")
    bb.clear_model_cache()
    with pytest.raises(bb.BackboneWeightsError, match="do not fit segment_anything vit_b"):
        bb.load_backbone(cfg, device="cpu")


def test_midas_checkpoint_key_mapping(offline_empty_caches, monkeypatch):
    cfg = dataclasses.replace(bb.load_backbone_config("midas_l16"), arch="vit_tiny_patch16_384", channels=192,
                              block=11)
    inputs = backbone_inputs(48, 80)
    loaded = bb.load_backbone(cfg, random_weights=True)
    ref = bb.run_backbone(loaded, inputs.images)
    sd = {f"pretrained.model.{k}": v.clone() for k, v in loaded.module.state_dict().items()}
    sd["pretrained.act_postprocess1.0.weight"] = torch.zeros(2, 2)  # DPT reassembly and head: ignored
    sd["scratch.output_conv.0.weight"] = torch.zeros(2, 2)
    ckdir = offline_empty_caches / "torch_home" / "hub" / "checkpoints"
    ckdir.mkdir(parents=True)
    torch.save(sd, ckdir / "dpt_large_384.pt")
    assert bb.backbone_status("midas_l16") == (True, [str(ckdir / "dpt_large_384.pt")])
    pre = bb.load_backbone(cfg, device="cpu")
    assert not pre.random_weights
    assert torch.allclose(bb.run_backbone(pre, inputs.images), ref, atol=1e-5)
    # a plain timm file (no pretrained.model. prefix) is not a MiDaS checkpoint
    torch.save(loaded.module.state_dict(), ckdir / "dpt_large_384.pt")
    bb.clear_model_cache()
    with pytest.raises(bb.BackboneWeightsError, match="holds no 'pretrained.model.\\*' keys"):
        bb.load_backbone(cfg, device="cpu")
