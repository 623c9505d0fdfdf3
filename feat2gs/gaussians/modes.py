"""Probing modes: which Gaussian parameters the readout heads predict and which are free per-Gaussian tensors."""

from __future__ import annotations

from dataclasses import dataclass

from feat2gs.errors import ConfigError

BASELINE_MODE = "instantsplat"  # the baseline's mode name, also its job folder name
GEOMETRY = ("xyz", "scaling", "rotation", "opacity")
TEXTURE = ("f_dc", "f_rest")
PARAM_KEYS = GEOMETRY + TEXTURE


@dataclass(frozen=True)
class ProbeMode:
    name: str
    heads: tuple[str, ...]  # read out from features by MLP heads
    free: tuple[str, ...]  # optimised directly per Gaussian
    finetune_features: bool  # the per-Gaussian feature vectors are trainable ("ft" modes)
    description: str
    baseline: bool = False  # reads no feature (InstantSplat): its own settings section, its own job folder

    @property
    def needs_feature(self) -> bool:
        return not self.baseline


MODES: dict[str, ProbeMode] = {
    m.name: m
    for m in (
        ProbeMode("G", GEOMETRY, TEXTURE, False, "geometry from features; colours free"),
        ProbeMode("T", TEXTURE, GEOMETRY, False, "colours (SH) from features; geometry free"),
        ProbeMode("A", PARAM_KEYS, (), False, "every parameter from features"),
        ProbeMode("Gft", GEOMETRY, TEXTURE, True, "as G, features fine-tuned"),
        ProbeMode("Tft", TEXTURE, GEOMETRY, True, "as T, features fine-tuned"),
        ProbeMode("Aft", PARAM_KEYS, (), True, "as A, features fine-tuned"),
        ProbeMode(BASELINE_MODE, (), PARAM_KEYS, False, "InstantSplat baseline: every parameter free, no features, "
                  "no warm start, the baseline's learning rates", baseline=True),
    )
}
BASELINE_FEATURE = "iuv"  # step 1 of a baseline job: geometry and colours only; this weight-free feature goes unused


def get_mode(name: str) -> ProbeMode:
    if name not in MODES:
        raise ConfigError(f"unknown probing mode {name!r}; choose one of {', '.join(MODES)}")
    return MODES[name]


def param_dims(sh_degree: int) -> dict[str, int]:
    """Flat width of each raw parameter (f_rest holds ((d+1)^2 - 1) * 3 SH coefficients)."""
    return {"xyz": 3, "scaling": 3, "rotation": 4, "opacity": 1, "f_dc": 3, "f_rest": ((sh_degree + 1) ** 2 - 1) * 3}
