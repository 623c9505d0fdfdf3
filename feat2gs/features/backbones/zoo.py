"""The built-in backbones of the Feat2GS benchmark (protocol section 3.9): one registration each.

A new backbone of an existing family is one more ``register_backbone(BackboneConfig(...))`` call (here, or in your
own package through the ``feat2gs.backbones`` entry-point group); registry-wide tests cover it without new test code.
"""

from __future__ import annotations

from feat2gs.features.backbones.config import BackboneConfig, register_backbone

PATCH14_NOTE = ("Patch 14: the normalised image is centre-padded with zeros to a multiple of 14 (extra pixel "
                "right/bottom), and the token grid is resampled (bilinear) onto a round(H/14) x round(W/14) grid "
                "whose cells tile the unpadded image, fixing the upstream stretch of the padded grid over the "
                "real pixels.")

register_backbone(BackboneConfig(
    name="dino_b16",
    family="vit_tokens",
    arch="vit_base_patch16_224.dino",
    layer="block 11 output (last block), patch tokens, no final norm",
    patch=16,
    stride=16,
    channels=768,
    hf_hub_id="timm/vit_base_patch16_224.dino",
    weight_files=("model.safetensors", "pytorch_model.bin"),
    url="https://dl.fbaipublicfiles.com/dino/dino_vitbase16_pretrain/dino_vitbase16_pretrain.pth",
    protocol_source='torch.hub.load("facebookresearch/dino", "dino_vitb16")',
    block=11,
    notes=("Same weights as the protocol's torch.hub model, in timm format. Positional embedding resampled "
        "(bicubic) to the token grid."),
))

register_backbone(BackboneConfig(
    name="dinov2_b14",
    family="vit_tokens",
    arch="vit_base_patch14_dinov2.lvd142m",
    layer="block 11 output (last block), patch tokens only (class/register tokens skipped), no final norm",
    patch=14,
    stride=14,
    channels=768,
    hf_hub_id="timm/vit_base_patch14_dinov2.lvd142m",
    weight_files=("model.safetensors", "pytorch_model.bin"),
    url="https://dl.fbaipublicfiles.com/dinov2/dinov2_vitb14/dinov2_vitb14_pretrain.pth",
    protocol_source='torch.hub.load("facebookresearch/dinov2", "dinov2_vitb14")',
    block=11,
    notes=PATCH14_NOTE,
))

register_backbone(BackboneConfig(
    name="dinov2_b14_reg",
    family="vit_tokens",
    arch="vit_base_patch14_reg4_dinov2.lvd142m",
    layer="block 11 output (last block), patch tokens only (class/register tokens skipped), no final norm",
    patch=14,
    stride=14,
    channels=768,
    hf_hub_id="timm/vit_base_patch14_reg4_dinov2.lvd142m",
    weight_files=("model.safetensors", "pytorch_model.bin"),
    url="https://dl.fbaipublicfiles.com/dinov2/dinov2_vitb14/dinov2_vitb14_reg4_pretrain.pth",
    protocol_source='torch.hub.load("facebookresearch/dinov2", "dinov2_vitb14_reg")',
    block=11,
    notes=PATCH14_NOTE,
))

register_backbone(BackboneConfig(
    name="dinov2_l14",
    family="vit_tokens",
    arch="vit_large_patch14_dinov2.lvd142m",
    layer="block 23 output (last block), patch tokens only (class/register tokens skipped), no final norm",
    patch=14,
    stride=14,
    channels=1024,
    hf_hub_id="timm/vit_large_patch14_dinov2.lvd142m",
    weight_files=("model.safetensors", "pytorch_model.bin"),
    url="https://dl.fbaipublicfiles.com/dinov2/dinov2_vitl14/dinov2_vitl14_pretrain.pth",
    protocol_source='torch.hub.load("facebookresearch/dinov2", "dinov2_vitl14")',
    block=23,
    notes=PATCH14_NOTE,
))

register_backbone(BackboneConfig(
    name="deit3_b16",
    family="vit_tokens",
    arch="deit3_base_patch16_384.fb_in22k_ft_in1k",
    layer="last block (11) output, patch tokens, no final norm",
    patch=16,
    stride=16,
    channels=768,
    hf_hub_id="timm/deit3_base_patch16_384.fb_in22k_ft_in1k",
    weight_files=("model.safetensors", "pytorch_model.bin"),
    url="https://dl.fbaipublicfiles.com/deit/deit_3_base_384_21k.pth",
    protocol_source="https://dl.fbaipublicfiles.com/deit/deit_3_base_384_21k.pth (DeiT-III LS)",
    block=11,
    notes="timm's copy of deit_3_base_384_21k.pth (ImageNet-21k pretrained, 1k fine-tuned, 384).",
))

register_backbone(BackboneConfig(
    name="siglip_b16",
    family="vit_tokens",
    arch="vit_base_patch16_siglip_384.webli",
    layer="last block (11) output, all tokens (SigLIP has no prefix tokens), no final norm",
    patch=16,
    stride=16,
    channels=768,
    hf_hub_id="timm/vit_base_patch16_siglip_384.webli",
    weight_files=("model.safetensors", "pytorch_model.bin"),
    protocol_source=('timm.create_model("vit_base_patch16_siglip_384", pretrained=True) (the webli weights its default '
        "tag named in 2024)"),
    block=11,
    notes=("The protocol feeds ImageNet statistics (the model was trained with mean=std=0.5); we follow the "
        "protocol. The tag is pinned to .webli: newer timm defaults to .v2_webli, which is a different "
        "model."),
))

register_backbone(BackboneConfig(
    name="siglip_l16",
    family="vit_tokens",
    arch="vit_large_patch16_siglip_384.webli",
    layer="last block (23) output, all tokens (SigLIP has no prefix tokens), no final norm",
    patch=16,
    stride=16,
    channels=1024,
    hf_hub_id="timm/vit_large_patch16_siglip_384.webli",
    weight_files=("model.safetensors", "pytorch_model.bin"),
    protocol_source=('timm.create_model("vit_large_patch16_siglip_384", pretrained=True) (the webli weights its '
        "default tag named in 2024)"),
    block=23,
    notes=("The protocol feeds ImageNet statistics (the model was trained with mean=std=0.5); we follow the "
        "protocol. The tag is pinned to .webli: newer timm defaults to .v2_webli, which is a different "
        "model."),
))

register_backbone(BackboneConfig(
    name="midas_l16",
    family="vit_tokens",
    arch="vit_large_patch16_384",
    layer="block 23 (last) tokens, patch tokens only; pos-embed bicubic-resized (antialias)",
    patch=16,
    stride=16,
    channels=1024,
    weight_files=("dpt_large_384.pt", "dpt_large-midas-2f21e586.pt"),
    url="https://github.com/isl-org/MiDaS/releases/download/v3/dpt_large_384.pt",
    protocol_source='torch.hub.load("intel-isl/MiDaS", "DPT_Large").pretrained.model (ViT-L/16-384)',
    block=23,
    normalisation="pm1",
    padding="none",
    checkpoint_prefix="pretrained.model.",
    notes=("Input mapped to [0,1] then mean 0.5 / std 0.5 (i.e. [-1,1]). timm vit_large_patch16_384 "
        "architecture (dynamic_img_size: pos-embed bicubic-resized with antialias) loaded from the MiDaS "
        "DPT_Large checkpoint (torch.hub DPT_Large file dpt_large_384.pt), keys pretrained.model.* = timm "
        "names; the DPT head is ignored."),
))

register_backbone(BackboneConfig(
    name="convnext_in22k",
    family="convnext_last_stage",
    arch="convnext_base.fb_in22k",
    layer="last stage output (stride 32), bilinear-resampled to the stride-16 grid",
    patch=32,
    stride=16,
    channels=1024,
    hf_hub_id="timm/convnext_base.fb_in22k",
    weight_files=("model.safetensors", "pytorch_model.bin"),
    url="https://dl.fbaipublicfiles.com/convnext/convnext_base_22k_224.pth",
    protocol_source='timm.create_model("convnext_base_in22k", pretrained=True)',
    notes=("Network stride 32: the image is centre-padded to a multiple of 32 and the stride-32 grid is "
        "resampled (bilinear, align_corners=False) onto the round(H/16) x round(W/16) grid covering the "
        "unpadded image; with no padding this equals the protocol's bilinear resize."),
))

register_backbone(BackboneConfig(
    name="clip_b16",
    family="clip_projected",
    arch="ViT-B-16",
    layer="last resblock output (all tokens), then ln_post and @ proj; class token dropped",
    patch=16,
    stride=16,
    channels=512,
    hf_hub_id="timm/vit_base_patch16_clip_224.openai",
    weight_files=("open_clip_model.safetensors", "open_clip_pytorch_model.bin"),
    url=("https://openaipublic.azureedge.net/clip/models/5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f/ViT-B-16.pt"),
    protocol_source='open_clip.create_model_and_transforms("ViT-B-16", pretrained="openai").visual',
    block=-1,
    pretrained_tag="openai",
    quick_gelu=True,
    notes=("The protocol feeds ImageNet statistics (CLIP was trained with its own); we follow the protocol. "
        "Positional embedding resampled (bicubic) to the token grid."),
))

register_backbone(BackboneConfig(
    name="clip_b16_laion",
    family="clip_projected",
    arch="ViT-B-16",
    layer="last resblock output (all tokens), then ln_post and @ proj; class token dropped",
    patch=16,
    stride=16,
    channels=512,
    hf_hub_id="laion/CLIP-ViT-B-16-laion2B-s34B-b88K",
    weight_files=("open_clip_model.safetensors", "open_clip_pytorch_model.bin"),
    protocol_source='open_clip.create_model_and_transforms("ViT-B-16", pretrained="laion2b_s34b_b88k").visual',
    block=-1,
    pretrained_tag="laion2b_s34b_b88k",
    notes=("The protocol feeds ImageNet statistics (CLIP was trained with its own); we follow the protocol. "
        "Positional embedding resampled (bicubic) to the token grid."),
))

register_backbone(BackboneConfig(
    name="clip_l14",
    family="clip_projected",
    arch="ViT-L-14-336",
    layer="last resblock output (all tokens), then ln_post and @ proj; class token dropped",
    patch=14,
    stride=14,
    channels=768,
    hf_hub_id="timm/vit_large_patch14_clip_336.openai",
    weight_files=("open_clip_model.safetensors", "open_clip_pytorch_model.bin"),
    url=("https://openaipublic.azureedge.net/clip/models/3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02/ViT-L-14-336px.pt"),
    protocol_source='open_clip.create_model_and_transforms("ViT-L-14-336", pretrained="openai").visual',
    block=-1,
    pretrained_tag="openai",
    quick_gelu=True,
    notes=("The protocol feeds ImageNet statistics (CLIP was trained with its own); we follow the protocol. "
        "Positional embedding resampled (bicubic) to the token grid. Patch 14: centre-padded to a "
        "multiple of 14 and the grid mapped back onto the unpadded pixels (as dinov2_b14)."),
))

register_backbone(BackboneConfig(
    name="mae_b16",
    family="mae_hidden_states",
    arch="facebook/vit-mae-base",
    layer="hidden_states[11] (after 11 of 12 blocks), no final LN, no masking; 2D sin-cos pos-embed regenerated",
    patch=16,
    stride=16,
    channels=768,
    hf_hub_id="facebook/vit-mae-base",
    weight_files=("model.safetensors", "pytorch_model.bin"),
    protocol_source='ViTMAEForPreTraining.from_pretrained("facebook/vit-mae-base").vit',
    block=11,
    padding="none",
    notes=("Probe3D convention: hidden_states[L-1] is the output of the second-to-last block (protocol "
        "section 13). transformers ViTMAEModel with the official sizes; the encoder layers run on the "
        "patch tokens in raster order (no random_masking, so no masking and no shuffling) and the fixed "
        "2D sin-cos table is regenerated for the token grid; CLS token dropped. Official hub key names "
        "are mapped to the installed transformers names."),
))

register_backbone(BackboneConfig(
    name="mae_l16",
    family="mae_hidden_states",
    arch="facebook/vit-mae-large",
    layer="hidden_states[23] (after 23 of 24 blocks), no final LN, no masking; 2D sin-cos pos-embed regenerated",
    patch=16,
    stride=16,
    channels=1024,
    hf_hub_id="facebook/vit-mae-large",
    weight_files=("model.safetensors", "pytorch_model.bin"),
    protocol_source='ViTMAEForPreTraining.from_pretrained("facebook/vit-mae-large").vit',
    block=23,
    padding="none",
    notes=("Probe3D convention: hidden_states[L-1] is the output of the second-to-last block (protocol "
        "section 13). Same handling as mae_b16 (no masking / shuffling, regenerated sin-cos table, CLS "
        "dropped)."),
))

register_backbone(BackboneConfig(
    name="sam_base",
    family="sam_encoder_blocks",
    arch="vit_b",
    layer="image-encoder block 11 output (before the neck); abs pos-embed bicubic-resized",
    patch=16,
    stride=16,
    channels=768,
    weight_files=("sam_vit_b_01ec64.pth",),
    url="https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
    protocol_source=("segment_anything vit_b, sam_vit_b_01ec64.pth "
        "(https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth)"),
    block=11,
    padding="none",
    notes=('sam_model_registry["vit_b"](checkpoint=None).image_encoder; the image is not padded to 1024, the '
        "64x64 absolute position embedding is bicubic-resized to the token grid (windowed attention pads "
        "the token grid to a multiple of 14 internally). Weights (image_encoder.* keys of the full SAM "
        "checkpoint) are looked up in $FEAT2GS_CHECKPOINTS, ~/.cache/feat2gs/checkpoints and "
        "~/.cache/torch/hub/checkpoints."),
))

register_backbone(BackboneConfig(
    name="sam_large",
    family="sam_encoder_blocks",
    arch="vit_l",
    layer="image-encoder last block (23) output (before the neck); abs pos-embed bicubic-resized",
    patch=16,
    stride=16,
    channels=1024,
    weight_files=("sam_vit_l_0b3195.pth",),
    url="https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth",
    protocol_source=("segment_anything vit_l, sam_vit_l_0b3195.pth "
        "(https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth)"),
    block=23,
    padding="none",
    notes="Same handling as sam_base (vit_l image encoder, 24 blocks).",
))

register_backbone(BackboneConfig(
    name="dift",
    family="dift_up_block",
    arch="stabilityai/stable-diffusion-2-1",
    layer=("VAE encode (mode) x scaling_factor, noise at t=1, UNet with empty-prompt embedding; up-block "
        "index 1 output (1280 channels at 1/16 of the input)"),
    patch=16,
    stride=16,
    channels=1280,
    hf_hub_id="stabilityai/stable-diffusion-2-1",
    weight_files=("unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.bin"),
    protocol_source="stabilityai/stable-diffusion-2-1 (UNet, VAE encoder, DDIM scheduler; diffusers)",
    block=1,
    notes=("Paper-compatible: the VAE receives ImageNet-normalised input as upstream does (protocol section "
        "13), dift_pm1 gives it the [-1, 1] range it was trained on. Noise is seeded per image (upstream: "
        "unseeded). Images are centre-padded to a multiple of 16, so the up-block grid tiles the image "
        "exactly and the upstream nearest resize is not needed. Weights: a diffusers-format SD 2.1 folder "
        "(unet, vae, text_encoder, tokenizer, scheduler)."),
))

register_backbone(BackboneConfig(
    name="dift_pm1",
    family="dift_up_block",
    arch="stabilityai/stable-diffusion-2-1",
    layer=("VAE encode (mode) x scaling_factor, noise at t=1, UNet with empty-prompt embedding; up-block "
        "index 1 output (1280 channels at 1/16 of the input)"),
    patch=16,
    stride=16,
    channels=1280,
    hf_hub_id="stabilityai/stable-diffusion-2-1",
    weight_files=("unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.bin"),
    protocol_source="stabilityai/stable-diffusion-2-1 (UNet, VAE encoder, DDIM scheduler; diffusers)",
    block=1,
    normalisation="pm1",
    notes=("Fix of an upstream flaw (protocol section 13): the VAE receives [-1, 1] input as in Stable "
        "Diffusion; dift is the paper-compatible variant. Noise is seeded per image (upstream: unseeded). "
        "Images are centre-padded to a multiple of 16, so the up-block grid tiles the image exactly and "
        "the upstream nearest resize is not needed. Weights: a diffusers-format SD 2.1 folder (unet, vae, "
        "text_encoder, tokenizer, scheduler)."),
))

register_backbone(BackboneConfig(
    name="vggt_e",
    family="vggt_patch_embed",
    arch="facebook/VGGT-1B",
    layer="aggregator patch_embed output x_norm_patchtokens (DINOv2 ViT-L/14 with 4 registers inside VGGT)",
    patch=14,
    stride=14,
    channels=1024,
    hf_hub_id="facebook/VGGT-1B",
    weight_files=("model.safetensors", "model.pt"),
    url="https://huggingface.co/facebook/VGGT-1B/resolve/main/model.pt",
    protocol_source='VGGT.from_pretrained("facebook/VGGT-1B")',
    padding="crop518",
    notes=("Our implementation (feat2gs.features.backbones.vggt; the patch embedding is timm "
        "vit_large_patch14_reg4_dinov2 loaded from the checkpoint's aggregator.patch_embed.* keys). "
        "VGGT's crop-mode preprocessing (width 518, height rounded to 14, centre crop to 518) is applied "
        "to the working images; upstream reloads the originals from disk. The grid is sampled onto cells "
        "tiling the image instead of being stretched over it. ImageNet normalisation is VGGT's own "
        "(inside its aggregator). fp32 on CPU; init.autocast=bf16 on CUDA matches upstream."),
))

register_backbone(BackboneConfig(
    name="vggt_d",
    family="vggt_aggregator",
    arch="facebook/VGGT-1B",
    layer=("last aggregator layer (frame-attention and global-attention outputs concatenated), patch tokens "
        "after patch_start_idx"),
    patch=14,
    stride=14,
    channels=2048,
    hf_hub_id="facebook/VGGT-1B",
    weight_files=("model.safetensors", "model.pt"),
    url="https://huggingface.co/facebook/VGGT-1B/resolve/main/model.pt",
    protocol_source='VGGT.from_pretrained("facebook/VGGT-1B")',
    padding="crop518",
    notes=("Our implementation of the VGGT aggregator (feat2gs.features.backbones.vggt: 24 frame/global "
        "block pairs with q/k LayerNorm and 2D RoPE), loaded strictly from the checkpoint's aggregator.* "
        "keys. All views run in one batch (global attention couples them). VGGT's crop-mode preprocessing "
        "(width 518, height rounded to 14, centre crop to 518) is applied to the working images; upstream "
        "reloads the originals from disk. The grid is sampled onto cells tiling the image instead of "
        "being stretched over it. ImageNet normalisation is VGGT's own (inside its aggregator). fp32 on "
        "CPU; init.autocast=bf16 on CUDA matches upstream."),
))

register_backbone(BackboneConfig(
    name="radio",
    family="radio_features",
    arch="NVlabs/RADIO",
    layer="last block output passed through model.norm; patch tokens after num_skip summary/register tokens",
    patch=16,
    stride=16,
    channels=1280,
    hf_hub_id="nvidia/RADIO",
    weight_files=("radio_v2.pth.tar",),
    url="https://huggingface.co/nvidia/RADIO/resolve/main/radio_v2.pth.tar",
    protocol_source="torch.hub.load('NVlabs/RADIO', 'radio_model', version='radio_v2', adaptor_names=None)",
    notes=("Runs NVIDIA's own RADIO code from the torch.hub cache (NVlabs_RADIO_main, or "
        "$FEAT2GS_RADIO_REPO) on the radio_v2 checkpoint, preprocessor made external and ImageNet "
        "statistics fed as upstream does (protocol section 13). With --random-weights a timm ViT-H/16 of "
        "the same width and depth stands in for shapes only (see radio.py)."),
))
