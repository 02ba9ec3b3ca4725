"""Slot encoders: images (or ground-truth states) to a set of K object slots ``(B, K, D)``.

Three families, all returning an :class:`EncoderOutput`:

- :class:`ObjectExtractorCNN`: the object extractor + object encoder of C-SWM (Kipf et al. 2020, "Contrastive
  Learning of Structured World Models"). A CNN maps the image to K feature maps, one per slot, whose sigmoid is an
  object mask; a shared MLP encodes each map into its slot. K is fixed and slot k always reads map k, so slots have a
  stable identity across time without any matching.
- :class:`SlotAttentionEncoder`: a CNN backbone with soft position embedding followed by :class:`SlotAttention`
  (Locatello et al. 2020, "Object-Centric Learning with Slot Attention"). K may change at call time and slot order is
  arbitrary; temporal consistency comes from ``init_slots`` (SAVi, Kipf et al. 2022).
- :class:`StateEncoder`: a per-object MLP on ground-truth object states, the "oracle" upper bound.

Image encoders take ``x: (B, C, H, W)`` float32 in [0, 1] with ``C = 3 * history`` (by default two consecutive RGB
frames stacked on channels, so velocity is visible in a single input).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from causal_wm.runtime import full_precision, upcast

ENCODER_KINDS = ("cnn", "slots", "state")


@dataclass
class EncoderOutput:
    """What every encoder returns."""

    slots: Tensor
    """(B, K, D) slot vectors."""
    masks: Tensor | None = None
    """(B, K, h, w) per-slot soft masks / attention in [0, 1] (for FG-ARI and figures); None for state encoders."""
    slot_mask: Tensor | None = None
    """(B, K) bool, True for valid slots (padding of the state encoder); None when every slot is valid."""


def downsampling_steps(size: int, target: int) -> int:
    """Number of halvings that take ``size`` to ``target``; ValueError unless ``size = target * 2**n``, n >= 0."""
    ratio = size // target if target > 0 else 0
    if target <= 0 or size % target or ratio & (ratio - 1):
        raise ValueError(f"{size} is not a power-of-two multiple of {target}")
    return ratio.bit_length() - 1


def position_grid(height: int, width: int) -> Tensor:
    """Locatello et al.'s 4-channel linear ramps (y, x, 1 - y, 1 - x) in [0, 1], shape (height, width, 4)."""
    ys = torch.linspace(0.0, 1.0, height)
    xs = torch.linspace(0.0, 1.0, width)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")  # (h, w) each
    return torch.stack([grid_y, grid_x, 1.0 - grid_y, 1.0 - grid_x], dim=-1)  # (h, w, 4)


KEYPOINT_DIM = 5
"""Explicit entries of a keypoint slot after its D features: x, y, vx, vy (image coordinates in [-1, 1]), presence."""

SLOT_INITS = ("gaussian", "learned")
"""Slot Attention initialisations: a learned Gaussian (Locatello et al.) or one learned query per slot."""


class _ForegroundSoftmax(nn.Module):
    """Softmax over channels (background first, then the K maps) -> the K maps (B, K, h, w)."""

    def forward(self, x: Tensor) -> Tensor:
        with full_precision(x):  # the centroids are read from these maps to a fraction of a cell
            return upcast(x).softmax(dim=1)[:, 1:]


class ObjectExtractorCNN(nn.Module):
    """C-SWM's object extractor and object encoder (Kipf et al. 2020), sized for fast CPU training.

    Object extractor: ``conv 4x4/2 -> BN -> ReLU -> conv 4x4/2 -> sigmoid`` turns a ``(B, C, H, W)`` image into K
    object masks at ``(H/4, W/4)`` (16x16 for 64x64 inputs; receptive field 10 px, about one object). Object encoder:
    a shared MLP ``flatten -> mlp_hidden -> ReLU -> mlp_hidden -> LayerNorm -> ReLU -> slot_dim`` maps each mask to
    its slot. Slot k is always read from map k, so slot identity is stable over time.

    With ``keypoints=True`` every frame of the stack gets its own K maps at ``(H/2, W/2)`` (the same extractor on
    each RGB frame, its second convolution 3x3 with stride 1, then a softmax over the K maps and a background
    channel, so that maps compete for each cell). The object encoder reads the maps of all frames, and each slot
    appends what the maps say explicitly:

        slot_k = [MLP(maps_k), x_k, y_k, vx_k, vy_k, p_k, one-hot(k)]      # D + KEYPOINT_DIM + K entries

    (x_k, y_k) is the centroid of map k in the last frame (of the cells above half its peak), in [-1, 1] image
    coordinates (x to the right, y down); (vx_k, vy_k) its change since the frame before; p_k the map's peak (1: the
    object is present). The one-hot index gives the permutation-equivariant transition the slot's identity: once a
    reconstruction loss ties map k to one colour (:class:`causal_wm.decoder.KeypointDecoder`), it is the object's
    visible type. Positions and velocities come from pixels alone; no ground-truth state is read. The maps learn
    only from a reconstruction loss on ``masks``: the slots read them detached.

    Args:
        in_channels: C = 3 * history.
        num_slots: K, fixed.
        slot_dim: D.
        hidden: channels of the hidden convolution.
        mlp_hidden: width of the object encoder MLP.
        image_size: side H = W of the input; must be divisible by 4.
        keypoints: per-frame maps and the explicit keypoint entries above (needs history >= 2).
    """

    def __init__(
        self,
        in_channels: int = 6,
        num_slots: int = 5,
        slot_dim: int = 4,
        hidden: int = 32,
        mlp_hidden: int = 256,
        image_size: int = 64,
        keypoints: bool = False,
    ):
        super().__init__()
        if image_size % 4:
            raise ValueError(f"image_size must be divisible by 4, got {image_size}")
        if keypoints and (in_channels % 3 or in_channels < 6):
            raise ValueError(f"keypoints need a stack of >= 2 RGB frames (in_channels 6, 9, ...), got {in_channels}")
        self.num_slots = num_slots
        self.keypoints = keypoints
        self.frames = in_channels // 3 if keypoints else 1
        # Keypoint maps are twice as fine (H/2): their centroids must resolve a spring's pull, a fraction of a pixel
        # per frame, against the velocity noise of the keypoints (0.8 px/frame at H/4, measured).
        side = image_size // 2 if keypoints else image_size // 4
        self.maps_size = (side, side)
        self.out_dim = slot_dim + (KEYPOINT_DIM + num_slots if keypoints else 0)
        h, w = self.maps_size
        # Pixel centres of the maps in [-1, 1]: x grows to the right, y downwards (image rows).
        self.register_buffer("grid_x", ((torch.arange(w) + 0.5) / w * 2 - 1).repeat(h), persistent=False)
        self.register_buffer("grid_y", ((torch.arange(h) + 0.5) / h * 2 - 1).repeat_interleave(w), persistent=False)
        # Keypoint maps compete for each cell with one another and with a background channel (a softmax over K + 1,
        # the background dropped): independent sigmoids let one map take every object and the others die (measured).
        self.extractor = nn.Sequential(
            nn.Conv2d(3 if keypoints else in_channels, hidden, kernel_size=4, stride=2, padding=1),
            nn.BatchNorm2d(hidden),
            nn.ReLU(),
            nn.Conv2d(hidden, num_slots + 1, kernel_size=3, padding=1)
            if keypoints
            else nn.Conv2d(hidden, num_slots, kernel_size=4, stride=2, padding=1),
            _ForegroundSoftmax() if keypoints else nn.Sigmoid(),
        ).to(memory_format=torch.channels_last)
        if keypoints:  # start with the background owning every cell: no map is shocked to death in the first steps
            with torch.no_grad():
                self.extractor[3].bias[0] += 4.0
        self.object_encoder = nn.Sequential(
            nn.Linear(self.frames * h * w, mlp_hidden),
            nn.ReLU(),
            nn.Linear(mlp_hidden, mlp_hidden),
            nn.LayerNorm(mlp_hidden),
            nn.ReLU(),
            nn.Linear(mlp_hidden, slot_dim),
        )

    def forward(self, x: Tensor) -> EncoderOutput:
        """x: (B, C, H, W) in [0, 1] -> slots (B, K, D) and the object masks (B, K, h, w)."""
        # Channels-last convolutions are about 1.5x faster on CPU here (forward + backward, 384 frames of 64x64).
        if not self.keypoints:
            masks = self.extractor(x.contiguous(memory_format=torch.channels_last))  # (B, K, h, w)
            slots = self.object_encoder(masks.flatten(2))  # (B, K, D)
            return EncoderOutput(slots=slots, masks=masks)
        b, _, hh, ww = x.shape
        frames = x.unflatten(1, (self.frames, 3)).flatten(0, 1)  # (B L, 3, H, W)
        maps = self.extractor(frames.contiguous(memory_format=torch.channels_last)).unflatten(0, (b, self.frames))
        k = self.num_slots
        # The maps learn from the reconstruction alone (through `masks`): the slots read them detached, because the
        # contrastive loss would rather predict dead maps' constant keypoints than live ones (it killed all but two).
        flat = maps.detach().flatten(3)  # (B, L, K, h w)
        features = upcast(self.object_encoder(flat.transpose(1, 2).flatten(2)))  # (B, K, D)
        centroid = self.centroids(flat)  # (B, L, K, 2)
        peak = flat[:, -1].amax(-1, keepdim=True)  # (B, K, 1)
        index = torch.eye(k, dtype=x.dtype, device=x.device).expand(b, k, k)
        slots = torch.cat([features, centroid[:, -1], centroid[:, -1] - centroid[:, -2], peak, index], dim=-1)
        return EncoderOutput(slots=slots, masks=maps[:, -1])

    def centroids(self, flat: Tensor) -> Tensor:
        """Centroids (..., 2) = (x, y) in [-1, 1] of maps flattened to (..., h w), each cell weighted by how far it
        rises above half the map's peak: the faint mass a soft map spreads over the whole frame would otherwise
        pull every centroid towards the centre (by 2.6-7 px, measured)."""
        flat = (flat - 0.5 * flat.amax(-1, keepdim=True)).clamp(min=0)
        total = flat.sum(-1).clamp(min=1e-6)
        return torch.stack([(flat * self.grid_x).sum(-1) / total, (flat * self.grid_y).sum(-1) / total], dim=-1)


class SlotAttention(nn.Module):
    """Slot Attention (Locatello et al. 2020).

    Slots start from a learned Gaussian ``mu + exp(log_sigma) * eps``, ``eps ~ N(0, I)`` drawn from torch's global RNG
    (so ``torch.manual_seed`` makes it deterministic), or with ``init="learned"`` from K learned queries, one per slot
    (no noise: the slots are a function of the input, and slot k keeps its query's identity, as in SAVi's conditional
    or BO-QSA's learned initialisation), or from ``init_slots`` (SAVi-style: slots at t+1 start from the slots at t).
    Each of ``iters`` rounds: slots compete for input features through a softmax over slots, take the
    attention-weighted mean of the values, and are updated by a GRU cell plus a residual MLP. The module is
    equivariant to permutations of ``init_slots``.

    Args:
        num_slots: default K; can be changed per call (with learned queries, to at most K).
        dim: D, the feature size of both inputs and slots.
        iters: number of attention rounds.
        hidden: width of the residual MLP.
        eps: added to the attention before normalising it over inputs.
        init: "gaussian" (Locatello et al.) or "learned" (one learned query per slot).
        implicit: backpropagate through the last round only (Chang et al. 2022, "Object representations as fixed
            points": the first-order approximation of implicit differentiation). The first ``iters - 1`` rounds
            run without a graph, and the last starts from ``slots.detach() + init - init.detach()``, so the
            initialisation (mu and sigma, the queries, or ``init_slots``) still gets a straight-through gradient
            (BO-QSA, Jia et al. 2023). Backward then costs one round whatever ``iters`` is.
    """

    def __init__(
        self,
        num_slots: int,
        dim: int,
        iters: int = 3,
        hidden: int = 128,
        eps: float = 1e-8,
        init: str = "gaussian",
        implicit: bool = False,
    ):
        super().__init__()
        if iters < 1:
            raise ValueError(f"iters must be >= 1, got {iters}")
        if init not in SLOT_INITS:
            raise ValueError(f"init must be one of {', '.join(SLOT_INITS)}, got {init!r}")
        self.init = init
        self.implicit = implicit
        self.num_slots = num_slots
        self.dim = dim
        self.iters = iters
        self.eps = eps
        self.scale = dim**-0.5
        self.mu = nn.Parameter(nn.init.xavier_uniform_(torch.empty(1, 1, dim)))
        self.log_sigma = nn.Parameter(nn.init.xavier_uniform_(torch.empty(1, 1, dim)))
        learned = init == "learned"
        self.queries = nn.Parameter(nn.init.xavier_uniform_(torch.empty(1, num_slots, dim))) if learned else None
        self.norm_inputs = nn.LayerNorm(dim)
        self.norm_slots = nn.LayerNorm(dim)
        self.norm_mlp = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(dim, dim, bias=False)
        self.to_v = nn.Linear(dim, dim, bias=False)
        self.gru = nn.GRUCell(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))

    def forward(
        self, inputs: Tensor, num_slots: int | None = None, init_slots: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """inputs: (B, L, D) -> slots (B, K, D) and the last round's attention (B, K, L) (softmax over slots).

        ``init_slots`` (B, K, D) replaces the Gaussian sampling; ``num_slots``, if also given, must equal its K.
        """
        batch, _, dim = inputs.shape
        if init_slots is not None:
            if num_slots is not None and num_slots != init_slots.shape[1]:
                raise ValueError(f"num_slots={num_slots} but init_slots has {init_slots.shape[1]} slots")
            slots = init_slots  # (B, K, D)
        elif self.queries is not None:
            k = self.num_slots if num_slots is None else num_slots
            if k > self.num_slots:
                raise ValueError(f"num_slots={k} exceeds the {self.num_slots} learned slot queries")
            slots = self.queries[:, :k].expand(batch, -1, -1)  # (B, K, D)
        else:
            k = self.num_slots if num_slots is None else num_slots
            noise = torch.randn(batch, k, dim, device=inputs.device, dtype=inputs.dtype)  # (B, K, D)
            slots = self.mu + self.log_sigma.exp() * noise  # (B, K, D)
        inputs = self.norm_inputs(inputs)
        keys = self.to_k(inputs)  # (B, L, D)
        values = self.to_v(inputs)  # (B, L, D)
        if not (self.implicit and torch.is_grad_enabled()):
            for _ in range(self.iters):
                slots, attn = self._round(slots, keys, values)
            return slots, attn
        start = slots
        with torch.no_grad():
            for _ in range(self.iters - 1):
                slots, _ = self._round(slots, keys, values)
        slots = slots + start - start.detach()  # the fixed point's value, the initialisation's gradient
        return self._round(slots, keys, values)

    def _round(self, slots: Tensor, keys: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        """One attention round: slots (B, K, D), keys and values (B, L, D) -> new slots, attention (B, K, L)."""
        batch, num, dim = slots.shape
        queries = self.to_q(self.norm_slots(slots))  # (B, K, D)
        logits = torch.einsum("bkd,bld->bkl", queries, keys) * self.scale  # (B, K, L)
        attn = logits.softmax(dim=1)  # (B, K, L), competition between slots
        weights = (attn + self.eps) / (attn + self.eps).sum(dim=-1, keepdim=True)  # (B, K, L), mean over inputs
        updates = torch.einsum("bkl,bld->bkd", weights, values)  # (B, K, D)
        slots = self.gru(updates.reshape(-1, dim), slots.reshape(-1, dim)).reshape(batch, num, dim)
        return slots + self.mlp(self.norm_mlp(slots)), attn  # (B, K, D), (B, K, L)


class SlotAttentionEncoder(nn.Module):
    """CNN backbone + soft position embedding + :class:`SlotAttention` (Locatello et al. 2020), CPU-sized.

    Backbone: ``conv 5x5 -> ReLU -> [conv 3x3/2 -> ReLU]* -> conv 3x3 -> ReLU`` with ``hidden`` channels, where the
    first conv and the ``[...]`` convs halve the resolution until the feature grid is ``resolution`` x ``resolution``
    (default ``image_size / 4``: 16x16 for 64x64 inputs). Locatello's soft position embedding (4 linear ramps
    projected to ``hidden`` features) is added, the grid is flattened to L = h * w tokens, then
    ``LayerNorm -> Linear -> ReLU -> Linear`` maps them to ``slot_dim`` before slot attention.

    With the default Gaussian initialisation slot order is arbitrary: the slots are exchangeable and a fresh random init
    permutes them. For temporal consistency (SAVi, Kipf et al. 2022) encode frame t from the random init and frame t+1
    with ``init_slots=slots_t``. With ``slot_init="learned"`` every frame starts from the same learned queries, so no
    chaining is needed and the slots depend on the frame alone.

    Args:
        in_channels: C = 3 * history.
        num_slots: default K; can be changed per call.
        slot_dim: D.
        hidden: backbone channels.
        iters: slot attention rounds.
        image_size: side H = W of the input.
        resolution: side of the feature grid slot attention runs on; ``image_size / 2**n`` with n >= 0.
        slot_init: "gaussian" or "learned" (see :class:`SlotAttention`).
        implicit: backpropagate through the last attention round only (see :class:`SlotAttention`).
    """

    def __init__(
        self,
        in_channels: int = 6,
        num_slots: int = 5,
        slot_dim: int = 32,
        hidden: int = 32,
        iters: int = 3,
        image_size: int = 64,
        resolution: int | None = None,
        slot_init: str = "gaussian",
        implicit: bool = False,
    ):
        super().__init__()
        resolution = image_size // 4 if resolution is None else resolution
        halvings = downsampling_steps(image_size, resolution)
        self.maps_size = (resolution, resolution)
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, hidden, kernel_size=5, stride=2 if halvings else 1, padding=2),
            nn.ReLU(),
        ]
        for _ in range(halvings - 1):
            layers += [nn.Conv2d(hidden, hidden, kernel_size=3, stride=2, padding=1), nn.ReLU()]
        layers += [nn.Conv2d(hidden, hidden, kernel_size=3, padding=1), nn.ReLU()]
        self.backbone = nn.Sequential(*layers)
        self.register_buffer("grid", position_grid(resolution, resolution), persistent=False)  # (h, w, 4)
        self.position_embedding = nn.Linear(4, hidden)
        self.feature_mlp = nn.Sequential(
            nn.LayerNorm(hidden), nn.Linear(hidden, slot_dim), nn.ReLU(), nn.Linear(slot_dim, slot_dim)
        )
        self.slot_attention = SlotAttention(num_slots, slot_dim, iters=iters, init=slot_init, implicit=implicit)

    @property
    def num_slots(self) -> int:
        """Default K."""
        return self.slot_attention.num_slots

    def forward(self, x: Tensor, num_slots: int | None = None, init_slots: Tensor | None = None) -> EncoderOutput:
        """x: (B, C, H, W) in [0, 1] -> slots (B, K, D) and attention masks (B, K, h, w)."""
        features = self.backbone(x).permute(0, 2, 3, 1)  # (B, h, w, hidden)
        features = features + self.position_embedding(self.grid)  # (B, h, w, hidden)
        tokens = self.feature_mlp(features.flatten(1, 2))  # (B, L, D)
        slots, attn = self.slot_attention(tokens, num_slots=num_slots, init_slots=init_slots)  # (B, K, D), (B, K, L)
        masks = attn.unflatten(-1, self.maps_size)  # (B, K, h, w)
        return EncoderOutput(slots=slots, masks=masks)


class StateEncoder(nn.Module):
    """Ground-truth object states (B, N, F) to slots (B, N, D) with a per-object MLP (shared weights).

    Inputs are normalised as ``(states - mean) / std`` (buffers, default 0 and 1) and passed through
    ``Linear -> ReLU -> Linear -> LayerNorm -> ReLU -> Linear``. Everything is per object, so a sample's slots do not
    depend on the rest of the batch. Padded objects (``slot_mask`` False) get zero slots, whatever their states.

    A categorical feature (the scenes' ``type``, which decides e.g. which balls a spring joins) can be given as
    ``type_feature`` (its column) with ``num_types`` categories. It then enters the MLP one-hot instead of as a
    number, and the slot carries the code itself: slots are ``[MLP(state), one-hot type]``, of size D + num_types.
    The transition's gate MLP then reads the objects' kinds directly instead of through an embedding that the
    contrastive loss shapes for other ends (measured in the README, "Edge recovery"). A value outside
    ``0 .. num_types - 1`` (a type never seen in training) gets the all-zero code.

    Args:
        num_features: F.
        slot_dim: D, the MLP's output (the slot adds the type code to it).
        hidden: MLP width.
        mean: (F,) feature means, default zeros.
        std: (F,) feature standard deviations (positive), default ones.
        type_feature: column of the categorical feature, or None (every feature is a number).
        num_types: its number of categories (>= 1 with ``type_feature``).
    """

    def __init__(
        self,
        num_features: int,
        slot_dim: int = 32,
        hidden: int = 128,
        mean: Tensor | None = None,
        std: Tensor | None = None,
        type_feature: int | None = None,
        num_types: int = 0,
    ):
        super().__init__()
        if type_feature is not None and not (0 <= type_feature < num_features and num_types >= 1):
            raise ValueError(
                f"type_feature must index one of the {num_features} features and num_types be >= 1, got "
                f"type_feature={type_feature}, num_types={num_types}"
            )
        self.type_feature, self.num_types = type_feature, num_types if type_feature is not None else 0
        self.out_dim = slot_dim + self.num_types
        mean = torch.zeros(num_features) if mean is None else torch.as_tensor(mean, dtype=torch.float32)
        std = torch.ones(num_features) if std is None else torch.as_tensor(std, dtype=torch.float32)
        for name, value in (("mean", mean), ("std", std)):
            if value.shape != (num_features,):
                raise ValueError(f"{name} must have shape ({num_features},), got {tuple(value.shape)}")
        if not bool((std > 0).all()):
            raise ValueError("std must be positive")
        self.register_buffer("mean", mean.clone())
        self.register_buffer("std", std.clone())
        inputs = num_features if type_feature is None else num_features - 1 + num_types
        self.mlp = nn.Sequential(
            nn.Linear(inputs, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.LayerNorm(hidden),
            nn.ReLU(),
            nn.Linear(hidden, slot_dim),
        )

    def forward(self, states: Tensor, slot_mask: Tensor | None = None) -> EncoderOutput:
        """states: (B, N, F); slot_mask: (B, N) bool, True for real objects -> slots (B, N, `out_dim`).

        Runs in float32 under any autocast: the slots must hold positions and velocities to the decoder's precision."""
        with full_precision(states):
            return self._forward(upcast(states), slot_mask)

    def _forward(self, states: Tensor, slot_mask: Tensor | None) -> EncoderOutput:
        if slot_mask is None:
            return EncoderOutput(slots=self.slots(states), masks=None)
        valid = slot_mask.unsqueeze(-1)  # (B, N, 1)
        states = torch.where(valid, states, self.mean)  # padding may hold anything, even NaN
        slots = self.slots(states)  # (B, N, D [+ num_types])
        slots = torch.where(valid, slots, torch.zeros_like(slots))  # (B, N, D)
        return EncoderOutput(slots=slots, masks=None, slot_mask=slot_mask)

    def slots(self, states: Tensor) -> Tensor:
        """(..., F) -> (..., D + num_types): the MLP's output, then the type code."""
        x = self.inputs(states)
        z = self.mlp(x)
        return z if self.type_feature is None else torch.cat([z, x[..., -self.num_types :]], dim=-1)

    def inputs(self, states: Tensor) -> Tensor:
        """The MLP's input (..., F) -> (..., F - 1 + num_types): normalised numbers, the type one-hot at the end."""
        x = (states - self.mean) / self.std
        if self.type_feature is None:
            return x
        t = states[..., self.type_feature].round()
        known = (t >= 0) & (t < self.num_types)
        code = nn.functional.one_hot(torch.where(known, t, 0).long(), self.num_types).to(x.dtype) * known.unsqueeze(-1)
        keep = [f for f in range(states.shape[-1]) if f != self.type_feature]
        return torch.cat([x[..., keep], code], dim=-1)


def build_encoder(kind: str, **kwargs) -> nn.Module:
    """Encoder by kind: "cnn" (:class:`ObjectExtractorCNN`), "slots" (:class:`SlotAttentionEncoder`) or "state"
    (:class:`StateEncoder`); ``kwargs`` go to its constructor."""
    classes = {"cnn": ObjectExtractorCNN, "slots": SlotAttentionEncoder, "state": StateEncoder}
    if kind not in classes:
        raise ValueError(f"unknown encoder kind {kind!r}; choose one of {', '.join(ENCODER_KINDS)}")
    return classes[kind](**kwargs)
