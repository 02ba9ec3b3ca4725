"""Tests for causal_wm.transition: shapes, equivariance, padding, action inputs, the exact rewrites, caching and a tiny
learning check of the gates."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from causal_wm.transition import (
    CompleteGraph,
    ContactMessages,
    TransitionGNN,
    TransitionOutput,
    action_sparsity_penalty,
    mlp_jvp,
    sparsity_penalty,
)

D, H, A_OBJ, A_NODE = 6, 16, 4, 3


def make_model(seed=0, **kwargs) -> TransitionGNN:
    """A small model; kwargs override the constructor defaults used here."""
    torch.manual_seed(seed)
    options = dict(slot_dim=D, hidden=H, obj_action_dim=A_OBJ, node_action_dim=A_NODE) | kwargs
    return TransitionGNN(**options)


def make_inputs(batch, num_slots, seed=1, dtype=torch.float32):
    """Random z (B, K, D), one-hot object-factored actions (B, K, A_OBJ) and action-node features (B, A_NODE)."""
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(batch, num_slots, D, generator=generator, dtype=dtype)
    obj_action = torch.zeros(batch, num_slots, A_OBJ, dtype=dtype)
    pushed = torch.randint(0, num_slots, (batch,), generator=generator)
    obj_action[torch.arange(batch), pushed, torch.randint(0, A_OBJ, (batch,), generator=generator)] = 1.0
    node_action = torch.randn(batch, A_NODE, generator=generator, dtype=dtype)
    return z, obj_action, node_action


def dense_reference(model: TransitionGNN, z, obj_action, node_action) -> TransitionOutput:
    """One round written densely from the definitions, with the model's weights: m_ij = g_ij MLP_e([z_i, z_j])."""
    weights = model.rounds[0]

    def pair(layer, senders, receivers):  # first layer on [sender, receiver]: (B, S, K, H)
        return torch.relu(senders[:, :, None] @ layer.sender.t() + receivers[:, None] @ layer.receiver.t() + layer.bias)

    def action_pair(layer):  # (B, 1, K, H)
        return torch.relu(
            (node_action @ layer.action_sender.t())[:, None, None] + z[:, None] @ layer.receiver.t() + layer.bias
        )

    num_slots = z.size(1)
    off_diagonal = 1.0 - torch.eye(num_slots, dtype=z.dtype)
    gates = torch.sigmoid(weights.gate_out(pair(weights.gate_in, z, z))).squeeze(-1) * off_diagonal  # (B, K, K)
    messages = gates[..., None] * weights.edge_out(weights.edge_hidden(pair(weights.edge_in, z, z)))  # (B, K, K, H)
    action_gates = torch.sigmoid(weights.gate_out(action_pair(weights.gate_in))).squeeze(-1)[:, 0]  # (B, K)
    action_messages = (
        action_gates[..., None] * weights.edge_out(weights.edge_hidden(action_pair(weights.edge_in)))[:, 0]
    )
    incoming = messages.sum(dim=1) + action_messages  # (B, K, H): sum over senders i
    delta = weights.node_mlp(torch.cat([z, obj_action, incoming], dim=-1))
    return TransitionOutput(delta, gates, messages.norm(dim=-1), action_gates, action_messages.norm(dim=-1))


def assert_outputs_close(actual: TransitionOutput, expected: TransitionOutput, atol):
    for name in ("delta", "gates", "message_norms", "action_gates", "action_message_norms"):
        torch.testing.assert_close(getattr(actual, name), getattr(expected, name), atol=atol, rtol=0, msg=name)


def test_shapes_and_optional_action_node():
    z, obj_action, node_action = make_inputs(3, 4)
    out = make_model()(z, obj_action, node_action)
    assert out.delta.shape == (3, 4, D)
    assert out.gates.shape == out.message_norms.shape == (3, 4, 4)
    assert out.action_gates.shape == out.action_message_norms.shape == (3, 4)
    no_node = make_model(node_action_dim=0)(z, obj_action)
    assert no_node.action_gates is None and no_node.action_message_norms is None
    assert make_model(obj_action_dim=0, node_action_dim=0)(z).delta.shape == (3, 4, D)
    assert repr(make_model(layers=2)) == (
        "TransitionGNN(slot_dim=6, hidden=16, obj_action_dim=4, node_action_dim=3, gated=True, layers=2)"
    )


def test_matches_dense_definition():
    """The decomposed first layer, the output layer moved behind the sum and PyG's edge direction are exact:
    gates[b, i, j] is the gate of sender i -> receiver j."""
    model = make_model().double()
    z, obj_action, node_action = make_inputs(4, 5, dtype=torch.float64)
    out = model(z, obj_action, node_action)
    assert_outputs_close(out, dense_reference(model, z, obj_action, node_action), atol=1e-10)
    assert not torch.allclose(out.gates, out.gates.transpose(1, 2))  # the check above would catch a transposition


def test_rounds_compose():
    """With layers=2 the second round sees z + Δ1, the deltas add up and gates and norms are averaged."""
    model = make_model(layers=2)
    first, second = make_model(), make_model()
    first.rounds[0], second.rounds[0] = model.rounds
    z, obj_action, node_action = make_inputs(3, 4)
    slot_mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 1], [0, 1, 1, 0]], dtype=torch.bool)
    out = model(z, obj_action, node_action, slot_mask)
    one = first(z, obj_action, node_action, slot_mask)
    two = second(z + one.delta, obj_action, node_action, slot_mask)
    expected = TransitionOutput(
        one.delta + two.delta,
        (one.gates + two.gates) / 2,
        (one.message_norms + two.message_norms) / 2,
        (one.action_gates + two.action_gates) / 2,
        (one.action_message_norms + two.action_message_norms) / 2,
    )
    assert_outputs_close(out, expected, atol=1e-6)


def test_gates_range_diagonal_and_padding():
    z, obj_action, node_action = make_inputs(3, 5)
    slot_mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 1, 0, 1]], dtype=torch.bool)
    out = make_model()(z, obj_action, node_action, slot_mask)
    for gates in (out.gates, out.action_gates):
        assert ((gates >= 0) & (gates <= 1)).all()
    assert (out.gates.diagonal(dim1=1, dim2=2) == 0).all() and (out.message_norms.diagonal(dim1=1, dim2=2) == 0).all()
    real_pair = slot_mask[:, :, None] & slot_mask[:, None, :]
    for dense in (out.gates, out.message_norms):
        assert (dense[~real_pair] == 0).all()
        assert (dense[real_pair & ~torch.eye(5, dtype=torch.bool)] > 0).all()
    assert (out.action_gates[~slot_mask] == 0).all() and (out.delta[~slot_mask] == 0).all()
    assert (out.delta[slot_mask] != 0).all()


@pytest.mark.parametrize("gated, layers", [(True, 1), (False, 1), (True, 2)])
def test_mixed_object_counts_equal_samples_alone(gated, layers):
    counts = [5, 3, 1, 4, 0]
    z, obj_action, node_action = make_inputs(len(counts), 5)
    slot_mask = torch.arange(5)[None, :] < torch.tensor(counts)[:, None]
    z = z.masked_fill(~slot_mask[..., None], float("nan"))  # padding must never leak, not even NaN
    model = make_model(gated=gated, layers=layers)
    out = model(z, obj_action, node_action, slot_mask)
    for b, n in enumerate(counts):
        if n == 0:
            assert (out.delta[b] == 0).all() and (out.gates[b] == 0).all() and (out.action_gates[b] == 0).all()
            continue
        alone = model(z[b : b + 1, :n], obj_action[b : b + 1, :n], node_action[b : b + 1])
        torch.testing.assert_close(out.delta[b, :n], alone.delta[0], atol=1e-5, rtol=0)
        torch.testing.assert_close(out.gates[b, :n, :n], alone.gates[0], atol=1e-5, rtol=0)
        torch.testing.assert_close(out.message_norms[b, :n, :n], alone.message_norms[0], atol=1e-5, rtol=0)
        torch.testing.assert_close(out.action_gates[b, :n], alone.action_gates[0], atol=1e-5, rtol=0)
        torch.testing.assert_close(out.action_message_norms[b, :n], alone.action_message_norms[0], atol=1e-5, rtol=0)
        assert (out.action_message_norms[b, n:] == 0).all()
    loss = out.delta.square().sum() + sparsity_penalty(out, slot_mask) + out.message_norms.sum()
    loss.backward()
    assert all(p.grad is None or p.grad.isfinite().all() for p in model.parameters())


def forward_differences(model: TransitionGNN, z, obj_action, node_action, slot_mask, edge_gates, eps):
    """||d delta_j / d z_i||_F at [b, i, j] by perturbing every coordinate of z through the whole forward pass."""
    b, k, d = z.shape
    delta = model(z, obj_action, node_action, slot_mask, edge_gates).delta
    out = torch.zeros(b, k, k, dtype=z.dtype)
    for i in range(k):
        for c in range(d):
            moved = z.clone()
            moved[:, i, c] += eps
            change = (model(moved, obj_action, node_action, slot_mask, edge_gates).delta - delta) / eps  # (B, K, D)
            out[:, i] += change.pow(2).sum(-1)
    out = out.sqrt()
    out.diagonal(dim1=1, dim2=2).zero_()
    return out.masked_fill(~(slot_mask[:, :, None] & slot_mask[:, None, :]), 0.0)


@pytest.mark.parametrize("gated, node, given_gates", [(True, True, False), (False, False, False), (True, True, True)])
def test_sender_sensitivity_equals_the_jacobian_of_the_whole_graph(gated, node, given_gates):
    """The chain rule through the one message i -> j gives the whole graph's Jacobian: z_i reaches Δz_j through no
    other path (checked in float64 against forward differences and autograd, with padding, the action node and given
    edge gates)."""
    model = make_model(gated=gated, node_action_dim=A_NODE if node else 0).double()
    z, obj_action, node_action = make_inputs(3, 5, dtype=torch.float64)
    node_action = node_action if node else None
    slot_mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 1, 0], [0, 1, 1, 1, 1]], dtype=torch.bool)
    edge_gates = torch.rand(3, 5, 5, dtype=torch.float64) if given_gates else None
    fast = model.sender_sensitivity(z, obj_action, node_action, slot_mask, edge_gates)
    slow = forward_differences(model, z, obj_action, node_action, slot_mask, edge_gates, eps=1e-7)
    torch.testing.assert_close(fast, slow, atol=1e-6, rtol=0)
    for b in range(z.shape[0]):
        jac = torch.autograd.functional.jacobian(
            lambda x, b=b: model(
                x[None],
                obj_action[b : b + 1],
                None if node_action is None else node_action[b : b + 1],
                slot_mask[b : b + 1],
                None if edge_gates is None else edge_gates[b : b + 1],
            ).delta[0],
            z[b],
        )  # (K_j, D, K_i, D)
        exact = jac.pow(2).sum((1, 3)).sqrt().t()
        exact = exact.masked_fill(~(slot_mask[b, :, None] & slot_mask[b, None, :]) | torch.eye(5, dtype=torch.bool), 0)
        torch.testing.assert_close(fast[b], exact, atol=1e-12, rtol=1e-10)
    real = slot_mask[:, :, None] & slot_mask[:, None, :] & ~torch.eye(5, dtype=torch.bool)
    assert (fast[real] > 0).all() and (fast[~real] == 0).all()


def test_sender_sensitivity_needs_one_round():
    z, obj_action, node_action = make_inputs(2, 3)
    with pytest.raises(ValueError, match="one-round"):
        make_model(layers=2).sender_sensitivity(z, obj_action, node_action)


@pytest.mark.parametrize(
    "gated, node, given_gates", [(True, True, False), (False, False, False), (True, True, True), (False, True, False)]
)
def test_slot_perturbations_equal_forward_on_each_moved_slot(gated, node, given_gates):
    """Recomputing only the edges that touch the moved slot gives what the whole graph gives, slot by slot, with
    padding, object-factored actions, the action node and given edge gates."""
    model = make_model(gated=gated, node_action_dim=A_NODE if node else 0).double()
    z, obj_action, node_action = make_inputs(3, 5, dtype=torch.float64)
    node_action = node_action if node else None
    slot_mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 1, 0], [0, 1, 1, 1, 1]], dtype=torch.bool)
    edge_gates = torch.rand(3, 5, 5, dtype=torch.float64) if given_gates else None
    perturb = torch.randn(2, z.shape[-1], dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    fast = model.slot_perturbations(z, perturb, obj_action, node_action, slot_mask, edge_gates)
    assert fast.shape == (2, 5, 3, 5, z.shape[-1])
    for p in range(2):
        for i in range(5):
            moved = z.clone()
            moved[:, i] += perturb[p]
            slow = model(moved, obj_action, node_action, slot_mask, edge_gates).delta
            torch.testing.assert_close(fast[p, i], slow, atol=1e-12, rtol=1e-10)
    plain = model(z, obj_action, node_action, slot_mask, edge_gates).delta
    assert (fast[:, 2, 1] == plain[1]).all()  # moving a padded slot changes nothing
    assert not torch.allclose(fast[:, 0, 0], plain[0])  # moving a real one does
    with pytest.raises(ValueError, match="one-round"):
        make_model(layers=2).slot_perturbations(*make_inputs(2, 3)[:1], torch.zeros(1, z.shape[-1]))
    with pytest.raises(ValueError, match="perturb must have shape"):
        model.slot_perturbations(z, perturb[:, :2], obj_action, node_action)


@pytest.mark.parametrize("gated, given_gates", [(True, False), (False, False), (True, True)])
def test_action_variants_equal_forward_under_each_action(gated, given_gates):
    """Running the slot edges once for several actions gives what `forward` gives for each action, with padding,
    object-factored actions and given edge gates."""
    model = make_model(gated=gated, node_action_dim=A_NODE).double()
    z, obj_action, _ = make_inputs(3, 5, dtype=torch.float64)
    gen = torch.Generator().manual_seed(4)
    node_actions = torch.randn(4, 3, A_NODE, dtype=torch.float64, generator=gen)
    obj_actions = torch.randn(4, *obj_action.shape, dtype=torch.float64, generator=gen)
    slot_mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 1, 0], [0, 1, 1, 1, 1]], dtype=torch.bool)
    edge_gates = torch.rand(3, 5, 5, dtype=torch.float64) if given_gates else None
    delta, gates, norms = model.action_variants(z, node_actions, obj_actions, slot_mask, edge_gates)
    assert delta.shape == (4, 3, 5, z.shape[-1]) and gates.shape == norms.shape == (4, 3, 5)
    for v in range(4):
        ref = model(z, obj_actions[v], node_actions[v], slot_mask, edge_gates)
        torch.testing.assert_close(delta[v], ref.delta, atol=1e-12, rtol=1e-10)
        torch.testing.assert_close(gates[v], ref.action_gates, atol=1e-12, rtol=1e-10)
        torch.testing.assert_close(norms[v], ref.action_message_norms, atol=1e-12, rtol=1e-10)
    assert not torch.allclose(delta[0], delta[1])
    with pytest.raises(ValueError, match="needs an action node"):
        make_model(node_action_dim=0).double().action_variants(z, node_actions, obj_actions)
    with pytest.raises(ValueError, match="variants"):
        model.action_variants(z, node_actions, obj_actions[:2])


@pytest.mark.parametrize("gated, node_action_dim", [(True, A_NODE), (False, A_NODE), (True, 0)])
def test_gate_variants_equal_forward_under_each_set_of_gates(gated, node_action_dim):
    """Running the edge MLP once for several sets of slot-edge gates gives what `forward` gives with each set as
    ``edge_gates``, with padding, object-factored actions and an action node (whose own gates stay the pair MLP's)."""
    model = make_model(gated=gated, node_action_dim=node_action_dim).double()
    z, obj_action, node_action = make_inputs(3, 5, dtype=torch.float64)
    node_action = node_action if node_action_dim else None
    slot_mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 1, 0], [0, 1, 1, 1, 1]], dtype=torch.bool)
    gates = torch.rand(6, 3, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    delta = model.gate_variants(z, gates, obj_action, node_action, slot_mask)
    assert delta.shape == (6, 3, 5, z.shape[-1])
    for v in range(6):
        ref = model(z, obj_action, node_action, slot_mask, edge_gates=gates[v]).delta
        torch.testing.assert_close(delta[v], ref, atol=1e-12, rtol=1e-10)
    assert not torch.allclose(delta[0], delta[1])
    with pytest.raises(ValueError, match="one-round"):
        make_model(layers=2).double().gate_variants(z, gates, obj_action, node_action, slot_mask)
    with pytest.raises(ValueError, match="gates must have shape"):
        model.gate_variants(z, gates[:, :, :4], obj_action, node_action, slot_mask)


def test_norms_false_skips_only_the_message_norms():
    model = make_model()
    z, obj_action, node_action = make_inputs(3, 4)
    full = model(z, obj_action, node_action)
    lean = model(z, obj_action, node_action, norms=False)
    assert lean.message_norms is None and lean.action_message_norms is None
    for name in ("delta", "gates", "action_gates"):
        torch.testing.assert_close(getattr(lean, name), getattr(full, name), atol=0, rtol=0)


def check_equivariance(model: TransitionGNN, num_slots: int, seed: int):
    """Permuting slots (with their actions and mask) permutes delta and the rows and columns of the gates."""
    z, obj_action, node_action = make_inputs(3, num_slots, seed=seed, dtype=torch.float64)
    slot_mask = torch.rand(3, num_slots, generator=torch.Generator().manual_seed(seed)) < 0.7
    perm = torch.randperm(num_slots, generator=torch.Generator().manual_seed(seed + 1))
    out = model(z, obj_action, node_action, slot_mask)
    permuted = model(z[:, perm], obj_action[:, perm], node_action, slot_mask[:, perm])
    expected = TransitionOutput(
        out.delta[:, perm],
        out.gates[:, perm][:, :, perm],
        out.message_norms[:, perm][:, :, perm],
        out.action_gates[:, perm],
        out.action_message_norms[:, perm],
    )
    assert_outputs_close(permuted, expected, atol=1e-10)


def test_permutation_equivariance():
    check_equivariance(make_model(layers=2).double(), num_slots=5, seed=0)


@settings(max_examples=8, deadline=None)
@given(num_slots=st.integers(2, 7), seed=st.integers(0, 10_000))
def test_permutation_equivariance_property(num_slots, seed):
    check_equivariance(make_model().double(), num_slots, seed)


def test_obj_action_changes_only_the_pushed_slot():
    model = make_model(node_action_dim=0)
    z, _, _ = make_inputs(2, 4)
    still = torch.zeros(2, 4, A_OBJ)
    push = still.clone()
    push[:, 2, 1] = 1.0  # push object 2 in direction 1
    change = (model(z, push).delta - model(z, still).delta).abs().amax(dim=-1)  # (B, K)
    assert (change[:, 2] > 1e-4).all()
    assert (change[:, [0, 1, 3]] == 0).all()  # one round: the action enters slot 2's node update only


def test_action_node_gates():
    model = make_model(obj_action_dim=0)
    z, _, node_action = make_inputs(4, 5)
    out = model(z, node_action=node_action)
    assert out.action_gates.shape == (4, 5)
    assert ((out.action_gates > 0) & (out.action_gates < 1)).all()
    assert out.action_gates.std() > 0  # computed per slot from [action, z_k]
    other = model(z, node_action=node_action + 1.0)
    assert not torch.allclose(other.action_gates, out.action_gates) and not torch.allclose(other.delta, out.delta)
    torch.testing.assert_close(other.gates, out.gates)  # slot-slot gates do not see the action
    ungated = make_model(obj_action_dim=0, gated=False)(z, node_action=node_action)
    assert (ungated.action_gates == 1).all()
    assert (ungated.gates == 1 - torch.eye(5)).all()


def test_action_sparsity_penalty_is_the_mean_action_gate_over_real_slots():
    gates = torch.zeros(2, 3, 3)
    action_gates = torch.tensor([[0.9, 0.3, 0.0], [0.6, 0.5, 0.7]])  # sample 0 has 2 real slots (padding gates are 0)
    out = TransitionOutput(torch.zeros(2, 3, 1), gates, gates, action_gates)
    mask = torch.tensor([[True, True, False], [True, True, True]])
    assert action_sparsity_penalty(out, mask).item() == pytest.approx(3.0 / 5)
    assert action_sparsity_penalty(out).item() == pytest.approx(3.0 / 6)
    assert action_sparsity_penalty(TransitionOutput(torch.zeros(2, 3, 1), gates, gates, None), mask).item() == 0.0
    # Its gradient lowers the action gates (and only through the gate MLP).
    model = make_model(obj_action_dim=0)
    z, _, node_action = make_inputs(8, 4)
    before = model(z, node_action=node_action).action_gates
    action_sparsity_penalty(model(z, node_action=node_action)).backward()
    touched = {name for name, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    gate_in = {f"rounds.0.gate_in.{n}" for n in ("action_sender", "receiver", "bias")}
    assert touched == gate_in | {"rounds.0.gate_out.weight", "rounds.0.gate_out.bias"}
    with torch.no_grad():
        for p in model.parameters():
            if p.grad is not None:
                p -= 0.1 * p.grad
    assert (model(z, node_action=node_action).action_gates < before).all()


def test_determinism_under_seed():
    z, obj_action, node_action = make_inputs(3, 4)
    first = make_model(seed=5)(z, obj_action, node_action)
    second = make_model(seed=5)(z, obj_action, node_action)
    assert_outputs_close(second, first, atol=0)
    assert not torch.equal(make_model(seed=6)(z, obj_action, node_action).delta, first.delta)


def test_reset_parameters_reinitialises_all_weights():
    model = make_model(seed=0)
    before = [p.detach().clone() for p in model.parameters()]
    torch.manual_seed(1)
    model.reset_parameters()
    changed = [not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True)]
    ones_or_zeros = [torch.equal(b, torch.ones_like(b)) or torch.equal(b, torch.zeros_like(b)) for b in before]
    assert all(c or constant for c, constant in zip(changed, ones_or_zeros, strict=True))  # LayerNorm: 1 and 0


def test_gradients_reach_gate_parameters():
    model = make_model()
    z, obj_action, node_action = make_inputs(3, 4)
    out = model(z, obj_action, node_action)
    (out.delta.square().mean() + 0.1 * sparsity_penalty(out)).backward()
    gate_params = [p for name, p in model.named_parameters() if ".gate_" in name]
    assert len(gate_params) == 6  # sender, receiver, bias, action sender, output weight and bias
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in gate_params)


def test_sparsity_penalty_is_mean_gate_over_real_edges():
    z, obj_action, node_action = make_inputs(2, 4)
    slot_mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.bool)
    out = make_model()(z, obj_action, node_action, slot_mask)
    real = [out.gates[0][~torch.eye(4, dtype=torch.bool)], out.gates[1, :2, :2][~torch.eye(2, dtype=torch.bool)]]
    torch.testing.assert_close(sparsity_penalty(out, slot_mask), torch.cat(real).mean())
    full = make_model()(z, obj_action, node_action)
    torch.testing.assert_close(sparsity_penalty(full), full.gates.sum() / (2 * 4 * 3))


def test_complete_graph_edges():
    graph = CompleteGraph.build(2, 3, torch.device("cpu"))
    edges = set(map(tuple, graph.edge_index.t().tolist()))
    assert edges == {(b * 3 + i, b * 3 + j) for b in range(2) for i in range(3) for j in range(3) if i != j}
    sender, receiver = graph.edge_index
    torch.testing.assert_close(graph.dense_index, (sender // 3) * 9 + (sender % 3) * 3 + receiver % 3)
    assert graph.action_edge_index.tolist() == [[6, 6, 6, 7, 7, 7], [0, 1, 2, 3, 4, 5]]


def test_edge_index_cache_reused_and_rebuilt():
    model = make_model()
    z, obj_action, node_action = make_inputs(4, 5)
    model(z, obj_action, node_action)
    graph = model.complete_graph(4, 5, z.device)
    model(z + 1, obj_action, node_action)
    assert model.complete_graph(4, 5, z.device) is graph and len(model._graphs) == 1
    model(z[:3], obj_action[:3], node_action[:3])
    smaller = model.complete_graph(3, 5, z.device)
    assert smaller is not graph and smaller.edge_index.size(1) == 3 * 5 * 4 and len(model._graphs) == 2


@pytest.mark.parametrize(
    "kwargs, inputs, message",
    [
        (dict(), lambda z, a, n: (z[..., :-1], a, n), r"z must have shape \(B, K, slot_dim=6\)"),
        (dict(), lambda z, a, n: (z[0], a, n), r"z must have shape"),
        (dict(obj_action_dim=0), lambda z, a, n: (z, a, n), "obj_action was given but the model has obj_action_dim=0"),
        (dict(), lambda z, a, n: (z, None, n), r"obj_action of shape \(2, 3, 4\) is required"),
        (dict(), lambda z, a, n: (z, a[:, :2], n), r"obj_action must have shape"),
        (dict(node_action_dim=0), lambda z, a, n: (z, a, n), "node_action was given but the model has node_action_dim"),
        (dict(), lambda z, a, n: (z, a, None), r"node_action of shape \(2, 3\) is required"),
        (dict(), lambda z, a, n: (z, a, n[:, :2]), r"node_action must have shape"),
    ],
)
def test_bad_inputs_raise(kwargs, inputs, message):
    z, obj_action, node_action = make_inputs(2, 3)
    with pytest.raises(ValueError, match=message):
        make_model(**kwargs)(*inputs(z, obj_action, node_action))


def test_bad_mask_and_sizes_raise():
    z, obj_action, node_action = make_inputs(2, 3)
    with pytest.raises(ValueError, match="slot_mask must be a bool tensor"):
        make_model()(z, obj_action, node_action, torch.ones(2, 3))
    with pytest.raises(ValueError, match="slot_mask must be a bool tensor"):
        make_model()(z, obj_action, node_action, torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="layers must be >= 1"):
        make_model(layers=0)


def test_learns_the_only_interaction():
    """Δz_1 = f(z_0), all else 0: with a small sparsity penalty the gate of 0 -> 1 stands out.

    Slots carry a one-hot identity, without which no permutation-equivariant model could tell slot 0 from slot 2.
    """
    torch.manual_seed(0)
    num_slots, features = 3, 2
    identity = torch.eye(num_slots)

    def batch(size):
        x = torch.randn(size, num_slots, features)
        z = torch.cat([x, identity.expand(size, num_slots, num_slots)], dim=-1)  # (B, K, F + K)
        target = torch.zeros_like(z)
        target[:, 1, :features] = torch.tanh(x[:, 0] @ torch.tensor([[1.0, -1.0], [1.0, 1.0]]))
        return z, target

    model = TransitionGNN(features + num_slots, hidden=32, obj_action_dim=0)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(200):
        z, target = batch(64)
        out = model(z)
        loss = (out.delta - target).square().mean() + 0.01 * sparsity_penalty(out)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    z, target = batch(256)
    with torch.no_grad():
        out = model(z)
    assert (out.delta - target).square().mean() < 0.01
    gates = out.gates.mean(dim=0)  # (K, K)
    other_edges = ~torch.eye(num_slots, dtype=torch.bool)
    other_edges[0, 1] = False
    others = gates[other_edges]
    assert gates[0, 1] > 4 * others.mean() and gates[0, 1] > others.max()


def test_contact_messages_read_relative_geometry_only_and_skip_padding():
    torch.manual_seed(0)
    contact = ContactMessages(6, hidden=16)
    states = torch.randn(3, 5, 4)  # x, y, vx, vy
    out = contact(states)
    assert out.shape == (3, 5, 6)
    perm = torch.randperm(5)
    assert torch.allclose(contact(states[:, perm]), out[:, perm], atol=1e-6)  # permuting objects permutes Δz
    moved = states + torch.tensor([3.0, -2.0, 1.0, 0.5])  # the same shift of every position and velocity
    assert torch.allclose(contact(moved), out, atol=1e-5)
    mask = torch.tensor([[True, True, True, False, False]] * 3)
    masked = contact(states, mask)
    assert torch.all(masked[:, 3:] == 0)  # padded slots receive nothing ...
    noisy = states.clone()
    noisy[:, 3:] = 100 * torch.randn(3, 2, 4)
    assert torch.equal(contact(noisy, mask), masked)  # ... and send nothing
    assert torch.allclose(masked[:, :3], contact(states[:, :3]), atol=1e-6)  # as if the 3 objects were alone
    assert torch.all(contact(states, torch.tensor([[True, False, False, False, False]] * 3)) == 0)
    with pytest.raises(ValueError, match="x, y, vx, vy"):
        contact(torch.randn(3, 5, 2))


def test_contact_range_silences_pairs_farther_apart_in_scaled_units():
    torch.manual_seed(0)
    limited = ContactMessages(6, hidden=16, contact_range=2.0)
    unlimited = ContactMessages(6, hidden=16)
    unlimited.load_state_dict(limited.state_dict())  # the same MLP, without the range
    states = torch.zeros(1, 3, 4)
    states[0, :, :2] = torch.tensor([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0]])  # 0 and 1 near, 2 far from both
    states[0, :, 2:] = torch.randn(3, 2)
    out, full = limited(states), unlimited(states)
    assert out[0, 2].abs().max() < 1e-6 * full[0, 2].abs().max().clamp(min=1)  # the far object receives nothing
    moved = states.clone()
    moved[0, 2, 2:] += 5.0  # the far object's velocity changes what it would send, but it is out of range
    assert torch.allclose(limited(moved)[0, :2], out[0, :2], atol=1e-6)
    assert not torch.allclose(unlimited(moved)[0, :2], full[0, :2], atol=1e-3)
    near = unlimited(states[:, :2])[0] * torch.sigmoid(torch.tensor(10.0))  # 0 and 1 alone, 1 apart with range 2
    assert torch.allclose(out[0, :2], near, atol=1e-5)
    scale = torch.tensor([4.0, 4.0, 1.0, 1.0])  # positions in units of 1/4: 0 and 1 are now 4 apart, out of range
    assert limited(states, state_scale=scale)[0, :2].abs().max() < 1e-2 * out[0, :2].abs().max()
    with pytest.raises(ValueError, match="contact_range >= 0"):
        ContactMessages(6, contact_range=-1.0)
    with pytest.raises(ValueError, match=r"state_scale must have shape \(4,\)"):
        limited(states, state_scale=scale[:2])


def test_contact_lookahead_ranges_on_the_closest_approach_within_the_lookahead():
    torch.manual_seed(0)
    ahead = ContactMessages(6, hidden=16, contact_range=3.0, contact_lookahead=1.0)
    now = ContactMessages(6, hidden=16, contact_range=3.0)
    unlimited = ContactMessages(6, hidden=16)
    now.load_state_dict(ahead.state_dict())
    unlimited.load_state_dict(ahead.state_dict())
    # The closest approach against a brute-force minimum over t in [0, T], for random pairs and scales.
    d, u = torch.randn(500, 2) * 4, torch.randn(500, 2) * 6
    scale = torch.tensor([2.0, 0.5, 3.0, 0.25])
    t = torch.linspace(0, 1, 20001)[:, None, None]
    brute = ((d * scale[:2])[None] + t * (u * scale[2:])[None]).norm(dim=-1).min(0).values
    torch.testing.assert_close(ahead.approach(d, u, scale).squeeze(-1), brute, atol=1e-3, rtol=0)
    torch.testing.assert_close(now.approach(d, u, scale).squeeze(-1), (d * scale[:2]).norm(dim=-1))

    def pair(velocity: float) -> torch.Tensor:
        """Two objects 10 apart on the x axis, object 0 moving along x at ``velocity``; object 1's incoming sum."""
        states = torch.zeros(1, 2, 4)
        states[0, 1, 0], states[0, 0, 2] = 10.0, velocity
        return states

    closing, leaving, slow = pair(10.0), pair(-10.0), pair(5.0)  # meets 1 at t = 1; moves away; 5 apart at t = 1
    assert torch.allclose(ahead(closing)[0, 1], unlimited(closing)[0, 1] * torch.sigmoid(torch.tensor(20.0)))
    for states in (leaving, slow):
        assert ahead(states)[0, 1].abs().max() < 1e-3 * unlimited(states)[0, 1].abs().max()
    assert now(closing)[0, 1].abs().max() < 1e-3 * unlimited(closing)[0, 1].abs().max()  # 10 apart now: out of range
    velocity_units = torch.tensor([1.0, 1.0, 0.5, 0.5])  # velocities halved: the closing pair is 5 apart at t = 1
    assert ahead(closing, state_scale=velocity_units)[0, 1].abs().max() < 1e-3 * unlimited(closing)[0, 1].abs().max()
    with pytest.raises(ValueError, match="contact_lookahead must be >= 0 and needs a contact_range"):
        ContactMessages(6, contact_lookahead=0.1)


def test_contact_range_detach_stops_the_range_weights_gradient_in_training_only():
    torch.manual_seed(0)
    detached = ContactMessages(6, hidden=16, contact_range=3.0, contact_lookahead=0.5, range_detach=True)
    plain = ContactMessages(6, hidden=16, contact_range=3.0, contact_lookahead=0.5)
    unlimited = ContactMessages(6, hidden=16)
    for other in (plain, unlimited):
        other.load_state_dict(detached.state_dict())
    states = torch.randn(2, 4, 4) * 2  # pairs around the range's edge, where its weight has a gradient
    scale = torch.tensor([1.0, 2.0, 1.0, 0.5])

    def grad(module, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        module.train(train)
        x = states.clone().requires_grad_(True)
        out = module(x, state_scale=scale)
        (g,) = torch.autograd.grad((out * torch.linspace(-1, 1, 6)).sum(), x)
        return out.detach(), g

    for train in (True, False):  # the same forward values in both modes
        torch.testing.assert_close(grad(detached, train)[0], grad(plain, train)[0])
    torch.testing.assert_close(grad(detached, False)[1], grad(plain, False)[1])  # eval: the full derivative
    out, g = grad(detached, True)
    assert not torch.allclose(g, grad(plain, True)[1], atol=1e-4)  # training: the range weight's part is gone
    # ... and what is left is the messages' gradient times the range weight held fixed
    x = states.clone().requires_grad_(True)
    sender, receiver = x[:, :, None], x[:, None, :]
    weight = torch.sigmoid(
        (3.0 - plain.approach((sender - receiver)[..., :2].detach(), (sender - receiver)[..., 2:].detach(), scale))
        * (20.0 / 3.0)
    )
    manual = (unlimited.pair_messages(sender, receiver) * weight * ContactMessages._valid(x, None)[..., None]).sum(1)
    torch.testing.assert_close(manual.detach(), out)
    (g_manual,) = torch.autograd.grad((manual * torch.linspace(-1, 1, 6)).sum(), x)
    torch.testing.assert_close(g, g_manual)


def test_mlp_jvp_equals_autograd_forward_mode_and_refuses_other_layers():
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(
        torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 16), torch.nn.ReLU(), torch.nn.Linear(16, 5)
    ).double()
    x, tangents = torch.randn(3, 4, 6, dtype=torch.float64), torch.randn(3, 4, 7, 6, dtype=torch.float64)
    out, jvp = mlp_jvp(mlp, x, tangents)
    assert out.shape == (3, 4, 5) and jvp.shape == (3, 4, 7, 5)
    torch.testing.assert_close(out, mlp(x))
    for t in range(7):
        torch.testing.assert_close(jvp[:, :, t], torch.func.jvp(mlp, (x,), (tangents[:, :, t],))[1])
    with pytest.raises(TypeError, match="Linear and ReLU"):
        mlp_jvp(torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.Tanh()).double(), x, tangents)


@pytest.mark.parametrize("contact_range, lookahead, detach", [(0.0, 0.0, False), (2.0, 0.0, False), (2.0, 0.5, True)])
def test_contact_sender_jacobians_equal_autograd(contact_range, lookahead, detach):
    """The hand-written forward mode through the pair features, the MLP and the range weight equals autograd on each
    message, 0 on the diagonal and for padding; in training with ``range_detach`` the weight's derivative is left out,
    as the detached forward pass leaves it out of the gradient."""
    torch.manual_seed(1)
    contact = ContactMessages(3, hidden=16, contact_range=contact_range, contact_lookahead=lookahead,
                              range_detach=detach).double().eval()  # fmt: skip
    states = torch.randn(2, 4, 4, dtype=torch.float64)
    scale = torch.tensor([1.5, 1.0, 0.5, 2.0], dtype=torch.float64)
    mask = torch.tensor([[True] * 4, [True, True, False, True]])
    for training in (False, True):
        contact.train(training)
        fast = contact.sender_jacobians(states, mask, scale)  # (B, K_i, K_j, D, 4)
        assert fast.shape == (2, 4, 4, 3, 4)
        for b, i, j in [(0, 0, 1), (0, 3, 2), (1, 1, 3), (1, 3, 0)]:
            exact = torch.autograd.functional.jacobian(
                lambda s, b=b, j=j: contact.pair_messages(s, states[b, j], scale), states[b, i]
            )  # (D, 4)
            torch.testing.assert_close(fast[b, i, j], exact)
        assert (fast[1, 2] == 0).all() and (fast[1, :, 2] == 0).all() and (fast[0, 2, 2] == 0).all()
        with torch.inference_mode():  # no autograd inside: it works where gradients cannot be recorded
            torch.testing.assert_close(contact.sender_jacobians(states, mask, scale), fast)
        if detach and training:  # only the weight's derivative differs from eval mode
            assert not torch.allclose(fast, contact.eval().sender_jacobians(states, mask, scale))
