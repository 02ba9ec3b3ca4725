"""Spatial broadcast decoder (Watters et al. 2019) that renders a set of slots into one image.

Each slot is decoded independently into RGB and an alpha logit; a softmax of the alpha logits over slots gives the
masks that composite the per-slot RGB into the reconstruction, as in Slot Attention's autoencoder.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from causal_wm.encoders import downsampling_steps
from causal_wm.runtime import full_precision, upcast


@dataclass
class DecoderOutput:
    """What :class:`SpatialBroadcastDecoder` returns."""

    recon: Tensor
    """(B, C, H, W) reconstruction, the mask-weighted sum of the per-slot RGB."""
    masks: Tensor
    """(B, K, H, W) softmax over slots of the alpha logits; sums to 1 over K, 0 on masked-out slots (for a
    `KeypointDecoder`: each disc's opacity)."""
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
        """z (..., K, D) -> (..., K, num_outputs) normalised states; in float32 under any autocast (the dynamics loss
        compares the changes of these outputs from one step to the next)."""
        with full_precision(z):
            return self.mlp(upcast(z))


class KeypointDecoder(nn.Module):
    """Renders keypoint slots (`ObjectExtractorCNN` with ``keypoints=True``) as discs, and composites object maps.

    Slot k is drawn as a disc of learned colour c_k at its centroid (x_k, y_k), with a learned radius shared by all
    slots and opacity p_k (its presence), over a learned background b: ``recon = b + sum_k alpha_k (c_k - b)``. The
    same colours composite the encoder's maps directly (`compose`): reconstructing the frame from its maps ties map
    k to the objects of colour c_k, which is what makes the slot index an object type. Cheap enough to train at the
    maps' resolution on a CPU; `forward` draws rollouts at any size.

    Args:
        num_slots: K (one colour per slot index).
        slot_dim: D, the learned features before the keypoint entries.
        image_size: side of the frames `forward` draws by default.
        radius: initial disc radius as a fraction of the image side.
    """

    def __init__(self, num_slots: int, slot_dim: int, image_size: int = 64, radius: float = 0.06):
        super().__init__()
        self.num_slots, self.slot_dim, self.image_size = num_slots, slot_dim, image_size
        self.colour_logits = nn.Parameter(torch.randn(num_slots, 3))
        self.background_logit = nn.Parameter(torch.full((3,), -3.0))
        self.log_radius = nn.Parameter(torch.tensor(float(radius * 2)).log())  # in [-1, 1] units: side = 2

    @torch.no_grad()
    def init_colours(self, background, colours) -> None:
        """Start from given colours in [0, 1] (e.g. the most frequent colours of the training frames)."""
        for param, value in ((self.background_logit, background), (self.colour_logits, colours)):
            param.copy_(torch.as_tensor(value, dtype=torch.float32).clamp(0.02, 0.98).logit())

    @property
    def colours(self) -> Tensor:
        """(K, 3) slot colours in [0, 1]."""
        return self.colour_logits.sigmoid()

    @property
    def background(self) -> Tensor:
        return self.background_logit.sigmoid()

    def compose(self, maps: Tensor) -> Tensor:
        """Object maps (..., K, h, w) in [0, 1] -> (..., 3, h, w) ``b + sum_k m_k (c_k - b)``."""
        tint = (self.colours - self.background)[..., None, None]  # (K, 3, 1, 1)
        return self.background[:, None, None] + (maps.unsqueeze(-3) * tint).sum(-4)

    def forward(self, slots: Tensor, slot_mask: Tensor | None = None, size: int | None = None) -> DecoderOutput:
        """slots (B, K, D + keypoint entries) -> frames (B, 3, size, size) drawn from the keypoints."""
        size = self.image_size if size is None else size
        if slots.shape[1] != self.num_slots:
            raise ValueError(f"this decoder draws {self.num_slots} slots, got {slots.shape[1]}")
        d = self.slot_dim
        xy, presence = slots[..., d : d + 2], slots[..., d + 4].clamp(0.0, 1.0)  # (B, K, 2), (B, K)
        if slot_mask is not None:
            presence = presence * slot_mask
        coords = (torch.arange(size, device=slots.device, dtype=slots.dtype) + 0.5) / size * 2 - 1  # (S,)
        dx = coords[None, None, None, :] - xy[..., 0, None, None]  # (B, K, 1, S)
        dy = coords[None, None, :, None] - xy[..., 1, None, None]  # (B, K, S, 1)
        dist = (dx.square() + dy.square() + 1e-8).sqrt()  # (B, K, S, S)
        edge = 2.0 / size  # one pixel of antialiasing
        alpha = presence[..., None, None] * torch.sigmoid((self.log_radius.exp() - dist) / edge)  # (B, K, S, S)
        recon = self.compose(alpha)  # (B, 3, S, S)
        rgb = self.colours[None, :, :, None, None].expand(slots.shape[0], -1, -1, size, size)
        return DecoderOutput(recon=recon, masks=alpha, rgb=rgb)
