"""Centre padding to a multiple of the network stride, and mapping the padded token grid back onto real pixels.

Upstream (Probe3D ``center_padding``) zero-pads the normalised image symmetrically (the extra pixel goes right /
bottom) and then stretches the token grid of the *padded* image over the *unpadded* one, shifting features by up to
half a patch. Here the grid of the padded image is resampled (bilinear, ``grid_sample`` with
``align_corners=False``) at the centres of an ``out_h x out_w`` grid of equal cells that tile the real image
exactly, so that ``compose.resize_grid`` (which assumes exactly that) puts every feature on the right pixels.
Without padding and with ``out == grid`` nothing is resampled.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def centre_pad_amounts(size: int, multiple: int) -> tuple[int, int]:
    """(before, after) zero padding that makes ``size`` a multiple of ``multiple``; the odd pixel goes after."""
    total = (-size) % multiple
    return total // 2, total - total // 2


def centre_pad(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """[N, C, H, W] -> (zero-padded [N, C, Hp, Wp], (pad_top, pad_left))."""
    top, bottom = centre_pad_amounts(x.shape[-2], multiple)
    left, right = centre_pad_amounts(x.shape[-1], multiple)
    if top or bottom or left or right:
        x = F.pad(x, (left, right, top, bottom))
    return x, (top, left)


def output_grid_size(height: int, width: int, stride: int) -> tuple[int, int]:
    """Cells of the returned grid: ``round(H / stride) x round(W / stride)`` (at least 1); exact for multiples."""
    return max(1, math.floor(height / stride + 0.5)), max(1, math.floor(width / stride + 0.5))


def map_grid_to_image(grid: torch.Tensor, padded_size: tuple[int, int], pad: tuple[int, int],
                      image_size: tuple[int, int], out_size: tuple[int, int]) -> torch.Tensor:
    """Resample a grid covering the padded image onto cells tiling the unpadded image.

    grid         [N, C, gh, gw], cell (i, j) covering padded pixels [i*Hp/gh, (i+1)*Hp/gh) x ...
    padded_size  (Hp, Wp); pad (top, left) pixels added before the image; image_size (H, W)
    out_size     (oh, ow): returned cell (i, j) is centred on real pixel ((i+0.5)*H/oh, (j+0.5)*W/ow)
    -> [N, C, oh, ow]
    """
    (hp, wp), (top, left), (h, w), (oh, ow) = padded_size, pad, image_size, out_size
    if (top, left) == (0, 0) and (hp, wp) == (h, w) and tuple(grid.shape[-2:]) == (oh, ow):
        return grid
    ys = (torch.arange(oh, dtype=torch.float64) + 0.5) * (h / oh) + top  # padded-frame pixels
    xs = (torch.arange(ow, dtype=torch.float64) + 0.5) * (w / ow) + left
    return sample_grid(grid, ys, xs, (hp, wp))


def sample_grid(grid: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, frame_size: tuple[int, int]) -> torch.Tensor:
    """Bilinear samples of a grid [N, C, gh, gw] that tiles a ``frame_size`` (H, W) pixel frame, at the pixel
    coordinates ``ys`` [oh] x ``xs`` [ow] of that frame (outside: the border cell) -> [N, C, oh, ow]."""
    fh, fw = frame_size
    ny, nx = (2 * ys / fh - 1).to(grid.device), (2 * xs / fw - 1).to(grid.device)  # align_corners=False frame
    sample = torch.stack(torch.meshgrid(nx, ny, indexing="xy"), dim=-1).to(grid.dtype)  # [oh, ow, 2] as (x, y)
    sample = sample[None].expand(grid.shape[0], -1, -1, -1)
    return F.grid_sample(grid, sample, mode="bilinear", padding_mode="border", align_corners=False)
