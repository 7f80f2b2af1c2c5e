"""A phylogeny discriminator: does this metric look like the path lengths of a real tree?

The tree autoencoder (:mod:`seqae.phylo.treeae`) reads its tree from the
pairwise distances of its latent points. The discriminator here is trained on
*reference trees*: the user's real trees, if any, and simulated birth–death
and coalescent trees with varied extinction, relaxed clocks and heights, as
the lecture notes propose ("a discriminator trained on real trees tells
whether the vector in the middle is a tree"). Its negatives are metrics that
are not trees (:func:`non_tree_metrics`: noisy tree metrics, Euclidean point
clouds, shuffled distances) and, in the adversarial game, the latent metric.

Why not train it on the latent alone: one family has *one* latent metric, and
a discriminator fitted against a single matrix memorises it. Measured on 50
taxa: even the noise-free metric of the family's *true* tree is then separated
from the references with AUC 0.98–0.99. A judge fitted on real trees vs non-trees
instead scores the true tree's metric like a reference (AUC 0.4–0.7) and the
noisy observed p-distances as less tree-like (0.88–0.97), so its AUC means
something.

Input encoding (the same on both sides, so it leaks no trivial cue):

* Both sides are **distance matrices** ``[m, m]`` between the same number of
  leaves: path lengths (patristic distances) for a reference tree, latent
  distances for the autoencoder. Path lengths do not depend on where a tree is
  rooted, so there is no rooting convention to match.
* Every matrix is **divided by its mean off-diagonal entry** (branch-length
  scale and tree height are gone).
* The same **random leaf subsets** (size between ``subset_min`` and ``n``) are
  drawn on both sides; a subset of a tree's leaves gives the metric of the
  induced subtree, so subsets are valid references and augment the data.
* The matrix is read as a **set of rows**: each row's off-diagonal entries are
  sorted and summarised by ``n_quantiles`` linearly interpolated quantiles
  (so rows of any length map to the same features); a DeepSets network embeds
  each row, pools (mean and max over rows) and scores. Leaf order, leaf names
  and the number of leaves therefore carry nothing.

What it cannot see, by design: the four-point condition of individual
quartets. Any metric that is not exactly a tree metric (every latent
geometry, with noise) would be separated perfectly by a quartet test, so the
adversarial game could never approach AUC 0.5. The row profiles instead carry
the *distribution* of relative path lengths: tree balance, branching times,
clock-likeness.

Shapes: a batch of metrics is ``[B, m, m]``; features ``[B, m, K]``; scores
``[B]`` (logits; ``sigmoid`` = probability "real tree").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from seqae.phylo.settings import DiscriminatorSettings
from seqae.phylo.simulate import TreeArrays, birth_death_tree, coalescent_tree

__all__ = [
    "DiscriminatorSettings",
    "PhylogenyDiscriminator",
    "auc",
    "discriminator_scores",
    "discriminator_step",
    "eval_sizes",
    "expected_distance",
    "heldout_auc",
    "non_tree_metrics",
    "normalise_metrics",
    "random_subsets",
    "reference_metrics",
    "row_profiles",
    "sample_real",
    "sample_reference_trees",
    "train_discriminator",
    "tree_arrays_metric",
]


# ---------------------------------------------------------------- reference trees


def tree_arrays_metric(arrays: TreeArrays) -> np.ndarray:
    """Path lengths between the leaves of a :class:`TreeArrays`, ``[n, n]`` (``names`` order).

    Vectorised: ``d(a, b) = depth(a) + depth(b) - 2 depth(lca(a, b))``, with
    the lowest common ancestor found as the deepest node on both root paths.
    """
    m = arrays.parent.size
    depth = np.zeros(m)
    ancestors = np.zeros((m, m), dtype=bool)  # ancestors[v, u]: u on the root path of v (v included)
    ancestors[0, 0] = True
    for node in range(1, m):  # parents come first
        up = arrays.parent[node]
        depth[node] = depth[up] + arrays.length[node]
        ancestors[node] = ancestors[up]
        ancestors[node, node] = True
    leaf_anc = ancestors[arrays.leaf_nodes].astype(np.float64)  # [n, m]
    # Depth of the deepest shared ancestor: order nodes by depth, take the max.
    shared = leaf_anc[:, None, :] * leaf_anc[None, :, :]  # [n, n, m]
    lca_depth = (shared * (depth[None, None, :] + 1.0)).max(axis=-1) - 1.0
    leaf_depth = depth[arrays.leaf_nodes]
    dist = leaf_depth[:, None] + leaf_depth[None, :] - 2.0 * lca_depth
    np.fill_diagonal(dist, 0.0)
    return np.maximum(dist, 0.0)


def sample_reference_trees(
    n: int,
    count: int,
    rng: np.random.Generator,
    clock_sd_max: float = 0.5,
    death_max: float = 0.9,
    coalescent_fraction: float = 0.3,
) -> list[TreeArrays]:
    """Simulated reference trees of ``n`` leaves spanning realistic shapes.

    Each tree is a Kingman coalescent (share ``coalescent_fraction``) or a
    birth–death tree with ``death / birth ~ U(0, death_max)``; its height is
    ``U(0.05, 2)`` substitutions per site; a third keep a strict clock, the
    rest get a relaxed clock with log-normal rate sd ``~ U(0.05, clock_sd_max)``.
    """
    trees = []
    for _ in range(count):
        height = float(rng.uniform(0.05, 2.0))
        clock_sd = 0.0 if rng.random() < 1 / 3 or clock_sd_max <= 0 else float(rng.uniform(0.05, clock_sd_max))
        if rng.random() < coalescent_fraction:
            trees.append(coalescent_tree(n, rng, height=height, clock_sd=clock_sd))
        else:
            death = float(rng.uniform(0.0, death_max))
            trees.append(birth_death_tree(n, rng, height=height, birth=1.0, death=death, clock_sd=clock_sd))
    return trees


MEASURES = ("path", "p", "jc69")


def expected_distance(path: np.ndarray, measure: str, alpha: float) -> np.ndarray:
    """What a distance measure of sequences evolved along a tree estimates, without noise.

    Args:
        path: path lengths (expected substitutions per site).
        measure: ``"path"`` (itself), ``"p"`` (expected proportion of
            differing sites under Jukes–Cantor with Gamma(``alpha``) rates
            across sites: ``3/4 (1 - (1 + 4d / (3 alpha))^-alpha)``), or
            ``"jc69"`` (that proportion, JC69-corrected as
            :func:`seqae.phylo.distance.jc69_distance` does, capped at 5).
        alpha: Gamma shape of the rate heterogeneity.
    """
    if measure == "path":
        return path
    p = 0.75 * (1.0 - (1.0 + 4.0 * path / (3.0 * alpha)) ** (-alpha))
    if measure == "p":
        return p
    return np.minimum(-0.75 * np.log1p(-4.0 / 3.0 * np.minimum(p, 0.75 - 1e-9)), 5.0)


def reference_metrics(
    n: int,
    count: int,
    rng: np.random.Generator,
    settings: DiscriminatorSettings | None = None,
    measure: str = "path",
) -> np.ndarray:
    """``[count, n, n]`` metrics of :func:`sample_reference_trees` (float32).

    With ``measure="p"`` or ``"jc69"`` each tree's path lengths go through
    :func:`expected_distance` with its own Gamma shape (log-uniform in
    [0.2, 5]), so that the references are what the latent metric is fitted
    to reproduce (the saturation of p-distances is then no cue).
    """
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}")
    s = settings or DiscriminatorSettings()
    trees = sample_reference_trees(n, count, rng, s.clock_sd_max, s.death_max, s.coalescent_fraction)
    alphas = np.exp(rng.uniform(np.log(0.2), np.log(5.0), size=count))
    return np.stack(
        [expected_distance(tree_arrays_metric(t), measure, float(a)) for t, a in zip(trees, alphas)]
    ).astype(np.float32)


def non_tree_metrics(trees: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Metrics that are *not* those of a real tree, one per input matrix ``[K, n, n]`` -> ``[K, n, n]``.

    The judge's negatives, drawn in equal shares:

    * the tree's metric with symmetric log-normal noise per pair
      (sd ``~ U(0.05, 0.5)``): tree-like at large scale, not in detail;
    * Euclidean distances of ``n`` Gaussian points in 2 to 16 dimensions;
    * the tree's own distances shuffled among the pairs (same values, no tree).
    """
    k, n, _ = trees.shape
    out = np.empty((k, n, n), dtype=np.float64)
    iu = np.triu_indices(n, 1)
    for i in range(k):
        kind = i % 3
        m = trees[i].astype(np.float64)
        if kind == 0:
            noise = rng.normal(size=(n, n))
            noise = (noise + noise.T) / np.sqrt(2.0)
            m = m * np.exp(rng.uniform(0.05, 0.5) * noise)
        elif kind == 1:
            x = rng.normal(size=(n, int(rng.integers(2, 17))))
            m = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
        else:
            values = m[iu].copy()
            rng.shuffle(values)
            m = np.zeros((n, n))
            m[iu] = values
            m = m + m.T
        np.fill_diagonal(m, 0.0)
        out[i] = m
    return out.astype(np.float32)


# ---------------------------------------------------------------- encoding


def normalise_metrics(dist: torch.Tensor) -> torch.Tensor:
    """Divide each ``[m, m]`` matrix of a batch ``[B, m, m]`` by its mean off-diagonal entry."""
    m = dist.shape[-1]
    mean = dist.sum(dim=(-2, -1)) / (m * (m - 1))
    return dist / mean.clamp_min(1e-12)[..., None, None]


def row_profiles(dist: torch.Tensor, n_quantiles: int) -> torch.Tensor:
    """Sorted-row quantiles of normalised metrics: ``[B, m, m]`` -> ``[B, m, K]``.

    Each row's ``m - 1`` off-diagonal entries are sorted and read at ``K``
    evenly spaced fractional ranks (linear interpolation), so the features do
    not depend on ``m``. Differentiable in ``dist`` (sorting permutes values).
    """
    b, m, _ = dist.shape
    eye = torch.eye(m, dtype=torch.bool, device=dist.device)
    off = dist.masked_select(~eye).view(b, m, m - 1)  # row-major: row i without its diagonal
    ordered = torch.sort(off, dim=-1).values
    pos = torch.linspace(0.0, m - 2, n_quantiles, device=dist.device, dtype=dist.dtype)
    lo = pos.floor().long().clamp(max=m - 2)
    hi = (lo + 1).clamp(max=m - 2)
    frac = pos - lo.to(dist.dtype)
    return ordered[..., lo] * (1 - frac) + ordered[..., hi] * frac


def random_subsets(dist: torch.Tensor, size: int, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``count`` random leaf subsets of ``size`` leaves from one metric ``[n, n]`` -> ``[count, size, size]``.

    With a batch ``[count, n, n]`` each matrix gets its own subset.
    """
    n = dist.shape[-1]
    keys = torch.rand(count, n, generator=generator, device="cpu").to(dist.device)
    idx = keys.argsort(dim=1)[:, :size]  # [count, size]
    src = dist.expand(count, n, n) if dist.dim() == 2 else dist
    rows = torch.gather(src, 1, idx[:, :, None].expand(count, size, n))
    return torch.gather(rows, 2, idx[:, None, :].expand(count, size, size))


class PhylogenyDiscriminator(nn.Module):
    """DeepSets over sorted-row profiles of a normalised metric -> one logit per metric.

    ``forward(dist [B, m, m]) -> [B]`` logits ("real tree" when positive).
    Permutation invariant in the leaves; any ``m >= 3``.
    """

    def __init__(self, n_quantiles: int = 16, hidden: int = 64):
        super().__init__()
        self.n_quantiles = n_quantiles
        self.row_net = nn.Sequential(nn.Linear(n_quantiles, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU())
        self.head = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.GELU(), nn.Linear(hidden, 1))

    def forward(self, dist: torch.Tensor) -> torch.Tensor:
        feats = row_profiles(normalise_metrics(dist), self.n_quantiles)
        # Centre the profiles at the row-mean scale: log keeps ratios, which
        # is what a normalised metric is about.
        h = self.row_net(torch.log(feats.clamp_min(1e-4)))
        pooled = torch.cat([h.mean(dim=1), h.amax(dim=1)], dim=-1)
        return self.head(pooled).squeeze(-1)


# ---------------------------------------------------------------- training and scoring


def auc(real_scores: np.ndarray, fake_scores: np.ndarray) -> float:
    """Area under the ROC curve of "real" vs "fake" scores (ties count 1/2), in [0, 1].

    0.5: the discriminator cannot tell the two apart; 1: every real scores
    above every fake.
    """
    from scipy.stats import rankdata

    r = np.asarray(real_scores, dtype=np.float64).ravel()
    f = np.asarray(fake_scores, dtype=np.float64).ravel()
    if r.size == 0 or f.size == 0:
        return float("nan")
    ranks = rankdata(np.concatenate([r, f]))
    return float((ranks[: r.size].sum() - r.size * (r.size + 1) / 2) / (r.size * f.size))


def _subset_size(n: int, subset_min: int, generator: torch.Generator) -> int:
    low = max(4, min(subset_min, n))
    return int(torch.randint(low, n + 1, (1,), generator=generator).item())


def sample_real(
    pool: torch.Tensor,
    size: int,
    count: int,
    generator: torch.Generator,
    user: torch.Tensor | None = None,
    user_fraction: float = 0.0,
) -> torch.Tensor:
    """``count`` reference metrics of ``size`` leaves: subsets of pool trees, some of the user's tree."""
    n_user = round(count * user_fraction) if user is not None else 0
    idx = torch.randint(pool.shape[0], (count - n_user,), generator=generator).to(pool.device)
    parts = [random_subsets(pool[idx], size, count - n_user, generator)]
    if n_user:
        parts.append(random_subsets(user, size, n_user, generator))
    return torch.cat(parts)


def sample_real_or_user(
    pool: torch.Tensor,
    size: int,
    count: int,
    generator: torch.Generator,
    user: Sequence[torch.Tensor] | None,
    user_fraction: float,
) -> torch.Tensor:
    """:func:`sample_real`, with ``user_fraction`` of the subsets from one of the user's trees that has
    at least ``size`` leaves (drawn at random); only reference trees where none has.

    Returns:
        ``[count, size, size]`` metrics.
    """
    eligible = [u for u in (user or []) if u.shape[-1] >= size]
    if not eligible:
        return sample_real(pool, size, count, generator)
    pick = eligible[int(torch.randint(len(eligible), (1,), generator=generator))]
    return sample_real(pool, size, count, generator, pick, user_fraction)


def discriminator_step(
    disc: PhylogenyDiscriminator,
    opt: torch.optim.Optimizer,
    real: torch.Tensor,
    fake: torch.Tensor,
) -> float:
    """One optimiser step of the logistic loss (real = 1, fake = 0); returns the loss."""
    logits_real = disc(real)
    logits_fake = disc(fake)
    loss = nn.functional.softplus(-logits_real).mean() + nn.functional.softplus(logits_fake).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float(loss.detach())


def train_discriminator(
    real_pool: torch.Tensor,
    fake_pool: torch.Tensor,
    settings: DiscriminatorSettings | None = None,
    seed: int = 0,
    disc: PhylogenyDiscriminator | None = None,
    user: Sequence[torch.Tensor] | None = None,
) -> PhylogenyDiscriminator:
    """Fit a discriminator: reference metrics ``[R, n, n]`` vs fake metrics ``[F, n, n]``.

    Both pools are sampled with the same random leaf subsets. ``fake_pool``
    may be one latent metric ``[1, n, n]`` (its subsets then vary). ``user``:
    the user's real trees as metrics ``[n_u, n_u]`` (any leaf counts), drawn
    from for the subset sizes they are large enough for (see :func:`sample_real_or_user`).

    Returns:
        The trained discriminator (``disc`` itself when given), in eval mode.
    """
    s = settings or DiscriminatorSettings()
    device = real_pool.device
    gen = torch.Generator().manual_seed(seed)
    if disc is None:
        torch.manual_seed(seed)
        disc = PhylogenyDiscriminator(s.n_quantiles, s.hidden).to(device)
    opt = torch.optim.AdamW(disc.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    disc.train()
    n = real_pool.shape[-1]
    for _ in range(s.steps):
        size = _subset_size(n, s.subset_min, gen)
        real = sample_real_or_user(real_pool, size, s.batch, gen, user, s.user_fraction)
        idx = torch.randint(fake_pool.shape[0], (s.batch,), generator=gen).to(device)
        fake = random_subsets(fake_pool[idx], size, s.batch, gen)
        discriminator_step(disc, opt, real, fake)
    disc.eval()
    return disc


@torch.no_grad()
def discriminator_scores(disc: PhylogenyDiscriminator, metrics: torch.Tensor, chunk: int = 512) -> np.ndarray:
    """Logits of a batch of metrics ``[B, m, m]`` -> ``[B]`` numpy."""
    was_training = disc.training
    disc.eval()
    out = [disc(metrics[i : i + chunk]).float().cpu() for i in range(0, metrics.shape[0], chunk)]
    disc.train(was_training)
    return torch.cat(out).numpy()


def heldout_auc(
    disc: PhylogenyDiscriminator,
    real_pool: torch.Tensor,
    fake_pool: torch.Tensor,
    sizes: Sequence[int],
    per_size: int = 64,
    seed: int = 12345,
) -> float:
    """AUC of ``disc`` on fresh leaf subsets (fixed seed) of held-out reference and fake metrics."""
    gen = torch.Generator().manual_seed(seed)
    real_scores, fake_scores = [], []
    for size in sizes:
        ridx = torch.randint(real_pool.shape[0], (per_size,), generator=gen).to(real_pool.device)
        fidx = torch.randint(fake_pool.shape[0], (per_size,), generator=gen).to(fake_pool.device)
        real_scores.append(discriminator_scores(disc, random_subsets(real_pool[ridx], size, per_size, gen)))
        fake_scores.append(discriminator_scores(disc, random_subsets(fake_pool[fidx], size, per_size, gen)))
    return auc(np.concatenate(real_scores), np.concatenate(fake_scores))


def eval_sizes(n: int, subset_min: int) -> list[int]:
    """Subset sizes used for held-out AUCs: up to four sizes from ``subset_min`` to ``n``."""
    low = max(4, min(subset_min, n))
    return sorted({round(float(x)) for x in np.linspace(low, n, 4)})
