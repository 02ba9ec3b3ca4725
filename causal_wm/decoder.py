"""Spatial broadcast decoder (Watters et al. 2019) that renders a set of slots into one image.

Each slot is decoded independently into RGB and an alpha logit; a softmax of the alpha logits over slots gives the
masks that composite the per-slot RGB into the reconstruction, as in Slot Attention's autoencoder.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from causal_wm.encoders import downsampling_steps


@dataclass
class DecoderOutput:
    """What :class:`SpatialBroadcastDecoder` returns."""

    recon: Tensor
    """(B, C, H, W) reconstruction, the mask-weighted sum of the per-slot RGB."""
    masks: Tensor
    """(B, K, H, W) softmax over slots of the alpha logits; sums to 1 over K, 0 on masked-out slots."""
    rgb: Tensor
    """(B, K, C, H, W) per-slot RGB in [0, 1] (sigmoid)."""


class SpatialBroadcastDecoder(nn.Module):
    """Spatial broadcast decoder (Watters et al. 2019), broadcasting at low resolution for CPU speed.

    Each slot is tiled over a ``broadcast_size`` x ``broadcast_size`` grid together with 2 coordinate channels in
    [-1, 1]. The first layer is a 1x1 conv on that broadcast input, computed without materialising it as
    ``Linear(slot) + Linear(coords)``; then ``ReLU -> conv 3x3 -> ReLU`` at the broadcast size and stride-2
    transposed convs (4x4) up to ``image_size``, halving the channels at each upsampling (never below
    ``out_channels + 1``). The last transposed conv emits ``out_channels`` RGB + 1 alpha logit directly, so no wide
    layer runs at full resolution (a 1x1 conv does it when ``broadcast_size == image_size``).

    Args:
        slot_dim: D.
        out_channels: image channels C.
        hidden: channels at the broadcast size.
        image_size: side H = W of the output.
        broadcast_size: side of the broadcast grid, ``image_size / 2**n`` with n >= 0; default ``image_size / 4``.
    """

    def __init__(
        self,
        slot_dim: int,
        out_channels: int = 3,
        hidden: int = 32,
        image_size: int = 64,
        broadcast_size: int | None = None,
    ):
        super().__init__()
        broadcast_size = image_size // 4 if broadcast_size is None else broadcast_size
        upsamplings = downsampling_steps(image_size, broadcast_size)
        self.out_channels = out_channels
        coords = torch.linspace(-1.0, 1.0, broadcast_size)
        grid = torch.stack(torch.meshgrid(coords, coords, indexing="ij"), dim=-1)  # (b, b, 2)
        self.register_buffer("grid", grid, persistent=False)
        self.slot_proj = nn.Linear(slot_dim, hidden)
        self.coord_proj = nn.Linear(2, hidden, bias=False)
        layers: list[nn.Module] = [nn.ReLU(), nn.Conv2d(hidden, hidden, kernel_size=3, padding=1), nn.ReLU()]
        channels = hidden
        for _ in range(upsamplings - 1):
            narrower = max(channels // 2, out_channels + 1)
            layers += [nn.ConvTranspose2d(channels, narrower, kernel_size=4, stride=2, padding=1), nn.ReLU()]
            channels = narrower
        if upsamplings:
            layers.append(nn.ConvTranspose2d(channels, out_channels + 1, kernel_size=4, stride=2, padding=1))
        else:
            layers.append(nn.Conv2d(channels, out_channels + 1, kernel_size=1))
        self.net = nn.Sequential(*layers)

    def forward(self, slots: Tensor, slot_mask: Tensor | None = None) -> DecoderOutput:
        """slots: (B, K, D); slot_mask: (B, K) bool, True for slots to render (at least one per sample)."""
        batch, num, _ = slots.shape
        hidden = self.slot_proj(slots)[:, :, None, None, :] + self.coord_proj(self.grid)  # (B, K, b, b, hidden)
        # The permuted view has channels_last strides, which the CPU convolutions run about 1.4x faster on.
        out = self.net(hidden.flatten(0, 1).permute(0, 3, 1, 2))  # (B*K, C+1, H, W)
        out = out.unflatten(0, (batch, num))  # (B, K, C+1, H, W)
        rgb = out[:, :, : self.out_channels].sigmoid()  # (B, K, C, H, W)
        alpha = out[:, :, self.out_channels]  # (B, K, H, W)
        if slot_mask is not None:
            if not bool(slot_mask.any(dim=1).all()):
                raise ValueError("every sample needs at least one slot in slot_mask")
            alpha = alpha.masked_fill(~slot_mask[:, :, None, None], float("-inf"))  # (B, K, H, W)
        masks = alpha.softmax(dim=1)  # (B, K, H, W)
        recon = (masks.unsqueeze(2) * rgb).sum(dim=1)  # (B, C, H, W)
        return DecoderOutput(recon=recon, masks=masks, rgb=rgb)


class StateDecoder(nn.Module):
    """Per-slot MLP from a slot (D) back to its object's dynamic state: normalised (x, y, vx, vy).

    The state-encoder counterpart of the image decoder: a reconstruction target that makes slots carry positions and
    velocities, and, applied to imagined slots, makes the transition predict physics rather than only episode identity.
    Weights are shared over slots, so it works for any slot count."""

    def __init__(self, slot_dim: int, hidden: int = 64, num_outputs: int = 4):
        super().__init__()
        self.num_outputs = num_outputs
        # Robust scale of one step's change of each output (data units), set from the training data: the loss on
        # predicted changes divides by it, so that small accelerations (the interactions) are not drowned out.
        self.register_buffer("delta_scale", torch.ones(num_outputs))
        self.mlp = nn.Sequential(
            nn.Linear(slot_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, num_outputs)
        )

    def forward(self, z: Tensor) -> Tensor:
        """z (..., K, D) -> (..., K, num_outputs) normalised states."""
        return self.mlp(z)
