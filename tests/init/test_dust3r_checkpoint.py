"""Loading DUSt3R / MASt3R weights in the official layouts (.pth with a constructor string, Hugging Face directory),
and the errors for missing, truncated or mismatched files. Uses the tiny fixture weights written in those layouts."""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

import pytest
import torch

from feat2gs.errors import Feat2GSError
from feat2gs.init.dust3r import (
    CheckpointError,
    config_from_constructor,
    dust3r_vitl_512_dpt,
    load_dust3r,
    mast3r_vitl_512_catmlpdpt,
    parse_constructor,
)

from tests.init import _fixtures as fixtures
from tests.init._fixtures import KINDS, load_tensors, readme_tol, requires_fixtures, split_pair, tiny_overrides

pytestmark = requires_fixtures

MANIFESTS = {"dust3r": "dust3r_vitl_512_dpt_keys.json", "mast3r": "mast3r_vitl_512_catmlpdpt_keys.json"}


def load(name: str) -> dict[str, torch.Tensor]:
    return load_tensors(name)


def tiny_meta(kind: str) -> dict:
    return fixtures.load_json(f"{kind}_tiny_config.json")


def aliased_keys(kind: str) -> list[str]:
    """State-dict entries that alias another module's weight (the layer_rn list), from the full-size manifest."""
    keys = fixtures.load_json(MANIFESTS[kind])["aliased_keys_dropped_by_safetensors_save_model"]
    assert keys, "the manifest names no aliased keys"
    return keys


def check_ab(model, kind: str) -> None:
    """The loaded model reproduces the official outputs of the fixture's first inference pair."""
    inp, ref = load("tiny_inputs.safetensors"), load(f"{kind}_tiny_io.safetensors")
    pair = fixtures.pairs(kind)[0]
    first, second = split_pair(pair)
    with torch.no_grad():
        p1, p2 = model(fixtures.view(inp, first), fixtures.view(inp, second))
    for which, pred in (("pred1", p1), ("pred2", p2)):
        names = [k for k in ref if k.startswith(f"inference.{pair}.{which}.")]
        assert names, f"no reference outputs for inference.{pair}.{which}"
        for name in names:
            got = pred[name.rsplit(".", 1)[1]]
            assert float((got - ref[name]).abs().max()) <= readme_tol(ref[name]), name


def write_pth(path: Path, kind: str, sd: dict | None = None, constructor: str | None = None, **extra) -> Path:
    sd = load(f"{kind}_tiny_state_dict.safetensors") if sd is None else sd
    text = tiny_meta(kind)["python_constructor_string_as_trained"] if constructor is None else constructor
    torch.save({"model": sd, "args": argparse.Namespace(model=text, batch_size=4), "epoch": 7, **extra}, path)
    return path


def write_hf_dir(path: Path, kind: str) -> Path:
    """HF PyTorchModelHubMixin layout: config.json (bare Infinity) + model.safetensors without layer_rn aliases."""
    from safetensors.torch import save_file

    path.mkdir(parents=True)
    # The tiny kwargs, plus the fields the hub mixin records that the tiny kwargs do not set (e.g. freeze).
    hub = fixtures.load_json(MANIFESTS[kind])["hub_mixin_config_for_inference_variant"]
    cfg = {**{k: v for k, v in hub.items() if v is not None}, **tiny_meta(kind)["constructor_kwargs_inference_variant"]}
    text = json.dumps(cfg, indent=2).replace('"-inf"', "-Infinity").replace('"inf"', "Infinity")
    assert "Infinity" in text
    (path / "config.json").write_text(text)
    sd = load(f"{kind}_tiny_state_dict.safetensors")
    for key in aliased_keys(kind):
        del sd[key]
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path / "model.safetensors"))
    return path


# ------------------------------------------------------------------------------------------------------------------
# constructor string

def test_parse_official_constructor_strings():
    for kind, make in (("dust3r", dust3r_vitl_512_dpt), ("mast3r", mast3r_vitl_512_catmlpdpt)):
        man = fixtures.load_json(MANIFESTS[kind])
        cls, kwargs = parse_constructor(man["constructor"])
        assert cls in ("AsymmetricCroCo3DStereo", "AsymmetricMASt3R")
        # What the hub mixin records for the same model (the inference rewrite aside) is what we parsed.
        hub = {k: fixtures.json_number(v) for k, v in man["hub_mixin_config_for_inference_variant"].items()}
        for key, value in kwargs.items():
            if key not in ("patch_embed_cls", "landscape_only") and key in hub and hub[key] is not None:
                assert value == hub[key], key
        assert {"depth_mode", "img_size", "enc_embed_dim", "dec_depth"} <= set(kwargs)
        for text in (man["constructor"], man["constructor_as_built_by_load_model"]):
            cfg = config_from_constructor(text)  # inference rewrite: PatchEmbedDust3R, landscape_only=False
            official = make()
            assert cfg.replace(extra={}) == official.replace(extra={})
        trained = config_from_constructor(man["constructor"], inference=False)
        assert trained.patch_embed_cls == "ManyAR_PatchEmbed" and trained.landscape_only


def test_parse_constructor_never_evaluates_code():
    for text in ("AsymmetricCroCo3DStereo(img_size=__import__('os').system('echo hacked'))",
                 "AsymmetricCroCo3DStereo(img_size=(512, 512)); import os",
                 "__import__('os').system('echo hacked')",
                 "AsymmetricCroCo3DStereo(**{'a': 1})"):
        with pytest.raises(CheckpointError):
            config_from_constructor(text)
    with pytest.raises(Feat2GSError, match="unsupported"):
        config_from_constructor("AsymmetricCroCo3DStereo(pos_embed='cosine', head_type='dpt', output_mode='pts3d')")


# ------------------------------------------------------------------------------------------------------------------
# loading

@pytest.mark.parametrize("kind", KINDS)
def test_load_official_pth_layout(tmp_path, kind):
    path = write_pth(tmp_path / "tiny.pth", kind)
    loaded = load_dust3r(path, kind=kind, overrides=tiny_overrides(kind))
    assert not loaded.random_weights and loaded.kind == kind and loaded.source == str(path)
    assert loaded.config.patch_embed_cls == "PatchEmbedDust3R" and not loaded.config.landscape_only
    if kind == "mast3r":
        assert loaded.config.desc_conf_mode == fixtures.tiny_kwargs(kind)["desc_conf_mode"]
    check_ab(loaded.model, kind)


@pytest.mark.parametrize("kind", KINDS)
def test_load_hf_directory_layout(tmp_path, kind, monkeypatch):
    d = write_hf_dir(tmp_path / "hf", kind)
    loaded = load_dust3r(d, kind=kind, overrides=tiny_overrides(kind))
    assert loaded.config.enc_embed_dim == fixtures.tiny_kwargs(kind)["enc_embed_dim"] and not loaded.random_weights
    sd = loaded.model.state_dict()
    assert set(aliased_keys(kind)) <= set(sd)  # dropped from model.safetensors, restored on load
    check_ab(loaded.model, kind)
    # the same directory found through $FEAT2GS_CHECKPOINTS under the official stem name
    stem = {"dust3r": "DUSt3R_ViTLarge_BaseDecoder_512_dpt",
            "mast3r": "MASt3R_ViTLarge_BaseDecoder_512_catmlpdpt_metric"}[kind]
    d.rename(tmp_path / stem)
    monkeypatch.setenv("FEAT2GS_CHECKPOINTS", str(tmp_path))
    loaded = load_dust3r(None, kind=kind, cache_dir=tmp_path / "nothing", overrides=tiny_overrides(kind))
    assert loaded.source == str(tmp_path / stem / "model.safetensors")


def test_default_search_order(tmp_path, monkeypatch):
    env, cache = tmp_path / "env", tmp_path / "cache"
    env.mkdir()
    cache.mkdir()
    write_pth(cache / "DUSt3R_ViTLarge_BaseDecoder_512_dpt.pth", "dust3r")
    monkeypatch.setenv("FEAT2GS_CHECKPOINTS", str(env))
    loaded = load_dust3r(kind="dust3r", cache_dir=cache, overrides=tiny_overrides("dust3r"))
    assert loaded.source == str(cache / "DUSt3R_ViTLarge_BaseDecoder_512_dpt.pth")
    write_pth(env / "DUSt3R_ViTLarge_BaseDecoder_512_dpt.pth", "dust3r")
    loaded = load_dust3r(kind="dust3r", cache_dir=cache, overrides=tiny_overrides("dust3r"))
    assert loaded.source == str(env / "DUSt3R_ViTLarge_BaseDecoder_512_dpt.pth")  # env first
    # an explicit directory holding the official file name
    loaded = load_dust3r(cache, kind="dust3r", overrides=tiny_overrides("dust3r"))
    assert loaded.source == str(cache / "DUSt3R_ViTLarge_BaseDecoder_512_dpt.pth")


def test_hugging_face_cache_is_searched_last(tmp_path, monkeypatch):
    """A snapshot that `huggingface-cli download naver/...` left in the hub cache is found without the network."""
    repo = tmp_path / "hf" / "models--naver--DUSt3R_ViTLarge_BaseDecoder_512_dpt"
    write_hf_dir(repo / "snapshots" / "abc123", "dust3r")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("FEAT2GS_CHECKPOINTS", str(tmp_path / "env"))
    loaded = load_dust3r(kind="dust3r", cache_dir=tmp_path / "cache", overrides=tiny_overrides("dust3r"))
    assert loaded.source == str(repo / "snapshots" / "abc123" / "model.safetensors")
    check_ab(loaded.model, "dust3r")
    with pytest.raises(CheckpointError, match="Hugging Face cache"):  # nothing cached for MASt3R
        load_dust3r(kind="mast3r", cache_dir=tmp_path / "cache")


def test_random_weights_are_flagged():
    loaded = load_dust3r(kind="mast3r", random_weights=True, device="meta")  # full size, no memory
    assert loaded.random_weights and loaded.source == "random"
    assert loaded.config == mast3r_vitl_512_catmlpdpt()
    assert sum(p.numel() for p in loaded.model.parameters()) == fixtures.load_json(MANIFESTS["mast3r"])["n_parameters"]


# ------------------------------------------------------------------------------------------------------------------
# errors

def test_missing_file_names_path_and_download_command(tmp_path, monkeypatch):
    missing = tmp_path / "nope" / "DUSt3R_ViTLarge_BaseDecoder_512_dpt.pth"
    with pytest.raises(CheckpointError) as err:
        load_dust3r(missing, kind="dust3r")
    msg = str(err.value)
    assert str(missing) in msg
    assert ("wget https://download.europe.naverlabs.com/ComputerVision/DUSt3R/DUSt3R_ViTLarge_BaseDecoder_512_dpt.pth"
            " -P ~/.cache/feat2gs/checkpoints") in msg
    assert "huggingface-cli download naver/DUSt3R_ViTLarge_BaseDecoder_512_dpt" in msg

    monkeypatch.setenv("FEAT2GS_CHECKPOINTS", str(tmp_path / "envdir"))
    with pytest.raises(CheckpointError) as err:
        load_dust3r(kind="mast3r", cache_dir=tmp_path / "cachedir")
    msg = str(err.value)
    assert str(tmp_path / "envdir") in msg and str(tmp_path / "cachedir") in msg
    assert "MASt3R_ViTLarge_BaseDecoder_512_catmlpdpt_metric.pth" in msg and "wget https://" in msg
    assert isinstance(err.value, Feat2GSError)


def test_truncated_files_are_named(tmp_path):
    path = write_pth(tmp_path / "tiny.pth", "dust3r")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated") as err:
        load_dust3r(path, kind="dust3r", overrides=tiny_overrides("dust3r"))
    assert str(path) in str(err.value)
    d = write_hf_dir(tmp_path / "hf", "dust3r")
    st = d / "model.safetensors"
    st.write_bytes(st.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="corrupt or truncated") as err:
        load_dust3r(d, kind="dust3r", overrides=tiny_overrides("dust3r"))
    assert str(st) in str(err.value)


def test_wrong_model_kind(tmp_path):
    path = write_pth(tmp_path / "mast3r.pth", "mast3r")
    with pytest.raises(CheckpointError, match="holds a MASt3R model") as err:
        load_dust3r(path, kind="dust3r", overrides=tiny_overrides("dust3r"))
    assert str(path) in str(err.value) and "kind='mast3r'" in str(err.value)
    # without the constructor string: detected from the state_dict
    torch.save(load("mast3r_tiny_state_dict.safetensors"), tmp_path / "bare.pth")
    with pytest.raises(CheckpointError, match="holds a MASt3R model"):
        load_dust3r(tmp_path / "bare.pth", kind="dust3r", overrides=tiny_overrides("dust3r"))
    d = write_hf_dir(tmp_path / "hf", "dust3r")
    with pytest.raises(CheckpointError, match="holds a DUSt3R model"):
        load_dust3r(d, kind="mast3r", overrides=tiny_overrides("mast3r"))


def test_key_mismatches_are_summarised(tmp_path):
    sd = load("dust3r_tiny_state_dict.safetensors")
    removed = "enc_norm.weight"  # a key of every DUSt3R state_dict
    del sd[removed]
    sd["extra.thing"] = torch.zeros(3)
    path = write_pth(tmp_path / "bad.pth", "dust3r", sd=sd)
    with pytest.raises(CheckpointError) as err:
        load_dust3r(path, kind="dust3r", overrides=tiny_overrides("dust3r"))
    msg = str(err.value)
    assert "missing keys 1" in msg and removed in msg and "unexpected keys 1" in msg and str(path) in msg
    # official-size architecture against tiny weights: shape mismatches, summarised (not thousands of lines)
    path = write_pth(tmp_path / "tiny.pth", "dust3r")
    with pytest.raises(CheckpointError, match="shape mismatches") as err:
        load_dust3r(path, kind="dust3r")
    assert len(str(err.value)) < 2000


def test_untrusted_pickle_content_is_refused(tmp_path):
    path = write_pth(tmp_path / "odd.pth", "dust3r", trained_for=datetime.timedelta(days=3))
    with pytest.raises(CheckpointError, match="trust_pickle=True"):
        load_dust3r(path, kind="dust3r", overrides=tiny_overrides("dust3r"))
    loaded = load_dust3r(path, kind="dust3r", overrides=tiny_overrides("dust3r"), trust_pickle=True)
    check_ab(loaded.model, "dust3r")


def test_hub_id_offline_gives_clear_error(monkeypatch):
    try:
        import huggingface_hub
    except ImportError:
        huggingface_hub = None
    if huggingface_hub is not None:
        def offline(*args, **kwargs):
            raise OSError("offline: cannot reach huggingface.co")
        monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    with pytest.raises(CheckpointError) as err:
        load_dust3r("naver/DUSt3R_ViTLarge_BaseDecoder_512_dpt", kind="dust3r")
    msg = str(err.value)
    assert "naver/DUSt3R_ViTLarge_BaseDecoder_512_dpt" in msg and "wget https://" in msg
