"""Architecture description of the DUSt3R / MASt3R networks (every width and depth is a parameter).

The official checkpoints store their constructor as a Python call string (``AsymmetricCroCo3DStereo(...)``) or as a
Hugging Face ``config.json`` holding the same keyword arguments. :func:`config_from_kwargs` maps those keyword
arguments onto :class:`Dust3rConfig`, applying the rewrite the official loaders use for inference
(``ManyAR_PatchEmbed`` -> ``PatchEmbedDust3R`` with ``landscape_only=False``).
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any

from feat2gs.errors import ConfigError

INF = math.inf

# Official head-factory constants (not expressible in the constructor string; parameters here).
OFFICIAL_DPT_FEATURE_DIM = 256
OFFICIAL_DPT_LAYER_DIMS = (96, 192, 384, 768)
OFFICIAL_LOCAL_FEAT_HIDDEN_FACTOR = 4.0

PATCH_EMBED_CLASSES = ("PatchEmbedDust3R", "ManyAR_PatchEmbed")


@dataclass
class Dust3rConfig:
    """Every constructor parameter of :class:`~feat2gs.init.dust3r.model.Dust3rNet`.

    kind: "dust3r" (head 'dpt', output 'pts3d') or "mast3r" (head 'catmlp+dpt', output 'pts3d+desc<N>').
    Modes are ``(name, vmin, vmax)`` triples as in the official code: depth ('exp'|'linear'|'square'),
    conf ('exp'|'sigmoid'), desc_conf (same as conf; ``None`` = use conf_mode, the official fallback).
    ``patch_embed_cls='ManyAR_PatchEmbed'`` with ``landscape_only=True`` is the training-time variant (portrait
    images fed transposed); inference always uses ``PatchEmbedDust3R`` with ``landscape_only=False``.
    ``landscape_only`` only has an effect together with ``ManyAR_PatchEmbed``.
    """

    kind: str = "dust3r"
    img_size: tuple[int, int] = (512, 512)
    patch_size: int = 16
    enc_embed_dim: int = 1024
    enc_depth: int = 24
    enc_num_heads: int = 16
    dec_embed_dim: int = 768
    dec_depth: int = 12
    dec_num_heads: int = 12
    mlp_ratio: float = 4.0
    rope_freq: float = 100.0
    head_type: str = "dpt"
    output_mode: str = "pts3d"
    depth_mode: tuple[str, float, float] = ("exp", -INF, INF)
    conf_mode: tuple[str, float, float] = ("exp", 1.0, INF)
    desc_mode: str = "norm"
    desc_conf_mode: tuple[str, float, float] | None = None
    two_confs: bool = False
    patch_embed_cls: str = "PatchEmbedDust3R"
    landscape_only: bool = False
    dpt_feature_dim: int = OFFICIAL_DPT_FEATURE_DIM
    dpt_last_dim: int | None = None  # None -> dpt_feature_dim // 2 (official relation)
    dpt_layer_dims: tuple[int, ...] = OFFICIAL_DPT_LAYER_DIMS
    local_feat_hidden_factor: float = OFFICIAL_LOCAL_FEAT_HIDDEN_FACTOR
    extra: dict[str, Any] = field(default_factory=dict)  # ignored constructor kwargs, kept for the record

    def __post_init__(self) -> None:
        self.img_size = tuple(int(v) for v in self.img_size)  # type: ignore[assignment]
        self.dpt_layer_dims = tuple(int(v) for v in self.dpt_layer_dims)
        self.depth_mode = _mode(self.depth_mode, "depth_mode")
        self.conf_mode = _mode(self.conf_mode, "conf_mode")
        if self.desc_conf_mode is not None:
            self.desc_conf_mode = _mode(self.desc_conf_mode, "desc_conf_mode")
        self.validate()

    # ----------------------------------------------------------------------------------------------------------
    @property
    def last_dim(self) -> int:
        return self.dpt_last_dim if self.dpt_last_dim is not None else self.dpt_feature_dim // 2

    @property
    def local_feat_dim(self) -> int:
        """Descriptor width from ``output_mode='pts3d+desc<N>'`` (0 for DUSt3R)."""
        m = re.fullmatch(r"pts3d\+desc(\d+)", self.output_mode)
        return int(m.group(1)) if m else 0

    @property
    def has_desc(self) -> bool:
        return self.head_type == "catmlp+dpt"

    @property
    def dpt_hooks(self) -> list[int]:
        n = self.dec_depth
        return [0, n * 2 // 4, n * 3 // 4, n]

    @property
    def effective_desc_conf_mode(self) -> tuple[str, float, float]:
        return self.desc_conf_mode if self.desc_conf_mode is not None else self.conf_mode  # type: ignore[return-value]

    @property
    def manyar(self) -> bool:
        return self.patch_embed_cls == "ManyAR_PatchEmbed"

    def validate(self) -> None:
        if self.kind not in ("dust3r", "mast3r"):
            raise ConfigError(f"Dust3rConfig.kind must be 'dust3r' or 'mast3r', got {self.kind!r}")
        if self.head_type not in ("dpt", "catmlp+dpt"):
            raise ConfigError(f"unsupported head_type {self.head_type!r}; supported: 'dpt' (DUSt3R), "
                              "'catmlp+dpt' (MASt3R)")
        if self.head_type == "dpt" and self.output_mode != "pts3d":
            raise ConfigError(f"head_type 'dpt' supports output_mode 'pts3d' only, got {self.output_mode!r}")
        if self.head_type == "catmlp+dpt":
            if self.local_feat_dim <= 0:
                raise ConfigError(f"head_type 'catmlp+dpt' needs output_mode 'pts3d+desc<N>', got {self.output_mode!r}")
            if not self.two_confs:
                raise ConfigError("only two_confs=True is supported for MASt3R heads (the released models use it)")
            if self.desc_mode != "norm":
                raise ConfigError(f"unsupported desc_mode {self.desc_mode!r}; supported: 'norm'")
        if self.patch_embed_cls not in PATCH_EMBED_CLASSES:
            raise ConfigError(f"unsupported patch_embed_cls {self.patch_embed_cls!r}; supported: {PATCH_EMBED_CLASSES}")
        for name in ("enc", "dec"):
            dim, heads = getattr(self, f"{name}_embed_dim"), getattr(self, f"{name}_num_heads")
            if dim % heads or (dim // heads) % 4:
                raise ConfigError(f"{name}_embed_dim={dim} must split into {heads} heads whose width is a "
                                  "multiple of 4 (2D RoPE)")
        if self.dec_depth < 4:
            raise ConfigError(f"dec_depth={self.dec_depth} is too small for the DPT hooks (official models: 12)")
        if len(self.dpt_layer_dims) != 4:
            raise ConfigError(f"dpt_layer_dims needs 4 entries, got {self.dpt_layer_dims}")
        if self.depth_mode[0] not in ("exp", "linear", "square"):
            raise ConfigError(f"unsupported depth_mode {self.depth_mode}")
        for name, mode in (("conf_mode", self.conf_mode), ("desc_conf_mode", self.effective_desc_conf_mode)):
            if mode[0] not in ("exp", "sigmoid"):
                raise ConfigError(f"unsupported {name} {mode}")

    def replace(self, **changes: Any) -> Dust3rConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _mode(value: Any, name: str) -> tuple[str, float, float]:
    try:
        kind, vmin, vmax = value
        return (str(kind), _num(vmin), _num(vmax))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} must be (name, vmin, vmax), got {value!r}") from exc


def _num(v: Any) -> float:
    if isinstance(v, str):  # strict-JSON spelling of infinities ("inf", "-inf", "Infinity")
        v = v.strip().lower().replace("infinity", "inf")
    return float(v)


# ------------------------------------------------------------------------------------------------------------------
# presets (official values)

def dust3r_vitl_512_dpt() -> Dust3rConfig:
    """``DUSt3R_ViTLarge_BaseDecoder_512_dpt`` as built for inference."""
    return Dust3rConfig(kind="dust3r")


def mast3r_vitl_512_catmlpdpt() -> Dust3rConfig:
    """``MASt3R_ViTLarge_BaseDecoder_512_catmlpdpt_metric`` as built for inference (desc_conf_mode ('exp',0,inf))."""
    return Dust3rConfig(kind="mast3r", head_type="catmlp+dpt", output_mode="pts3d+desc24", two_confs=True,
                       desc_mode="norm", desc_conf_mode=("exp", 0.0, INF))


def preset(kind: str) -> Dust3rConfig:
    if kind == "dust3r":
        return dust3r_vitl_512_dpt()
    if kind == "mast3r":
        return mast3r_vitl_512_catmlpdpt()
    raise ConfigError(f"unknown model kind {kind!r}; use 'dust3r' or 'mast3r'")


# ------------------------------------------------------------------------------------------------------------------
# official constructor kwargs -> Dust3rConfig

_DIRECT = ("img_size", "patch_size", "enc_embed_dim", "enc_depth", "enc_num_heads", "dec_embed_dim", "dec_depth",
           "dec_num_heads", "mlp_ratio", "head_type", "output_mode", "depth_mode", "conf_mode", "desc_mode",
           "desc_conf_mode", "two_confs", "patch_embed_cls", "landscape_only")
# kwargs that do not change the inference network
_IGNORED = ("freeze", "mask_ratio", "norm_layer", "pretrained")


def config_from_kwargs(kwargs: dict[str, Any], class_name: str | None = None, *, inference: bool = True,
                       overrides: dict[str, Any] | None = None) -> Dust3rConfig:
    """Map official constructor kwargs (from the ``.pth`` args string or HF ``config.json``) to a config.

    class_name: 'AsymmetricCroCo3DStereo' (DUSt3R) / 'AsymmetricMASt3R' (MASt3R) / None (guess from head_type).
    inference: apply the official ``load_model`` rewrite (PatchEmbedDust3R, landscape_only=False).
    overrides: Dust3rConfig fields to set afterwards (e.g. the head widths of a non-official model).
    """
    kw = dict(kwargs)
    if class_name is not None and class_name not in ("AsymmetricCroCo3DStereo", "AsymmetricMASt3R"):
        raise ConfigError(f"unsupported model class {class_name!r}; expected AsymmetricCroCo3DStereo (DUSt3R) "
                          "or AsymmetricMASt3R (MASt3R)")
    head_type = kw.get("head_type", "linear")
    if class_name == "AsymmetricMASt3R" or head_type == "catmlp+dpt":
        kind = "mast3r"
    else:
        kind = "dust3r"
    out: dict[str, Any] = {"kind": kind, "head_type": head_type}
    # croco's own defaults when a kwarg is absent
    out.update(img_size=(224, 224), patch_size=16, enc_embed_dim=768, enc_depth=12, enc_num_heads=12,
               dec_embed_dim=512, dec_depth=8, dec_num_heads=16, mlp_ratio=4.0)
    out.update(landscape_only=True, patch_embed_cls="PatchEmbedDust3R")
    pos_embed = kw.pop("pos_embed", "cosine")
    m = re.fullmatch(r"RoPE(\d+(?:\.\d+)?)", str(pos_embed))
    if not m:
        raise ConfigError(f"unsupported pos_embed {pos_embed!r}; only 'RoPE<freq>' (official: RoPE100) is implemented")
    out["rope_freq"] = float(m.group(1))
    if kw.pop("norm_im2_in_dec", True) is not True:
        raise ConfigError("norm_im2_in_dec=False is not supported (official models use True)")
    extra = {}
    for key, value in kw.items():
        if key in _DIRECT:
            out[key] = value
        elif key in _IGNORED:
            extra[key] = value
        else:
            raise ConfigError(f"unsupported constructor argument {key}={value!r} for {class_name or kind}")
    if isinstance(out["img_size"], int):
        out["img_size"] = (out["img_size"], out["img_size"])
    if kind == "mast3r" and "desc_conf_mode" not in kw:
        # the released metric model was trained with ('exp', 0, inf) (HF config, mast3r README); the .pth args
        # string may omit it, in which case the official code would silently fall back to conf_mode.
        out["desc_conf_mode"] = ("exp", 0.0, INF)
        extra["desc_conf_mode_defaulted"] = True
    if inference:
        out["patch_embed_cls"] = "PatchEmbedDust3R"
        out["landscape_only"] = False
    out["extra"] = extra
    if overrides:
        unknown = set(overrides) - {f.name for f in dataclasses.fields(Dust3rConfig)}
        if unknown:
            raise ConfigError(f"unknown Dust3rConfig override(s): {sorted(unknown)}")
        out.update(overrides)
    return Dust3rConfig(**out)
