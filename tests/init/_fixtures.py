"""Where the conformance fixtures live, and what a fixture set holds, read from its own files.

``$FEAT2GS_FIXTURES`` is the fixtures root (default: ``../shared/fixtures`` beside the repository checkout); the
DUSt3R/MASt3R set is ``$FEAT2GS_FIXTURES/dust3r``. Nothing here knows the image names, shapes, pairs or sizes of
one particular set: they come from ``tensor_index.json``, the config jsons and the reports, so the tests run
unchanged on another valid fixture set (another tiny configuration, other images).

Naming conventions of the fixture format (``dust3r/README.md``): inputs ``<image>.img`` / ``.true_shape`` and
``<image>.img_landscape_for_manyar``; outputs ``<variant>.<pair>.<pred1|pred2|inter>.<key>`` where a pair name is
two view names run together, and a view name is an image name, or an image name + ``t`` for that image fed
transposed (the ManyAR training variant).
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path

import pytest
import torch

ENV_VAR = "FEAT2GS_FIXTURES"
FIXTURES_ROOT = (Path(os.environ[ENV_VAR]) if os.environ.get(ENV_VAR)
                 else Path(__file__).resolve().parents[3] / "shared" / "fixtures")
FIXTURES = FIXTURES_ROOT / "dust3r"
# Skipped only when the default location is absent; a directory named by $FEAT2GS_FIXTURES must exist.
requires_fixtures = pytest.mark.skipif(
    not FIXTURES.is_dir() and not os.environ.get(ENV_VAR),
    reason=f"DUSt3R conformance fixtures not found at {FIXTURES} (set ${ENV_VAR} to the fixtures root)")

KINDS = ("dust3r", "mast3r")  # <kind>_tiny_config.json, <kind>_tiny_io.safetensors, ...
TRANSPOSED_SUFFIX = "t"  # view name of an image fed transposed (README, part B)


def fixture_path(name: str) -> Path:
    path = FIXTURES / name
    if not path.is_file():
        raise FileNotFoundError(f"fixture file {path} is missing ({ENV_VAR}={os.environ.get(ENV_VAR)!r})")
    return path


def load_tensors(name: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(fixture_path(name)))


@cache
def load_json(name: str) -> dict:
    return json.loads(fixture_path(name).read_text())


def json_number(value):
    """The fixture jsons write infinities as the strings "inf" / "-inf"; lists become tuples."""
    if isinstance(value, str) and value in ("inf", "-inf"):
        return float(value)
    if isinstance(value, list):
        return tuple(json_number(v) for v in value)
    return value


def tensor_names(file: str) -> list[str]:
    """Names of the tensors in one .safetensors file, from ``tensor_index.json``."""
    return list(load_json("tensor_index.json")[file]["tensors"])


def tensor_shape(file: str, name: str) -> tuple[int, ...]:
    return tuple(load_json("tensor_index.json")[file]["tensors"][name]["shape"])


# ------------------------------------------------------------------------------------------------------------------
# the tiny forward fixtures

def images() -> list[str]:
    """Image names of ``tiny_inputs.safetensors`` (those with an ``.img``), sorted."""
    return sorted(n[: -len(".img")] for n in tensor_names("tiny_inputs.safetensors") if n.endswith(".img"))


def image_shape(image: str) -> tuple[int, int]:
    """(H, W) of an image, from its ``(1, 3, H, W)`` model input."""
    return tensor_shape("tiny_inputs.safetensors", f"{image}.img")[-2:]


def view_names() -> list[str]:
    transposed = [i + TRANSPOSED_SUFFIX for i in images()
                  if f"{i}.img_landscape_for_manyar" in tensor_names("tiny_inputs.safetensors")]
    return images() + transposed


def split_pair(pair: str) -> tuple[str, str]:
    """"AB" -> ("A", "B"), "CtA" -> ("Ct", "A"): the one split of a pair name into two view names."""
    names = set(view_names())
    splits = [(pair[:k], pair[k:]) for k in range(1, len(pair)) if pair[:k] in names and pair[k:] in names]
    assert len(splits) == 1, f"pair name {pair!r} does not split into two of the view names {sorted(names)}"
    return splits[0]


def view(inputs: dict[str, torch.Tensor], name: str) -> dict[str, torch.Tensor]:
    """The view dict for a view name (``true_shape`` stays the image's own, as in the official ManyAR run)."""
    if name in images():
        return {"img": inputs[f"{name}.img"], "true_shape": inputs[f"{name}.true_shape"]}
    image = name[: -len(TRANSPOSED_SUFFIX)]
    return {"img": inputs[f"{image}.img_landscape_for_manyar"], "true_shape": inputs[f"{image}.true_shape"]}


def pairs(kind: str, variant: str = "inference", part: str = "pred1") -> list[str]:
    """Pair names with ``<variant>.<pair>.<part>.*`` tensors in ``<kind>_tiny_io.safetensors``, in file order."""
    found = []
    for name in tensor_names(f"{kind}_tiny_io.safetensors"):
        fields = name.split(".")
        if fields[0] == variant and fields[2] == part and fields[1] not in found:
            found.append(fields[1])
    return found


def same_size_images() -> list[str]:
    """The largest group of input images of one size, in name order: the images a global alignment (and so
    Feat2GS's ``stacked_feat``) can take together."""
    groups: dict[tuple[int, int], list[str]] = {}
    for image in images():
        groups.setdefault(image_shape(image), []).append(image)
    return max(groups.values(), key=len)


def tiny_kwargs(kind: str, variant: str = "constructor_kwargs_inference_variant") -> dict:
    return {k: json_number(v) for k, v in load_json(f"{kind}_tiny_config.json")[variant].items()}


def tiny_overrides(kind: str) -> dict:
    """The head-factory constants of the tiny config, as our config's override names."""
    o = load_json(f"{kind}_tiny_config.json")["head_factory_overrides"]
    return {"dpt_feature_dim": o["feature_dim"], "dpt_last_dim": o["last_dim"],
            "dpt_layer_dims": tuple(o["layer_dims"]), "local_feat_hidden_factor": o["hidden_dim_factor"]}


def readme_tol(ref: torch.Tensor) -> float:
    """Pass criterion recommended by the fixture README (part B): 1e-4 * max|ref| + 1e-6."""
    return 1e-4 * float(ref.abs().max()) + 1e-6

