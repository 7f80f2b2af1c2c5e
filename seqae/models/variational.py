"""VAE bottleneck: Gaussian posterior per latent coordinate, reparameterisation, KL per block, prior samples."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from seqae.models.layout import LatentLayout


def reparameterize(mean: Tensor, logvar: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Sample ``z = mean + exp(logvar / 2) * eps`` with ``eps ~ N(0, I)``; differentiable in mean and logvar."""
    eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    return mean + torch.exp(0.5 * logvar) * eps


def kl_standard_normal(mean: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mean, exp(logvar)) || N(0, 1)) per coordinate (nats), same shape as ``mean``.

    ``0.5 * (mean^2 + exp(logvar) - 1 - logvar)``: zero exactly when mean = 0 and logvar = 0.
    """
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar)


@dataclass
class VariationalOutput:
    """Result of :meth:`GaussianBottleneck.forward`; all float32.

    Attributes:
        z: ``[B, D]``, a posterior sample (training) or the mean (``sample=False``).
        mean: ``[B, D]`` posterior means (the deterministic embedding).
        logvar: ``[B, D]`` posterior log-variances (clamped).
        kl: ``[B]`` KL to the prior summed over all coordinates (nats per window).
        kl_blocks: block name -> ``[B]`` KL summed over that block's coordinates.
    """

    z: Tensor
    mean: Tensor
    logvar: Tensor
    kl: Tensor
    kl_blocks: dict[str, Tensor]


class GaussianBottleneck(nn.Module):
    """Turns an encoder output ``[B, 2D]`` (means, then log-variances) into a sampled latent.

    Args:
        layout: the latent blocks (D = ``layout.dim``).
        logvar_min, logvar_max: clamp of the log-variance, so that ``exp`` never
            overflows and a collapsed coordinate keeps a usable gradient.
    """

    def __init__(self, layout: LatentLayout, logvar_min: float = -10.0, logvar_max: float = 10.0):
        super().__init__()
        self.layout = layout
        self.logvar_min = logvar_min
        self.logvar_max = logvar_max

    @property
    def dim(self) -> int:
        """D."""
        return self.layout.dim

    def forward(self, h: Tensor, sample: bool = True, generator: torch.Generator | None = None) -> VariationalOutput:
        """``h [B, 2D]`` -> :class:`VariationalOutput` (computed in float32, also under autocast)."""
        if h.shape[-1] != 2 * self.dim:
            raise ValueError(f"expected [B, {2 * self.dim}] (means and log-variances), got {tuple(h.shape)}")
        with torch.autocast(device_type=h.device.type, enabled=False):
            h = h.float()
            mean, logvar = h[:, : self.dim], h[:, self.dim :].clamp(self.logvar_min, self.logvar_max)
            z = reparameterize(mean, logvar, generator) if sample else mean
            kl_coord = kl_standard_normal(mean, logvar)
            kl_blocks = {name: part.sum(-1) for name, part in self.layout.split(kl_coord).items()}
        return VariationalOutput(z, mean, logvar, kl_coord.sum(-1), kl_blocks)

    def sample_prior(
        self, n: int, generator: torch.Generator | None = None, device: torch.device | str | None = None
    ) -> Tensor:
        """``n`` draws from the prior N(0, I): ``float32 [n, D]`` (on ``generator``'s device unless ``device`` is given)."""
        if device is None:
            device = generator.device if generator is not None else "cpu"
        return torch.randn(n, self.dim, generator=generator, device=device)
