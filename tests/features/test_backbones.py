"""Backbone zoo: configs, random-weight builds of every registered backbone, grid mapping, weight lookup errors.

No test downloads anything: networks are built with random weights, and the weight lookup runs against empty
cache directories with sockets disabled.
"""


import dataclasses

import pytest
import torch

from feat2gs.errors import ConfigError
from feat2gs.features import FeatureInputs, compose_features, get_feature, list_features
from feat2gs.features import backbones as bb
from feat2gs.features.backbones import extra
from feat2gs.features.backbones.config import _BACKBONES, problems
from tests.features.conftest import assert_random_weight_grids, backbone_inputs

ISSUE_NAMES = {"dino_b16", "dinov2_b14", "dinov2_b14_reg", "dinov2_l14", "clip_b16", "clip_b16_laion", "clip_l14",
               "sam_base", "sam_large", "mae_b16", "mae_l16", "midas_l16", "radio", "dift", "siglip_b16",
               "siglip_l16", "deit3_b16", "convnext_in22k", "vggt_e", "vggt_d"}
ZOO_TESTED_ELSEWHERE = {"dift", "dift_pm1", "radio", "vggt_e", "vggt_d"}  # tests/features/test_backbones_zoo.py
IMPLEMENTED = sorted(c.name for c in bb.list_backbone_configs() if c.name not in ZOO_TESTED_ELSEWHERE)
LARGE = {"dinov2_l14", "clip_l14", "siglip_l16", "mae_l16", "sam_large", "midas_l16"}
PROTOCOL_CHANNELS = {"dino_b16": 768, "dinov2_b14": 768, "dinov2_b14_reg": 768, "dinov2_l14": 1024, "clip_b16": 512,
                     "clip_b16_laion": 512, "clip_l14": 768, "siglip_b16": 768, "siglip_l16": 1024, "deit3_b16": 768,
                     "convnext_in22k": 1024, "sam_base": 768, "sam_large": 1024, "mae_b16": 768, "mae_l16": 1024,
                     "midas_l16": 1024, "radio": 1280, "dift": 1280, "dift_pm1": 1280, "vggt_e": 1024, "vggt_d": 2048}


# ---------------------------------------------------------------------------------------------- configs

def test_all_configs_validate_and_cover_the_issue():
    cfgs = {c.name: c for c in bb.list_backbone_configs()}
    assert ISSUE_NAMES <= set(cfgs)
    for name, cfg in cfgs.items():
        assert cfg.channels == PROTOCOL_CHANNELS[name], name
        assert cfg.layer and cfg.notes and cfg.protocol_source, name
        assert cfg.hf_hub_id or cfg.url, name
        assert cfg.library in {"timm", "open_clip", "transformers", "segment_anything", "diffusers", "feat2gs",
                               "torch_hub"}, name
    assert cfgs["midas_l16"].mean == (0.5, 0.5, 0.5) and cfgs["dino_b16"].std == (0.229, 0.224, 0.225)
    assert cfgs["dinov2_b14"].stride == 14 and cfgs["clip_l14"].stride == 14 and cfgs["convnext_in22k"].stride == 16


def test_config_rules_are_checked_at_registration():
    good = bb.load_backbone_config("dino_b16")
    assert problems(good) == []
    for change, message in [({"family": "vit_tokenz"}, "unknown family 'vit_tokenz'"),
                            ({"padding": "reflect"}, "padding must be one of"),
                            ({"stride": 8}, "stride must equal patch"),
                            ({"block": None}, "needs a block index"),
                            ({"hf_hub_id": None, "url": None}, "need an hf_hub_id or a url"),
                            ({"name": "dino-b8"}, "without '-' or ':'"),
                            ({"padding": "crop518"}, "crop518"),
                            ({"family": "clip_projected", "pretrained_tag": None}, "need pretrained_tag")]:
        with pytest.raises(ConfigError, match=message):
            bb.register_backbone(dataclasses.replace(good, **change))
    with pytest.raises(ConfigError, match="normalisation must be one of"):
        dataclasses.replace(good, normalisation="imagenett")
    with pytest.raises(ConfigError, match="unknown backbone 'dinoo'"):
        bb.load_backbone_config("dinoo")


def test_a_new_backbone_is_one_registration(offline_empty_caches):
    """Registering a config of an existing family makes a feature of that name, listed and runnable."""
    cfg = dataclasses.replace(bb.load_backbone_config("dino_b16"), name="my_dino", notes="registered by a test")
    try:
        bb.register_backbone(cfg)
        assert bb.register_backbone(cfg) is cfg  # the same config again is harmless
        with pytest.raises(ValueError, match="registered twice"):
            bb.register_backbone(dataclasses.replace(cfg, channels=384))
        spec = get_feature("my_dino")
        assert (spec.channels, spec.stride, spec.needs_weights, spec.kind) == (768, 16, True, "zoo")
        assert "my_dino" in {s.name for s in list_features()}
        feats = spec.extract(dataclasses.replace(backbone_inputs(32, 48), random_weights=True))
        assert feats.shape == (2, 2, 3, 768)
    finally:
        _BACKBONES.pop("my_dino", None)


def test_grid_mapping_with_asymmetric_padding():
    """A grid whose values are its cells' padded-frame pixel centres must come back as real-pixel centres + pad."""
    h, w, patch = 45, 60, 14  # pads 11 rows (5 top, 6 bottom) and 10 columns (5 left, 5 right)
    x, (top, left) = bb.centre_pad(torch.ones(1, 3, h, w), patch)
    hp, wp = x.shape[-2:]
    assert (hp, wp, top, left) == (56, 70, 5, 5)
    assert x[0, 0, :top].abs().sum() == 0 and x[0, 0, top + h:].abs().sum() == 0 and x[0, 0, top:top + h, left:left + w].all()
    gh, gw = hp // patch, wp // patch
    cy = (torch.arange(gh) + 0.5) * patch
    cx = (torch.arange(gw) + 0.5) * patch
    grid = torch.stack([cy[:, None].expand(gh, gw), cx[None, :].expand(gh, gw)])[None].double()
    oh, ow = bb.output_grid_size(h, w, patch)
    assert (oh, ow) == (3, 4)
    out = bb.map_grid_to_image(grid, (hp, wp), (top, left), (h, w), (oh, ow))
    want_y = (torch.arange(oh) + 0.5) * h / oh + top
    want_x = (torch.arange(ow) + 0.5) * w / ow + left
    assert torch.allclose(out[0, 0], want_y[:, None].expand(oh, ow).double(), atol=1e-9)
    assert torch.allclose(out[0, 1], want_x[None, :].expand(oh, ow).double(), atol=1e-9)
    # the upstream stretch would have put the first cell at padded pixel 7 instead of 5 + 7.5
    assert out[0, 0, 0, 0] == pytest.approx(top + 7.5)
    # no padding and same grid: untouched; stride 32 -> 16 without padding equals a bilinear resize
    g = torch.randn(1, 2, 3, 4)
    assert bb.map_grid_to_image(g, (48, 64), (0, 0), (48, 64), (3, 4)) is g
    up = bb.map_grid_to_image(g, (96, 128), (0, 0), (96, 128), (6, 8))
    ref = torch.nn.functional.interpolate(g, size=(6, 8), mode="bilinear", align_corners=False)
    assert torch.allclose(up, ref, atol=1e-6)


# ---------------------------------------------------------------------------------------------- every backbone

@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in LARGE else n for n in IMPLEMENTED])
def test_backbone_random_weights(name, offline_empty_caches):
    """Real architecture, random weights: shape, stride, channels, determinism, chunking and the layer taken."""
    cfg = bb.load_backbone_config(name)
    sizes = [(48, 64), (64, 48)] + ([(45, 60)] if cfg.patch == 14 else [])  # 45x60: asymmetric centre padding
    loaded = assert_random_weight_grids(name, sizes)
    m = loaded.module
    if cfg.family == "vit_tokens":  # last block output, no final norm, prefix tokens dropped
        x = torch.randn(1, 3, 4 * cfg.patch, 5 * cfg.patch)
        with torch.no_grad():
            t = m.norm_pre(m._pos_embed(m.patch_embed(x)))
            for blk in m.blocks:
                t = blk(t)
            ref = t[:, m.num_prefix_tokens:].reshape(1, 4, 5, -1).permute(0, 3, 1, 2)
            assert torch.allclose(loaded.grid(x), ref, atol=1e-4)
        assert cfg.block == len(m.blocks) - 1
        assert m.num_prefix_tokens == {"dinov2_b14_reg": 5, "siglip_b16": 0, "siglip_l16": 0}.get(name, 1)
    if cfg.library == "open_clip":
        quick = type(m.transformer.resblocks[0].mlp.gelu).__name__ == "QuickGELU"
        assert quick == (cfg.pretrained_tag == "openai")
        assert m.proj.shape[1] == cfg.channels
    if cfg.library == "transformers":
        assert len(extra.mae_layers(m)) == cfg.block + 1  # hidden_states[L-1]
    elif cfg.library == "segment_anything":
        assert len(m.blocks) == cfg.block + 1 and m.pos_embed.shape[1:3] == (64, 64)
    elif name == "midas_l16":
        assert len(m.blocks) == cfg.block + 1 and m.patch_embed.grid_size == (24, 24)
    bb.clear_model_cache()


def test_random_weights_are_seeded(offline_empty_caches):
    first = bb.load_backbone("clip_b16_laion", random_weights=True, seed=3).module.state_dict()
    bb.clear_model_cache()
    again = bb.load_backbone("clip_b16_laion", random_weights=True, seed=3).module.state_dict()
    assert all(torch.equal(first[k], again[k]) for k in first)
    bb.clear_model_cache()


# ---------------------------------------------------------------------------------------------- weights

def test_missing_weights_raise_before_building(offline_empty_caches, monkeypatch):
    import open_clip
    import timm

    def built(*args, **kwargs):
        raise AssertionError("a network was built although no weights exist")

    monkeypatch.setattr(timm, "create_model", built)
    monkeypatch.setattr(open_clip.model, "_build_vision_tower", built)
    for name, ident in [("dinov2_b14", "timm/vit_base_patch14_dinov2.lvd142m"),
                        ("clip_b16_laion", "laion/CLIP-ViT-B-16-laion2B-s34B-b88K")]:
        inputs = FeatureInputs(torch.rand(1, 32, 32, 3), torch.zeros(1, 32, 32, 3))
        with pytest.raises(bb.BackboneWeightsError) as info:
            bb.extract_backbone(name, inputs, device="cpu")
        msg = str(info.value)
        assert isinstance(info.value, ConfigError)
        assert f"no pretrained weights for backbone '{name}'" in msg
        assert f"huggingface-cli download {ident}" in msg and str(offline_empty_caches) in msg
        assert bb.backbone_status(name)[0] is False
    with pytest.raises(bb.BackboneWeightsError, match="does not exist"):
        bb.extract_backbone("dino_b16", FeatureInputs(torch.rand(1, 32, 32, 3), torch.zeros(1, 32, 32, 3),
                                                      checkpoints={"dino_b16": str(offline_empty_caches / "x.pth")}))
    with pytest.raises(bb.BackboneWeightsError, match="not in the local Hugging Face cache"):
        bb.extract_backbone("dino_b16", FeatureInputs(torch.rand(1, 32, 32, 3), torch.zeros(1, 32, 32, 3),
                                                      checkpoints={"dino_b16": "timm/vit_base_patch16_224.dino"}))


def test_local_weight_files_load(offline_empty_caches, monkeypatch):
    """Weights saved from a random network load back through every lookup path and give the same features."""
    from safetensors.torch import save_file

    inputs = backbone_inputs(32, 48)
    # timm via $FEAT2GS_CHECKPOINTS/<url file name>
    ref = bb.extract_backbone("dino_b16", inputs, device="cpu")
    sd = bb.load_backbone("dino_b16", random_weights=True).module.state_dict()
    ckdir = offline_empty_caches / "ck"
    ckdir.mkdir()
    torch.save(sd, ckdir / "dino_vitbase16_pretrain.pth")
    monkeypatch.setenv("FEAT2GS_CHECKPOINTS", str(ckdir))
    assert bb.backbone_status("dino_b16") == (True, [str(ckdir / "dino_vitbase16_pretrain.pth")])
    pretrained = FeatureInputs(inputs.images, inputs.points)
    assert torch.allclose(bb.extract_backbone("dino_b16", pretrained, device="cpu"), ref, atol=1e-5)
    assert not bb.load_backbone("dino_b16", device="cpu").random_weights
    # open_clip via a Hugging Face cache snapshot (what `huggingface-cli download` leaves)
    ref = bb.extract_backbone("clip_b16_laion", inputs, device="cpu")
    visual = bb.load_backbone("clip_b16_laion", random_weights=True).module.state_dict()
    snap = offline_empty_caches / "hf_hub_cache" / "models--laion--CLIP-ViT-B-16-laion2B-s34B-b88K"
    (snap / "snapshots" / "abc").mkdir(parents=True)
    (snap / "refs").mkdir()
    (snap / "refs" / "main").write_text("abc")
    save_file({f"visual.{k}": v.contiguous() for k, v in visual.items()},
              str(snap / "snapshots" / "abc" / "open_clip_model.safetensors"))
    assert bb.backbone_status("clip_b16_laion")[0] is True
    got = bb.extract_backbone("clip_b16_laion", FeatureInputs(inputs.images, inputs.points), device="cpu")
    assert torch.allclose(got, ref, atol=1e-5)
    # a file for another architecture is a clear error
    with pytest.raises(bb.BackboneWeightsError, match="do not fit open_clip ViT-B-16"):
        bb.extract_backbone("clip_b16", FeatureInputs(inputs.images, inputs.points, checkpoints={
            "clip_b16": str(ckdir / "dino_vitbase16_pretrain.pth")}), device="cpu")
    bb.clear_model_cache()


def test_compose_with_a_backbone(offline_empty_caches):
    out = compose_features("dino_b16-iuvrgb", backbone_inputs(48, 64), 8)
    assert out.shape == (2, 48, 64, 8)
    bb.clear_model_cache()


def test_cli_feature_checkpoint_reaches_step1(scene_root, tmp_path, offline_empty_caches):
    """`--feature-checkpoint dino_b16=FILE` (init.feature_checkpoints) is the file step 1 loads for that backbone."""
    import json
    import shutil

    from feat2gs.config import make_config
    from feat2gs.data.layout import SceneLayout
    from feat2gs.errors import ConfigError
    from feat2gs.init.step import run_init

    root = tmp_path / "data"
    shutil.copytree(scene_root, root)
    layout = SceneLayout.open(root, "Synthetic", "blocks")
    weights = tmp_path / "my_dino.pth"
    torch.save(bb.load_backbone("dino_b16", random_weights=True).module.state_dict(), weights)
    with pytest.raises(ConfigError, match="dino_b16"):  # no weights anywhere: a clear error, nothing written
        run_init(layout, make_config("quick", ["init.image_size=48", "init.feat_dim=8"]).init, "dino_b16")
    cfg = make_config("quick", ["init.image_size=48", "init.feat_dim=8", f"init.feature_checkpoints=dino_b16={weights}"])
    out = run_init(layout, cfg.init, "dino_b16")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["feature_dim"] == 8 and manifest["random_weights"] is False
