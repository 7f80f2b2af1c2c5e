"""Two-level latent and its decoder: a latent *sequence* (one VQ code per stride) plus global blocks,
rendered base by base by a decoder that reads only a bounded context of k previous bases.

Why this shape. A global latent of about 64 numbers cannot carry 1000 bases,
so a decoder that reads only it renders base composition and little else.
Here the decoder gets two things besides the latent:

* **a bounded local context**: the k previous bases (``decoder.context``),
  looked up in a table of ``4^k`` learnt vectors. With the latent switched
  off the decoder is an order-k Markov chain learnt from the training
  windows, so the anomaly score starts at the Markov baseline;
* optionally **a longer reach** (``decoder.reach`` bases, e.g. 128): a causal
  dilated convolution over the previous bases (kernel 2, dilations 1, 2, 4,
  ..., as WaveNet), so repeat copies and motifs already begun are read by the
  decoder itself. With it the latent-off decoder is an order-``reach`` neural
  chain instead of an order-k table. Where the latent path reads the reach
  too (``latent_reach``), the latent's contribution is what it adds on top
  of that chain; where it reads only the table, the latent path stays a
  bounded-context decoder measured against a learnt order-k chain, and the
  chain over the reach is the anomaly score beside it;
* **a local latent**: one code from ``local.codebook_size`` per
  ``downsample`` bases (``log2(K) / downsample`` bits per base), read from the
  encoder's features at that stride. Whatever lies beyond k bases (repeat
  copies, motifs in register) has to come through it;
* **the global blocks** (chrom, gene, residual, ...) modulate every position
  (FiLM), so swapping a block changes how the whole window is rendered.

``latent_dropout`` switches the whole latent (local and global) off for a
share of training windows, so the same decoder also learns its no-latent
order-k chain. The latent's own contribution is then exact: the per-base
log-likelihood with the latent minus without it
(:meth:`ContextDecoder.forward` with ``keep`` zero), on real windows and on
their shuffles.

Teacher forcing gives every position's logits in one parallel pass;
:meth:`ContextDecoder.sample` decodes from the latent alone, base after
base, for swaps and prior samples. An optional **direct head** rebuilds
every base from the latent alone in one parallel pass: the reconstruction
at the bottleneck, which neither teacher forcing (it sees the true previous
bases) nor free-running decoding (its first errors compound) measures.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from seqae.alphabet import one_hot
from seqae.models.latent_conditioning import LatentConditioningMixin
from seqae.models.latent_decoding import LatentDecodingMixin
from seqae.models.quantize import QuantizerOutput, VectorQuantizer

__all__ = ["CausalReach", "ContextDecoder", "DecoderPass", "LocalLatent", "context_index"]


class DecoderPass(NamedTuple):
    """Everything one teacher-forced pass of :class:`ContextDecoder` gives (logits ``[B, 4, L]``, tracks ``[B, T, L]``).

    ``chain_logits``: the decoder's own chain (latent off) over the table and
    the reach; ``baseline_logits``: the latent path with its latent off, when
    that differs from the chain (``latent_reach`` false: an order-k chain);
    ``direct_logits``: every base from the latent alone, without any previous
    base (``direct``). Each is None where not computed or not built.
    ``direct_positions``: ``int64 [M]`` the positions at which ``direct_logits``
    were computed (they are then ``[B, 4, M]``); None: every position.
    """

    seq_logits: Tensor
    tracks_pred: Tensor
    chain_logits: Tensor | None
    baseline_logits: Tensor | None
    direct_logits: Tensor | None
    direct_positions: Tensor | None = None


def context_index(seq: Tensor, k: int) -> Tensor:
    """Index of each position's k previous bases in a ``4^k + 1`` table: ``int [B, L] -> int64 [B, L]``.

    The previous bases ``x[i-k] .. x[i-1]`` give ``sum_j x[i-j] 4^(j-1)``. A
    context that reaches before the window or holds an N (code >= 4) gets the
    last row, ``4^k`` (an unknown context). ``k = 0`` gives row 0 everywhere
    (no context: the decoder reads the latent only).
    """
    codes = seq.long()
    if k == 0:
        return torch.zeros_like(codes)
    length = codes.shape[1]
    padded = F.pad(codes, (k, 0), value=4)
    index = torch.zeros_like(codes)
    valid = torch.ones_like(codes, dtype=torch.bool)
    for j in range(1, k + 1):  # k <= 8 passes, each vectorised over windows and positions
        part = padded[:, k - j : k - j + length]
        index += part.clamp(0, 3) * (4 ** (j - 1))
        valid &= part < 4
    return torch.where(valid, index, torch.full_like(index, 4**k))


class LocalLatent(nn.Module):
    """Encoder features at stride s -> one VQ code per position: ``[B, C, L'] -> [B, dim, L']``.

    Args:
        channels: C, the encoder's feature width.
        dim: width of each code vector.
        codebook_size: K codes; the latent carries ``log2(K) / s`` bits per base.
        quantizer: further keyword arguments of its :class:`~seqae.models.quantize.VectorQuantizer`
            (one group): how the codebook trains (:func:`~seqae.models.quantize.training_options`).
    """

    def __init__(self, channels: int, dim: int, codebook_size: int, **quantizer: Any):
        super().__init__()
        self.dim = dim
        self.proj = nn.Conv1d(channels, dim, 1)
        self.quantizer = VectorQuantizer(dim, codebook_size, 1, **quantizer)

    def forward(self, features: Tensor, update: bool) -> QuantizerOutput:
        """Quantise every position: a :class:`~seqae.models.quantize.QuantizerOutput` whose ``quantized``
        is ``float32 [B, dim, L']`` (straight-through gradient) and ``codes`` ``int64 [B, L']``; the
        commitment loss, perplexity and usage are over all positions of the batch."""
        z = self.proj(features)  # [B, dim, L']
        batch, dim, length = z.shape
        out = self.quantizer(z.transpose(1, 2).reshape(batch * length, dim), update=update)
        out.quantized = out.quantized.view(batch, length, dim).transpose(1, 2)
        out.codes = out.codes.view(batch, length)
        return out

    def lookup(self, codes: Tensor) -> Tensor:
        """Code indices ``int64 [B, L']`` -> code vectors ``float32 [B, dim, L']``."""
        batch, length = codes.shape
        return self.quantizer.lookup(codes.reshape(-1, 1)).view(batch, length, self.dim).transpose(1, 2)

    def code_frequencies(self) -> Tensor:
        """``float32 [K]``: the codebook's running usage (EMA counts), normalised; the prior of :meth:`ContextDecoder.sample`."""
        counts = self.quantizer.ema_count[0].float().clamp_min(0)
        return counts / counts.sum().clamp_min(1e-12)


class CausalReach(nn.Module):
    """Causal dilated convolutions over the previous bases: ``int [B, L] -> float [B, L, H]``.

    Position i reads ``x[i - reach] .. x[i - 1]`` (never ``x[i]``): the input is
    the one-hot of the previous base (zeros before the window and for N), then
    ``log2(reach)`` residual layers, each a kernel-2 convolution at dilation
    1, 2, 4, ..., ``reach / 2`` followed by a 1x1 convolution.

    :meth:`step` runs the same network one position at a time with a buffer of
    each layer's last ``dilation`` inputs (as "fast WaveNet"), so free-running
    decoding costs one layer evaluation per base and layer, not a whole pass.

    Args:
        reach: bases read, a power of two >= 2.
        width: C, channels of the convolutions.
        hidden: H, width of the output (the decoder's width).
    """

    def __init__(self, reach: int, width: int, hidden: int):
        super().__init__()
        if reach < 2 or reach & (reach - 1):
            raise ValueError(f"reach must be a power of two >= 2, got {reach}")
        self.reach = reach
        self.width = width
        self.dilations = [2**i for i in range(reach.bit_length() - 1)]
        self.inp = nn.Linear(4, width)
        self.dilated = nn.ModuleList(nn.Conv1d(width, width, 2, dilation=d) for d in self.dilations)
        self.mix = nn.ModuleList(nn.Conv1d(width, width, 1) for _ in self.dilations)
        self.out = nn.Linear(width, hidden)

    def _onehot(self, bases: Tensor) -> Tensor:
        """``int [...]`` -> ``float [..., 4]``; N (code >= 4) and the start are all-zero rows."""
        return one_hot(bases, self.inp.weight.dtype)

    def forward(self, seq: Tensor) -> Tensor:
        """``int [B, L]`` base codes -> ``float [B, L, H]``, position i from bases before i only."""
        previous = F.pad(seq.long(), (1, -1), value=4)  # x[i-1] at i; the start reads as N
        h = self.inp(self._onehot(previous)).transpose(1, 2)  # [B, C, L]
        for d, conv, mix in zip(self.dilations, self.dilated, self.mix):
            h = h + mix(F.gelu(conv(F.pad(h, (d, 0)))))
        return self.out(h.transpose(1, 2))

    def start(self, batch: int, device: torch.device) -> list[Tensor]:
        """Empty buffers for :meth:`step`: per layer ``float [d, B, C]`` of zeros (the causal padding)."""
        dtype = self.inp.weight.dtype
        return [torch.zeros(d, batch, self.width, device=device, dtype=dtype) for d in self.dilations]

    def step(self, previous: Tensor, position: int, buffers: list[Tensor]) -> Tensor:
        """One position: ``previous`` ``int [B]`` (the base at ``position - 1``, or 4 at the start) -> ``[B, H]``.

        ``buffers`` (from :meth:`start`) are updated in place; call with
        positions 0, 1, 2, ... in order.
        """
        h = self.inp(self._onehot(previous))  # [B, C]
        for d, conv, mix, buffer in zip(self.dilations, self.dilated, self.mix, buffers):
            slot = position % d
            past = buffer[slot].clone()  # the layer's input at position - d (zeros before the window)
            buffer[slot] = h
            z = past @ conv.weight[:, :, 0].T + h @ conv.weight[:, :, 1].T + conv.bias
            h = h + F.gelu(z) @ mix.weight[:, :, 0].T + mix.bias
        return self.out(h)


class _Layer(nn.Module):
    """Residual MLP at each position, layer-normalised over channels per position (so one decoding step equals the parallel pass)."""

    def __init__(self, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(hidden, 2 * hidden)
        self.fc2 = nn.Linear(2 * hidden, hidden)

    def forward(self, h: Tensor) -> Tensor:
        """``h [..., H]`` (channels last) -> same shape."""
        normed = F.layer_norm(h, h.shape[-1:])
        return h + self.fc2(F.gelu(self.fc1(normed)))


class ContextDecoder(LatentConditioningMixin, LatentDecodingMixin, nn.Module):
    """Per-base logits from a bounded context of previous bases, a local latent sequence and global blocks.

    Layout (H = ``hidden``, s = ``stride``; channels last inside)::

        context  [B, L]    -> table of 4^k + 1 vectors (+ CausalReach over ``reach`` bases) -> c [B, L, H]
        local    [B, d, L']-> conv (k=3) and latent_layers dilated residual convs at stride s, repeat each s times,
                              + a learnt vector per phase within the stride -> u [B, L, H]
        global   [B, D]    -> linear                                      -> (gamma, beta) [B, H]
        h = (c + u) * (1 + gamma) + beta
        -> n_layers residual per-position MLPs -> linear -> logits [B, 4, L]
        chain (latent off): c -> n_layers MLPs of its own -> linear -> logits [B, 4, L]
        latent_reach false: the latent path reads the table alone (c_k), and its latent-off
                              counterpart is the order-k chain, a table of 4^k + 1 logit rows
        direct (optional):  u * (1 + gamma) + beta -> n_layers MLPs -> linear -> logits [B, 4, L]
        tracks: conv (k=5) over u (zero where keep is 0), FiLM'd as h, -> [B, T, L]

    ``keep`` (``[B]``, 1 or 0) switches the whole latent off for a window (its logits are the chain's): the
    logits are then a function of the k previous bases only, an order-k chain.

    The latent side (u, gamma, beta, the tracks and the direct head) is
    :class:`~seqae.models.latent_conditioning.LatentConditioningMixin`'s; decoding from the latent alone
    (:meth:`sample`, :meth:`direct_forward`) is :class:`~seqae.models.latent_decoding.LatentDecodingMixin`'s.

    Args:
        window_len: L (bp).
        stride: s, bases per local code (the encoder's ``downsample``).
        local_dim: d, width of the local code vectors (0: no local latent).
        global_dim: D, size of the global latent (0: none).
        n_tracks: T.
        context: k previous bases read (0 to 8).
        hidden: H.
        n_layers: residual MLPs after the sum.
        latent_layers: dilated residual convs (dilations 1, 2, 4, ...) over the local codes.
        reach: bases read by a causal dilated convolution besides the table (0: none; else a power of two).
        reach_width: channels of that convolution.
        latent_reach: the latent path reads the reach too (True), or only the k-base table (False: whatever
            lies beyond k bases has to come through the latent, and its no-latent counterpart is a learnt
            order-k chain, ``order_k``, while the chain over the reach stays the anomaly score).
        direct: also decode every base from the latent alone in one parallel pass (no previous bases):
            the reconstruction at the bottleneck, trained by ``weights.direct``.
    """

    def __init__(
        self,
        window_len: int,
        stride: int,
        local_dim: int,
        global_dim: int,
        n_tracks: int,
        context: int = 5,
        hidden: int = 128,
        n_layers: int = 2,
        latent_layers: int = 3,
        reach: int = 0,
        reach_width: int = 64,
        latent_reach: bool = True,
        direct: bool = False,
    ):
        super().__init__()
        if not 0 <= context <= 8:
            raise ValueError(f"context must be 0 to 8 bases, got {context}")
        self.window_len = window_len
        self.stride = stride
        self.local_dim = local_dim
        self.global_dim = global_dim
        self.n_tracks = n_tracks
        self.context = context
        self.hidden = hidden
        self.n_contexts = 4**context + 1
        self.context_table = nn.Embedding(self.n_contexts, hidden)
        self.reach = CausalReach(reach, reach_width, hidden) if reach else None
        self.latent_reach = bool(latent_reach) or self.reach is None
        # Without the reach, the latent path's no-latent counterpart is an order-k chain: a
        # table of next-base logits per context, which cross-entropy fits to the training
        # windows' conditional frequencies (the maximum-likelihood order-k Markov chain).
        self.order_k = None if self.latent_reach else nn.Embedding(self.n_contexts, 4)
        self.local_in = nn.Conv1d(local_dim, hidden, 3, padding=1) if local_dim else None
        # Dilated residual convs over the code sequence (at 1/stride resolution, cheap): each
        # base's conditioning sees codes 2^(n+1) strides around it, so a repeat or motif spread
        # over several codes can be recognised as a whole.
        self.latent_tower = nn.ModuleList(
            nn.Conv1d(hidden, hidden, 3, padding=2**i, dilation=2**i) for i in range(latent_layers if local_dim else 0)
        )
        self.phase = nn.Parameter(torch.zeros(stride, hidden))
        self.film = nn.Linear(global_dim, 2 * hidden) if global_dim else None
        if self.film is not None:
            nn.init.zeros_(self.film.weight)
            nn.init.zeros_(self.film.bias)
        self.layers = nn.ModuleList(_Layer(hidden) for _ in range(n_layers))
        self.seq_head = nn.Linear(hidden, 4)
        # The chain (latent off) has per-position MLPs of its own: sharing them with the
        # latent path made the chain learn several times more slowly (the shared layers
        # follow the latent, which explains far more of each base).
        self.chain_layers = nn.ModuleList(_Layer(hidden) for _ in range(n_layers))
        self.chain_head = nn.Linear(hidden, 4)
        self.track_conv = nn.Conv1d(hidden, hidden, 5, padding=2) if n_tracks else None
        self.track_head = nn.Linear(hidden, n_tracks) if n_tracks else None
        # The bottleneck's own reconstruction: every base from the codes and the global
        # blocks alone. Teacher-forced logits see the true previous bases and free-running
        # decoding compounds its first errors, so neither says what the latent holds.
        self.direct_layers = nn.ModuleList(_Layer(hidden) for _ in range(n_layers)) if direct else None
        self.direct_head = nn.Linear(hidden, 4) if direct else None

    def _head(self, h: Tensor) -> Tensor:
        for layer in self.layers:
            h = layer(h)
        return self.seq_head(F.layer_norm(h, h.shape[-1:]))

    def _chain(self, c: Tensor) -> Tensor:
        """Logits ``[B, L, 4]`` of the decoder's own chain from the context features ``c [B, L, H]`` alone."""
        for layer in self.chain_layers:
            c = layer(c)
        return self.chain_head(F.layer_norm(c, c.shape[-1:]))

    # ------------------------------------------------------------------ decoding

    def forward(
        self, seq: Tensor, local: Tensor | None, global_latent: Tensor | None, keep: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Teacher-forced pass: every position's logits given the true previous bases.

        Args:
            seq: ``int [B, L]`` the window's base codes (the target; only previous bases are read).
            local: ``float [B, d, L']`` local code vectors, or None.
            global_latent: ``float [B, D]``, or None.
            keep: ``[B]`` 1 = use the latent, 0 = switch it off (None: all 1).

        Returns:
            ``(seq_logits [B, 4, L], tracks_pred [B, T, L])``.
        """
        # The direct head's logits are not returned here: not computing them saves a third of the pass.
        out = self.forward_with_chain(seq, local, global_latent, keep, chain=False, direct=False)
        return out.seq_logits, out.tracks_pred

    def _context_features(self, seq: Tensor, chain: bool = True) -> tuple[Tensor, Tensor | None, Tensor]:
        """``int [B, L]`` -> (context index ``int64 [B, L]``, the chain's features ``[B, L, H]`` (table and
        reach; None when ``chain`` is False and the latent path does not read them), the latent path's
        features ``[B, L, H]`` (the same, or the table alone))."""
        index = context_index(seq, self.context)
        table = self.context_table(index)
        if self.reach is None:
            return index, table, table
        if not chain and not self.latent_reach:
            return index, None, table  # the reach, the costliest part, is not run for nothing
        features = table + self.reach(seq)
        return index, features, (features if self.latent_reach else table)

    def chain_forward(self, seq: Tensor) -> tuple[Tensor, Tensor]:
        """The decoder's own chain (latent off) over the table and the reach, alone:
        ``(seq_logits [B, 4, L], tracks_pred [B, T, L])``, without running the latent path."""
        batch = seq.shape[0]
        u, gamma, beta = self._conditioning(None, None, torch.zeros(batch, device=seq.device), batch, seq.device)
        _, c, _ = self._context_features(seq)
        assert c is not None
        return self._chain(c).transpose(1, 2), self._tracks(u, gamma, beta)

    def baseline_forward(self, seq: Tensor) -> tuple[Tensor, Tensor]:
        """The latent path with its latent off: :meth:`chain_forward`, or the order-k chain where the
        latent path reads only the table (``latent_reach`` false). ``(seq_logits [B, 4, L], tracks_pred)``."""
        if self.order_k is None:
            return self.chain_forward(seq)
        batch = seq.shape[0]
        u, gamma, beta = self._conditioning(None, None, torch.zeros(batch, device=seq.device), batch, seq.device)
        logits = self.order_k(context_index(seq, self.context))
        return logits.transpose(1, 2), self._tracks(u, gamma, beta)

    def forward_with_chain(
        self,
        seq: Tensor,
        local: Tensor | None,
        global_latent: Tensor | None,
        keep: Tensor | None = None,
        chain: bool = True,
        direct: bool = True,
        direct_positions: Tensor | None = None,
    ) -> DecoderPass:
        """:meth:`forward`, plus the same windows' logits with the latent off (``chain``) and from the latent
        alone (``direct``, with a direct head; False skips it where no caller reads it).

        The no-latent logits reuse the context features of the pass (only the
        chain's own per-position MLPs run besides), so training the decoder's
        own chain on every window costs a fraction of a second pass.
        ``direct_positions`` (``int64 [M]``): compute the direct head's logits at these
        positions only (its per-position MLPs are most of its cost).
        """
        batch = seq.shape[0]
        u, gamma, beta = self._conditioning(local, global_latent, keep, batch, seq.device)
        need_off = chain or keep is not None
        index, c, c_latent = self._context_features(seq, chain=need_off)
        # The context features belong to the chain: the latent path reads them but does not
        # train them, so the chain, the baseline of the latent's contribution, is the same
        # model whatever the latent learns.
        h = (c_latent.detach() + u) * (1 + gamma) + beta
        seq_logits = self._head(h).transpose(1, 2)
        chain_logits = self._chain(c).transpose(1, 2) if (need_off and c is not None) else None
        baseline_logits = None
        if need_off and self.order_k is not None:
            baseline_logits = self.order_k(index).transpose(1, 2)
        if keep is not None:
            # A window with its latent off is decoded by the latent path's no-latent counterpart.
            off = baseline_logits if baseline_logits is not None else chain_logits
            assert off is not None
            seq_logits = torch.where(keep.view(-1, 1, 1) > 0, seq_logits, off.to(seq_logits.dtype))
        direct_logits = None
        if direct:
            direct_logits = self._direct(u if direct_positions is None else u[:, direct_positions], gamma, beta)
        return DecoderPass(
            seq_logits,
            self._tracks(u, gamma, beta),
            chain_logits if chain else None,
            baseline_logits if chain else None,
            None if direct_logits is None else direct_logits.transpose(1, 2),
            None if direct_logits is None else direct_positions,
        )
