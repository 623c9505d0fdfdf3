"""Conformance of our DUSt3R / MASt3R networks with fixtures produced by the official code (tiny configs),
and the full-size state_dict layout against the official key manifests (built on the meta device)."""

from __future__ import annotations

import json
import re

import pytest
import torch
import torch.nn.functional as F

from feat2gs.init.dust3r import (
    Dust3rNet,
    config_from_kwargs,
    dust3r_vitl_512_dpt,
    make_pairs_complete,
    mast3r_vitl_512_catmlpdpt,
    run_pairs,
)

from tests.init._fixtures import FIXTURES, requires_fixtures

pytestmark = requires_fixtures

KINDS = ("dust3r", "mast3r")
PAIRS = ("AB", "BA", "AC", "CA")


# ------------------------------------------------------------------------------------------------------------------
# helpers

def tol(ref: torch.Tensor) -> float:
    """Pass criterion recommended by the fixture README: 1e-4 * max|ref| + 1e-6."""
    return 1e-4 * float(ref.abs().max()) + 1e-6


def max_err(a: torch.Tensor, ref: torch.Tensor) -> float:
    assert tuple(a.shape) == tuple(ref.shape), f"shape {tuple(a.shape)} != {tuple(ref.shape)}"
    return float((a.double() - ref.double()).abs().max())


def load(name: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(FIXTURES / name))


def tiny_config(kind: str, variant: str = "constructor_kwargs_inference_variant"):
    meta = json.loads((FIXTURES / f"{kind}_tiny_config.json").read_text())
    o = meta["head_factory_overrides"]
    overrides = {"dpt_feature_dim": o["feature_dim"], "dpt_last_dim": o["last_dim"],
                 "dpt_layer_dims": tuple(o["layer_dims"]), "local_feat_hidden_factor": o["hidden_dim_factor"]}
    return config_from_kwargs(meta[variant], None, inference=False, overrides=overrides)


def view(inputs: dict[str, torch.Tensor], name: str, key: str = "img") -> dict[str, torch.Tensor]:
    return {"img": inputs[f"{name}.{key}"], "true_shape": inputs[f"{name}.true_shape"]}


@pytest.fixture(scope="module")
def inputs():
    return load("tiny_inputs.safetensors")


@pytest.fixture(scope="module")
def refs():
    return {kind: load(f"{kind}_tiny_io.safetensors") for kind in KINDS}


@pytest.fixture(scope="module")
def nets():
    out = {}
    for kind in KINDS:
        net = Dust3rNet(tiny_config(kind)).eval()
        net.load_state_dict(load(f"{kind}_tiny_state_dict.safetensors"), strict=True)
        out[kind] = net
    return out


def compare(got: dict[str, torch.Tensor], ref: dict[str, torch.Tensor], prefix: str) -> list[str]:
    """Compare every reference tensor under prefix; returns the compared names (asserts within tolerance)."""
    names = [k for k in ref if k.startswith(prefix)]
    assert names, f"no reference tensors under {prefix}"
    worst = []
    for name in names:
        key = name[len(prefix):]
        assert key in got, f"{name}: output {key!r} missing (have {sorted(got)})"
        err, limit = max_err(got[key], ref[name]), tol(ref[name])
        worst.append((err / limit, name, err, limit))
        assert err <= limit, f"{name}: max|a-b| = {err:.3g} > {limit:.3g}"
    return names


# ------------------------------------------------------------------------------------------------------------------
# outputs and intermediates

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("pair", PAIRS)
def test_tiny_outputs_match_official(nets, inputs, refs, kind, pair):
    with torch.no_grad():
        p1, p2 = nets[kind](view(inputs, pair[0]), view(inputs, pair[1]))
    assert "pts3d_in_other_view" in p2 and "pts3d" not in p2
    n1 = compare(p1, refs[kind], f"inference.{pair}.pred1.")
    n2 = compare(p2, refs[kind], f"inference.{pair}.pred2.")
    expected = {"pts3d", "conf", "feat", "decfeat"} | ({"desc_conf"} if kind == "mast3r" else set())
    assert expected <= {n.rsplit(".", 1)[1] for n in n1}
    if kind == "mast3r":
        assert set(p1) == {"pts3d", "conf", "desc", "desc_conf", "feat", "decfeat"}
        assert torch.allclose(p1["desc"].norm(dim=-1), torch.ones(()), atol=1e-5)
        assert len(n2) == len(n1)


_MODULE = {"head1.dpt_raw": "downstream_head1.dpt", "head2.dpt_raw": "downstream_head2.dpt",
           "head1.local_features_mlp": "downstream_head1.head_local_features"}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("pair", ("AB", "AC"))
def test_tiny_intermediates_match_official(nets, inputs, refs, kind, pair):
    net, ref = nets[kind], refs[kind]
    prefix = f"inference.{pair}.inter."
    names = [k for k in ref if k.startswith(prefix)]
    calls: dict[str, list] = {}
    wanted = set()
    for name in names:
        rest = re.sub(r"\.call\d+$", "", name[len(prefix):])
        rest = re.sub(r"^patch_embed\.(x|pos)$", "patch_embed", rest)
        wanted.add(_MODULE.get(rest, rest))
    modules = dict(net.named_modules())
    hooks = [modules[m].register_forward_hook(lambda mod, i, o, m=m: calls.setdefault(m, []).append(o))
             for m in wanted]
    try:
        with torch.no_grad():
            net(view(inputs, pair[0]), view(inputs, pair[1]))
    finally:
        for h in hooks:
            h.remove()
    for name in names:
        rest = name[len(prefix):]
        m = re.search(r"\.call(\d+)$", rest)
        call = int(m.group(1)) if m else 0
        rest = rest[: m.start()] if m else rest
        field = None
        if rest.startswith("patch_embed."):
            rest, field = "patch_embed", rest.split(".")[1]
        module = _MODULE.get(rest, rest)
        got = calls[module]
        if m is None:
            assert len(got) == 1, f"{module} called {len(got)} times, reference has one call"
        out = got[call]
        if field is not None:
            out = out[0] if field == "x" else out[1]
        if field == "pos":
            assert out.dtype == torch.int64 and torch.equal(out, ref[name]), name
            continue
        err, limit = max_err(out, ref[name]), tol(ref[name])
        assert err <= limit, f"{name}: max|a-b| = {err:.3g} > {limit:.3g}"


def test_manyar_training_variant_matches_official(inputs, refs):
    """Optional training-time variant: portrait C fed transposed (landscape tensor), outputs in landscape."""
    for kind in KINDS:
        net = Dust3rNet(tiny_config(kind, "constructor_kwargs")).eval()
        assert net.cfg.manyar and net.cfg.landscape_only
        net.load_state_dict(load(f"{kind}_tiny_state_dict.safetensors"), strict=True)
        a, ct = view(inputs, "A"), view(inputs, "C", "img_landscape_for_manyar")
        for pair, (v1, v2) in (("ACt", (a, ct)), ("CtA", (ct, a))):
            with torch.no_grad():
                p1, p2 = net(v1, v2)
            compare(p1, refs[kind], f"manyar.{pair}.pred1.")
            compare(p2, refs[kind], f"manyar.{pair}.pred2.")


def test_batched_pairs_match_batch_one(nets, inputs):
    imgs = [inputs[f"{n}.img"] for n in "ABD"]
    pairs = make_pairs_complete(3)
    for kind in KINDS:
        one = run_pairs(nets[kind], imgs, pairs, batch_size=1, progress=False)
        many = run_pairs(nets[kind], imgs, pairs, batch_size=4, progress=False)
        assert one.pred1.keys() == many.pred1.keys() and one.pred2.keys() == many.pred2.keys()
        for which in ("pred1", "pred2"):
            for key, ref in getattr(one, which).items():
                got = getattr(many, which)[key]
                assert got.shape[0] == len(pairs)
                assert max_err(got, ref) <= tol(ref), f"{kind} {which}.{key}"
        # also directly: a batch of (A,B),(B,A),(A,D) against the single runs
        v = lambda names: {"img": torch.cat([inputs[f"{n}.img"] for n in names]),
                           "true_shape": torch.cat([inputs[f"{n}.true_shape"] for n in names])}
        with torch.no_grad():
            b1, b2 = nets[kind](v("ABA"), v("BAD"))
            for i, (x, y) in enumerate(("AB", "BA", "AD")):
                s1, s2 = nets[kind](view(inputs, x), view(inputs, y))
                for got, ref in ((b1, s1), (b2, s2)):
                    for key in ref:
                        assert max_err(got[key][i:i + 1], ref[key]) <= tol(ref[key]), (kind, x + y, key)


def test_run_pairs_encoder_features_are_feat2gs_stacked_feat(nets, inputs, refs):
    imgs = [inputs[f"{n}.img"] for n in "ABD"]
    for kind in KINDS:
        out = run_pairs(nets[kind], imgs, None, batch_size=1, progress=False, keys={"pts3d", "conf"})
        assert out.edges == [(1, 0), (2, 0), (2, 1), (0, 1), (0, 2), (1, 2)]
        assert set(out.pred1) == {"pts3d", "conf"} and set(out.pred2) == {"conf"}
        stacked = torch.stack(out.encoder_features)
        ref = refs[kind][f"feat2gs.{kind}.stacked_feat"]
        assert max_err(stacked, ref) <= tol(ref)
    up = refs["dust3r"]["feat2gs.dust3r.upsampled_feat.img0.first8ch"]
    feat = nets["dust3r"].encoder_features(inputs["A.img"])
    got = F.interpolate(feat.permute(0, 3, 1, 2), size=up.shape[:2], mode="bilinear", align_corners=False)
    assert max_err(got[0, :8].permute(1, 2, 0), up) <= tol(up)


def test_pair_order_matches_global_alignment_fixture():
    edges = load("ga_fixture.safetensors")["input.edges"]
    assert [tuple(e) for e in edges.tolist()] == make_pairs_complete(3)
    assert len(make_pairs_complete(5)) == 20
    assert make_pairs_complete(3, symmetrize=False) == [(1, 0), (2, 0), (2, 1)]


def test_mixed_shapes_in_run_pairs(nets, inputs):
    """Portrait + landscape images: runs are split by shape; outputs come back as per-edge lists."""
    imgs = [inputs["A.img"], inputs["C.img"], inputs["B.img"]]
    out = run_pairs(nets["dust3r"], imgs, [(0, 1), (1, 0), (0, 2)], batch_size=3, progress=False)
    assert isinstance(out.pred1["pts3d"], list) and out.pred1["pts3d"][1].shape == (64, 48, 3)
    ref = load("dust3r_tiny_io.safetensors")["inference.AC.pred2.pts3d_in_other_view"][0]
    assert max_err(out.pred2["pts3d_in_other_view"][0], ref) <= tol(ref)
    assert [f.shape for f in out.encoder_features] == [(3, 4, 32), (4, 3, 32), (3, 4, 32)]


def test_autocast_bf16_cpu_runs_heads_in_fp32(nets, inputs):
    net = nets["mast3r"]
    with torch.no_grad():
        ref1, _ = net(view(inputs, "A"), view(inputs, "B"))
        p1, p2 = net(view(inputs, "A"), view(inputs, "B"), autocast=torch.bfloat16)
    assert p1["pts3d"].dtype == torch.float32 and p2["conf"].dtype == torch.float32
    for key in ("pts3d", "conf", "feat"):
        assert torch.isfinite(p1[key]).all()
        rel = max_err(p1[key], ref1[key]) / float(ref1[key].abs().max())
        assert rel < 0.1, (key, rel)  # bf16 trunk: loose sanity bound only


# ------------------------------------------------------------------------------------------------------------------
# full-size layout

@pytest.mark.parametrize("kind,make,manifest", [
    ("dust3r", dust3r_vitl_512_dpt, "dust3r_vitl_512_dpt_keys.json"),
    ("mast3r", mast3r_vitl_512_catmlpdpt, "mast3r_vitl_512_catmlpdpt_keys.json"),
])
def test_full_size_state_dict_matches_manifest(kind, make, manifest):
    man = json.loads((FIXTURES / manifest).read_text())
    with torch.device("meta"):
        net = Dust3rNet(make())
    sd = net.state_dict()
    expected = [(e["key"], tuple(e["shape"])) for e in man["keys"]]
    got = [(k, tuple(v.shape)) for k, v in sd.items()]
    missing = sorted({k for k, _ in expected} - set(sd))
    extra = sorted(set(sd) - {k for k, _ in expected})
    assert not missing and not extra, f"missing {missing[:5]}, unexpected {extra[:5]}"
    assert got == expected  # same keys, shapes and state_dict order
    assert len(sd) == man["n_state_dict_entries"]
    assert sum(p.numel() for p in net.parameters()) == man["n_parameters"]
    for e in man["keys"]:
        if "alias_of" in e:  # the alias is the very same module (so it is one tensor)
            head, i = re.match(r"(downstream_head\d)\.dpt\.scratch\.layer_rn\.(\d)\.weight", e["key"]).groups()
            scratch = getattr(net, head).dpt.scratch
            assert scratch.layer_rn[int(i)] is getattr(scratch, f"layer{int(i) + 1}_rn")
            assert e["alias_of"] == f"{head}.dpt.scratch.layer{int(i) + 1}_rn.weight"
    assert net.cfg.dpt_hooks == [0, 6, 9, 12]
