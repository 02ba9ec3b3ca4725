"""Gated transition GNN: a C-SWM transition model (Kipf et al., 2020) whose edges carry learned gates.

The model predicts the change Δz of every object slot from pairwise messages over the complete directed slot graph
without self-loops, as in C-SWM, but scales each message by a gate in [0, 1] computed from the pair. The gates are the
model's learned interaction graph (in the spirit of Neural Relational Inference, Kipf et al., 2018, which scores
learned edges against ground truth), so they are returned densely, ready to be compared with a simulator's adjacency.

One round is a Graph Network block (Battaglia et al., 2018) written with PyG's `MessagePassing`, for each edge
i -> j and with C-SWM's MLPs (Linear, ReLU, Linear, LayerNorm, ReLU, Linear):

- `edge_update` (φ^e): the gate g_ij = sigmoid(MLP_g([z_i, z_j])) and the edge MLP's last hidden layer h_ij, where
  MLP_e([z_i, z_j]) = W_o h_ij + b_o;
- `message`: g_ij · h_ij;
- `aggregate` (ρ^{e→v}): sum over incoming edges;
- `update` (φ^v): Σ_i m_ij = W_o Σ_i g_ij h_ij + b_o Σ_i g_ij, the gated sum of the messages
  m_ij = g_ij · MLP_e([z_i, z_j]), then Δz_j = MLP_n([z_j, a_j, Σ_i m_ij]) with a_j C-SWM's object-factored action.

Two exact rewrites keep it fast on CPU. The first layer of MLP_e and MLP_g acts on a concatenation, so it splits into
a sender and a receiver half, W [z_i, z_j] = W_s z_i + W_r z_j, each applied once per node and gathered per edge. The
last layer of MLP_e is linear and the aggregation a gated sum, so W_o moves behind the sum (the identity above) and runs
once per node: per edge only the middle H x H layer is trained, about half the matmul work of the dense formulation.
The messages themselves are formed only for `message_norms` (one more H x H matmul per edge), and only when asked
for: training, rollouts and the Jacobian pass ``norms=False``.

Actions come in two forms, usable together:

- ``obj_action (B, K, obj_action_dim)``: C-SWM's object-factored action, concatenated to every node's input of φ^v
  (valid when slot k is object k, e.g. state or CNN encoders on fixed-order data);
- ``node_action (B, node_action_dim)``: an action node per sample with a gated edge to every slot. Its first layer
  has its own sender weights (the action and the slots have different features); the rest of the edge and gate MLPs is
  shared. The action gates show which slot the action acts on, which is needed when slot order is arbitrary
  (Slot Attention, Locatello et al., 2020).

With ``edge_gates`` (B, K, K) the slot edges use the given gates instead of the pair gate MLP: an episode-level graph
inferred by :class:`GraphInference` from a context window of slots, which a single pair of states cannot reveal when the
interaction graph is a hidden property of the episode (springs with random connections; NRI, Kipf et al. 2018).

Variable object counts share one batch through ``slot_mask``: edges touching padded slots are dropped before any
computation and padded slots' deltas are zero, so a padded batch matches running each sample on its real slots alone.
Samples are batched as one disjoint graph whose complete edge list is built once per (B, K, device) and cached.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing
from torch_geometric.utils import scatter

from causal_wm.runtime import upcast

_GRAPH_CACHE_SIZE = 8  # distinct (B, K, device) graphs kept; a dataloader typically yields two batch sizes


@dataclass
class TransitionOutput:
    """What `TransitionGNN.forward` returns; with ``layers > 1`` gates and norms are averaged over rounds.

    delta: (B, K, D) predicted change of each slot.
    gates: (B, K, K) gates[b, i, j] = gate of edge i -> j (i acts on j); 0 on the diagonal and for padded slots.
    message_norms: (B, K, K) L2 norm of the gated message i -> j; 0 on the diagonal and for padded slots.
    action_gates: (B, K) gate of the edge action node -> slot k, 0 for padded slots; None without an action node.
    action_message_norms: (B, K) L2 norm of the gated message action node -> slot k, 0 for padded slots; None without
        an action node.
    """

    delta: Tensor
    gates: Tensor
    message_norms: Tensor
    action_gates: Tensor | None
    action_message_norms: Tensor | None = None


@dataclass(frozen=True)
class CompleteGraph:
    """Edge lists of B disjoint complete directed graphs on K slots (no self-loops), plus an action node each.

    Slots are flattened to nodes b * K + k and action nodes follow them as B * K + b.

    edge_index: (2, B * K * (K - 1)) slot edges [sender; receiver], ordered by sample, sender, receiver.
    dense_index: (B * K * (K - 1),) position b * K * K + i * K + j of each slot edge in a flattened (B, K, K) matrix.
    action_edge_index: (2, B * K) action-node edges; edge b * K + k ends at node b * K + k.
    """

    edge_index: Tensor
    dense_index: Tensor
    action_edge_index: Tensor

    @classmethod
    def build(cls, batch_size: int, num_slots: int, device: torch.device) -> CompleteGraph:
        """Build the edge lists with tensor ops only (no loop over samples)."""
        k = torch.arange(num_slots, device=device)
        off_diagonal = k[:, None] != k[None, :]  # (K, K)
        sender = k[:, None].expand(num_slots, num_slots)[off_diagonal]  # (K(K-1),)
        receiver = k[None, :].expand(num_slots, num_slots)[off_diagonal]  # (K(K-1),)
        sample = torch.arange(batch_size, device=device)[:, None]  # (B, 1)
        offset = sample * num_slots
        edge_index = torch.stack([(offset + sender).reshape(-1), (offset + receiver).reshape(-1)])
        dense_index = (sample * num_slots**2 + sender * num_slots + receiver).reshape(-1)
        nodes = torch.arange(batch_size * num_slots, device=device)
        action_edge_index = torch.stack([batch_size * num_slots + nodes // num_slots, nodes])
        return cls(edge_index, dense_index, action_edge_index)


def _cswm_tail(hidden: int, out_dim: int) -> nn.Sequential:
    """C-SWM's MLP after its first Linear + ReLU: Linear, LayerNorm, ReLU, Linear."""
    return nn.Sequential(nn.Linear(hidden, hidden), nn.LayerNorm(hidden), nn.ReLU(), nn.Linear(hidden, out_dim))


class _PairLayer(nn.Module):
    """First Linear of an MLP on [sender, receiver], split into a sender half and a receiver half.

    The action node is a sender with its own weights; the receiver half carries the bias. Initialised like
    `nn.Linear` on the concatenation: uniform in ±1/sqrt(fan_in) with fan_in = 2D (D + node_action_dim for actions).
    """

    def __init__(self, slot_dim: int, node_action_dim: int, hidden: int):
        super().__init__()
        self.sender = nn.Parameter(torch.empty(hidden, slot_dim))
        self.receiver = nn.Parameter(torch.empty(hidden, slot_dim))
        self.bias = nn.Parameter(torch.empty(hidden))
        self.action_sender = nn.Parameter(torch.empty(hidden, node_action_dim)) if node_action_dim else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform init with the bound of a Linear layer on the concatenated pair."""
        slot_dim = self.sender.size(1)
        for weight in (self.sender, self.receiver, self.bias):
            nn.init.uniform_(weight, -((2 * slot_dim) ** -0.5), (2 * slot_dim) ** -0.5)
        if self.action_sender is not None:
            bound = (self.action_sender.size(1) + slot_dim) ** -0.5
            nn.init.uniform_(self.action_sender, -bound, bound)

    def forward(self, state: Tensor, node_action: Tensor | None) -> tuple[Tensor, Tensor]:
        """Sender (B*K [+ B], H) and receiver (B*K, H) halves for slots `state` (B*K, D) and action nodes."""
        senders = state @ self.sender.t()
        if node_action is not None:
            senders = torch.cat([senders, node_action @ self.action_sender.t()])
        return senders, torch.addmm(self.bias, state, self.receiver.t())


class _Round(nn.Module):
    """Parameters of one message-passing round: edge MLP (first layer, hidden layer, output), gate MLP, node MLP."""

    def __init__(self, slot_dim: int, hidden: int, obj_action_dim: int, node_action_dim: int, gated: bool):
        super().__init__()
        self.edge_in = _PairLayer(slot_dim, node_action_dim, hidden)
        self.edge_hidden = nn.Sequential(nn.Linear(hidden, hidden), nn.LayerNorm(hidden), nn.ReLU())
        self.edge_out = nn.Linear(hidden, hidden)
        self.gate_in = _PairLayer(slot_dim, node_action_dim, hidden) if gated else None
        self.gate_out = nn.Linear(hidden, 1) if gated else None
        self.node_mlp = nn.Sequential(
            nn.Linear(slot_dim + obj_action_dim + hidden, hidden), nn.ReLU(), _cswm_tail(hidden, slot_dim)
        )


@dataclass(frozen=True)
class _Prepared:
    """A batch after validation and masking: the edges that survive the slot mask and flattened inputs."""

    batch_size: int
    num_slots: int
    num_nodes: int
    edge_index: Tensor  # (2, E) slot edges, then action-node edges
    dense_index: Tensor  # (E_slot,) positions in a flattened (B, K, K)
    action_edge_index: Tensor  # (2, B*K) or fewer with a mask
    node_mask: Tensor | None  # (B*K,)
    z: Tensor  # (B, K, D), padding zeroed
    obj_action: Tensor | None  # (B*K, obj_action_dim)
    num_slot_edges: int


def _layer_norm_stats(x: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """LayerNorm's normalised input x̂ (..., H) and 1/σ (..., 1) over the last axis."""
    mean = x.mean(-1, keepdim=True)
    rstd = (x.var(-1, unbiased=False, keepdim=True) + eps).rsqrt()
    return (x - mean) * rstd, rstd


def _layer_norm_jvp(tangent: Tensor, xhat: Tensor, rstd: Tensor) -> Tensor:
    """Tangent of x̂ = (x - mean x) / σ(x) for input tangents ``tangent`` (..., H), before LayerNorm's scale."""
    return rstd * (tangent - tangent.mean(-1, keepdim=True) - xhat * (xhat * tangent).mean(-1, keepdim=True))


# x̂ has a symmetric Jacobian (1/σ)(I - 11ᵀ/H - x̂x̂ᵀ/H), so its vector-Jacobian product is the same map.
_layer_norm_vjp = _layer_norm_jvp


class TransitionGNN(MessagePassing):
    """C-SWM transition GNN with a learned gate on every directed edge (see the module docstring).

    Args:
        slot_dim: D, the size of each slot.
        hidden: width of the edge, gate and node MLPs (C-SWM uses 512).
        obj_action_dim: size of the object-factored action per slot; 0 disables it.
        node_action_dim: size of the action node's features; 0 disables the action node.
        gated: learn gates; if False every real edge has gate 1 (plain C-SWM).
        layers: message-passing rounds, each with its own weights; round r sees z plus the deltas of earlier rounds
            and the deltas of all rounds add up.
    """

    def __init__(
        self,
        slot_dim: int,
        hidden: int = 128,
        obj_action_dim: int = 4,
        node_action_dim: int = 0,
        gated: bool = True,
        layers: int = 1,
    ):
        super().__init__(aggr="sum")
        sizes = dict(slot_dim=slot_dim, hidden=hidden, layers=layers)
        for name, value in (sizes | dict(obj_action_dim=obj_action_dim, node_action_dim=node_action_dim)).items():
            if value < (1 if name in sizes else 0):
                raise ValueError(f"{name} must be >= {1 if name in sizes else 0}, got {value}")
        self.slot_dim, self.hidden, self.gated, self.layers = slot_dim, hidden, gated, layers
        self.obj_action_dim, self.node_action_dim = obj_action_dim, node_action_dim
        self.rounds = nn.ModuleList(
            _Round(slot_dim, hidden, obj_action_dim, node_action_dim, gated) for _ in range(layers)
        )
        self._graphs: OrderedDict[tuple[int, int, torch.device], CompleteGraph] = OrderedDict()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(slot_dim={self.slot_dim}, hidden={self.hidden}, obj_action_dim="
            f"{self.obj_action_dim}, node_action_dim={self.node_action_dim}, gated={self.gated}, layers={self.layers})"
        )

    def reset_parameters(self) -> None:
        """Re-initialise all weights as at construction."""
        super().reset_parameters()
        for module in self.rounds.modules():
            if isinstance(module, nn.Linear | nn.LayerNorm | _PairLayer):
                module.reset_parameters()

    def complete_graph(self, batch_size: int, num_slots: int, device: torch.device) -> CompleteGraph:
        """The cached `CompleteGraph` for (B, K, device), built on first use."""
        key = (batch_size, num_slots, torch.device(device))
        graph = self._graphs.get(key)
        if graph is None:
            graph = CompleteGraph.build(batch_size, num_slots, key[2])
            self._graphs[key] = graph
            if len(self._graphs) > _GRAPH_CACHE_SIZE:
                self._graphs.popitem(last=False)
        else:
            self._graphs.move_to_end(key)
        return graph

    def _prepare(
        self,
        z: Tensor,
        obj_action: Tensor | None,
        node_action: Tensor | None,
        slot_mask: Tensor | None,
        edge_gates: Tensor | None,
    ) -> _Prepared:
        """Validate the inputs, drop the edges of padded slots and zero their inputs."""
        self._check_inputs(z, obj_action, node_action, slot_mask)
        if edge_gates is not None and tuple(edge_gates.shape) != (z.shape[0], z.shape[1], z.shape[1]):
            raise ValueError(
                f"edge_gates must have shape (B, K, K)={(z.shape[0], z.shape[1], z.shape[1])}, got "
                f"{tuple(edge_gates.shape)}"
            )
        batch_size, num_slots, _ = z.shape
        num_nodes = batch_size * num_slots
        graph = self.complete_graph(batch_size, num_slots, z.device)
        edge_index, dense_index, action_edge_index = graph.edge_index, graph.dense_index, graph.action_edge_index
        node_mask = None
        if slot_mask is not None:
            node_mask = slot_mask.reshape(num_nodes)
            keep = node_mask[edge_index[0]] & node_mask[edge_index[1]]  # (B*K*(K-1),)
            edge_index, dense_index = edge_index[:, keep], dense_index[keep]
            action_edge_index = action_edge_index[:, node_mask]
            z = z.masked_fill(~slot_mask[..., None], 0.0)  # padding may hold anything, even NaN
            if obj_action is not None:
                obj_action = obj_action.masked_fill(~slot_mask[..., None], 0.0)
        num_slot_edges = edge_index.size(1)
        if node_action is not None:
            edge_index = torch.cat([edge_index, action_edge_index], dim=1)
        obj_action = obj_action.reshape(num_nodes, self.obj_action_dim) if obj_action is not None else None

        return _Prepared(
            batch_size,
            num_slots,
            num_nodes,
            edge_index,
            dense_index,
            action_edge_index,
            node_mask,
            z,
            obj_action,
            num_slot_edges,
        )

    def _edges(
        self, g: _Prepared, state: Tensor, node_action: Tensor | None, edge_gates: Tensor | None, layer: int
    ) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor] | None, Tensor, Tensor]:
        """One round's first-layer halves of MLP_e and MLP_g, and every edge's hidden layer (E, H) and gate (E,).

        Given edge gates replace the pair gate MLP on slot edges: it then runs only for the action node's edges."""
        weights = self.rounds[layer]
        edge_in = weights.edge_in(state, node_action)  # (B*K [+ B], H), (B*K, H)
        pair_gates = weights.gate_in is not None and (edge_gates is None or node_action is not None)
        gate_in = weights.gate_in(state, node_action) if pair_gates else None
        hidden, gate = self.edge_updater(g.edge_index, e=edge_in, g=gate_in, layer=layer)  # (E, H), (E,)
        if edge_gates is not None:
            gate = torch.cat([edge_gates.reshape(-1)[g.dense_index], gate[g.num_slot_edges :]])
        return edge_in, gate_in, hidden, gate

    @torch.no_grad()
    def sender_sensitivity(
        self,
        z: Tensor,
        obj_action: Tensor | None = None,
        node_action: Tensor | None = None,
        slot_mask: Tensor | None = None,
        edge_gates: Tensor | None = None,
        full: bool = False,
    ) -> Tensor:
        """(B, K, K) ||∂Δz_j/∂z_i||_F at [b, i, j], exact, for a one-round model; with ``full`` the Jacobians
        themselves, (B, K_i, K_j, D_j, D_i) ∂Δz_j/∂z_i.

        For i != j, z_i reaches Δz_j only through the message i -> j, so by the chain rule
        ∂Δz_j/∂z_i = I_j (g_ij W_o ∂h_ij/∂z_i + (W_o h_ij + b_o) ∂g_ij/∂z_i), with I_j = ∂MLP_n/∂(Σ_i m_ij) at
        receiver j. I_j comes from one reverse pass of the node MLP per node with D cotangents, ∂h_ij/∂z_i from one
        forward-mode pass of the edge MLP per edge with D tangents (its first layer is linear in z_i), and the gate's
        derivative from its own first layer. One (E D, H) x (H, H) matmul per edge replaces the K D perturbed copies
        of the graph that finite differences need. Given ``edge_gates`` are held fixed. 0 on the diagonal and for
        padded slots. Piecewise-linear units take the derivative of their active side, as autograd does.
        """
        if self.layers != 1:
            raise ValueError(f"sender_sensitivity needs a one-round model, this one has {self.layers} rounds")
        g = self._prepare(z, obj_action, node_action, slot_mask, edge_gates)
        w = self.rounds[0]
        state = g.z.reshape(g.num_nodes, self.slot_dim)  # (N, D)
        edge_in, gate_in, hidden, gate = self._edges(g, state, node_action, edge_gates, 0)
        receiver_all = g.edge_index[1]
        summed = scatter(gate[:, None] * hidden, receiver_all, dim=0, dim_size=g.num_nodes, reduce="sum")  # (N, H)
        gate_total = scatter(gate, receiver_all, dim=0, dim_size=g.num_nodes, reduce="sum")  # (N,)
        incoming = torch.addmm(gate_total.unsqueeze(-1) * w.edge_out.bias, summed, w.edge_out.weight.t())

        # I_j W_o (N, D, H) and I_j b_o (N, D): reverse pass of MLP_n([z_j, a_j, incoming_j]) with D cotangents.
        first, tail = w.node_mlp[0], w.node_mlp[2]
        parts = [state, incoming] if g.obj_action is None else [state, g.obj_action, incoming]
        u1 = first(torch.cat(parts, dim=-1))
        u2 = tail[0](torch.relu(u1))
        xhat, rstd = _layer_norm_stats(u2, tail[1].eps)
        active = (xhat * tail[1].weight + tail[1].bias) > 0  # (N, H)
        back = tail[3].weight[None] * active[:, None]  # (N, D, H): ∂Δz/∂ReLU input, then back through LayerNorm
        back = _layer_norm_vjp(back * tail[1].weight, xhat[:, None], rstd[:, None])
        back = (back @ tail[0].weight) * (u1 > 0)[:, None]  # (N, D, H)
        into = first.weight[:, -self.hidden :]  # MLP_n's first layer on the incoming messages: I_j = back @ into
        inc_w = back @ (into @ w.edge_out.weight)  # (N, D, H) = I_j W_o
        inc_b = back @ (into @ w.edge_out.bias)  # (N, D) = I_j b_o

        # I_j W_o ∂h_ij/∂z_i (E, D_j, D_i), pulled back from the receiver's side. ∂h_ij/∂z_i is
        # diag(a γ) LN'(x̂, 1/σ) W_l diag(m) W_s, with a and m the active units of the ReLUs after the LayerNorm and
        # before W_l, and LN' = (1/σ)(I - 11ᵀ/H - x̂x̂ᵀ/H) a rank-2 update of the identity. With P = I_j W_o diag(a γ)
        # the product is (1/σ)[(P W_l ⊙ m) W_s - (P1/H)((1ᵀW_l ⊙ m) W_s) - (Px̂/H)((x̂ᵀW_l ⊙ m) W_s)]: one
        # (E D_j, H) x (H, H) matmul and a few passes over (E, D_j, H), instead of pushing D_i tangents through every
        # elementwise step of the edge MLP.
        sender, receiver = g.edge_index[:, : g.num_slot_edges]
        hidden, gate = hidden[: g.num_slot_edges], gate[: g.num_slot_edges]
        lin, norm = w.edge_hidden[0], w.edge_hidden[1]
        pre = edge_in[0][sender] + edge_in[1][receiver]  # (E, H)
        xhat_e, rstd_e = _layer_norm_stats(lin(torch.relu(pre)), norm.eps)
        before = (pre > 0).to(pre.dtype)  # m
        back_e = inc_w.index_select(0, receiver)  # (E, D_j, H) = I_j W_o (a fresh copy: scaled in place below)
        value = None
        if edge_gates is None and w.gate_in is not None:
            value = torch.bmm(back_e, hidden[:, :, None]).squeeze(-1) + inc_b[receiver]  # (E, D_j) = I_j(W_o h + b_o)
        back_e.mul_(((hidden > 0) * norm.weight)[:, None])  # P
        size = float(self.hidden)
        ones_part = back_e.sum(-1, keepdim=True) / size  # (E, D_j, 1) = P1/H
        xhat_part = torch.bmm(back_e, xhat_e[:, :, None]) / size  # (E, D_j, 1) = Px̂/H
        main = torch.matmul(back_e, lin.weight).mul_(before[:, None])  # (E, D_j, H) = P W_l ⊙ m
        sender_w = w.edge_in.sender  # (H, D_i) = W_s
        jac = torch.matmul(main, sender_w)  # (E, D_j, D_i)
        jac -= ones_part * ((before * lin.weight.sum(0)) @ sender_w)[:, None]
        jac -= xhat_part * (((xhat_e @ lin.weight) * before) @ sender_w)[:, None]
        jac *= (gate[:, None] * rstd_e)[:, :, None]
        if value is not None:
            pre_g = gate_in[0][sender] + gate_in[1][receiver]  # (E, H)
            dgate = ((pre_g > 0) * w.gate_out.weight) @ w.gate_in.sender  # (E, D_i)
            dgate = dgate * (gate * (1 - gate))[:, None]
            jac = jac + value[:, :, None] * dgate[:, None, :]
        b, k, d = g.batch_size, g.num_slots, self.slot_dim
        if full:
            return z.new_zeros(b * k * k, d, d).index_copy(0, g.dense_index, jac).view(b, k, k, d, d)
        norms = jac.pow(2).sum((1, 2)).sqrt()  # (E,)
        return z.new_zeros(b * k * k).index_copy(0, g.dense_index, norms).view(b, k, k)

    @torch.no_grad()
    def slot_perturbations(
        self,
        z: Tensor,
        perturb: Tensor,
        obj_action: Tensor | None = None,
        node_action: Tensor | None = None,
        slot_mask: Tensor | None = None,
        edge_gates: Tensor | None = None,
    ) -> Tensor:
        """(P, K, B, K, D) Δz of every sample with one slot moved: [p, i] is `forward` on z + perturb[p] at slot i.

        ``perturb`` (P, D). For a one-round model only the edges that touch slot i change: its messages out, its
        messages in (their receiver half moved) and the action node's edge to it. The other (K - 1)(K - 2) edges of
        each sample are taken from the unperturbed graph, so P K perturbed copies cost about 2 / (K - 1) of their
        edge MLP work when run through `forward`. Equal to `forward` up to float rounding; padded slots give 0."""
        if self.layers != 1:
            raise ValueError(f"slot_perturbations needs a one-round model, this one has {self.layers} rounds")
        if perturb.dim() != 2 or perturb.size(1) != self.slot_dim:
            raise ValueError(f"perturb must have shape (P, slot_dim={self.slot_dim}), got {tuple(perturb.shape)}")
        g = self._prepare(z, obj_action, node_action, slot_mask, edge_gates)
        w = self.rounds[0]
        b, k, d, h, n = g.batch_size, g.num_slots, self.slot_dim, self.hidden, g.num_nodes
        p = perturb.size(0)
        state = g.z.reshape(n, d)
        edge_in, gate_in, hidden, gate = self._edges(g, state, node_action, edge_gates, 0)
        receiver_all = g.edge_index[1]
        summed = scatter(gate[:, None] * hidden, receiver_all, dim=0, dim_size=n, reduce="sum").view(b, k, h)
        gate_total = scatter(gate, receiver_all, dim=0, dim_size=n, reduce="sum").view(b, k)

        # The unperturbed slot edges and action edges, dense: [b, i, j] for i -> j, [b, k] for action -> k.
        es = g.num_slot_edges
        hid = hidden.new_zeros(b * k * k, h).index_copy(0, g.dense_index, hidden[:es]).view(b, k, k, h)
        gat = gate.new_zeros(b * k * k).index_copy(0, g.dense_index, gate[:es]).view(b, k, k)
        valid = gat.new_zeros(b * k * k, dtype=torch.bool).index_fill(0, g.dense_index, True).view(b, k, k)
        old = gat[..., None] * hid  # (B, K, K, H) gated messages

        # Perturbed messages out of slot i (i -> j) and into it (m -> i), with slot i's first-layer halves moved.
        send, recv = edge_in[0][:n].view(b, k, h), edge_in[1].view(b, k, h)
        d_send, d_recv = perturb @ w.edge_in.sender.t(), perturb @ w.edge_in.receiver.t()  # (P, H)
        pre_out = send[None, :, :, None] + d_send[:, None, None, None] + recv[None, :, None, :]  # (P, B, K_i, K_j, H)
        pre_in = send[None, :, :, None] + recv[None, :, None, :] + d_recv[:, None, None, None]  # (P, B, K_m, K_i, H)
        h_out = w.edge_hidden(torch.relu(pre_out))
        h_in = w.edge_hidden(torch.relu(pre_in))
        if gate_in is not None:
            gsend, grecv = gate_in[0][:n].view(b, k, h), gate_in[1].view(b, k, h)
            dg_send, dg_recv = perturb @ w.gate_in.sender.t(), perturb @ w.gate_in.receiver.t()
        if edge_gates is not None or w.gate_in is None:  # fixed gates, or ungated: the perturbation leaves them
            g_out = g_in = gat[None].expand(p, b, k, k)
        else:
            pre = gsend[None, :, :, None] + dg_send[:, None, None, None] + grecv[None, :, None, :]
            g_out = torch.sigmoid(w.gate_out(torch.relu(pre))).squeeze(-1) * valid
            pre = gsend[None, :, :, None] + grecv[None, :, None, :] + dg_recv[:, None, None, None]
            g_in = torch.sigmoid(w.gate_out(torch.relu(pre))).squeeze(-1) * valid
        new_out = g_out[..., None] * h_out  # (P, B, K_i, K_j, H)
        new_in = g_in[..., None] * h_in  # (P, B, K_m, K_i, H)

        # Receiver j != i: one message replaced. Receiver i: every incoming message (and the action's) replaced.
        sums = summed[None, None] + (new_out - old[None]).permute(0, 2, 1, 3, 4)  # (P, K_i, B, K_j, H)
        totals = gate_total[None, None] + (g_out - gat[None]).permute(0, 2, 1, 3)  # (P, K_i, B, K_j)
        eye = torch.arange(k, device=z.device)
        into_i = (new_in - old[None]).sum(2).permute(0, 2, 1, 3)  # (P, K_i, B, H)
        gate_into_i = (g_in - gat[None]).sum(2).permute(0, 2, 1)  # (P, K_i, B)
        if node_action is not None:
            act_nodes = g.action_edge_index[1]
            act_h = hidden.new_zeros(n, h).index_copy(0, act_nodes, hidden[es:]).view(b, k, h)
            act_g = gate.new_zeros(n).index_copy(0, act_nodes, gate[es:]).view(b, k)
            real = act_g.new_zeros(n, dtype=torch.bool).index_fill(0, act_nodes, True).view(b, k)
            a_send = edge_in[0][n:]  # (B, H) the action nodes' sender halves
            h_act = w.edge_hidden(
                torch.relu(a_send[None, :, None] + recv[None] + d_recv[:, None, None])
            )  # (P, B, K, H)
            if gate_in is None:
                g_act = act_g[None].expand(p, b, k)
            else:
                pre = gate_in[0][n:][None, :, None] + grecv[None] + dg_recv[:, None, None]
                g_act = torch.sigmoid(w.gate_out(torch.relu(pre))).squeeze(-1) * real
            into_i = into_i + (g_act[..., None] * h_act - (act_g[..., None] * act_h)[None]).permute(0, 2, 1, 3)
            gate_into_i = gate_into_i + (g_act - act_g[None]).permute(0, 2, 1)
        sums[:, eye, :, eye] += into_i.permute(1, 0, 2, 3)  # advanced indices first: (K_i, P, B, H)
        totals[:, eye, :, eye] += gate_into_i.permute(1, 0, 2)

        moved = g.z[None, None].repeat(p, k, 1, 1, 1)  # (P, K_i, B, K, D)
        moved[:, eye, :, eye] += perturb[None, :, None]  # (K_i, P, B, D)
        if slot_mask is not None:  # a padded slot's input stays zero, as in forward
            moved = moved.masked_fill(~slot_mask[None, None, :, :, None], 0.0)
        reps = p * k
        obj = None if g.obj_action is None else g.obj_action[None].expand(reps, *g.obj_action.shape).flatten(0, 1)
        step = self.update(sums.reshape(-1, h), totals.reshape(-1), moved.reshape(-1, d), obj, 0)
        step = step.view(p, k, b, k, d)
        if slot_mask is not None:
            step = step.masked_fill(~slot_mask[None, None, :, :, None], 0.0)
        return step

    @torch.no_grad()
    def action_variants(
        self,
        z: Tensor,
        node_actions: Tensor,
        obj_actions: Tensor | None = None,
        slot_mask: Tensor | None = None,
        edge_gates: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Δz (V, B, K, D), action gates and action message norms (V, B, K) of one batch under V actions.

        ``node_actions`` (V, B, node_action_dim), ``obj_actions`` (V, B, K, obj_action_dim). [v] equals `forward`
        with ``node_action=node_actions[v], obj_action=obj_actions[v]`` for a one-round model, but the slot edges,
        which do not depend on the action, run once: only the action node's edges and the node MLP run V times."""
        if self.layers != 1:
            raise ValueError(f"action_variants needs a one-round model, this one has {self.layers} rounds")
        if self.node_action_dim == 0 or node_actions.dim() != 3:
            raise ValueError("action_variants needs an action node and node_actions of shape (V, B, node_action_dim)")
        v = node_actions.size(0)
        if obj_actions is not None and obj_actions.size(0) != v:
            raise ValueError(f"obj_actions has {obj_actions.size(0)} variants, node_actions {v}")
        g = self._prepare(z, None if obj_actions is None else obj_actions[0], node_actions[0], slot_mask, edge_gates)
        w = self.rounds[0]
        b, k, d, h, n = g.batch_size, g.num_slots, self.slot_dim, self.hidden, g.num_nodes
        state = g.z.reshape(n, d)
        edge_in, gate_in, hidden, gate = self._edges(g, state, node_actions[0], edge_gates, 0)
        es = g.num_slot_edges
        receiver = g.edge_index[1, :es]
        summed = scatter(gate[:es, None] * hidden[:es], receiver, dim=0, dim_size=n, reduce="sum").view(b, k, h)
        gate_total = scatter(gate[:es], receiver, dim=0, dim_size=n, reduce="sum").view(b, k)

        real = torch.ones(b, k, dtype=z.dtype, device=z.device) if g.node_mask is None else g.node_mask.view(b, k)
        recv = edge_in[1].view(b, k, h)
        send = node_actions @ w.edge_in.action_sender.t()  # (V, B, H)
        h_act = w.edge_hidden(torch.relu(send[:, :, None] + recv[None]))  # (V, B, K, H)
        if gate_in is None:
            g_act = real.expand(v, b, k).to(z.dtype)
        else:
            pre = (node_actions @ w.gate_in.action_sender.t())[:, :, None] + gate_in[1].view(b, k, h)[None]
            g_act = torch.sigmoid(w.gate_out(torch.relu(pre))).squeeze(-1) * real  # (V, B, K)
        sums = summed[None] + g_act[..., None] * h_act
        totals = gate_total[None] + g_act
        obj = None
        if obj_actions is not None:
            obj = obj_actions if slot_mask is None else obj_actions.masked_fill(~slot_mask[None, ..., None], 0.0)
            obj = obj.reshape(v * n, self.obj_action_dim)
        moved = g.z[None].expand(v, b, k, d).reshape(v * n, d)
        step = self.update(sums.reshape(v * n, h), totals.reshape(v * n), moved, obj, 0).view(v, b, k, d)
        norms = g_act * w.edge_out(h_act).norm(dim=-1)
        if slot_mask is not None:
            step = step.masked_fill(~slot_mask[None, ..., None], 0.0)
        return step, g_act, norms

    @torch.no_grad()
    def gate_variants(
        self,
        z: Tensor,
        gates: Tensor,
        obj_action: Tensor | None = None,
        node_action: Tensor | None = None,
        slot_mask: Tensor | None = None,
    ) -> Tensor:
        """Δz (V, B, K, D) of one batch under V sets of slot-edge gates ``gates`` (V, B, K, K).

        [v] equals `forward` with ``edge_gates=gates[v]`` for a one-round model, but the edge MLP, which does not
        depend on the gates, runs once. So does most of the node MLP's first layer: Σ_i m_ij enters it linearly, so
        each edge's part W_1m (W_o h_ij + b_o) is formed once, and per variant only its gated sum, the ReLU and the
        rest of the node MLP run."""
        if self.layers != 1:
            raise ValueError(f"gate_variants needs a one-round model, this one has {self.layers} rounds")
        b, k = z.shape[:2]
        if gates.dim() != 4 or tuple(gates.shape[1:]) != (b, k, k):
            raise ValueError(f"gates must have shape (V, B, K, K) with (B, K)={(b, k)}, got {tuple(gates.shape)}")
        g = self._prepare(z, obj_action, node_action, slot_mask, gates[0])
        w = self.rounds[0]
        d, h, n = self.slot_dim, self.hidden, g.num_nodes
        state = g.z.reshape(n, d)
        _, _, hidden, gate = self._edges(g, state, node_action, gates[0], 0)
        first = w.node_mlp[0]
        own = d + self.obj_action_dim  # the first layer reads [z_j, a_j, Σ_i m_ij]
        to_first = first.weight[:, own:]  # (H, H): the message part of the first layer
        edge_part = (hidden @ w.edge_out.weight.t() + w.edge_out.bias) @ to_first.t()  # (E, H): W_1m m_e
        es = g.num_slot_edges
        dense = edge_part.new_zeros(b * k * k, h).index_copy(0, g.dense_index, edge_part[:es]).view(b, k, k, h)
        valid = gates.new_zeros(b * k * k).index_fill(0, g.dense_index, 1.0).view(b, k, k)
        pre = torch.einsum("vbij,bijh->vbjh", gates * valid, dense)  # (V, B, K_j, H); padded and self edges carry 0
        inputs = state if g.obj_action is None else torch.cat([state, g.obj_action], dim=-1)
        fixed = torch.addmm(first.bias, inputs, first.weight[:, :own].t())  # (N, H)
        if es < gate.size(0):  # the action node's edges, the same in every variant
            fixed = fixed + scatter(gate[es:, None] * edge_part[es:], g.edge_index[1, es:], dim=0, dim_size=n)
        pre = pre + fixed.view(b, k, h)
        step = w.node_mlp[2:](torch.relu(pre))  # (V, B, K, D)
        if slot_mask is not None:
            step = step.masked_fill(~slot_mask[None, ..., None], 0.0)
        return step

    def forward(
        self,
        z: Tensor,
        obj_action: Tensor | None = None,
        node_action: Tensor | None = None,
        slot_mask: Tensor | None = None,
        edge_gates: Tensor | None = None,
        norms: bool = True,
    ) -> TransitionOutput:
        """Predict Δz for slots z (B, K, D).

        Args:
            z: (B, K, D) slots.
            obj_action: (B, K, obj_action_dim) object-factored action; required iff obj_action_dim > 0.
            node_action: (B, node_action_dim) action-node features; required iff node_action_dim > 0.
            slot_mask: (B, K) bool, True for real slots; None means all slots are real.
            edge_gates: (B, K, K) gates in [0, 1] of the slot edges (gates[b, i, j]: i -> j), used instead of the
                pair gate MLP (the action node's edges keep theirs); e.g. from :class:`GraphInference`.
            norms: form the per-edge messages for ``message_norms``; False skips that (E, H) x (H, H) matmul and
                returns None norms (training and rollouts do not need them).
        """
        g = self._prepare(z, obj_action, node_action, slot_mask, edge_gates)
        batch_size, num_slots, num_nodes = g.batch_size, g.num_slots, g.num_nodes
        edge_index, dense_index, action_edge_index = g.edge_index, g.dense_index, g.action_edge_index
        node_mask, z, obj_action, num_slot_edges = g.node_mask, g.z, g.obj_action, g.num_slot_edges

        state = z.reshape(num_nodes, self.slot_dim)  # (B*K, D)
        delta = torch.zeros_like(state)  # (B*K, D)
        gate_sum = norm_sum = None
        for layer, weights in enumerate(self.rounds):
            edge_in, _, hidden, gate = self._edges(g, state, node_action, edge_gates, layer)  # (E, H), (E,)
            step = self.propagate(
                edge_index,
                hidden=hidden,
                gate=gate,
                gate_total=scatter(gate, edge_index[1], dim=0, dim_size=num_nodes, reduce="sum"),  # (B*K,)
                z=state,
                obj_action=obj_action,
                layer=layer,
                size=(edge_in[0].size(0), num_nodes),
            )  # (B*K, D)
            if node_mask is not None:
                step = step.masked_fill(~node_mask[:, None], 0.0)
            delta = delta + step
            state = state + step
            gate_sum = gate if gate_sum is None else gate_sum + gate
            if norms:
                norm = gate * weights.edge_out(hidden).norm(dim=-1)  # (E,)
                norm_sum = norm if norm_sum is None else norm_sum + norm

        gates = gate_sum / self.layers  # (E,)
        edge_norms = norm_sum / self.layers if norms else None  # (E,)
        dense = z.new_zeros(batch_size * num_slots * num_slots)
        action_gates = action_norms = None
        if node_action is not None:
            receivers = action_edge_index[1]
            action_gates = z.new_zeros(num_nodes).index_copy(0, receivers, gates[num_slot_edges:])
            action_gates = action_gates.view(batch_size, num_slots)  # (B, K)
            if norms:
                action_norms = z.new_zeros(num_nodes).index_copy(0, receivers, edge_norms[num_slot_edges:])
                action_norms = action_norms.view(batch_size, num_slots)  # (B, K)
        return TransitionOutput(
            delta=delta.view(batch_size, num_slots, self.slot_dim),
            gates=dense.index_copy(0, dense_index, gates[:num_slot_edges]).view(batch_size, num_slots, num_slots),
            message_norms=None
            if edge_norms is None
            else dense.index_copy(0, dense_index, edge_norms[:num_slot_edges]).view(batch_size, num_slots, num_slots),
            action_gates=action_gates,
            action_message_norms=action_norms,
        )

    # PyG suffixes: `_j` is the sender (edge_index[0]) and `_i` the receiver (edge_index[1]), i.e. `e_j` belongs to
    # slot i and `e_i` to slot j in this module's gates[b, i, j] = i -> j notation.

    def edge_update(
        self, e_i: Tensor, e_j: Tensor, g_i: Tensor | None, g_j: Tensor | None, layer: int
    ) -> tuple[Tensor, Tensor]:
        """φ^e: the edge MLP's last hidden layer h (E, H) and the gate sigmoid(MLP_g([z_i, z_j])) (E,).

        `e_*` and `g_*` are the first-layer halves of MLP_e and MLP_g; ungated rounds get gate 1.
        """
        weights = self.rounds[layer]
        hidden = weights.edge_hidden(torch.relu(e_j + e_i))  # (E, H)
        if g_i is None or g_j is None:
            return hidden, hidden.new_ones(hidden.size(0))
        return hidden, torch.sigmoid(weights.gate_out(torch.relu(g_j + g_i))).squeeze(-1)

    def message(self, hidden: Tensor, gate: Tensor) -> Tensor:
        """g · h (E, H): the gated message before the edge MLP's output layer, which `update` applies after the sum."""
        return gate.unsqueeze(-1) * hidden

    def update(self, inputs: Tensor, gate_total: Tensor, z: Tensor, obj_action: Tensor | None, layer: int) -> Tensor:
        """φ^v: Δz_j = MLP_n([z_j, a_j, Σ_i m_ij]) (B*K, D) from `inputs` = Σ_i g_ij h_ij (B*K, H).

        Σ_i m_ij = W_o Σ_i g_ij h_ij + b_o Σ_i g_ij, with `gate_total` = Σ_i g_ij (B*K,).
        """
        weights = self.rounds[layer]
        incoming = torch.addmm(gate_total.unsqueeze(-1) * weights.edge_out.bias, inputs, weights.edge_out.weight.t())
        parts = [z, incoming] if obj_action is None else [z, obj_action, incoming]
        return weights.node_mlp(torch.cat(parts, dim=-1))

    def _check_inputs(
        self, z: Tensor, obj_action: Tensor | None, node_action: Tensor | None, slot_mask: Tensor | None
    ) -> None:
        """Raise ValueError naming the first argument whose shape or presence does not fit the model."""
        if z.dim() != 3 or z.size(-1) != self.slot_dim:
            raise ValueError(f"z must have shape (B, K, slot_dim={self.slot_dim}), got {tuple(z.shape)}")
        if not z.is_floating_point():
            raise ValueError(f"z must be a floating-point tensor, got {z.dtype}")
        batch_size, num_slots, _ = z.shape
        if self.obj_action_dim == 0 and obj_action is not None:
            raise ValueError("obj_action was given but the model has obj_action_dim=0")
        if self.obj_action_dim > 0:
            expected = (batch_size, num_slots, self.obj_action_dim)
            if obj_action is None:
                raise ValueError(f"obj_action of shape {expected} is required (obj_action_dim={self.obj_action_dim})")
            if tuple(obj_action.shape) != expected:
                raise ValueError(
                    f"obj_action must have shape (B, K, obj_action_dim)={expected}, got {tuple(obj_action.shape)}"
                )
        if self.node_action_dim == 0 and node_action is not None:
            raise ValueError("node_action was given but the model has node_action_dim=0")
        if self.node_action_dim > 0:
            expected = (batch_size, self.node_action_dim)
            if node_action is None:
                raise ValueError(
                    f"node_action of shape {expected} is required (node_action_dim={self.node_action_dim})"
                )
            if tuple(node_action.shape) != expected:
                raise ValueError(
                    f"node_action must have shape (B, node_action_dim)={expected}, got {tuple(node_action.shape)}"
                )
        if slot_mask is not None and (slot_mask.dtype != torch.bool or tuple(slot_mask.shape) != z.shape[:2]):
            raise ValueError(
                f"slot_mask must be a bool tensor of shape (B, K)={tuple(z.shape[:2])}, got "
                f"{slot_mask.dtype} {tuple(slot_mask.shape)}"
            )


def mlp_jvp(mlp: nn.Sequential, x: Tensor, tangents: Tensor) -> tuple[Tensor, Tensor]:
    """Forward mode through an MLP of `nn.Linear` and `nn.ReLU` layers with several tangents at once: its output
    (..., O) at ``x`` (..., F) and the directional derivatives (..., T, O) along ``tangents`` (..., T, F). ReLU takes
    the derivative of its active side, as autograd does. A plain batched product per layer, several times faster on
    CPU than `torch.func.vmap` over `torch.func.jvp` for the small MLPs of the contact channel and the state decoder."""
    for layer in mlp:
        if isinstance(layer, nn.Linear):
            x = layer(x)
            tangents = tangents @ layer.weight.t()
        elif isinstance(layer, nn.ReLU):
            tangents = tangents * (x > 0).unsqueeze(-2)
            x = torch.relu(x)
        else:
            raise TypeError(f"mlp_jvp handles Linear and ReLU layers only, got {type(layer).__name__}")
    return x, tangents


def closest_approach(d: Tensor, u: Tensor, lookahead: float) -> Tensor:
    """(..., 1) min over t in [0, lookahead] of |d + t u| for relative positions ``d`` and velocities ``u`` (..., 2):
    t* = clamp(-d·u / |u|², 0, lookahead); the present |d| for lookahead 0. Used by `ContactMessages`' range and by
    analysis/contact_range.py, which chooses it."""
    return _closest_offset(d, u, lookahead)[2]


def _closest_offset(d: Tensor, u: Tensor, lookahead: float) -> tuple[Tensor, Tensor | float, Tensor]:
    """The relative position o = d + t* u (..., 2) at the closest approach within [0, lookahead], t* (..., 1) (0.0
    for lookahead 0), and the distance |o| (..., 1)."""
    t = 0.0
    if lookahead > 0:
        t = (-(d * u).sum(-1, keepdim=True) / (u.pow(2).sum(-1, keepdim=True) + 1e-12)).clamp(0.0, lookahead)
        d = d + t * u
    return d, t, (d.pow(2).sum(-1, keepdim=True) + 1e-12).sqrt()


class ContactMessages(nn.Module):
    """Ungated messages between every pair of objects from their relative geometry alone: contact forces.

    Two balls that touch push each other for a step or two, whether or not the episode's interaction graph joins
    them. Gated messages must then either open every gate (and the learned graph no longer shows who acts on whom) or
    miss the collisions, and a missed collision sends a rollout astray (README, "The 10-step misses are the rollouts
    through many collisions"). This channel carries them instead. For every ordered pair i -> j an MLP reads the
    relative position d = p_i - p_j, its length |d|, the relative velocity u = v_i - v_j and the closing speed
    d·u / |d|, and receiver j adds the sum of its incoming messages to its Δz. The MLP sees no slot identity (no type),
    so it can only learn what every pair shares, such as the contact force as a function of distance. Measured on
    springs (README, "Contact messages bring the rollouts nearer but cost the graph"), it also learns the springs'
    pull averaged over all pairs, and the gated messages then cancel it where there is no spring, so the gates no
    longer show the graph. A ``contact_range`` limits the channel to pairs near enough to touch within a step: each
    message is scaled by ``sigmoid((range - distance) / (range / 20))``, with the distance in the units of
    ``state_scale`` (arena units for the state decoder's outputs), so pairs farther apart get nothing from it.
    On springs a range of 18 arena units (three radii) kept the exact graph on 3 seeds (README, "A range limit keeps
    the graph"). With a ``contact_lookahead`` T the distance is the pair's closest approach within the next T time
    units at its present relative velocity, min over t in [0, T] of |d + t u|, instead of its present |d|: a fast pair
    that will touch within the frame is in range, a slow pair at the same distance is not.

    Args:
        slot_dim: D, the size of each message (added to Δz).
        hidden: width H of the MLP.
        contact_range: distance beyond which messages fade out, in the units of ``state_scale``; 0: no limit.
        contact_lookahead: with a range, measure each pair's closest approach within this time (the velocities' time
            unit, e.g. one frame's dt) instead of its present distance; 0: the present distance.
        range_detach: in training mode, compute the range weight from detached states, so that the loss cannot move
            the decoded positions to switch pairs in or out of range (measured on springs: without it the state
            decoder's position readout drifted from about 0.8 to 1.6-2.9 arena units). The forward values, and eval
            mode's derivatives (the probe's Jacobian), are unchanged.
    """

    num_features = 6

    def __init__(
        self,
        slot_dim: int,
        hidden: int = 256,
        contact_range: float = 0.0,
        contact_lookahead: float = 0.0,
        range_detach: bool = False,
    ):
        super().__init__()
        if min(slot_dim, hidden) < 1 or not contact_range >= 0:
            raise ValueError(
                f"slot_dim and hidden must be >= 1 and contact_range >= 0, got {slot_dim}, {hidden}, {contact_range}"
            )
        if not contact_lookahead >= 0 or (contact_lookahead > 0 and contact_range == 0):
            raise ValueError(f"contact_lookahead must be >= 0 and needs a contact_range, got {contact_lookahead}")
        self.contact_range = float(contact_range)
        self.contact_lookahead = float(contact_lookahead)
        self.range_detach = bool(range_detach)
        self.mlp = nn.Sequential(
            nn.Linear(self.num_features, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, slot_dim),
        )

    def forward(self, states: Tensor, slot_mask: Tensor | None = None, state_scale: Tensor | None = None) -> Tensor:
        """Summed incoming messages (B, K, D) of objects with ``states`` (B, K, 4): x, y, vx, vy, on a common scale
        (the state decoder's normalised outputs). Padded slots (``slot_mask`` (B, K) False) neither send nor receive.
        ``state_scale`` (4,) turns x, y, vx, vy into the units of ``contact_range`` and ``contact_lookahead``
        (default 1: the same units)."""
        if states.dim() != 3 or states.size(-1) != 4:
            raise ValueError(f"states must have shape (B, K, 4) (x, y, vx, vy), got {tuple(states.shape)}")
        if state_scale is not None and tuple(state_scale.shape) != (4,):
            raise ValueError(f"state_scale must have shape (4,) (x, y, vx, vy), got {tuple(state_scale.shape)}")
        messages = self.pair_messages(states[:, :, None], states[:, None, :], state_scale)  # (B, K_i, K_j, D)
        valid = self._valid(states, slot_mask)
        return (messages * valid[..., None].to(messages.dtype)).sum(dim=1)  # (B, K_j, D)

    def pair_messages(self, sender: Tensor, receiver: Tensor, state_scale: Tensor | None = None) -> Tensor:
        """The message (..., D) of objects ``sender`` (..., 4) to ``receiver`` (..., 4) (broadcast), range weight
        included."""
        d, u, dist, closing = self._geometry(sender, receiver)
        messages = self.mlp(torch.cat([d, dist, u, closing], dim=-1))
        if self.contact_range > 0:
            messages = messages * self._range_weight(d, u, state_scale)
        return messages

    @staticmethod
    def _geometry(sender: Tensor, receiver: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """d = p_i - p_j, u = v_i - v_j (..., 2), |d| and the closing speed d·u / |d| (..., 1)."""
        d = sender[..., :2] - receiver[..., :2]  # p_i - p_j
        u = sender[..., 2:] - receiver[..., 2:]  # v_i - v_j
        dist = (d.pow(2).sum(-1, keepdim=True) + 1e-6).sqrt()  # eps keeps the diagonal's gradient finite
        return d, u, dist, (d * u).sum(-1, keepdim=True) / dist

    def _range_weight(self, d: Tensor, u: Tensor, state_scale: Tensor | None) -> Tensor:
        """(..., 1) sigmoid((range - distance) / (range / 20)); detached geometry in training with ``range_detach``."""
        if self.range_detach and self.training:
            d, u = d.detach(), u.detach()
        return self._fade(self.approach(d, u, state_scale))

    def _fade(self, distance: Tensor) -> Tensor:
        """The range weight sigmoid((range - distance) / (range / 20)) of pairs at ``distance`` (..., 1)."""
        return torch.sigmoid((self.contact_range - distance) * (20.0 / self.contact_range))

    def _range_weight_derivative(self, d: Tensor, u: Tensor, state_scale: Tensor | None) -> tuple[Tensor, Tensor]:
        """The range weight (..., 1) of pairs with relative position ``d`` and velocity ``u`` (..., 2), and its
        derivative (..., 4) with respect to the sender's x, y, vx, vy. The distance |o| of the closest offset
        o = d + t* u changes with o as o / |o|; t* does not move it, being clamped or at the minimum over t."""
        scale = d.new_ones(4) if state_scale is None else state_scale
        offset, t, distance = _closest_offset(d * scale[:2], u * scale[2:], self.contact_lookahead)
        weight = self._fade(distance)
        along = offset / distance
        slope = -weight * (1 - weight) * (20.0 / self.contact_range)
        return weight, slope * torch.cat([along * scale[:2], t * along * scale[2:]], dim=-1)

    def approach(self, d: Tensor, u: Tensor, state_scale: Tensor | None = None) -> Tensor:
        """(..., 1) distance of pairs with relative position ``d`` and velocity ``u`` (..., 2) that the range applies
        to, in the units of ``state_scale``: `closest_approach` within ``contact_lookahead``."""
        if state_scale is not None:
            d, u = d * state_scale[:2], u * state_scale[2:]
        return closest_approach(d, u, self.contact_lookahead)

    def sender_jacobians(
        self, states: Tensor, slot_mask: Tensor | None = None, state_scale: Tensor | None = None
    ) -> Tensor:
        """(B, K_i, K_j, D, 4) ∂(message i -> j)/∂states_i: for i != j, states_i reaches receiver j's sum only through
        that message. Forward mode with one tangent per state entry; 0 on the diagonal and for padded slots."""
        sender = states[:, :, None].expand(-1, -1, states.size(1), -1)  # (B, K_i, K_j, 4)
        receiver = states[:, None, :].expand_as(sender)
        d, u, dist, closing = self._geometry(sender, receiver)
        # ∂[d, |d|, u, d·u/|d|]/∂states_i (B, K_i, K_j, 4 tangents, 6 features), by hand
        along_d = d / dist  # ∂|d|/∂p_i, and ∂(closing)/∂v_i
        feature_jac = d.new_zeros(*d.shape[:-1], 4, self.num_features)
        eye = torch.eye(2, dtype=d.dtype, device=d.device)
        feature_jac[..., :2, :2] = eye
        feature_jac[..., :2, 2] = along_d
        feature_jac[..., 2:, 3:5] = eye
        feature_jac[..., :2, 5] = (u - closing * along_d) / dist
        feature_jac[..., 2:, 5] = along_d
        messages, jac = mlp_jvp(self.mlp, torch.cat([d, dist, u, closing], dim=-1), feature_jac)  # (.., D), (.., 4, D)
        if self.contact_range > 0:
            weight, slope = self._range_weight_derivative(d, u, state_scale)  # (B, K_i, K_j, 1), (B, K_i, K_j, 4)
            jac = jac * weight[..., None]
            if not (self.range_detach and self.training):  # a detached weight passes no derivative
                jac = jac + slope[..., :, None] * messages[..., None, :]
        valid = self._valid(states, slot_mask)
        return jac.transpose(-1, -2) * valid[..., None, None].to(jac.dtype)

    @staticmethod
    def _valid(states: Tensor, slot_mask: Tensor | None) -> Tensor:
        """(B or 1, K, K) bool: off-diagonal pairs of real slots."""
        valid = ~torch.eye(states.size(1), dtype=torch.bool, device=states.device)[None]  # (1, K, K)
        if slot_mask is not None:
            valid = valid & slot_mask[:, :, None] & slot_mask[:, None, :]
        return valid


class GraphInference(nn.Module):
    """An episode-level interaction graph from a context window of slots: an NRI-style edge encoder (Kipf et al., 2018).

    Whether i acts on j is often a hidden property of the episode (which balls a spring joins), invisible in one pair
    of states but clear from how j's motion follows i over a few steps. For every directed pair and every step t of
    the context, a pair MLP reads (z_i(t), z_j(t), Δz_i(t), Δz_j(t)) with Δz(t) = z(t+1) - z(t); its mean over time
    e_ij summarises the pair's joint motion. As in NRI's node-edge-node step, each receiver j then pools its incoming
    e_ij into n_j, so that an edge's logit MLP([n_i, n_j, e_ij]) can explain away motion that other senders cause.
    The first layers are split into sender and receiver halves (one matmul per slot, not per pair).

    In training mode the gates are relaxed Bernoulli samples (binary Concrete, Maddison et al. 2017, as NRI's
    Gumbel-softmax edges): g = sigmoid((logit + L) / temperature) with logistic noise L. Near-binary samples stop the
    message MLPs from absorbing a small deterministic gate into larger messages, so a sparsity penalty selects edges
    instead of shrinking every gate alike. In eval mode the gates are the edge probabilities sigmoid(logit).

    Args:
        slot_dim: D.
        hidden: width H of the MLPs.
        temperature: of the relaxed samples (NRI uses 0.5).
    """

    def __init__(self, slot_dim: int, hidden: int = 128, temperature: float = 0.5):
        super().__init__()
        if min(slot_dim, hidden) < 1 or temperature <= 0:
            raise ValueError(
                f"slot_dim and hidden must be >= 1 and temperature > 0, got {slot_dim}, {hidden}, {temperature}"
            )
        self.temperature = temperature
        self.sender = nn.Linear(2 * slot_dim, hidden, bias=False)
        self.receiver = nn.Linear(2 * slot_dim, hidden)
        self.pair = nn.Sequential(nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.node = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.edge_sender = nn.Linear(hidden, hidden, bias=False)
        self.edge_receiver = nn.Linear(hidden, hidden, bias=False)
        self.edge_pair = nn.Linear(hidden, hidden)
        self.out = nn.Sequential(nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def logits(self, context: Tensor, slot_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Edge logits (B, K, K) of slots ``context`` (B, W, K, D), W >= 2, and the (B, K, K) bool mask of real edges
        (off-diagonal, both slots real under ``slot_mask`` (B, K))."""
        if context.dim() != 4 or context.size(1) < 2:
            raise ValueError(f"context must have shape (B, W >= 2, K, D), got {tuple(context.shape)}")
        batch_size, _, num_slots, _ = context.shape
        valid = ~torch.eye(num_slots, dtype=torch.bool, device=context.device)[None]  # (1, K, K)
        if slot_mask is not None:
            context = context.masked_fill(~slot_mask[:, None, :, None], 0.0)
            valid = valid & slot_mask[:, :, None] & slot_mask[:, None, :]  # (B, K, K)
        valid = valid.expand(batch_size, num_slots, num_slots)
        z = context[:, :-1]  # (B, T, K, D)
        node = torch.cat([z, context[:, 1:] - z], dim=-1)  # (B, T, K, 2D)
        pair = self.pair(self.sender(node)[:, :, :, None] + self.receiver(node)[:, :, None, :])  # (B, T, K, K, H)
        edge = pair.mean(dim=1)  # (B, K, K, H)
        weight = valid.to(edge.dtype)[..., None]  # (B, K, K, 1)
        pooled = (edge * weight).sum(dim=1) / weight.sum(dim=1).clamp(min=1)  # (B, K, H): over senders i of j
        node = self.node(pooled)  # (B, K, H)
        hidden = self.edge_sender(node)[:, :, None] + self.edge_receiver(node)[:, None, :] + self.edge_pair(edge)
        return upcast(self.out(hidden).squeeze(-1)), valid  # float32 under autocast: the gates' sampling and KL

    def gates(self, logits: Tensor, valid: Tensor, sample: bool | None = None) -> Tensor:
        """Gates (B, K, K) of `logits`: relaxed Bernoulli samples if ``sample`` (default: in training mode), else the
        probabilities; 0 where not ``valid``."""
        if self.training if sample is None else sample:
            u = torch.rand_like(logits).clamp(1e-6, 1 - 1e-6)
            logits = (logits + torch.log(u) - torch.log1p(-u)) / self.temperature
        return torch.sigmoid(logits) * valid

    def forward(self, context: Tensor, slot_mask: Tensor | None = None, sample: bool | None = None) -> Tensor:
        """Gates (B, K, K) in [0, 1], gates[b, i, j] for i -> j, of slots ``context`` (B, W, K, D) with W >= 2.

        ``sample``: relaxed Bernoulli samples instead of probabilities (default: in training mode). The diagonal and
        edges touching a padded slot (``slot_mask`` (B, K) False) are 0.
        """
        return self.gates(*self.logits(context, slot_mask), sample=sample)


def edge_kl(logits: Tensor, valid: Tensor, prior: float) -> Tensor:
    """Mean KL(Bernoulli(sigmoid(logits)) || Bernoulli(prior)) over the ``valid`` edges (scalar): NRI's prior term.

    Unlike a penalty on the mean gate, it grows without bound as an edge probability saturates at 0 or 1, so the
    inferred graph cannot collapse to all edges on (which a mean-field transition otherwise prefers)."""
    if not 0 < prior < 1:
        raise ValueError(f"the edge prior must lie in (0, 1), got {prior}")
    log_q, log_not_q = F.logsigmoid(logits), F.logsigmoid(-logits)
    kl = log_q.exp() * (log_q - math.log(prior)) + log_not_q.exp() * (log_not_q - math.log(1 - prior))
    return (kl * valid).sum() / valid.sum().clamp(min=1)


def sparsity_penalty(out: TransitionOutput, slot_mask: Tensor | None = None) -> Tensor:
    """Mean gate over real off-diagonal edges (scalar); weight it by a sparsity coefficient in the loss.

    Gates of the diagonal and of padded slots are already 0, so only the count of real edges depends on `slot_mask`.
    """
    batch_size, num_slots, _ = out.gates.shape
    counts = slot_mask.sum(dim=1) if slot_mask is not None else out.gates.new_full((batch_size,), num_slots)  # (B,)
    return out.gates.sum() / (counts * (counts - 1)).sum().clamp(min=1)


def action_sparsity_penalty(out: TransitionOutput, slot_mask: Tensor | None = None) -> Tensor:
    """Mean action-node gate over real slots (scalar; 0 without an action node).

    Without it nothing asks the action node to choose, and its gates stay uniform (measured on pushing, contrastive
    loss only: 0.44 on every slot). It is not enough to make the gates a reliable readout, because the node MLP sees
    z_j and can apply the action to the right slot with every gate open (README, "The action node on pushing")."""
    if out.action_gates is None:
        return out.gates.new_zeros(())
    count = slot_mask.sum() if slot_mask is not None else out.action_gates.new_tensor(out.action_gates.numel())
    return out.action_gates.sum() / count.clamp(min=1)
