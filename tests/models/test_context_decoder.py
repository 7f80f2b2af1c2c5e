"""The two-level latent (local code sequence + global blocks) and its bounded-context autoregressive decoder.

Tiny models (L = 64, 16 channels) so that the file runs in seconds on a CPU.
"""

from __future__ import annotations

import copy

import pytest
import torch

from seqae.errors import ConfigError
from seqae.models import DEFAULT_MODEL_SETTINGS, SequenceAutoencoder, model_settings
from seqae.models.context_decoder import CausalReach, ContextDecoder, context_index
from seqae.models.objectives import sequence_error, track_error
from tests.conftest import tiny_model
from tests.models.conftest import seeded_model

L = 64
LABELS = {"chrom": 3, "region_class": 4}
# The default blocks (chrom 16, gene 16, residual 32) on the tests' tiny encoder.
TINY_AR = tiny_model(
    blocks=copy.deepcopy(DEFAULT_MODEL_SETTINGS["blocks"]),
    decoder={"kind": "autoregressive", "context": 3, "hidden": 16, "n_layers": 1, "latent_layers": 2},
    local={"enabled": True, "dim": 4, "codebook_size": 16},
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model(**overrides: object) -> SequenceAutoencoder:
    return seeded_model(TINY_AR, LABELS, L, **overrides)


def _batch(n: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 4, (n, L), generator=g), torch.rand(n, 2, L, generator=g)


def test_context_index_on_a_hand_made_window() -> None:
    # A C G T A, k = 2: position i reads x[i-1] (weight 1) and x[i-2] (weight 4).
    seq = torch.tensor([[0, 1, 2, 3, 0]])
    unknown = 4**2
    assert context_index(seq, 2).tolist() == [[unknown, unknown, 1 + 4 * 0, 2 + 4 * 1, 3 + 4 * 2]]
    # An N anywhere in the context makes it unknown; k = 0 reads nothing.
    with_n = torch.tensor([[0, 4, 2, 3, 1]])
    assert context_index(with_n, 2).tolist() == [[unknown, unknown, unknown, unknown, 3 + 4 * 2]]
    assert context_index(with_n, 0).tolist() == [[0, 0, 0, 0, 0]]


def test_decoder_is_causal_and_reads_only_k_bases_without_the_latent() -> None:
    torch.manual_seed(0)
    k = 3
    decoder = ContextDecoder(L, 8, 4, 6, 0, context=k, hidden=16, n_layers=1).eval()
    seq, _ = _batch(2)
    local, glob = torch.randn(2, 4, L // 8), torch.randn(2, 6)
    # Nonzero FiLM weights, so that the global latent really enters the logits.
    torch.nn.init.normal_(decoder.film.weight)
    j = 40
    changed = seq.clone()
    changed[:, j] = (changed[:, j] + 1) % 4
    with torch.no_grad():
        a, _ = decoder(seq, local, glob)
        b, _ = decoder(changed, local, glob)
        off_a, _ = decoder(seq, local, glob, keep=torch.zeros(2))
        off_other_latent, _ = decoder(seq, torch.randn(2, 4, L // 8), torch.randn(2, 6), keep=torch.zeros(2))
        far = seq.clone()
        far[:, j - k - 1] = (far[:, j - k - 1] + 1) % 4  # outside position j's k-base context
        off_far, _ = decoder(far, local, glob, keep=torch.zeros(2))
    # Teacher forcing: a base changes only the logits of the k positions after it.
    torch.testing.assert_close(a[..., : j + 1], b[..., : j + 1])
    assert not torch.allclose(a[..., j + 1 : j + 1 + k], b[..., j + 1 : j + 1 + k])
    torch.testing.assert_close(a[..., j + 1 + k :], b[..., j + 1 + k :])
    # With the latent off the logits do not depend on the latent, and position j reads only its k previous bases.
    torch.testing.assert_close(off_a, off_other_latent)
    torch.testing.assert_close(off_a[..., j], off_far[..., j])
    assert not torch.allclose(a, off_a)


def test_causal_reach_reads_exactly_the_previous_reach_bases_and_steps_as_the_parallel_pass() -> None:
    torch.manual_seed(0)
    reach = 8
    net = CausalReach(reach, 6, 5)
    for p in net.parameters():  # large weights, so that any leak would show
        torch.nn.init.normal_(p, std=0.5)
    seq, _ = _batch(3)
    seq[1, 10] = 4  # an N reads as the start does
    j = 30
    with torch.no_grad():
        out = net(seq)
        for i, moved in ((j, 0), (j - 1, 1), (j - reach, 1), (j - reach - 1, 0)):
            changed = seq.clone()
            changed[:, i] = (changed[:, i] + 1) % 4
            differs = not torch.allclose(net(changed)[:, j], out[:, j])
            assert differs == bool(moved), f"position {j} {'must' if moved else 'must not'} read base {i}"
        buffers = net.start(3, seq.device)
        previous = torch.full((3,), 4, dtype=torch.long)
        steps = []
        for i in range(L):
            steps.append(net.step(previous, i, buffers))
            previous = seq[:, i]
    torch.testing.assert_close(torch.stack(steps, 1), out, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="power of two"):
        CausalReach(6, 4, 4)


def test_sampling_with_a_reach_decodes_what_teacher_forcing_scores() -> None:
    model = _model(decoder={**TINY_AR["decoder"], "reach": 16, "reach_width": 8}).eval()
    for p in model.decoder.reach.parameters():
        torch.nn.init.normal_(p, std=0.3)
    seq, tracks = _batch()
    with torch.no_grad():
        latent, codes = model.encode(seq, tracks), model.encode_local(seq, tracks)
        bases, step_logits, _ = model.decode_bases(latent, codes, generator=torch.Generator().manual_seed(3))
        forced, _ = model.decoder(bases, model.local.lookup(codes), latent)
        off, _ = model.reconstruct(seq, tracks, latent_off=True)
        far = seq.clone()
        far[:, 40 - 17] = (far[:, 40 - 17] + 1) % 4  # beyond both the 3-base table and the 16-base reach
        off_far, _ = model.reconstruct(far, tracks, latent_off=True)
    torch.testing.assert_close(step_logits, forced.float(), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(off[..., 40], off_far[..., 40])
    with pytest.raises(ConfigError, match="model.decoder.reach: must be 0 or a power of two"):
        model_settings({"decoder": {"kind": "autoregressive", "reach": 12}})


def test_a_latent_path_without_the_reach_reads_k_bases_and_is_measured_against_an_order_k_chain() -> None:
    decoder = {**TINY_AR["decoder"], "reach": 16, "reach_width": 8, "latent_reach": False}
    model = _model(decoder=decoder).eval()
    for p in model.decoder.reach.parameters():
        torch.nn.init.normal_(p, std=0.3)
    seq, tracks = _batch()
    near, far = seq.clone(), seq.clone()
    near[:, 40 - 3] = (near[:, 40 - 3] + 1) % 4  # inside the 3-base table
    far[:, 40 - 5] = (far[:, 40 - 5] + 1) % 4  # beyond the table, inside the 16-base reach
    with torch.no_grad():
        latent, codes = model.encode(seq, tracks), model.encode_local(seq, tracks)
        local = model.local.lookup(codes)
        on = {
            name: model.decoder(x, local, latent)[0][..., 40]
            for name, x in (("seq", seq), ("near", near), ("far", far))
        }
        chain = {name: model.chain_reconstruct(x)[0][..., 40] for name, x in (("seq", seq), ("far", far))}
        off, _ = model.reconstruct(seq, tracks, latent_off=True)
        off_far, _ = model.reconstruct(far, tracks, latent_off=True)
        dropped, _ = model.decoder(seq, local, latent, keep=torch.zeros(5))
        bases, step_logits, _ = model.decode_bases(latent, codes, generator=torch.Generator().manual_seed(3))
        forced, _ = model.decoder(bases, local, latent)
    # The latent path reads the k previous bases and the latent, not the reach; the chain
    # (the anomaly score) reads the reach; the latent-off baseline is the order-k table.
    assert not torch.allclose(on["seq"], on["near"])
    torch.testing.assert_close(on["seq"], on["far"])
    assert not torch.allclose(chain["seq"], chain["far"])
    torch.testing.assert_close(off[..., 40], off_far[..., 40])
    torch.testing.assert_close(off, model.decoder.order_k(context_index(seq, 3)).transpose(1, 2))
    torch.testing.assert_close(dropped, off)
    torch.testing.assert_close(step_logits, forced.float(), rtol=1e-4, atol=1e-4)
    out = model.train()(seq, tracks)
    assert "order_k_ce" in out.metrics and "chain_ce" in out.metrics
    torch.testing.assert_close(out.losses["chain"], out.metrics["chain_ce"] + out.metrics["order_k_ce"])
    out.loss.backward()
    assert model.decoder.order_k.weight.grad is not None and model.decoder.order_k.weight.grad.abs().sum() > 0


def test_the_direct_head_rebuilds_every_base_from_the_latent_alone() -> None:
    model = _model(weights={"direct": 1.0}).eval()
    seq, tracks = _batch()
    other = torch.roll(seq, 7, dims=1)
    with torch.no_grad():
        latent, codes = model.encode(seq, tracks), model.encode_local(seq, tracks)
        local = model.local.lookup(codes)
        # The bases the pass is teacher-forced on do not reach the direct head: only the latent.
        a = model.decoder.forward_with_chain(seq, local, latent).direct_logits
        b = model.decoder.forward_with_chain(other, local, latent).direct_logits
        greedy, logits, _ = model.decode_bases(latent, codes, sample=False)
        stepwise, _, _ = model.decode_bases(latent, codes, sample=False, autoregressive=True)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(logits, a)
    assert torch.equal(greedy, a.argmax(1)) and stepwise.shape == greedy.shape
    assert model.has_direct_head and not _model().has_direct_head
    out = model.train()(seq, tracks)
    assert out.losses["direct"] > 0 and "direct_ce" in out.metrics
    with pytest.raises(ValueError, match="no direct head"):
        _model().decoder.direct_forward(local, latent, 5)
    # The convolutional decoder rebuilds from the latent alone anyway: no head is added.
    conv = SequenceAutoencoder({**TINY_AR, "decoder": {"kind": "conv"}, "local": {"enabled": False},
                                "weights": {"direct": 1.0}}, 2, L, LABELS)  # fmt: skip
    assert not conv.has_direct_head


def test_the_direct_head_trains_on_a_share_of_positions_and_evaluates_on_all() -> None:
    """decoder.direct_positions: in training the direct head's loss is the cross-entropy at a random
    share of positions (the logits at those positions, the same as the full pass gives there);
    in evaluation every position is decoded, and the chain and the latent path always cover all."""
    decoder = {**TINY_AR["decoder"], "direct_positions": 0.25}
    model = _model(weights={"direct": 1.0}, decoder=decoder)
    seq, tracks = _batch()
    with torch.no_grad():
        latent, codes = model.encode(seq, tracks), model.encode_local(seq, tracks)
        local = model.local.lookup(codes)
        full = model.decoder.forward_with_chain(seq, local, latent)
        positions = torch.tensor([3, 17, 40, 63])
        part = model.decoder.forward_with_chain(seq, local, latent, direct_positions=positions)
    assert full.direct_positions is None and full.direct_logits.shape == (5, 4, L)
    torch.testing.assert_close(part.direct_logits, full.direct_logits[:, :, positions])
    torch.testing.assert_close(part.seq_logits, full.seq_logits)
    torch.testing.assert_close(part.chain_logits, full.chain_logits)
    assert torch.equal(part.direct_positions, positions)

    drawn: list[torch.Tensor] = []
    forward = model.decoder.forward_with_chain

    def spy(*args, **kwargs):
        out = forward(*args, **kwargs)
        drawn.append(out.direct_positions)
        return out

    model.decoder.forward_with_chain = spy
    model.train()
    torch.manual_seed(1)
    model(seq, tracks)
    model(seq, tracks)
    assert all(p is not None and p.numel() == L // 4 and p.unique().numel() == L // 4 for p in drawn)
    assert not torch.equal(drawn[0], drawn[1])  # drawn anew at every step
    model.eval()
    drawn.clear()
    model(seq, tracks)
    assert drawn == [None]


def test_sampling_decodes_what_teacher_forcing_scores() -> None:
    model = _model().eval()
    seq, tracks = _batch()
    with torch.no_grad():
        latent, codes = model.encode(seq, tracks), model.encode_local(seq, tracks)
        bases, step_logits, tracks_pred = model.decode_bases(latent, codes, generator=torch.Generator().manual_seed(3))
        # Teacher forcing on the decoded bases gives the logits each step used.
        forced, _ = model.decoder(bases, model.local.lookup(codes), latent)
        greedy, greedy_logits, _ = model.decode_bases(latent, codes, sample=False)
    assert bases.shape == (5, L) and int(bases.min()) >= 0 and int(bases.max()) <= 3
    torch.testing.assert_close(step_logits, forced.float(), rtol=1e-4, atol=1e-4)
    assert torch.equal(greedy, greedy_logits.argmax(1))
    assert tracks_pred.shape == (5, 2, L)
    with pytest.raises(ValueError, match="local latent sequence"):
        model.decode_bases(latent, None)
    with pytest.raises(ValueError, match="decodes autoregressively"):
        model.decode(latent)


def test_bottleneck_bit_count() -> None:
    assert _model().local_bits_per_base == pytest.approx(4 / 8)  # 16 codes per 8 bases
    assert _model(local={"enabled": True, "codebook_size": 256}).local_bits_per_base == pytest.approx(1.0)
    assert _model(downsample=4, local={"enabled": True, "codebook_size": 16}).local_bits_per_base == pytest.approx(1.0)
    no_local = _model(local={"enabled": False})
    assert no_local.local_bits_per_base == 0.0 and no_local.local is None
    seq, tracks = _batch()
    with torch.no_grad():
        assert _model().eval().encode_local(seq, tracks).shape == (5, L // 8)
        assert no_local.eval().encode_local(seq, tracks) is None


def test_latent_dropout_and_latent_off() -> None:
    model = _model().eval()
    seq, tracks = _batch()
    with torch.no_grad():
        on, _ = model.reconstruct(seq, tracks)
        off, _ = model.reconstruct(seq, tracks, latent_off=True)
        # Latent off = the decoder with every window's keep at 0.
        direct, _ = model.decoder(seq, None, None, keep=torch.zeros(5))
    torch.testing.assert_close(off, direct)
    assert not torch.allclose(on, off)
    # In training, latent_dropout switches the latent off for a share of the windows: with a
    # dropout near 1 the training logits are (almost surely all) the no-latent chain's.
    dropped = _model(local={"enabled": True, "dim": 4, "codebook_size": 16, "latent_dropout": 0.999999})
    dropped.train()
    out = dropped(seq, tracks)
    with torch.no_grad():
        chain, _ = dropped.decoder(seq, None, None, keep=torch.zeros(5))
    torch.testing.assert_close(out.seq_logits, chain)
    assert "local_commitment" in out.losses and out.local_codes is not None

    # weights.chain trains the same chain on every window from the pass's own context
    # features: its logits are exactly the latent-off decoder's.
    model.train()
    with torch.no_grad():
        chain_logits = model.decoder.forward_with_chain(seq, None, None, keep=None).chain_logits
    torch.testing.assert_close(chain_logits, direct)
    trained = model(seq, tracks)
    assert trained.losses["chain"] > 0 and "chain_ce" in trained.metrics
    no_chain = _model(weights={"chain": 0.0}, local={**TINY_AR["local"], "latent_dropout": 0.2}).train()(seq, tracks)
    assert "chain" not in no_chain.losses
    with pytest.raises(ConfigError, match="model.weights.chain: the autoregressive decoder's chain"):
        model_settings({"decoder": {"kind": "autoregressive"}, "weights": {"chain": 0.0}})


def test_training_step_reduces_the_loss_and_anomaly_score_is_teacher_forced() -> None:
    model = _model()
    seq, tracks = _batch(16)
    labels = {"chrom": torch.randint(0, 3, (16,)), "region_class": torch.randint(0, 4, (16,))}
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for step in range(30):
        out = model(seq, tracks, labels, step=step)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        first = out.metrics["seq_ce"].item() if first is None else first
    assert out.metrics["seq_ce"].item() < first
    model.eval()
    with torch.no_grad():
        score = model.anomaly_score(seq, tracks)
        # The sequence part is the chain's code length (latent off); the tracks part goes through the latent.
        chain_logits, _ = model.chain_reconstruct(seq)
        _, tracks_pred = model.reconstruct(seq, tracks)
        w = model.settings["weights"]["tracks"]
        want = sequence_error(chain_logits, seq) + w * track_error(
            tracks_pred, tracks, model.settings["track_loss"], model.track_transform
        )
        no_chain = _model(weights={"chain": 0.0}, local={**TINY_AR["local"], "latent_dropout": 0.2}).eval()
        logits, tracks_pred = no_chain.reconstruct(seq, tracks)
        through_latent = sequence_error(logits, seq) + w * track_error(
            tracks_pred, tracks, no_chain.settings["track_loss"], no_chain.track_transform
        )
        no_chain_score = no_chain.anomaly_score(seq, tracks)
    assert score.shape == (16,) and torch.isfinite(score).all()
    assert model.chain_scores and not no_chain.chain_scores
    torch.testing.assert_close(score, want)
    torch.testing.assert_close(no_chain_score, through_latent)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {
            "decoder": {**TINY_AR["decoder"], "reach": 8, "reach_width": 8, "latent_reach": False},
            "weights": {"direct": 1.0},
        },
        {"decoder": {**TINY_AR["decoder"], "reach": 8, "reach_width": 8}},
        {"weights": {"chain": 0.0}, "local": {**TINY_AR["local"], "latent_dropout": 0.2}},
    ],
    ids=["table", "bounded_latent_path_direct_head", "latent_reach", "no_chain"],
)
def test_score_reconstruct_is_encode_reconstruct_and_the_anomaly_score_in_one_pass(overrides: dict) -> None:
    # What seqae embed computes in one pass of encoder and decoder (the chain's logits from the
    # same pass, no direct head) must be what the separate calls give.
    model = _model(**overrides).eval()
    seq, tracks = _batch(6, seed=3)
    with torch.no_grad():
        latent, logits, tracks_pred, score = model.score_reconstruct(seq, tracks)
        want_latent, want_logits, want_tracks = model.encode_reconstruct(seq, tracks)
        chain_logits = model.chain_reconstruct(seq)[0] if model.chain_scores else want_logits
        w = model.settings["weights"]["tracks"]
        want_score = sequence_error(chain_logits, seq) + w * track_error(
            want_tracks, tracks, model.settings["track_loss"], model.track_transform
        )
    torch.testing.assert_close(latent, want_latent)
    torch.testing.assert_close(logits, want_logits)
    torch.testing.assert_close(tracks_pred, want_tracks)
    torch.testing.assert_close(score, want_score)
    torch.testing.assert_close(model.anomaly_score(seq, tracks), want_score)


def test_vae_prior_samples_with_a_local_latent() -> None:
    model = _model(kind="vae").eval()
    codes, tracks = model.generate(3, generator=torch.Generator().manual_seed(0))
    assert codes.shape == (3, L) and tracks.shape == (3, 2, L)
    assert int(codes.min()) >= 0 and int(codes.max()) <= 3


def test_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="model.local.enabled: a local latent sequence needs decoder.kind"):
        model_settings({"local": {"enabled": True}})
    with pytest.raises(ConfigError, match="model.decoder.context: 9 is greater than the maximum of 8"):
        model_settings({"decoder": {"kind": "autoregressive", "context": 9}})
    with pytest.raises(ConfigError, match="model.decoder.kind"):
        model_settings({"decoder": {"kind": "wavenet"}})
    with pytest.raises(ConfigError, match="model.local.latent_dropout"):
        model_settings({"decoder": {"kind": "autoregressive"}, "local": {"enabled": True, "latent_dropout": 1.0}})


def test_swap_decoding_keeps_the_recipients_codes_and_takes_the_donors_block() -> None:
    from seqae.swap import swap_latents

    model = _model().eval()
    torch.nn.init.normal_(model.decoder.film.weight)  # the global blocks reach the logits
    seq, tracks = _batch(6)
    donors = torch.tensor([1, 0, 3, 2, 5, 4])
    with torch.no_grad():
        latent, codes = model.encode(seq, tracks), model.encode_local(seq, tracks)
        own, own_logits, _ = model.decode_bases(latent, codes, sample=False)
        swapped = swap_latents(model.layout, latent, donors, "chrom")
        moved, moved_logits, _ = model.decode_bases(swapped, codes, sample=False)
        # By hand: the recipient's codes, its own blocks but the donor's chrom block.
        by_hand = latent.clone()
        by_hand[:, model.layout.slice("chrom")] = latent[donors][:, model.layout.slice("chrom")]
        want, _, _ = model.decode_bases(by_hand, codes, sample=False)
        same, _, _ = model.decode_bases(
            swap_latents(model.layout, latent, torch.arange(6), "chrom"), codes, sample=False
        )
    assert torch.equal(moved, want) and torch.equal(same, own)
    assert not torch.allclose(moved_logits, own_logits)  # the donor's block changes how bases are rendered
