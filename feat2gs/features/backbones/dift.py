"""DIFT: Stable Diffusion 2.1 UNet features with ``diffusers`` (protocol section 3.9, family ``dift_up_block``).

Per image: VAE-encode (distribution mode) x ``scaling_factor``, add Gaussian noise at timestep ``t = 1`` with the
DDIM scheduler, run the UNet with the empty-prompt text embedding and keep the output of ``up_blocks[block]``
(block 1: 1280 channels at 1/16 of the input). The forward pass stops right after that block.

* Weights: a diffusers-format Stable Diffusion 2.1 folder (``unet/``, ``vae/``, ``text_encoder/``, ``tokenizer/``,
  ``scheduler/``), found as the snapshot holding ``unet/diffusion_pytorch_model.safetensors``; every component is
  read with ``from_pretrained(..., local_files_only=True)`` from that folder's own configs.
* Random weights: the same architectures built from the SD 2.1 configs below; the empty prompt is then the token
  ids SD 2.x's tokenizer gives for ``""`` (BOS, EOS, padded with ``!`` = id 0), as no tokenizer files exist.
* Noise: one seeded generator per image (seed, image index), drawn on the CPU, so features do not depend on the
  batch chunking or the device. (Upstream draws unseeded noise; protocol section 13.)
"""

from __future__ import annotations

from pathlib import Path

import torch

from feat2gs.errors import ConfigError
from feat2gs.features.backbones.config import BackboneConfig, Family, register_family
from feat2gs.features.backbones.weights import BackboneWeightsError

TIMESTEP = 1
PROMPT_LENGTH = 77
BOS, EOS, PAD = 49406, 49407, 0  # SD 2.x (OpenCLIP) tokenizer: pad token "!" has id 0
COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")

SD21_UNET = dict(  # stabilityai/stable-diffusion-2-1 unet/config.json
    sample_size=96, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3, cross_attention_dim=1024,
    attention_head_dim=(5, 10, 20, 20), use_linear_projection=True, upcast_attention=True)
SD21_VAE = dict(  # vae/config.json
    in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, sample_size=768,
    scaling_factor=0.18215)
SD21_TEXT = dict(  # text_encoder/config.json (OpenCLIP ViT-H/14 text tower, penultimate layer kept: 23 layers)
    vocab_size=49408, hidden_size=1024, intermediate_size=4096, num_hidden_layers=23, num_attention_heads=16,
    max_position_embeddings=77, hidden_act="gelu", projection_dim=512, bos_token_id=BOS, eos_token_id=EOS)
SD21_SCHEDULER = dict(  # scheduler/scheduler_config.json
    num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
    set_alpha_to_one=False, steps_offset=1, prediction_type="v_prediction")


class _Stop(Exception):
    """Raised by the hook on the wanted up-block: nothing after it is computed."""


class DiftModel(torch.nn.Module):
    """VAE encoder + UNet up to ``up_blocks[block]``; ``forward(x, first, seed)``: ``first`` is the index of x[0]
    in the whole image list, so that every image gets its own seeded noise whatever the chunking."""

    def __init__(self, unet: torch.nn.Module, vae: torch.nn.Module, scheduler, prompt_embeds: torch.Tensor,
                 block: int):
        super().__init__()
        if not (0 <= block < len(unet.up_blocks)):
            raise ConfigError(f"dift: up-block {block} out of range (0..{len(unet.up_blocks) - 1})")
        self.unet, self.vae, self.scheduler, self.block = unet, vae, scheduler, block
        self.register_buffer("prompt_embeds", prompt_embeds, persistent=False)
        self._captured: torch.Tensor | None = None
        self.hook = unet.up_blocks[block].register_forward_hook(self._capture)

    def _capture(self, module, args, output):
        self._captured = output
        raise _Stop

    @staticmethod
    def noise(shape: torch.Size, first: int, seed: int) -> torch.Tensor:
        out = []
        for i in range(shape[0]):
            gen = torch.Generator().manual_seed(seed * 1_000_003 + first + i)
            out.append(torch.randn(tuple(shape[1:]), generator=gen))
        return torch.stack(out)

    def forward(self, x: torch.Tensor, first: int = 0, seed: int = 0) -> torch.Tensor:
        latents = self.vae.encode(x).latent_dist.mode() * self.vae.config.scaling_factor
        noise = self.noise(latents.shape, first, seed).to(latents)
        t = torch.full((latents.shape[0],), TIMESTEP, dtype=torch.long, device=latents.device)
        noisy = self.scheduler.add_noise(latents, noise, t)
        prompt = self.prompt_embeds.to(noisy.dtype).expand(latents.shape[0], -1, -1)
        self._captured = None
        try:
            self.unet(noisy, t, encoder_hidden_states=prompt)
        except _Stop:
            pass
        if self._captured is None:
            raise RuntimeError("dift: the UNet finished without running the hooked up-block")
        out, self._captured = self._captured, None
        return out


def snapshot_root(weights: Path) -> Path:
    """``<root>/unet/diffusion_pytorch_model.*`` -> ``<root>``."""
    return weights.parent.parent


def missing_components(root: Path) -> list[str]:
    """The Stable Diffusion component folders absent from ``root``."""
    return [c for c in COMPONENTS if not (root / c).is_dir()]


def _empty_prompt_ids() -> torch.Tensor:
    ids = torch.full((1, PROMPT_LENGTH), PAD, dtype=torch.long)
    ids[0, :2] = torch.tensor([BOS, EOS])
    return ids


def _fetch_command(cfg: BackboneConfig) -> str:
    return (f"huggingface-cli download {cfg.hf_hub_id} --include 'unet/*' 'vae/*' 'text_encoder/*' 'tokenizer/*' "
            f"'scheduler/*'")


def _load_components(cfg: BackboneConfig, root: Path):
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    missing = missing_components(root)
    if missing:
        raise BackboneWeightsError(f"{root} is not a complete diffusers Stable Diffusion folder for backbone "
                                   f"{cfg.name!r}: missing {', '.join(missing)}/. Fetch it with\n  "
                                   + _fetch_command(cfg))
    try:
        unet = UNet2DConditionModel.from_pretrained(root, subfolder="unet", local_files_only=True)
        vae = AutoencoderKL.from_pretrained(root, subfolder="vae", local_files_only=True)
        text = CLIPTextModel.from_pretrained(root, subfolder="text_encoder", local_files_only=True)
        tokenizer = CLIPTokenizer.from_pretrained(root, subfolder="tokenizer", local_files_only=True)
        scheduler = DDIMScheduler.from_pretrained(root, subfolder="scheduler", local_files_only=True)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise BackboneWeightsError(f"cannot load Stable Diffusion from {root} for backbone {cfg.name!r}: "
                                   f"{str(exc).splitlines()[0][:300]}\nFetch it with\n  {_fetch_command(cfg)}") from exc
    ids = tokenizer("", padding="max_length", max_length=text.config.max_position_embeddings, truncation=True,
                    return_tensors="pt").input_ids
    return unet, vae, text, ids, scheduler


def _random_components():
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    return (UNet2DConditionModel(**SD21_UNET), AutoencoderKL(**SD21_VAE), CLIPTextModel(CLIPTextConfig(**SD21_TEXT)),
            _empty_prompt_ids(), DDIMScheduler(**SD21_SCHEDULER))


def build_dift(cfg: BackboneConfig, weights: Path | None) -> DiftModel:
    unet, vae, text, ids, scheduler = (_random_components() if weights is None
                                       else _load_components(cfg, snapshot_root(weights)))
    with torch.no_grad():
        prompt_embeds = text.eval()(ids)[0]
    del text
    vae.decoder = None  # only the encoder is used
    model = DiftModel(unet, vae, scheduler, prompt_embeds, cfg.block)  # checks the block index
    channels = unet.up_blocks[cfg.block].resnets[-1].conv2.out_channels
    if channels != cfg.channels:
        raise ConfigError(f"backbone {cfg.name!r}: UNet up-block {cfg.block} has {channels} channels, the config "
                          f"says {cfg.channels}")
    return model


def _missing_parts(cfg: BackboneConfig, weights: Path) -> list[str]:
    root = snapshot_root(weights)
    return [f"{root / c}/" for c in missing_components(root)]


register_family(Family("dift_up_block", "diffusers", build_dift, needs_block=True, missing_parts=_missing_parts,
                       grid=lambda module, x, cfg, first, seed: module(x, first=first, seed=seed)))
