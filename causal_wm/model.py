"""The object-centric world model: encoder -> slots -> TransitionGNN (learned edges) -> imagined rollouts.

    z_t = f(o_t)                      # (B, K, D) slots
    z_{t+1} = z_t + g(z_t, a_t)       # C-SWM transition with gated pairwise messages
    imagine(z, actions) -> (B, H+1, K, D), optionally decoded to frames

Observations for the image encoders are stacks of ``history`` consecutive frames (default 2, so velocity is
visible); the state encoder reads ground-truth object states.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from causal_wm.decoder import KeypointDecoder, SpatialBroadcastDecoder, StateDecoder
from causal_wm.encoders import (
    KEYPOINT_DIM,
    SLOT_INITS,
    EncoderOutput,
    ObjectExtractorCNN,
    SlotAttentionEncoder,
    StateEncoder,
    downsampling_steps,
)
from causal_wm.runtime import upcast
from causal_wm.transition import ContactMessages, GraphInference, TransitionGNN, TransitionOutput, mlp_jvp

ENCODERS = ("cnn", "slots", "state")
NUM_DIRECTIONS = 4
NODE_ACTION_DIM = 2 + NUM_DIRECTIONS + 1  # push location (x, y), direction one-hot, no-op flag


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a :class:`WorldModel`. Saved in every checkpoint; a mismatch is refused on load."""

    encoder: str = "cnn"
    """Slot encoder: cnn (C-SWM object extractor, fixed K), slots (Slot Attention) or state (ground-truth states)."""
    num_slots: int = 5
    """Number of slots K; for the cnn and state encoders at least the number of objects."""
    slot_dim: int = 8
    """Dimension D of each slot."""
    hidden: int = 256
    """Hidden width of the transition GNN's MLPs."""
    encoder_hidden: int = 32
    """Channels (cnn, slots) or hidden width (state) of the encoder."""
    history: int = 2
    """Frames stacked as one observation (image encoders)."""
    image_size: int = 64
    """Frame side in pixels (image encoders)."""
    num_features: int = 8
    """State features per object (state encoder)."""
    type_feature: int = -1
    """Column of the categorical ``type`` state feature, one-hot encoded over ``num_types`` by the state encoder; -1
    feeds every feature as a number (runs trained before the option existed)."""
    num_types: int = 0
    """Categories of ``type_feature`` (types seen in training; an unseen type gets the all-zero code). The state
    encoder appends the code to every slot, so slots have ``slot_dim + num_types`` entries (`latent_dim`)."""
    gated: bool = True
    """Learned gate in [0, 1] on every edge (the learned interaction graph)."""
    action_node: bool | None = None
    """Add an action node (push location + direction) to the graph; default: only for the slots encoder."""
    object_actions: bool | None = None
    """C-SWM object-factored actions (slot k = object k); default: for the cnn and state encoders."""
    decoder: bool = False
    """Add a decoder and its reconstruction loss: a spatial-broadcast decoder of frames for the image encoders (decoded
    rollouts), a per-slot state decoder of normalised (x, y, vx, vy) for the state encoder (applied to the encoded and
    to the imagined slots, so the transition must predict the objects' motion)."""
    slot_iters: int = 3
    """Slot Attention iterations (rounds). `causal-wm evaluate --slot-iters` can run more at test time."""
    slot_implicit: bool = False
    """Slot Attention: backpropagate through the last round only (Chang et al. 2022's implicit differentiation,
    with BO-QSA's straight-through gradient to the initial slots), so training cost does not grow with
    ``slot_iters``."""
    slot_resolution: int = 0
    """Side of the feature grid Slot Attention runs on, ``image_size / 2**n``; 0: ``image_size / 4`` (16 for 64x64
    frames). Locatello et al. keep the full resolution; a finer grid costs more but keeps small objects apart."""
    slot_init: str = "gaussian"
    """Slot Attention's initial slots: gaussian (random draws from a learned Gaussian; frames are tracked, each
    initialised from the previous frame's slots) or learned (one learned query per slot; every frame is encoded on
    its own)."""
    keypoints: bool = False
    """cnn only: per-frame object maps, and slots that carry each map's centroid, its velocity, its presence and the
    slot's one-hot index (`ObjectExtractorCNN`), so ``latent_dim = slot_dim + 5 + num_slots``. With ``decoder`` the
    decoder is a `KeypointDecoder` (one colour per slot), and the loss adds a dynamics term on the keypoints: the
    pixel-only counterpart of the state decoder's."""
    learn_colours: bool = True
    """keypoints with decoder: learn the decoder's slot colours (True), or keep them at their start, the most frequent
    colours of the training frames (False). Learned colours can drift apart from the scene's palette until a mixture
    of two maps reconstructs one object's colour, which splits the object between two slots."""
    contact_channel: bool = False
    """State encoder with decoder: add ungated messages between every pair of objects computed from their decoded
    relative position and velocity only (`ContactMessages`), meant to carry collisions so that the gated messages
    keep the persistent interactions (springs). Measured on springs: rollouts come nearer the truth, but the channel
    also learns the springs' average pull and the gates lose the graph (README) unless ``contact_range`` limits it;
    off by default."""
    contact_range: float = 0.0
    """contact_channel: objects farther apart than this (arena units: the state's own position units) exchange no
    contact messages (a smooth cutoff, `ContactMessages`); 0: every pair at any distance. On springs (radius 6),
    18 kept the exact graph on 3 seeds and gave the best 10-step Hits@1 at 2,500 steps (README)."""
    contact_lookahead: float = 0.0
    """contact_range: apply the range to each pair's closest approach within this time at its present relative
    velocity (the state's velocity time unit: seconds in the bundled scenes, whose frames last dt = 0.1), instead of
    its present distance; 0: the present distance. A pair that will touch within the frame is then in range however
    fast it closes, and a slow pair at the same distance is not (README, "Range on the closest approach")."""
    contact_range_detach: bool = False
    """contact_range: in training, let no gradient through the range weight into the decoded positions and
    velocities, so that the loss cannot move the decoder's readout to switch pairs in or out of range. Measured on
    springs without it, the readout of the encoded positions drifted from about 0.8 to 1.6-2.9 arena units off; with
    it, 0.78 and every seed kept the graph (README). Forward values and the probe's derivatives are unchanged."""
    substeps: int = 1
    """Apply the transition this many times per frame, each time to the slots the previous application left (the
    same weights; with a contact channel its messages are recomputed at each substep), so that one frame's change
    is the sum of S smaller ones. Gates and message norms are averaged over the substeps. S > 1 costs S times the
    transition's work, and the probes take their whole-graph paths (finite differences of `transition`)."""
    graph_context: int = 0
    """W >= 2: infer one interaction graph per rollout from the W observations up to its first step with an NRI-style
    edge encoder (`GraphInference`), and gate the slot edges with it; 0: gate each edge from the current pair of slots
    (C-SWM-style). Rollouts and evaluation then start W - 1 steps later."""

    def __post_init__(self):
        if self.encoder not in ENCODERS:
            raise ValueError(f"unknown encoder {self.encoder!r}; choose one of {', '.join(ENCODERS)}")
        if self.slot_init not in SLOT_INITS:
            raise ValueError(f"slot_init must be one of {', '.join(SLOT_INITS)}, got {self.slot_init!r}")
        if self.slot_resolution:
            try:
                downsampling_steps(self.image_size, self.slot_resolution)
            except ValueError:
                raise ValueError(
                    f"slot_resolution must be image_size / 2**n (image_size {self.image_size}) or 0, got "
                    f"{self.slot_resolution}"
                ) from None
        if min(self.num_slots, self.slot_dim, self.hidden, self.history) < 1:
            raise ValueError("num_slots, slot_dim, hidden and history must be positive")
        if self.type_feature >= 0 and not (self.type_feature < self.num_features and self.num_types >= 1):
            raise ValueError(
                f"type_feature {self.type_feature} needs num_types >= 1 and a column below num_features "
                f"{self.num_features} (num_types {self.num_types})"
            )
        if self.keypoints and (self.encoder != "cnn" or self.history < 2):
            raise ValueError("keypoints need the cnn encoder and a history of >= 2 frames (velocities)")
        if not self.learn_colours and not (self.keypoints and self.decoder):
            raise ValueError("fixed colours (learn_colours=False) need the keypoint decoder: keypoints and decoder")
        if self.substeps < 1:
            raise ValueError(f"substeps must be >= 1, got {self.substeps}")
        if self.graph_context == 1 or self.graph_context < 0:
            raise ValueError(f"graph_context must be 0 (off) or >= 2 observations, got {self.graph_context}")
        if self.graph_context and not self.gated:
            raise ValueError("graph_context infers edge gates; it needs gated=True")
        if self.contact_channel and (self.encoder != "state" or not self.decoder):
            raise ValueError(
                "contact_channel reads decoded positions and velocities: it needs the state encoder and decoder"
            )
        if self.contact_range < 0 or (self.contact_range > 0 and not self.contact_channel):
            raise ValueError(f"contact_range must be >= 0 and needs contact_channel, got {self.contact_range}")
        if self.contact_lookahead < 0 or (self.contact_lookahead > 0 and not self.contact_range > 0):
            raise ValueError(f"contact_lookahead must be >= 0 and needs a contact_range, got {self.contact_lookahead}")
        if self.contact_range_detach and not self.contact_range > 0:
            raise ValueError("contact_range_detach needs a contact_range")
        if self.action_node is None:
            object.__setattr__(self, "action_node", self.encoder == "slots")
        if self.object_actions is None:
            object.__setattr__(self, "object_actions", self.encoder != "slots")

    @property
    def uses_images(self) -> bool:
        return self.encoder != "state"

    @property
    def latent_dim(self) -> int:
        """Entries per slot: ``slot_dim``, plus the type code of a state encoder with ``type_feature``, or the keypoint
        entries and the slot index of a cnn with ``keypoints``."""
        if self.keypoints:
            return self.slot_dim + KEYPOINT_DIM + self.num_slots
        return self.slot_dim + (self.num_types if self.encoder == "state" and self.type_feature >= 0 else 0)


def _as_float(out):
    """A dataclass of tensors (an encoder's or the transition's output) with its bfloat16/float16 fields in float32
    (`causal_wm.runtime.upcast`); returned unchanged when none is (always, outside autocast)."""
    fields = {f.name: getattr(out, f.name) for f in dataclasses.fields(out)}
    low = {name: upcast(v) for name, v in fields.items() if isinstance(v, Tensor)}
    low = {name: v for name, v in low.items() if v is not fields[name]}
    return dataclasses.replace(out, **low) if low else out


class WorldModel(nn.Module):
    """Encoder, transition GNN and optional decoder. See the module docstring."""

    def __init__(self, config: ModelConfig, feature_mean: Tensor | None = None, feature_std: Tensor | None = None):
        super().__init__()
        self.config = c = config
        self.arena_size = 1.0  # normalises push locations; set from the dataset (saved in checkpoints)
        image = dict(
            in_channels=3 * c.history,
            num_slots=c.num_slots,
            slot_dim=c.slot_dim,
            hidden=c.encoder_hidden,
            image_size=c.image_size,
        )
        if c.encoder == "cnn":
            self.encoder = ObjectExtractorCNN(**image, keypoints=c.keypoints)
        elif c.encoder == "slots":
            self.encoder = SlotAttentionEncoder(
                **image,
                iters=c.slot_iters,
                slot_init=c.slot_init,
                implicit=c.slot_implicit,
                resolution=c.slot_resolution or None,
            )
        else:
            self.encoder = StateEncoder(
                c.num_features,
                slot_dim=c.slot_dim,
                hidden=max(c.encoder_hidden, 64),
                mean=feature_mean,
                std=feature_std,
                type_feature=c.type_feature if c.type_feature >= 0 else None,
                num_types=c.num_types,
            )
        self.transition_model = TransitionGNN(
            c.latent_dim,
            hidden=c.hidden,
            obj_action_dim=NUM_DIRECTIONS if c.object_actions else 0,
            node_action_dim=NODE_ACTION_DIM if c.action_node else 0,
            gated=c.gated,
        )
        self.graph_inference = GraphInference(c.latent_dim, c.hidden) if c.graph_context else None
        self.contact = (
            ContactMessages(
                c.latent_dim,
                hidden=max(c.hidden // 2, 32),
                contact_range=c.contact_range,
                contact_lookahead=c.contact_lookahead,
                range_detach=c.contact_range_detach,
            )
            if c.contact_channel
            else None
        )
        self.decoder: nn.Module | None = None
        if c.decoder and c.keypoints:
            self.decoder = KeypointDecoder(c.num_slots, c.slot_dim, image_size=c.image_size)
            if not c.learn_colours:
                self.decoder.colour_logits.requires_grad_(False)
                self.decoder.background_logit.requires_grad_(False)
        elif c.decoder and c.uses_images:
            self.decoder = SpatialBroadcastDecoder(c.slot_dim, image_size=c.image_size, hidden=c.encoder_hidden)
        elif c.decoder:
            self.decoder = StateDecoder(
                c.latent_dim, hidden=max(c.encoder_hidden, 64), num_outputs=min(4, c.num_features)
            )

    # -- inputs --------------------------------------------------------------------------------------------------
    @staticmethod
    def frames_to_input(frames: Tensor) -> Tensor:
        """(B, L, H, W, 3) uint8 frames -> (B, 3L, H, W) float in [0, 1], channel 3l + c = colour c of frame l: the
        one stack of all L frames (`windows_to_input` with ``history = L``).

        The result is stored channels-last (the frames' own layout, so no transposing copy), which is also the layout
        in which CPU convolutions are fastest. The frames' colours are interleaved per pixel by concatenating along the
        colour axis, 2-3x faster than copying the permuted (B, H, W, L, 3) view (its innermost run is 3 bytes)."""
        return WorldModel.windows_to_input(frames, frames.shape[1])

    @staticmethod
    def windows_to_input(frames: Tensor, history: int) -> Tensor:
        """(B, T, H, W, 3) uint8 frames -> the (B (T - history + 1), 3 history, H, W) inputs of every stack of
        ``history`` consecutive frames, ordered (b, t): exactly `frames_to_input` of each stack.

        Each frame is converted to float once, though it appears in up to ``history`` stacks; the stacks are then
        interleaved from float views (runs of 12 bytes). 1.4x faster than unfolding the uint8 frames into stacks and
        converting each stack (3.7 against 5.1 ms for 64 windows of 7 frames of 64x64, 2 threads)."""
        length = frames.shape[1] - history + 1
        if length < 1:
            raise ValueError(f"{frames.shape[1]} frames make no stack of history {history}")
        x = frames.float().div_(255.0)  # (B, T, H, W, 3)
        if history > 1:
            x = torch.cat([x[:, i : i + length] for i in range(history)], dim=-1)  # (B, L, H, W, 3 history)
        return x.flatten(0, 1).permute(0, 3, 1, 2)  # NCHW view, channels-last

    def encode(
        self,
        obs: Tensor,
        *,
        slot_mask: Tensor | None = None,
        init_slots: Tensor | None = None,
        num_slots: int | None = None,
    ) -> EncoderOutput:
        """Slots of one observation: ``obs`` is (B, history, H, W, 3) uint8 frames, or (B, N, F) states. Slots and
        masks come back in float32, also under a bfloat16 autocast (`causal_wm.runtime`)."""
        if self.config.encoder == "state":
            short = self.config.num_slots - obs.shape[1]
            if short > 0:  # a file with fewer object columns than slots: pad (the padding is masked)
                obs = torch.cat([obs, obs.new_zeros(obs.shape[0], short, obs.shape[2])], 1)
            return self.encoder(obs, slot_mask=slot_mask)
        x = self.frames_to_input(obs) if obs.dtype == torch.uint8 else obs
        if self.config.encoder == "slots":
            out = self.encoder(x, num_slots=num_slots, init_slots=init_slots)
        else:
            out = self.encoder(x)
        return _as_float(out)

    def action_inputs(self, actions: Tensor, positions: Tensor | None, num_slots: int) -> tuple[Tensor | None, ...]:
        """Object-factored (B, K, 4) and action-node (B, 7) encodings of integer actions (B,).

        ``positions`` (B, N, 2), normalised, give the push location of the action node."""
        c = self.config
        b = actions.shape[0]
        push = actions > 0
        obj = torch.where(push, (actions - 1) // NUM_DIRECTIONS, torch.zeros_like(actions))
        direction = torch.where(push, (actions - 1) % NUM_DIRECTIONS, torch.zeros_like(actions))
        dir_onehot = nn.functional.one_hot(direction, NUM_DIRECTIONS).float() * push[:, None]  # (B, 4)
        obj_action = node_action = None
        if c.object_actions:
            on_slot = nn.functional.one_hot(obj.clamp(max=num_slots - 1), num_slots).bool() & push[:, None]
            on_slot &= (obj < num_slots)[:, None]
            obj_action = on_slot[..., None].float() * dir_onehot[:, None, :]  # (B, K, 4)
        if c.action_node:
            if positions is None:
                raise ValueError("the action node needs object positions (the push location)")
            where = positions[torch.arange(b, device=actions.device), obj.clamp(max=positions.shape[1] - 1)]  # (B, 2)
            node_action = torch.cat([where * push[:, None], dir_onehot, (~push)[:, None].float()], dim=1)
        return obj_action, node_action

    def set_slot_iters(self, iters: int) -> None:
        """Run ``iters`` Slot Attention rounds per frame from now on (test-time rounds; the config keeps the trained
        count). ValueError for other encoders or ``iters < 1``."""
        if self.config.encoder != "slots":
            raise ValueError(f"slot_iters applies to Slot Attention runs only, not the {self.config.encoder} encoder")
        if iters < 1:
            raise ValueError(f"slot_iters must be >= 1, got {iters}")
        self.encoder.slot_attention.iters = iters

    @property
    def tracks_slots(self) -> bool:
        """Whether frames are encoded along a track, each initialised from the previous frame's slots (Slot Attention
        with the Gaussian initialisation); otherwise every frame is encoded on its own."""
        return self.config.encoder == "slots" and self.config.slot_init == "gaussian"

    @property
    def context_steps(self) -> int:
        """Observations before a rollout's first one that the graph inference reads (W - 1, or 0)."""
        return max(self.config.graph_context - 1, 0)

    @property
    def first_observation(self) -> int:
        """The first time step a rollout can start from: image encoders need ``history`` frames, and a model with
        ``graph_context`` the W - 1 observations before it from which it infers its graph."""
        return (self.config.history - 1 if self.config.uses_images else 0) + self.context_steps

    def infer_graph(self, context: Tensor, slot_mask: Tensor | None = None, *, exact: bool = True) -> Tensor | None:
        """The episode-level gates (B, K, K) from slots ``context`` (B, W, K, D) ending at the rollout's first step;
        None for a model without ``graph_context`` (its gates come from the current pair of slots).

        ``exact=False`` also accepts a context longer than the W observations the model was trained on (a whole
        episode, for the probe): the edge encoder averages its pair features over time, so more observations give a
        lower-variance reading of the same statistics. Shorter contexts are refused either way."""
        if self.graph_inference is None:
            return None
        w, need = context.shape[1], self.config.graph_context
        if w != need and (exact or w < need):
            raise ValueError(f"the graph context must hold {'' if exact else 'at least '}{need} steps, got {w}")
        return self.graph_inference(context, slot_mask)

    def transition(
        self,
        z: Tensor,
        actions: Tensor,
        positions: Tensor | None = None,
        slot_mask: Tensor | None = None,
        edge_gates: Tensor | None = None,
        norms: bool = True,
    ) -> TransitionOutput:
        """One step (``substeps`` applications of the transition): ``z`` (B, K, D), integer ``actions`` (B,);
        ``edge_gates`` (B, K, K) from `infer_graph`, which a model with ``graph_context`` requires. ``norms=False``
        skips the message norms (they come back None)."""
        if self.graph_inference is not None and edge_gates is None:
            raise ValueError(
                f"this model infers its graph from {self.config.graph_context} observations: pass "
                "edge_gates=model.infer_graph(context)"
            )
        obj_action, node_action = self.action_inputs(actions, positions, z.shape[1])
        state, outs = z, []
        for substep in range(self.config.substeps):
            if substep:
                state = state + outs[-1].delta
            out = self.transition_model(
                state,
                obj_action=obj_action,
                node_action=node_action,
                slot_mask=slot_mask,
                edge_gates=edge_gates,
                norms=norms,
            )
            if self.contact is not None:  # gates and message norms stay those of the gated messages
                out = dataclasses.replace(out, delta=out.delta + self.contact_delta(state, slot_mask))
            outs.append(_as_float(out))  # under autocast too: rollouts accumulate Δz in float32
        if len(outs) == 1:
            return outs[0]

        def mean(field: str) -> Tensor | None:
            values = [getattr(o, field) for o in outs]
            return None if values[0] is None else torch.stack(values).mean(0)

        return TransitionOutput(
            delta=torch.stack([o.delta for o in outs]).sum(0),
            gates=mean("gates"),
            message_norms=mean("message_norms"),
            action_gates=mean("action_gates"),
            action_message_norms=mean("action_message_norms"),
        )

    def contact_delta(self, z: Tensor, slot_mask: Tensor | None = None) -> Tensor:
        """The contact channel's part (B, K, D) of Δz for slots ``z`` (B, K, D): `ContactMessages` on the decoded
        states, its range and lookahead in the state's own position and velocity units."""
        if self.contact is None:
            raise ValueError("this model has no contact channel")
        return self.contact(self.decoder(z), slot_mask, state_scale=self.encoder.std[:4])

    @torch.no_grad()
    def jacobian_norms(
        self,
        z: Tensor,
        actions: Tensor,
        positions: Tensor | None = None,
        slot_mask: Tensor | None = None,
        edge_gates: Tensor | None = None,
        eps: float = 1e-3,
    ) -> Tensor:
        """(B, K, K) ||∂Δz_j/∂z_i||_F at [b, i, j]; 0 on the diagonal. Given ``edge_gates`` are held fixed.

        A one-round transition gets the exact Jacobian from the chain rule through the one message i -> j
        (`TransitionGNN.sender_sensitivity`), plus, with contact messages, the chain rule through contact message
        i -> j and the state decoder (`contact_jacobians`). Deeper transitions take forward differences of
        `transition` (step ``eps``): the batch and its K D perturbed copies go through it as one batch, on CPU several
        times faster than K D backward passes, and exact up to O(eps) for the piecewise-linear MLPs."""
        if self.graph_inference is not None and edge_gates is None:
            raise ValueError("this model infers its graph: pass edge_gates=model.infer_graph(context)")
        b, k, d = z.shape
        if self.one_round_messages:
            obj_action, node_action = self.action_inputs(actions, positions, k)
            sensitivity = self.transition_model.sender_sensitivity
            if self.contact is None:
                return sensitivity(z, obj_action, node_action, slot_mask, edge_gates)
            jac = sensitivity(z, obj_action, node_action, slot_mask, edge_gates, full=True)  # (B, K_i, K_j, D_j, D_i)
            return (jac + self.contact_jacobians(z, slot_mask)).pow(2).sum((-2, -1)).sqrt()
        reps = 1 + k * d
        basis = torch.eye(k * d, dtype=z.dtype, device=z.device).view(k * d, 1, k, d) * eps  # (KD, 1, K, D)
        zz = torch.cat([z[None], z[None] + basis])  # (1 + KD, B, K, D)

        def copies(x):
            return None if x is None else x[None].expand(reps, *x.shape).flatten(0, 1)

        delta = self.transition(
            zz.flatten(0, 1), copies(actions), copies(positions), copies(slot_mask), copies(edge_gates), norms=False
        ).delta.view(reps, b, k, d)
        jac = (delta[1:] - delta[:1]).view(k, d, b, k, d) / eps  # (K_i, D_i, B, K_j, D_j)
        out = jac.pow(2).sum((1, 4)).permute(1, 0, 2).sqrt().contiguous()  # (B, K_i, K_j)
        out.diagonal(dim1=1, dim2=2).zero_()
        if slot_mask is not None:
            out = out.masked_fill(~(slot_mask[:, :, None] & slot_mask[:, None, :]), 0.0)
        return out

    def contact_jacobians(self, z: Tensor, slot_mask: Tensor | None = None) -> Tensor:
        """(B, K_i, K_j, D_j, D_i) ∂(contact message i -> j)/∂z_i, exact: the contact MLP's sender Jacobian
        (`ContactMessages.sender_jacobians`) times the state decoder's per-slot Jacobian (forward mode, one tangent
        per latent entry, `mlp_jvp`). For i != j this is the contact channel's whole part of ∂Δz_j/∂z_i."""
        if self.contact is None:
            raise ValueError("this model has no contact channel")
        basis = torch.eye(z.size(-1), dtype=z.dtype, device=z.device).expand(*z.shape, z.size(-1))  # (B, K, D, D)
        states, decoder = mlp_jvp(self.decoder.mlp, z, basis)  # (B, K, 4), (B, K, D_i, 4)
        pair = self.contact.sender_jacobians(states, slot_mask, self.encoder.std[:4])  # (B, K, K, D_j, 4)
        return torch.einsum("bijoc,biec->bijoe", pair, decoder)

    def imagine(
        self,
        z: Tensor,
        actions: Tensor,
        positions: Tensor | None = None,
        slot_mask: Tensor | None = None,
        decode: bool = True,
        edge_gates: Tensor | None = None,
        cut: Sequence[tuple[int, int]] = (),
    ) -> dict[str, Tensor]:
        """Roll the latent state forward in imagination.

        ``z`` (B, K, D), ``actions`` (B, H) int, ``positions`` (B, H, N, 2) normalised push locations (needed
        only with an action node), ``edge_gates`` (B, K, K) the inferred graph (models with ``graph_context``).
        ``cut`` pairs (i, j) get gate 0 both ways at every step, the model's side of a graph surgery such as
        do(cut_spring): the inferred graph is edited, or the pair gates the transition computes at each step.
        Returns ``z`` (B, H+1, K, D), ``gates`` (B, H, K, K) and, with a decoder, ``frames`` (B, H+1, 3, H_img, W_img)
        or ``states`` (B, H+1, K, 4)."""
        k = z.shape[1]
        if any(not (0 <= i < k and 0 <= j < k and i != j) for i, j in cut):
            raise ValueError(f"cut pairs must be two different slots below {k}, got {list(cut)}")
        if cut and not self.config.gated:
            raise ValueError("an ungated model has no edge gates to cut")
        zs, gates = [z], []
        for h in range(actions.shape[1]):
            pos = None if positions is None else positions[:, h]
            step_gates = edge_gates
            if cut:
                if step_gates is None:  # the pair gates this step would use, then the surgery
                    step_gates = self.transition(zs[-1], actions[:, h], pos, slot_mask, norms=False).gates
                step_gates = step_gates.clone()
                for i, j in cut:
                    step_gates[:, i, j] = step_gates[:, j, i] = 0.0
            out = self.transition(zs[-1], actions[:, h], pos, slot_mask, step_gates, norms=False)
            zs.append(zs[-1] + out.delta)
            gates.append(out.gates)
        result = {"z": torch.stack(zs, 1), "gates": torch.stack(gates, 1) if gates else z.new_zeros(0)}
        if decode and self.decoder is not None and not self.config.uses_images:
            result["states"] = self.decode_states(result["z"])
        elif decode and self.decoder is not None:
            flat = result["z"].flatten(0, 1)
            mask = None if slot_mask is None else slot_mask.repeat_interleave(len(zs), 0)
            result["frames"] = self.decoder(flat, slot_mask=mask).recon.unflatten(0, (z.shape[0], len(zs)))
        return result

    def decode(self, z: Tensor, slot_mask: Tensor | None = None):
        """Frames of slots (B, K, D) as a `DecoderOutput` (image encoders with a decoder)."""
        if self.decoder is None or not self.config.uses_images:
            raise ValueError("this model has no frame decoder (train an image encoder with --decoder)")
        return self.decoder(z, slot_mask=slot_mask)

    @property
    def one_round_transition(self) -> bool:
        """Whether `transition` is the stock one-round `TransitionGNN`, whose structure the exact Jacobian and the
        probe's shortcuts (`TransitionGNN.slot_perturbations`, `TransitionGNN.action_variants`) rely on; a subclass
        that overrides `transition` (e.g. a hand-built test model) takes the whole-graph paths, and a model with
        contact messages the shortcuts of `one_round_messages`."""
        return self.one_round_messages and self.contact is None

    @property
    def one_round_messages(self) -> bool:
        """Whether `transition` is the stock one-round `TransitionGNN`'s, plus contact messages if the model has them:
        the exact Jacobian and the latent interventions' first-step shortcut then still apply (with the contact
        channel's part added)."""
        return self.transition_model.layers == 1 and self.config.substeps == 1 and self._stock_transition

    @property
    def _stock_transition(self) -> bool:
        """`transition` is not overridden by a subclass (such as a hand-built test model)."""
        return type(self).transition is WorldModel.transition

    @property
    def reads_positions(self) -> bool:
        """Whether `positions` can read object positions out of slots (a state decoder, or keypoint slots)."""
        return self.config.keypoints or (self.decoder is not None and not self.config.uses_images)

    def positions(self, z: Tensor) -> Tensor:
        """Object positions (..., K, 2) in data (arena) units read out of slots (..., K, D): the state decoder's x, y,
        or a keypoint slot's centroid mapped from [-1, 1] image coordinates to the arena."""
        if self.config.keypoints:
            d = self.config.slot_dim
            return (z[..., d : d + 2] + 1.0) * 0.5 * self.arena_size
        return self.decode_states(z)[..., :2]

    def decode_states(self, z: Tensor) -> Tensor:
        """Object states (..., K, 4): x, y, vx, vy in data units, of slots (..., K, D) (state encoder + decoder)."""
        if self.decoder is None or self.config.uses_images:
            raise ValueError("this model has no state decoder (train --encoder state with --decoder)")
        n = self.decoder.num_outputs
        return self.decoder(z) * self.encoder.std[:n] + self.encoder.mean[:n]


def config_from_dict(values: dict) -> ModelConfig:
    names = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"unknown model config field(s) {unknown}")
    return ModelConfig(**values)
