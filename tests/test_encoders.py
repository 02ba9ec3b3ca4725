"""Tests for causal_wm.encoders and causal_wm.decoder: shapes, slot attention invariants, padding and a tiny overfit."""

import math

import pytest
import torch

from causal_wm.decoder import DecoderOutput, KeypointDecoder, SpatialBroadcastDecoder
from causal_wm.encoders import (
    KEYPOINT_DIM,
    EncoderOutput,
    ObjectExtractorCNN,
    SlotAttention,
    SlotAttentionEncoder,
    StateEncoder,
    build_encoder,
    downsampling_steps,
)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def images(batch: int, size: int, history: int = 2) -> torch.Tensor:
    return torch.rand(batch, 3 * history, size, size)  # (B, C, H, W)


@pytest.mark.parametrize("size", [64, 32])
def test_object_extractor_shapes_and_masks(size):
    enc = ObjectExtractorCNN(in_channels=6, num_slots=5, slot_dim=4, image_size=size)
    out = enc(images(3, size))
    assert isinstance(out, EncoderOutput)
    assert out.slots.shape == (3, 5, 4)
    assert enc.maps_size == (size // 4, size // 4)
    assert out.masks.shape == (3, 5, *enc.maps_size)
    assert out.slot_mask is None
    assert bool(((out.masks >= 0) & (out.masks <= 1)).all())


def test_object_extractor_rejects_bad_image_size():
    with pytest.raises(ValueError, match="divisible by 4"):
        ObjectExtractorCNN(image_size=30)
    with pytest.raises(ValueError, match="2 RGB frames"):
        ObjectExtractorCNN(in_channels=3, keypoints=True)


def _dot_frames(points: list[list[tuple[int, int]]], size: int = 32) -> torch.Tensor:
    """(B, 3 L, size, size) stacks of black frames with one white 2x2 dot per frame at (row, col)."""
    x = torch.zeros(len(points), 3 * len(points[0]), size, size)
    for b, track in enumerate(points):
        for frame, (row, col) in enumerate(track):
            x[b, 3 * frame : 3 * frame + 3, row : row + 2, col : col + 2] = 1.0
    return x


def test_keypoint_slots_carry_centroid_velocity_presence_and_index():
    enc = ObjectExtractorCNN(in_channels=6, num_slots=3, slot_dim=4, image_size=32, keypoints=True)
    assert enc.out_dim == 4 + KEYPOINT_DIM + 3
    x = _dot_frames([[(4, 4), (4, 12)], [(20, 8), (12, 8)]])
    out = enc(x)
    assert out.slots.shape == (2, 3, enc.out_dim) and out.masks.shape == (2, 3, 16, 16)
    d = 4
    assert torch.equal(out.slots[0, :, d + KEYPOINT_DIM :], torch.eye(3))
    assert torch.allclose(out.slots[0, :, d + 4], out.masks[0].flatten(1).amax(-1))  # presence: the map's peak
    # The keypoints are the soft centroids of each frame's own maps; plant maps that are exactly the dots.
    dots = torch.nn.functional.avg_pool2d(x.unflatten(1, (2, 3))[:, :, 0], 2)  # (B, L, 16, 16) dot coverage per cell
    flat = dots[:, :, None].expand(-1, -1, 3, -1, -1).flatten(3)  # (B, L, K, 64)
    xy = enc.centroids(flat)  # (B, L, K, 2)
    # The 2x2 dot at pixel rows/cols 4-5 of a 32 px frame is map cell 2 of 16, centred at (2 + 0.5) / 16 * 2 - 1.
    assert torch.allclose(xy[0, 0, 0], torch.tensor([-0.6875, -0.6875]))
    assert torch.allclose(xy[0, 1, 0] - xy[0, 0, 0], torch.tensor([0.5, 0.0]))  # moved 8 px right
    assert torch.allclose(xy[1, 1, 0] - xy[1, 0, 0], torch.tensor([0.0, -0.5]))  # moved 8 px up


def test_keypoint_encoder_reads_each_frame_with_the_same_extractor():
    enc = ObjectExtractorCNN(in_channels=6, num_slots=2, slot_dim=4, image_size=32, keypoints=True).eval()
    x = _dot_frames([[(4, 4), (20, 20)]])
    swapped = torch.cat([x[:, 3:], x[:, :3]], 1)
    a, b = enc(x).slots[0], enc(swapped).slots[0]
    d = 4
    # Swapping the frames swaps the centroids: velocity flips sign, the position becomes the other frame's.
    assert torch.allclose(a[:, d + 2 : d + 4], -b[:, d + 2 : d + 4], atol=1e-6)
    assert torch.allclose(a[:, d : d + 2] - a[:, d + 2 : d + 4], b[:, d : d + 2], atol=1e-6)


def test_keypoint_maps_learn_from_the_reconstruction_only():
    enc = ObjectExtractorCNN(in_channels=6, num_slots=3, slot_dim=4, image_size=32, keypoints=True)
    out = enc(images(2, 32))
    out.slots.sum().backward()  # what any loss on the slots (contrastive, dynamics) sends back
    assert enc.extractor[0].weight.grad is None and enc.object_encoder[0].weight.grad is not None
    out = enc(images(2, 32))
    out.masks.sum().backward()  # the reconstruction reads the maps directly
    assert enc.extractor[0].weight.grad.abs().sum() > 0


def test_keypoint_decoder_draws_discs_where_the_keypoints_are():
    dec = KeypointDecoder(num_slots=2, slot_dim=3, image_size=32)
    with torch.no_grad():
        dec.log_radius.fill_(math.log(0.25))  # 4 px
    z = torch.zeros(1, 2, 3 + KEYPOINT_DIM + 2)
    z[0, 0, 3:5] = torch.tensor([-0.5, 0.5])  # x left, y down
    z[0, 0, 7] = 1.0  # present
    z[0, 1, 3:5] = torch.tensor([0.5, -0.5])  # absent: presence 0
    out = dec(z)
    assert out.recon.shape == (1, 3, 32, 32) and out.masks.shape == (1, 2, 32, 32)
    alpha = out.masks[0, 0]
    row, col = divmod(int(alpha.argmax()), 32)
    assert abs(row - 23.5) <= 1 and abs(col - 7.5) <= 1
    assert float(out.masks[0, 1].detach().max()) == 0.0
    assert torch.allclose(out.recon[0, :, row, col], dec.colours[0], atol=0.05)
    assert torch.allclose(out.recon[0, :, 0, 31], dec.background, atol=1e-3)
    maps = torch.zeros(1, 2, 16, 16)
    maps[0, 1, 2, 3] = 1.0
    comp = dec.compose(maps)
    assert torch.allclose(comp[0, :, 2, 3], dec.colours[1]) and torch.allclose(comp[0, :, 0, 0], dec.background)
    with pytest.raises(ValueError, match="draws 2 slots"):
        dec(z[:, :1])


@pytest.mark.parametrize(("size", "resolution", "maps"), [(64, None, 16), (32, None, 8), (32, 32, 32), (64, 32, 32)])
def test_slot_attention_encoder_shapes(size, resolution, maps):
    enc = SlotAttentionEncoder(in_channels=9, num_slots=4, slot_dim=16, image_size=size, resolution=resolution)
    out = enc(images(2, size, history=3))
    assert out.slots.shape == (2, 4, 16)
    assert enc.maps_size == (maps, maps)
    assert out.masks.shape == (2, 4, maps, maps)
    torch.testing.assert_close(out.masks.sum(dim=1), torch.ones(2, maps, maps))  # softmax over slots


def test_slot_attention_encoder_num_slots_and_temporal_init():
    enc = SlotAttentionEncoder(num_slots=5, slot_dim=16, image_size=32)
    frames = images(2, 32)
    first = enc(frames, num_slots=7)
    assert first.slots.shape == (2, 7, 16)
    second = enc(frames, init_slots=first.slots)  # SAVi: frame t+1 starts from the slots at t
    assert second.slots.shape == (2, 7, 16)
    assert second.masks.shape == (2, 7, 8, 8)
    with pytest.raises(ValueError, match="num_slots"):
        enc(frames, num_slots=3, init_slots=first.slots)


def test_resolution_must_be_power_of_two_divisor():
    assert downsampling_steps(64, 16) == 2
    assert downsampling_steps(64, 64) == 0
    for target in (24, 0, 128):
        with pytest.raises(ValueError, match="power-of-two"):
            downsampling_steps(64, target)
    with pytest.raises(ValueError, match="power-of-two"):
        SlotAttentionEncoder(image_size=64, resolution=12)


@pytest.mark.parametrize("num_slots", [3, 5, 8])
def test_slot_attention_num_slots_at_call_time(num_slots):
    sa = SlotAttention(num_slots=5, dim=16, iters=2, hidden=32)
    slots, attn = sa(torch.randn(2, 10, 16), num_slots=num_slots)
    assert slots.shape == (2, num_slots, 16)
    assert attn.shape == (2, num_slots, 10)
    torch.testing.assert_close(attn.sum(dim=1), torch.ones(2, 10))


def test_slot_attention_equivariant_to_init_permutation():
    sa = SlotAttention(num_slots=5, dim=16, iters=3, hidden=32)
    inputs = torch.randn(2, 12, 16)
    init = torch.randn(2, 5, 16)
    perm = torch.tensor([3, 0, 4, 1, 2])
    slots, attn = sa(inputs, init_slots=init)
    slots_p, attn_p = sa(inputs, init_slots=init[:, perm])
    torch.testing.assert_close(slots_p, slots[:, perm], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(attn_p, attn[:, perm], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(slots_p, slots, atol=1e-3)  # the permutation really moved something


def test_slot_attention_gaussian_init_receives_gradients():
    sa = SlotAttention(num_slots=4, dim=8, iters=2, hidden=16)
    slots, _ = sa(torch.randn(3, 6, 8))
    slots.square().sum().backward()
    assert sa.mu.grad is not None and sa.log_sigma.grad is not None
    assert sa.mu.grad.abs().sum() > 0
    assert sa.log_sigma.grad.abs().sum() > 0


def test_slot_attention_deterministic_under_manual_seed():
    sa = SlotAttention(num_slots=4, dim=8, iters=2, hidden=16)
    inputs = torch.randn(2, 6, 8)
    torch.manual_seed(1)
    a, _ = sa(inputs)
    torch.manual_seed(1)
    b, _ = sa(inputs)
    torch.manual_seed(2)
    c, _ = sa(inputs)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(a, c)


def test_slot_attention_learned_queries_are_noise_free_and_trained():
    """With one learned query per slot the slots depend on the input alone (no RNG), fewer slots take the first
    queries, and the queries receive gradients."""
    sa = SlotAttention(num_slots=4, dim=8, iters=2, hidden=16, init="learned")
    inputs = torch.randn(2, 6, 8)
    torch.manual_seed(1)
    a, _ = sa(inputs)
    torch.manual_seed(2)
    b, _ = sa(inputs)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(a[:, 0], a[:, 1])  # distinct queries break the symmetry without noise
    three, _ = sa(inputs, num_slots=3)
    assert three.shape == (2, 3, 8)
    a.square().sum().backward()
    assert sa.queries.grad is not None and sa.queries.grad.abs().sum() > 0
    assert sa.mu.grad is None  # the Gaussian is not used
    with pytest.raises(ValueError, match="exceeds the 4 learned slot queries"):
        sa(inputs, num_slots=5)
    with pytest.raises(ValueError, match="init must be one of"):
        SlotAttention(num_slots=3, dim=8, init="zeros")


def test_learned_slot_init_encodes_every_frame_on_its_own():
    """The world model tracks Gaussian-initialised slots from frame to frame, but encodes each frame from the learned
    queries on its own: the slots of a frame do not depend on the frames before it."""
    from causal_wm.model import ModelConfig, WorldModel
    from causal_wm.train import encode_window

    frames = torch.randint(0, 256, (2, 4, 32, 32, 3), dtype=torch.uint8)  # 3 observations with a 2-frame history
    for init, tracked in (("gaussian", True), ("learned", False)):
        model = WorldModel(ModelConfig(encoder="slots", num_slots=3, slot_dim=8, image_size=32, slot_init=init))
        assert model.tracks_slots is tracked
    z, _ = encode_window(model, {"frames": frames}, 3)  # the learned model
    alone = model.encode(frames[:, 2:4]).slots
    torch.testing.assert_close(z[:, 2], alone)
    with pytest.raises(ValueError, match="slot_init"):
        ModelConfig(encoder="slots", slot_init="zeros")


@pytest.mark.parametrize("init", ["gaussian", "learned"])
def test_implicit_slot_attention_same_forward_one_round_of_backward(init):
    """Implicit differentiation changes the gradient, not the slots: the forward pass equals full backpropagation's
    under the same seed, the initialisation still gets a (straight-through) gradient, and the graph holds one round
    (the attention of earlier rounds is not kept: far fewer saved tensors than with full backpropagation)."""
    full = SlotAttention(num_slots=4, dim=8, iters=5, hidden=16, init=init)
    implicit = SlotAttention(num_slots=4, dim=8, iters=5, hidden=16, init=init, implicit=True)
    implicit.load_state_dict(full.state_dict())
    inputs = torch.randn(3, 6, 8)
    torch.manual_seed(1)
    a, attn_a = full(inputs)
    torch.manual_seed(1)
    b, attn_b = implicit(inputs)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(attn_a, attn_b)

    def graph_size(t: torch.Tensor) -> int:
        seen, todo = set(), [t.grad_fn]
        while todo:
            fn = todo.pop()
            if fn is None or fn in seen:
                continue
            seen.add(fn)
            todo.extend(f for f, _ in fn.next_functions)
        return len(seen)

    assert graph_size(b) < graph_size(a) / 3  # one round of five, plus the keys and values
    b.square().sum().backward()
    init_params = [implicit.mu, implicit.log_sigma] if init == "gaussian" else [implicit.queries]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in init_params)
    assert implicit.to_q.weight.grad.abs().sum() > 0 and implicit.gru.weight_ih.grad.abs().sum() > 0
    with torch.no_grad():  # no graph wanted: every round runs as in full backpropagation
        torch.manual_seed(1)
        c, _ = implicit(inputs)
    torch.testing.assert_close(c, a)


def test_slot_attention_rejects_zero_iterations():
    with pytest.raises(ValueError, match="iters"):
        SlotAttention(num_slots=3, dim=8, iters=0)


def test_state_encoder_shapes_and_normalisation():
    mean = torch.tensor([50.0, 50.0, 0.0, 0.0, 1.0])
    std = torch.tensor([30.0, 30.0, 5.0, 5.0, 2.0])
    enc = StateEncoder(num_features=5, slot_dim=8, hidden=16, mean=mean, std=std)
    plain = StateEncoder(num_features=5, slot_dim=8, hidden=16)
    plain.load_state_dict(enc.state_dict() | {"mean": torch.zeros(5), "std": torch.ones(5)})
    assert set(enc.state_dict()) >= {"mean", "std"}
    states = torch.randn(2, 4, 5) * std + mean
    out = enc(states)
    assert out.slots.shape == (2, 4, 8)
    assert out.masks is None and out.slot_mask is None
    torch.testing.assert_close(out.slots, plain((states - mean) / std).slots)


def test_state_encoder_rejects_bad_statistics():
    with pytest.raises(ValueError, match="shape"):
        StateEncoder(num_features=4, mean=torch.zeros(3))
    with pytest.raises(ValueError, match="positive"):
        StateEncoder(num_features=2, std=torch.tensor([1.0, 0.0]))


def test_state_encoder_zeroes_padding_and_matches_per_sample():
    enc = StateEncoder(num_features=3, slot_dim=6, hidden=16)
    counts = [2, 4, 1]
    states = torch.randn(3, 4, 3)
    slot_mask = torch.arange(4)[None, :] < torch.tensor(counts)[:, None]  # (B, N)
    states[~slot_mask] = float("nan")  # padding content must not matter
    out = enc(states, slot_mask=slot_mask)
    assert out.slot_mask is slot_mask
    assert bool(torch.isfinite(out.slots).all())
    assert bool((out.slots[~slot_mask] == 0).all())
    assert bool((out.slots[slot_mask].abs().sum(-1) > 0).all())
    for b, n in enumerate(counts):
        torch.testing.assert_close(out.slots[b, :n], enc(states[b : b + 1, :n]).slots[0])
    out.slots.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in enc.parameters())


def test_build_encoder():
    assert isinstance(build_encoder("cnn", num_slots=3), ObjectExtractorCNN)
    assert isinstance(build_encoder("slots", slot_dim=8), SlotAttentionEncoder)
    assert isinstance(build_encoder("state", num_features=4), StateEncoder)
    with pytest.raises(ValueError, match="cnn, slots, state"):
        build_encoder("transformer")


@pytest.mark.parametrize(("size", "broadcast"), [(64, None), (32, None), (32, 32), (32, 16)])
def test_decoder_shapes(size, broadcast):
    dec = SpatialBroadcastDecoder(slot_dim=8, out_channels=3, hidden=16, image_size=size, broadcast_size=broadcast)
    out = dec(torch.randn(2, 4, 8))
    assert isinstance(out, DecoderOutput)
    assert out.recon.shape == (2, 3, size, size)
    assert out.masks.shape == (2, 4, size, size)
    assert out.rgb.shape == (2, 4, 3, size, size)
    torch.testing.assert_close(out.masks.sum(dim=1), torch.ones(2, size, size))
    assert bool(((out.recon >= 0) & (out.recon <= 1)).all())


def test_decoder_ignores_masked_slots():
    dec = SpatialBroadcastDecoder(slot_dim=8, hidden=16, image_size=32)
    slots = torch.randn(2, 4, 8)
    slot_mask = torch.tensor([[True, True, False, False], [True, False, True, True]])
    out = dec(slots, slot_mask=slot_mask)
    torch.testing.assert_close(out.masks.sum(dim=1), torch.ones(2, 32, 32))
    assert bool((out.masks[~slot_mask] == 0).all())
    changed = slots.clone()
    changed[~slot_mask] = torch.randn(int((~slot_mask).sum()), 8) * 10
    torch.testing.assert_close(dec(changed, slot_mask=slot_mask).recon, out.recon)
    only_valid = dec(slots[:1, :2]).recon  # the masked slots are as good as absent
    torch.testing.assert_close(out.recon[:1], only_valid)
    with pytest.raises(ValueError, match="at least one slot"):
        dec(slots, slot_mask=torch.zeros(2, 4, dtype=torch.bool))


def test_decoder_overfits_a_fixed_image():
    """Beating the best constant-colour image needs the coordinates and slots, not just a background colour."""
    target = torch.full((1, 3, 32, 32), 0.5)  # grey background
    target[0, :, 4:14, 6:16] = torch.tensor([1.0, 0.0, 0.0])[:, None, None]  # a red square
    target[0, :, 18:28, 16:26] = torch.tensor([0.0, 0.0, 1.0])[:, None, None]  # a blue square
    constant = (target - target.mean(dim=(2, 3), keepdim=True)).square().mean().item()
    dec = SpatialBroadcastDecoder(slot_dim=8, hidden=16, image_size=32)
    slots = torch.nn.Parameter(torch.randn(1, 3, 8))
    opt = torch.optim.Adam([*dec.parameters(), slots], lr=1e-2)
    losses = []
    for _ in range(50):
        loss = (dec(slots).recon - target).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert losses[-1] < 0.5 * constant


def test_encoders_train_end_to_end():
    """One gradient step through each image encoder reaches every parameter (no detached branch)."""
    for enc in (ObjectExtractorCNN(image_size=32), SlotAttentionEncoder(slot_dim=8, image_size=32)):
        enc(images(2, 32)).slots.square().sum().backward()
        missing = [name for name, p in enc.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
        assert not missing, missing


def test_state_encoder_one_hot_type():
    mean = torch.tensor([50.0, 0.0, 2.0])
    std = torch.tensor([30.0, 5.0, 1.5])
    enc = StateEncoder(num_features=3, slot_dim=4, hidden=16, mean=mean, std=std, type_feature=2, num_types=3)
    assert enc.mlp[0].in_features == 2 + 3
    states = torch.tensor([[[80.0, 5.0, 2.0], [50.0, 0.0, 0.0], [20.0, -5.0, 7.0], [20.0, -5.0, -1.0]]])
    x = enc.inputs(states)
    torch.testing.assert_close(x[0, :, :2], torch.tensor([[1.0, 1.0], [0.0, 0.0], [-1.0, -1.0], [-1.0, -1.0]]))
    expected_codes = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    torch.testing.assert_close(x[0, :, 2:], expected_codes)  # types 7 and -1 were never seen: all-zero code
    # The code, not the number, reaches the MLP: two types far apart as numbers give the same input distance.
    a, b, c = (enc.inputs(torch.tensor([[[0.0, 0.0, t]]])) for t in (0.0, 1.0, 2.0))
    assert torch.dist(a, b) == torch.dist(a, c)
    slot_mask = torch.tensor([[True, True, False, False]])
    out = enc(states, slot_mask=slot_mask)
    assert enc.out_dim == 4 + 3 and out.slots.shape == (1, 4, 7) and bool((out.slots[0, 2:] == 0).all())
    torch.testing.assert_close(out.slots[0, :2, 4:], expected_codes[:2])  # the slot carries its type code
    torch.testing.assert_close(out.slots[0, :2], enc(states[:, :2]).slots[0])


def test_state_encoder_rejects_a_bad_type_column():
    with pytest.raises(ValueError, match="type_feature"):
        StateEncoder(num_features=3, type_feature=3, num_types=2)
    with pytest.raises(ValueError, match="num_types"):
        StateEncoder(num_features=3, type_feature=1, num_types=0)


@pytest.mark.parametrize("length", [1, 2, 3])
def test_frames_to_input_stacks_frames_channels_last(length):
    from causal_wm.model import WorldModel

    frames = torch.randint(0, 256, (4, length, 8, 6, 3), dtype=torch.uint8)
    x = WorldModel.frames_to_input(frames)
    assert x.shape == (4, 3 * length, 8, 6)
    assert x.is_contiguous(memory_format=torch.channels_last)
    for frame in range(length):
        for colour in range(3):
            expected = frames[:, frame, :, :, colour].float() / 255.0
            torch.testing.assert_close(x[:, 3 * frame + colour], expected, rtol=0, atol=0)


@pytest.mark.parametrize("history", [1, 2, 3])
def test_windows_to_input_equals_frames_to_input_of_each_stack(history):
    from causal_wm.model import WorldModel

    frames = torch.randint(0, 256, (3, 6, 8, 5, 3), dtype=torch.uint8)
    x = WorldModel.windows_to_input(frames, history)
    stacks = frames.unfold(1, history, 1).permute(0, 1, 5, 2, 3, 4).flatten(0, 1)  # (B L, history, H, W, 3)
    assert x.shape == (3 * (6 - history + 1), 3 * history, 8, 5)
    assert x.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(x, WorldModel.frames_to_input(stacks), rtol=0, atol=0)
    with pytest.raises(ValueError, match="no stack"):
        WorldModel.windows_to_input(frames[:, :1], 2)
