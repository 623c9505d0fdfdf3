"""A model shipped in its own package and registered with feat2gs through an entry point (see pyproject.toml)."""

import torch
import torch.nn.functional as F

import feat2gs


class TinyCNN(feat2gs.Backbone):
    """Two random conv layers, stride 4, 24 channels (an example plugin)."""

    description = "two random conv layers, stride 4 (example plugin)"
    max_batch = 4

    def load(self, device: torch.device) -> None:
        gen = torch.Generator().manual_seed(0)
        self.w1 = (torch.randn(12, 3, 3, 3, generator=gen) / 3).to(device)
        self.w2 = (torch.randn(24, 12, 3, 3, generator=gen) / 6).to(device)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = F.relu(F.conv2d(images, self.w1, stride=2, padding=1))
        return F.conv2d(x, self.w2, stride=2, padding=1)
