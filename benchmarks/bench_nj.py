"""Benchmark: seqae's neighbor joining against scikit-bio's ``nj``, in one run.

For n = 500 and n = 2000 taxa and two kinds of distance matrix,

* ``random``: symmetric, uniform entries (not tree-like: the hardest case for
  the pruned search, and many negative branch lengths);
* ``tree``: JC69 distances of an alignment (1000 sites, HKY85 + Gamma)
  simulated along a birth–death tree with a relaxed clock,

runs ``seqae.phylo.nj.neighbor_joining`` (validation, NJ, ete3 tree) and
scikit-bio's ``skbio.tree.nj`` (NJ, TreeNode; its DistanceMatrix is built
outside the timing), alternately, ``--repeats`` times each, and prints the
best and median seconds, the speed ratio (skbio time / ours; target >= 1) and
whether the two trees agree (normalised Robinson–Foulds distance, 0 = same
topology).

    python benchmarks/bench_nj.py              # n = 500 and 2000
    python benchmarks/bench_nj.py --sizes 300  # other sizes
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

# One BLAS/OpenMP thread: both implementations are single-threaded NJ loops,
# and idle pool threads only add noise on a busy machine.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")


def random_matrix(n: int, rng: np.random.Generator) -> np.ndarray:
    x = rng.random((n, n))
    d = x + x.T
    np.fill_diagonal(d, 0.0)
    return d


def tree_matrix(n: int, rng: np.random.Generator) -> np.ndarray:
    from seqae.phylo.distance import jc69_distance
    from seqae.phylo.simulate import SubstitutionModel, simulate_family

    family = simulate_family(n, 1000, rng, SubstitutionModel.hky85(2.0, alpha=0.5), height=0.5, clock_sd=0.3)
    return jc69_distance(family.codes, family.names)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 2000])
    parser.add_argument("--kinds", nargs="+", default=["random", "tree"], choices=["random", "tree"])
    parser.add_argument("--repeats", type=int, default=0, help="runs per method (default: 7 below n=1000, else 3)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    try:
        import skbio
        from skbio.tree import nj as skbio_nj
    except ImportError:
        print("scikit-bio is not installed: pip install -e '.[benchmark]'", file=sys.stderr)
        return 2
    from seqae.phylo.compare import normalized_rf
    from seqae.phylo.ete import Tree
    from seqae.phylo.nj import neighbor_joining

    print(
        f"numpy {np.__version__}, scikit-bio {skbio.__version__}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"
    )
    header = f"{'kind':<7}{'n':>6}  {'ours best':>10}{'median':>9}  {'skbio best':>11}{'median':>9}  {'ratio':>6}  {'nRF':>5}"
    print(header)
    print("-" * len(header))
    worst = float("inf")
    for n in args.sizes:
        repeats = args.repeats or (7 if n < 1000 else 3)
        for kind in args.kinds:
            rng = np.random.default_rng(args.seed + n)
            dist = random_matrix(n, rng) if kind == "random" else tree_matrix(n, rng)
            names = [f"t{i}" for i in range(n)]
            dm = skbio.DistanceMatrix(dist, names)
            ours_s, skbio_s = [], []
            ours_tree = skbio_tree = None
            for _ in range(repeats):
                start = time.perf_counter()
                ours_tree = neighbor_joining(dist, names)
                ours_s.append(time.perf_counter() - start)
                start = time.perf_counter()
                skbio_tree = skbio_nj(dm)
                skbio_s.append(time.perf_counter() - start)
            nrf = normalized_rf(ours_tree, Tree(str(skbio_tree).strip(), format=1))
            ratio = min(skbio_s) / min(ours_s)
            worst = min(worst, ratio)
            print(
                f"{kind:<7}{n:>6}  {min(ours_s):>10.4f}{statistics.median(ours_s):>9.4f}  "
                f"{min(skbio_s):>11.4f}{statistics.median(skbio_s):>9.4f}  {ratio:>5.2f}x  {nrf:>5.3f}"
            )
    print(f"\nratio = skbio seconds / ours (best of the repeats); target >= 1. Lowest ratio: {worst:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
