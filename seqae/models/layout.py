"""Named latent blocks: which coordinates of the latent vector belong to which factor.

A latent ``z [B, D]`` is the concatenation, in insertion order, of named blocks
such as ``chrom [B, 16] | gene [B, 16] | residual [B, 32]``. Everything that
treats blocks separately (supervised and adversarial heads, per-block KL, the
per-block vector quantisers, swapping one factor between two windows) goes
through a :class:`LatentLayout` rather than through hard-coded offsets.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np
import torch
from torch import Tensor


class LatentLayout:
    """Ordered named blocks of a latent vector.

    Args:
        blocks: block name -> size (number of latent coordinates), in the order
            the blocks are laid out, e.g. ``{"chrom": 16, "gene": 16, "residual": 32}``.

    Raises:
        ValueError: no blocks, or a size that is not a positive integer.
    """

    def __init__(self, blocks: Mapping[str, int]):
        if not blocks:
            raise ValueError("a latent layout needs at least one block")
        self._slices: dict[str, slice] = {}
        offset = 0
        for name, size in blocks.items():
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise ValueError(f"latent block {name!r}: size must be a positive integer, got {size!r}")
            self._slices[name] = slice(offset, offset + size)
            offset += size
        self._dim = offset

    @property
    def dim(self) -> int:
        """Total latent size ``D`` (sum of the block sizes)."""
        return self._dim

    @property
    def names(self) -> tuple[str, ...]:
        """Block names in layout order."""
        return tuple(self._slices)

    @property
    def sizes(self) -> dict[str, int]:
        """Block name -> size, in layout order."""
        return {name: s.stop - s.start for name, s in self._slices.items()}

    def __iter__(self) -> Iterator[str]:
        return iter(self._slices)

    def __len__(self) -> int:
        return len(self._slices)

    def __contains__(self, name: object) -> bool:
        return name in self._slices

    def __repr__(self) -> str:
        return f"LatentLayout({self.sizes})"

    def slice(self, name: str) -> slice:
        """The coordinates of block ``name`` along the last latent axis.

        Raises:
            KeyError: no block of that name (the message lists the blocks).
        """
        try:
            return self._slices[name]
        except KeyError:
            raise KeyError(f"no latent block {name!r} (blocks: {', '.join(self._slices)})") from None

    def split(self, z: Tensor) -> dict[str, Tensor]:
        """Split ``z [..., D]`` into ``{name: [..., size]}`` views (no copy)."""
        self._check(z)
        return {name: z[..., s] for name, s in self._slices.items()}

    def join(self, parts: Mapping[str, Tensor]) -> Tensor:
        """Concatenate ``{name: [..., size]}`` back into ``[..., D]`` in layout order.

        Raises:
            ValueError: a block is missing, an unknown block is given, or a size is wrong.
        """
        missing = [n for n in self._slices if n not in parts]
        extra = [n for n in parts if n not in self._slices]
        if missing or extra:
            raise ValueError(f"join needs exactly the blocks {list(self._slices)}; missing {missing}, unknown {extra}")
        for name, s in self._slices.items():
            if parts[name].shape[-1] != s.stop - s.start:
                raise ValueError(f"block {name!r} has size {parts[name].shape[-1]}, expected {s.stop - s.start}")
        return torch.cat([parts[name] for name in self._slices], dim=-1)

    def swap(self, z_a: Tensor, z_b: Tensor, block: str) -> Tensor:
        """``z_a`` with block ``block`` replaced by ``z_b``'s (a new tensor; inputs untouched).

        ``z_a`` and ``z_b`` are ``[..., D]`` and broadcast against each other,
        so one donor ``z_b [D]`` can be swapped into a whole batch.
        """
        self._check(z_a)
        self._check(z_b)
        s = self.slice(block)
        shape = torch.broadcast_shapes(z_a.shape, z_b.shape)
        out = z_a.expand(shape).clone()
        out[..., s] = z_b.expand(shape)[..., s]
        return out

    def _check(self, z: Tensor) -> None:
        if z.shape[-1] != self._dim:
            raise ValueError(f"latent has size {z.shape[-1]} on its last axis; this layout has D = {self._dim}")


def nested_labels(codes: Mapping[str, np.ndarray]) -> list[tuple[str, str]]:
    """Pairs ``(fine, coarse)`` of label columns where each class of ``fine`` has one class of ``coarse``.

    A chromosome named ``<species>:<chrom>`` tells its species; a latent block
    that must tell the chromosome cannot be kept from telling the species, and
    a species block kept from every chromosome class loses the species with
    them. So the model guards no block against a label nested with its own
    (:class:`~seqae.models.autoencoder.SequenceAutoencoder`'s ``nested_labels``).

    Args:
        codes: label column -> ``int [N]`` class codes of the same N windows, -1 unknown.

    Returns:
        ``(fine, coarse)`` pairs, judged on the windows where both are known;
        a pair of columns that determine each other appears both ways.
        Columns with fewer than two known classes are left out.
    """
    arrays = {name: np.asarray(c) for name, c in codes.items()}
    out: list[tuple[str, str]] = []
    for fine, a in arrays.items():
        for coarse, b in arrays.items():
            if fine == coarse:
                continue
            known = (a >= 0) & (b >= 0)
            pairs = np.unique(np.stack([a[known], b[known]]), axis=1)  # [2, distinct (fine, coarse) pairs]
            n_fine, n_coarse = len(np.unique(pairs[0])), len(np.unique(pairs[1]))
            if n_fine >= 2 and n_coarse >= 2 and n_fine == pairs.shape[1]:
                out.append((fine, coarse))
    return out
