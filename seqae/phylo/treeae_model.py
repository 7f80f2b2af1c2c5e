"""The network of the tree autoencoder (:mod:`seqae.phylo.treeae`): encoder, latent geometry, decoders.

:class:`TreeAutoencoder` maps one-hot rows ``[n, L, 4]`` of a family to
latent points ``z [n, k]``, reads latent distances ``[n, n]`` between them
in one of :data:`seqae.phylo.settings.GEOMETRIES` (scaled by a learned factor to the distance
target's units, differences per site for p-distances), and decodes
log-probabilities or logits ``[n, L, 4]`` back. Why the geometries and
decoders are what they are, and how they are trained: :mod:`seqae.phylo.treeae`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["TreeAutoencoder"]

#: Largest norm of a Poincaré point, as a fraction of the ball's radius.
_BALL_EDGE = 1.0 - 1e-5


def _expmap0(v: torch.Tensor, c: float) -> torch.Tensor:
    """Tangent vector at the origin -> point of the Poincaré ball (norm < 1/sqrt(c))."""
    sc = math.sqrt(c)
    norm = v.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return torch.tanh(sc * norm) * v / (sc * norm) * _BALL_EDGE


def _logmap0(z: torch.Tensor, c: float) -> torch.Tensor:
    sc = math.sqrt(c)
    norm = z.norm(dim=-1, keepdim=True).clamp(1e-12, _BALL_EDGE / sc)
    return torch.atanh(sc * norm) * z / (sc * norm)


def _latent_distances(z: torch.Tensor, geometry: str, c: float) -> torch.Tensor:
    """``[n, k]`` -> ``[n, n]`` distances (zero diagonal, finite gradients)."""
    eye = torch.eye(z.shape[0], dtype=torch.bool, device=z.device)
    sq = (z * z).sum(-1)
    if geometry == "sqeuclidean":
        # Gram form: O(n^2) memory for any k (no square root, so rounding
        # near zero is harmless once clamped).
        return (sq[:, None] + sq[None, :] - 2.0 * z @ z.T).clamp_min(0.0).masked_fill(eye, 0.0)
    # Differences, not |a|^2 + |b|^2 - 2ab: no cancellation for close points
    # (the square root's gradient would blow up).
    d2 = (z[:, None, :] - z[None, :, :]).pow(2).sum(-1)
    if geometry == "euclidean":
        return torch.sqrt(d2.masked_fill(eye, 1.0).clamp_min(1e-12)).masked_fill(eye, 0.0)
    if geometry == "l1":
        # |a| smoothed as sqrt(a^2 + eps): a finite gradient where coordinates tie.
        return torch.sqrt((z[:, None, :] - z[None, :, :]).pow(2) + 1e-12).sum(-1).masked_fill(eye, 0.0)
    room = (1.0 - c * sq).clamp_min(1e-10)
    arg = 1.0 + 2.0 * c * d2 / (room[:, None] * room[None, :])
    # acosh(x) = log(x + sqrt(x^2 - 1)); guard the diagonal (x = 1) for gradients.
    arg = arg.masked_fill(eye, 2.0).clamp_min(1.0 + 1e-7)
    return (torch.acosh(arg) / math.sqrt(c)).masked_fill(eye, 0.0)


# ---------------------------------------------------------------- model


class TreeAutoencoder(nn.Module):
    """Encoder, latent geometry and decoder of one family.

    The encoder's input is the one-hot row, centred on the family's profile
    and whitened by the family's principal axes (a fixed linear map, set by
    :meth:`fit_whitening`; like batch normalisation, it only rescales the
    input). Without it, gradient descent through the encoder resolves the
    large-scale structure of the family first and the short branches last
    (their input directions have the smallest variance), so cherries stay
    unresolved for thousands of steps.

    Args:
        n_sites: alignment length ``L``.
        n_components: width of the whitened input (``<= n - 1``).
        latent_dim: ``k``.
        hidden: MLP width.
        encoder_depth: hidden layers of the encoder (0: linear).
        geometry: one of :data:`seqae.phylo.settings.GEOMETRIES`.
        curvature: ``c`` of the ball.

    ``encode(x [n, L, 4]) -> z [n, k]``; ``distances(z) -> [n, n]`` (scaled
    to the target's units); ``decode(z) -> logits [n, L, 4]`` (the decoder
    also sees the learned family context vector).
    """

    def __init__(self, n_sites: int, n_components: int, latent_dim: int = 16, hidden: int = 128,
                 encoder_depth: int = 2, geometry: str = "euclidean", curvature: float = 1.0):  # fmt: skip
        super().__init__()
        self.n_sites = n_sites
        self.geometry = geometry
        self.curvature = curvature
        self.register_buffer("offset", torch.zeros(4 * n_sites))
        self.register_buffer("projection", torch.zeros(4 * n_sites, n_components))
        layers: list[nn.Module] = []
        width = n_components
        for _ in range(encoder_depth):
            layers += [nn.Linear(width, hidden), nn.GELU()]
            width = hidden
        self.encoder = nn.Sequential(*layers)
        self.to_latent = nn.Linear(width, latent_dim)
        self.context = nn.Parameter(torch.zeros(hidden))
        self.decoder = nn.Sequential(nn.Linear(latent_dim + hidden, hidden), nn.GELU(), nn.Linear(hidden, 4 * n_sites))
        # Small initial latents: the ball's centre is flat, and stress fits
        # start from a compact configuration.
        nn.init.normal_(self.to_latent.weight, std=1e-2 / math.sqrt(max(width, 1)) * 4)
        nn.init.zeros_(self.to_latent.bias)
        self.log_scale = nn.Parameter(torch.zeros(()))
        self.rel_log_beta = nn.Parameter(torch.tensor(math.log(10.0)))
        self.rel_log_rate = nn.Parameter(torch.zeros(()))

    @torch.no_grad()
    def fit_whitening(self, onehot: torch.Tensor) -> None:
        """Set the input map from the family ``[n, L, 4]``: centre, rotate to principal axes, unit variance."""
        x = onehot.flatten(1).double()
        mean = x.mean(dim=0)
        _, sv, vh = torch.linalg.svd(x - mean, full_matrices=False)
        # A family of few sites has fewer axes (4 L) than components (n - 1): the rest stay zero.
        r = min(self.projection.shape[1], vh.shape[0])
        # Identical sequences vary along no axis (every singular value 0): their inputs stay 0, not 0/0.
        scale = math.sqrt(x.shape[0]) / sv[:r].clamp_min(max(1e-6 * float(sv[0]), 1e-12))
        self.offset.copy_(mean.float())
        self.projection.zero_()
        self.projection[:, :r] = (vh[:r].T * scale).float()

    def encode(self, onehot: torch.Tensor) -> torch.Tensor:
        u = (onehot.flatten(1) - self.offset) @ self.projection
        v = self.to_latent(self.encoder(u))
        return _expmap0(v, self.curvature) if self.geometry == "poincare" else v

    def distances(self, z: torch.Tensor) -> torch.Tensor:
        return _latent_distances(z, self.geometry, self.curvature) * self.log_scale.exp()

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """MLP decoder: latent + family context vector -> logits ``[n, L, 4]``."""
        tangent = _logmap0(z, self.curvature) if self.geometry == "poincare" else z
        inp = torch.cat([tangent, self.context.expand(z.shape[0], -1)], dim=-1)
        return self.decoder(inp).view(z.shape[0], self.n_sites, 4)

    def decode_relatives(self, dist: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
        """Relatives decoder: log-probabilities ``[n, L, 4]`` of each sequence from the others.

        Sequence ``i`` is predicted from the family context (the other
        sequences) weighted by latent proximity, each relative's base
        mutated over their latent distance (Jukes–Cantor)::

            P(x_is = a) ∝ sum_{j != i} w_ij [(1 - e_ij) 1(x_js = a) + e_ij / 4],
            w_i. = softmax_j(-beta d_ij),  e_ij = 1 - exp(-rate d_ij)

        with learned ``beta`` and ``rate``. Relatives with a gap at ``s``
        drop out of that site. Cost: one ``[n, n] x [n, 4L]`` product.
        """
        n = dist.shape[0]
        eye = torch.eye(n, dtype=torch.bool, device=dist.device)
        w = torch.softmax((-self.rel_log_beta.exp() * dist).masked_fill(eye, float("-inf")), dim=1)
        e = 1.0 - torch.exp(-self.rel_log_rate.exp() * dist)
        valid = onehot.sum(-1)  # [n, L]
        numer = ((w * (1.0 - e)) @ onehot.flatten(1)).view(n, self.n_sites, 4)
        numer = numer + 0.25 * ((w * e) @ valid)[:, :, None]
        return torch.log(numer.clamp_min(1e-12)) - torch.log(numer.sum(-1, keepdim=True).clamp_min(1e-12))
