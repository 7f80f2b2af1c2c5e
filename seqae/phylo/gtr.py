"""GTR + discrete Gamma in torch: learnable, batched over families, device-agnostic.

:class:`GTRGamma` holds one substitution model per family of a batch (or one
model shared by the batch: ``n_models = 1`` broadcasts):

* base frequencies ``pi`` ``[B, 4]`` (A, C, G, T): softmax of 4 logits;
* exchangeabilities ``[B, 6]`` for AC, AG, AT, CG, CT, GT
  (:data:`~seqae.phylo.simulate.EXCHANGE_PAIRS`), GT fixed to 1 as IQ-TREE
  does; the other five are ``exp`` of free parameters;
* Gamma shape ``alpha`` ``[B]``: ``MIN_ALPHA + exp(raw)`` (IQ-TREE's lower
  bound 0.02), with ``n_categories`` equal-probability categories at their
  mean rates (Yang 1994; IQ-TREE's default, ``-gmedian`` is the other choice).

The rate matrix is normalised to one expected substitution per unit time at
equilibrium, so branch lengths are expected substitutions per site averaged
over the rate categories, as in IQ-TREE, FastTree and :mod:`seqae.phylo.simulate`.

Transition matrices are ``torch.linalg.matrix_exp`` of ``Q r_c t``: unlike an
eigendecomposition its gradient stays finite when eigenvalues coincide, which
they do at the JC69 start of every fit (three equal eigenvalues).
"""

from __future__ import annotations

import numpy as np
import torch

from seqae.phylo.simulate import EXCHANGE_PAIRS, SubstitutionModel, gamma_category_rates

__all__ = ["MIN_ALPHA", "GTRGamma", "gamma_rates"]

#: Smallest Gamma shape the model reaches (IQ-TREE's bound).
MIN_ALPHA = 0.02
#: Relative step of the central difference that gives d rates / d alpha.
_ALPHA_STEP = 1e-6


class _GammaRates(torch.autograd.Function):
    """Category rates ``[B, C]`` of shapes ``[B]``; scipy forward, central-difference backward.

    torch has no derivative of the incomplete Gamma function in its shape
    argument, which the category bounds need; a central difference in float64
    is accurate to ~1e-9 relative, far below what the fit resolves.
    """

    @staticmethod
    def forward(ctx, alpha: torch.Tensor, n_categories: int) -> torch.Tensor:
        a = alpha.detach().to("cpu", torch.float64).numpy()
        ctx.save_for_backward(alpha)
        ctx.n_categories = n_categories
        return torch.as_tensor(gamma_category_rates(a, n_categories), dtype=alpha.dtype, device=alpha.device)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (alpha,) = ctx.saved_tensors
        a = alpha.detach().to("cpu", torch.float64).numpy()
        h = _ALPHA_STEP * a
        diff = (gamma_category_rates(a + h, ctx.n_categories) - gamma_category_rates(a - h, ctx.n_categories)) / (
            2.0 * h[..., None]
        )
        d_rates = torch.as_tensor(diff, dtype=grad.dtype, device=grad.device)
        return (grad * d_rates).sum(-1), None


def gamma_rates(alpha: torch.Tensor, n_categories: int) -> torch.Tensor:
    """Differentiable mean rates of the discrete Gamma: ``[B]`` shapes -> ``[B, C]`` rates (mean 1)."""
    if n_categories == 1:
        return torch.ones(alpha.shape + (1,), dtype=alpha.dtype, device=alpha.device)
    return _GammaRates.apply(alpha, n_categories)


def _inverse_softmax(p: np.ndarray) -> np.ndarray:
    logp = np.log(p)
    return logp - logp.mean(axis=-1, keepdims=True)


class GTRGamma(torch.nn.Module):
    """GTR + Gamma(``n_categories``) substitution models for ``n_models`` families.

    Args:
        n_models: models held (one per family of a batch, or 1 shared).
        n_categories: discrete-Gamma categories; 1 = equal rates (no Gamma).
        freqs: ``[4]`` or ``[n_models, 4]`` starting frequencies (default equal).
        exchangeabilities: ``[6]`` or ``[n_models, 6]`` starting rates
            (divided by their GT value; default all 1: JC69 / F81).
        alpha: starting Gamma shape(s) (default 1.0).
        dtype, device: of the parameters.

    Parameters (``torch.nn.Parameter``; set ``requires_grad_(False)`` on any to
    keep it fixed): ``freq_logits [B, 4]``, ``log_rates [B, 5]``,
    ``log_alpha [B]`` (``alpha = MIN_ALPHA + exp(log_alpha)``).
    """

    def __init__(
        self,
        n_models: int = 1,
        n_categories: int = 4,
        freqs: np.ndarray | None = None,
        exchangeabilities: np.ndarray | None = None,
        alpha: float | np.ndarray = 1.0,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        if n_models < 1 or n_categories < 1:
            raise ValueError(f"need n_models >= 1 and n_categories >= 1, got {n_models} and {n_categories}")
        self.n_categories = int(n_categories)
        f = np.broadcast_to(np.full(4, 0.25) if freqs is None else np.asarray(freqs, dtype=np.float64), (n_models, 4))
        if np.any(f <= 0):
            raise ValueError(f"base frequencies must be positive, got {f.tolist()}")
        f = f / f.sum(axis=-1, keepdims=True)
        r = np.broadcast_to(
            np.ones(6) if exchangeabilities is None else np.asarray(exchangeabilities, dtype=np.float64), (n_models, 6)
        )
        if np.any(r <= 0):
            raise ValueError(f"exchangeabilities must be positive, got {r.tolist()}")
        a = np.broadcast_to(np.asarray(alpha, dtype=np.float64), (n_models,))
        if np.any(a <= MIN_ALPHA):
            raise ValueError(f"gamma shape alpha must be > {MIN_ALPHA}, got {a.tolist()}")

        def param(x: np.ndarray) -> torch.nn.Parameter:
            return torch.nn.Parameter(torch.as_tensor(np.array(x), dtype=dtype, device=device))

        self.freq_logits = param(_inverse_softmax(f))
        self.log_rates = param(np.log(r[:, :5] / r[:, 5:]))
        self.log_alpha = param(np.log(a - MIN_ALPHA))

    @classmethod
    def from_substitution_model(
        cls, model: SubstitutionModel, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
    ) -> GTRGamma:
        """One model with the values of a :class:`~seqae.phylo.simulate.SubstitutionModel` (no Gamma: 1 category)."""
        n_cat = model.n_categories if model.alpha is not None else 1
        return cls(1, n_cat, model.freqs, model.exchangeabilities, model.alpha or 1.0, dtype=dtype, device=device)

    def rows(self, index: torch.Tensor) -> GTRGamma:
        """The models of the families ``index`` (``int64 [b]``), as a new module holding copies of their
        parameters (for evaluation: no gradient reaches this one); itself when the model is shared."""
        if self.n_models == 1:
            return self
        part = GTRGamma(int(index.numel()), self.n_categories, dtype=self.freq_logits.dtype, device=index.device)
        with torch.no_grad():
            for name, value in self.named_parameters():
                getattr(part, name).copy_(value[index])
        return part

    @property
    def n_models(self) -> int:
        return self.freq_logits.shape[0]

    def freqs(self) -> torch.Tensor:
        """``[B, 4]`` stationary frequencies (sum 1)."""
        return torch.softmax(self.freq_logits, dim=-1)

    def exchangeabilities(self) -> torch.Tensor:
        """``[B, 6]`` rates AC, AG, AT, CG, CT, GT (GT = 1)."""
        rates = torch.exp(self.log_rates)
        return torch.cat([rates, torch.ones_like(rates[:, :1])], dim=-1)

    def alpha(self) -> torch.Tensor:
        """``[B]`` Gamma shapes."""
        return MIN_ALPHA + torch.exp(self.log_alpha)

    def category_rates(self) -> torch.Tensor:
        """``[B, C]`` relative rates of the categories (mean 1; ``[B, 1]`` of ones without Gamma)."""
        return gamma_rates(self.alpha(), self.n_categories)

    def log_category_weights(self) -> torch.Tensor:
        """``[B, C]`` log prior probabilities of the categories (equal: ``-log C``)."""
        c = self.n_categories
        return torch.full(
            (self.n_models, c), -float(np.log(c)), dtype=self.freq_logits.dtype, device=self.freq_logits.device
        )

    def rate_matrix(self) -> torch.Tensor:
        """``[B, 4, 4]`` generators Q (rows sum to 0), one expected substitution per unit time."""
        pi = self.freqs()
        rates = self.exchangeabilities()
        # Exchangeabilities into both triangles of a [B, 4, 4] matrix (zero diagonal).
        pairs = torch.tensor(EXCHANGE_PAIRS, device=pi.device)
        upper = pairs[:, 0] * 4 + pairs[:, 1]
        lower = pairs[:, 1] * 4 + pairs[:, 0]
        flat = rates.new_zeros(rates.shape[0], 16).index_add(1, upper, rates).index_add(1, lower, rates)
        sym = flat.view(-1, 4, 4)
        q = sym * pi[:, None, :]
        q = q - torch.diag_embed(q.sum(-1))
        scale = -(pi * torch.diagonal(q, dim1=-2, dim2=-1)).sum(-1)
        return q / scale[:, None, None]

    def transition_matrices(self, lengths: torch.Tensor) -> torch.Tensor:
        """P(t) = exp(Q r_c t) per branch and category.

        Args:
            lengths: ``[B, E]`` branch lengths, expected substitutions per
                site (``B`` must equal ``n_models`` or the models are one).

        Returns:
            ``[B, E, C, 4, 4]``; row ``x`` is the distribution of the child's
            base given the parent's base ``x``. Rounding below 0 is clipped.
        """
        q = self.rate_matrix()  # [Bm, 4, 4]
        rates = self.category_rates()  # [Bm, C]
        scaled = lengths[:, :, None, None, None] * rates[:, None, :, None, None] * q[:, None, None]
        return torch.linalg.matrix_exp(scaled).clamp_min(0.0)

    def substitution_model(self, index: int = 0) -> SubstitutionModel:
        """Model ``index`` as a numpy :class:`~seqae.phylo.simulate.SubstitutionModel` (plain values)."""
        with torch.no_grad():
            freqs = self.freqs()[index].cpu().double().numpy()
            rates = self.exchangeabilities()[index].cpu().double().numpy()
            alpha = float(self.alpha()[index])
        if self.n_categories == 1:
            return SubstitutionModel.gtr(rates, freqs)
        return SubstitutionModel.gtr(rates, freqs, alpha=alpha, n_categories=self.n_categories)
