"""Benchmark: the tree autoencoder's latent tree against NJ and FastTree on simulated families.

Two settings, as in the issue (HKY85 kappa = 2, discrete Gamma alpha = 0.5,
4 categories; Yule trees with a strict clock):

* ``20x1000``: 20 taxa x 1000 sites, root-to-tip height 0.5 substitutions/site;
* ``50x300``: 50 taxa x 300 sites, height 1.0.

For each replicate family it runs the tree autoencoder
(:func:`seqae.phylo.treeae.fit_tree_autoencoder`, the stage's settings from
``--config`` or the defaults) and the baselines (NJ on p-distances, NJ on
JC69 distances, FastTree ``-gtr -gamma`` and IQ-TREE ``-m GTR+G`` when
installed), and prints per setting the mean normalised Robinson–Foulds
distance (nRF) of each method's tree to the true tree (with its standard
error, and the latent tree's wins / ties / losses against NJ-p per family),
each tree's log-likelihood under one GTR + Gamma(4) model per family (fitted
on IQ-TREE's tree, else FastTree's, else the latent tree's, as the tree
stage does; the families where the latent tree's is at least FastTree's
within 0.01, and the mean gap to IQ-TREE's), the discriminator's held-out AUC
(reference vs latent trees) before and after adversarial training (co-trained
and refitted from scratch), and seconds per family on this machine.

    python benchmarks/bench_trees.py                   # 20 replicates per setting
    python benchmarks/bench_trees.py --quick           # 5 replicates, shorter training
    python benchmarks/bench_trees.py --replicates 50 --settings 50x300
    python benchmarks/bench_trees.py --set adversarial_weight=0 --set geometry=poincare

Replicate ``r`` of a setting uses seed ``seed + r`` (the same families for
every configuration compared).

``--likelihood`` measures instead the maximum-likelihood fit on fixed trees
(the true topologies; branch lengths and GTR + Gamma(4) fitted), in one run:
seqae's batched fit (:func:`seqae.phylo.mlfit.fit_ml`, every replicate of a
setting in one batch, float64, torch threads 1), IQ-TREE ``-te -m GTR+G4``
and FastTree ``-gtr -gamma -nome -mllen -intree`` one family at a time, each
as families per second with its mean log-likelihood (FastTree's is under its
own 20-category model, so not comparable):

    python benchmarks/bench_trees.py --likelihood --replicates 10
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np

SETTINGS = {
    "20x1000": {"n": 20, "n_sites": 1000, "height": 0.5},
    "50x300": {"n": 50, "n_sites": 300, "height": 1.0},
    "100x500": {"n": 100, "n_sites": 500, "height": 1.0},
}
METHODS = ("latent", "nj_p", "bme_p", "nj_jc69", "fasttree", "iqtree")


def _parse_set(items: list[str]) -> dict:
    out: dict = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        target = out
        parts = key.split(".")
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = parsed
    return out


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out.get(k, {}), v) if isinstance(v, dict) else v
    return out


def run_setting(name: str, replicates: int, settings: dict, seed: int, verbose: bool) -> dict:
    import torch

    from seqae.phylo.baselines import run_baselines
    from seqae.phylo.compare import normalized_rf
    from seqae.phylo.mlfit import score_trees
    from seqae.phylo.simulate import SubstitutionModel, simulate_family
    from seqae.phylo.stage import MODEL_TREE_ORDER
    from seqae.phylo.treeae import fit_tree_autoencoder

    torch.set_num_threads(1)
    spec = SETTINGS[name]
    model = SubstitutionModel.hky85(2.0, alpha=0.5)
    rows = []
    for r in range(replicates):
        rng = np.random.default_rng(seed + r)
        fam = simulate_family(spec["n"], spec["n_sites"], rng, model=model, height=spec["height"])
        start = time.perf_counter()
        result = fit_tree_autoencoder(fam.codes, fam.names, {**settings, "seed": seed + r})
        seconds = time.perf_counter() - start
        row = {"latent": normalized_rf(result.tree, fam.tree), "seconds": seconds}
        trees = {"latent": result.tree}
        for b in run_baselines(fam.codes, fam.names, fam.tree, seed=seed + r):
            row[b.method] = np.nan if b.nrf is None else b.nrf
            row[f"seconds_{b.method}"] = b.seconds
            if b.tree is not None:
                trees[b.method] = b.tree
        start = time.perf_counter()
        methods = list(trees)
        model_tree = next(m for m in MODEL_TREE_ORDER if m in trees)
        scores = score_trees(fam.codes, fam.names, [trees[m] for m in methods], reference=methods.index(model_tree))
        row["seconds_loglik"] = time.perf_counter() - start
        for m in METHODS:
            row[f"loglik_{m}"] = float(scores.log_likelihood[methods.index(m)]) if m in trees else np.nan
        row.update(
            auc_before=result.auc_before, auc_after=result.auc_after, auc_after_cotrained=result.auc_after_cotrained,
            disc_score=result.disc_score,
        )  # fmt: skip
        rows.append(row)
        if verbose:
            print(
                f"  {name} #{r:02d}: latent {row['latent']:.3f}  nj_p {row['nj_p']:.3f}  bme_p {row['bme_p']:.3f}"
                f"  nj_jc69 {row['nj_jc69']:.3f}"
                f"  fasttree {row['fasttree']:.3f}  AUC {row['auc_before']:.2f} -> {row['auc_after']:.2f}"
                f" (co-trained {row['auc_after_cotrained']:.2f})  {seconds:.1f} s",
                file=sys.stderr,
                flush=True,
            )
    return {"name": name, "rows": rows}


def summarise(out: dict) -> list[str]:
    rows = out["rows"]
    k = len(rows)

    def col(key):
        return np.array([r[key] for r in rows], dtype=float)

    lines = [f"{out['name']} ({k} replicates)"]
    for m in METHODS:
        v = col(m)
        if np.isnan(v).all():
            lines.append(f"  {m:<10} n/a")
            continue
        se = np.nanstd(v, ddof=1) / np.sqrt(np.sum(~np.isnan(v))) if k > 1 else float("nan")
        secs = col("seconds" if m == "latent" else f"seconds_{m}")
        lines.append(f"  {m:<10} nRF {np.nanmean(v):.4f} +- {se:.4f}   {np.nanmean(secs):7.2f} s/family")
    diff = col("latent") - col("nj_p")
    lines.append(
        f"  latent vs nj_p per family: {int((diff < 0).sum())} better, {int((diff == 0).sum())} tied, "
        f"{int((diff > 0).sum())} worse; mean difference {diff.mean():+.4f}"
    )
    for m in ("fasttree", "iqtree"):
        gap = col("loglik_latent") - col(f"loglik_{m}")
        gap = gap[~np.isnan(gap)]
        if gap.size:
            lines.append(
                f"  log-likelihood latent vs {m} (one GTR+G4 per family): latent >= {m} (within 0.01) on "
                f"{int((gap >= -0.01).sum())}/{gap.size} families; mean difference {gap.mean():+.2f}"
            )
    lines.append(f"  scoring every tree under the shared model: {np.nanmean(col('seconds_loglik')):.2f} s/family")
    lines.append(
        f"  discriminator AUC: before {np.nanmean(col('auc_before')):.3f}, after {np.nanmean(col('auc_after')):.3f}"
        f" (judge), {np.nanmean(col('auc_after_cotrained')):.3f} (co-trained adversary);"
        f" final score {np.nanmean(col('disc_score')):.3f}"
    )
    return lines


def likelihood_speed(name: str, replicates: int, seed: int) -> list[str]:
    """Families per second of ML fits on fixed (true) trees: seqae batched, IQ-TREE -te, FastTree -nome -mllen."""
    import tempfile
    from pathlib import Path

    import torch

    from seqae.phylo.baselines import fasttree, find_fasttree
    from seqae.phylo.iqtree import find_iqtree, run_iqtree
    from seqae.phylo.mlfit import fit_ml
    from seqae.phylo.patterns import pattern_batch, site_patterns
    from seqae.phylo.schedule import tree_batch, unrooted_tree
    from seqae.phylo.simulate import SubstitutionModel, simulate_family

    torch.set_num_threads(1)
    spec = SETTINGS[name]
    model = SubstitutionModel.hky85(2.0, alpha=0.5)
    fams = [
        simulate_family(spec["n"], spec["n_sites"], np.random.default_rng(seed + r), model=model, height=spec["height"])
        for r in range(replicates)
    ]
    lines = [f"{name} ({replicates} families, ML fit on the true topologies)"]
    start = time.perf_counter()
    trees = tree_batch([unrooted_tree(f.tree, f.names) for f in fams])
    fit = fit_ml(trees, pattern_batch([site_patterns(f.codes) for f in fams]))
    seconds = time.perf_counter() - start
    lines.append(
        f"  seqae batched  {replicates / seconds:8.3f} families/s  mean logL {fit.log_likelihood.mean():.2f}"
        f"  ({fit.iterations} Newton + L-BFGS iterations)"
    )
    if find_iqtree():
        start = time.perf_counter()
        logl = [run_iqtree(f.codes, f.names, tree=f.tree).log_likelihood for f in fams]
        seconds = time.perf_counter() - start
        lines.append(f"  IQ-TREE -te    {replicates / seconds:8.3f} families/s  mean logL {np.mean(logl):.2f}")
    else:
        lines.append("  IQ-TREE        not installed")
    if find_fasttree():
        with tempfile.TemporaryDirectory(prefix="seqae-bench-") as folder:
            start = time.perf_counter()
            for k, f in enumerate(fams):
                intree = Path(folder) / f"{k}.nwk"
                intree.write_text(f.newick())
                fasttree(f.codes, f.names, extra_args=("-gtr", "-gamma", "-nome", "-mllen", "-intree", str(intree)))
            seconds = time.perf_counter() - start
        lines.append(f"  FastTree -mllen {replicates / seconds:7.3f} families/s  (its own GTR+CAT20 Gamma scale)")
    else:
        lines.append("  FastTree       not installed")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=20, help="families per setting (default 20)")
    parser.add_argument("--quick", action="store_true", help="5 replicates and a shorter training (a smoke run)")
    parser.add_argument("--settings", nargs="+", default=["20x1000", "50x300"], choices=list(SETTINGS))
    parser.add_argument("--config", help="YAML config whose `trees:` section sets the model (default: the schema defaults)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a trees setting, e.g. --set adversarial_weight=0 --set discriminator.steps=100")  # fmt: skip
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--json", help="also write every replicate's numbers to this JSON file")
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per family on stderr")
    parser.add_argument("--likelihood", action="store_true",
                        help="time ML fits on fixed trees instead: seqae batched, IQ-TREE, FastTree")  # fmt: skip
    args = parser.parse_args(argv)
    if args.likelihood:
        print(f"CPU count {os.cpu_count()}; torch threads 1; IQ-TREE and FastTree with 1 thread")
        for name in args.settings:
            print("\n".join(likelihood_speed(name, args.replicates, args.seed)), flush=True)
        return 0

    from seqae.phylo.baselines import find_fasttree
    from seqae.phylo.iqtree import find_iqtree
    from seqae.phylo.stage import stage_settings

    settings: dict = {}
    if args.config:
        from seqae.config import load_config

        cfg = load_config(args.config)
        settings = {k: v for k, v in cfg["trees"].items() if k not in ("families", "baselines", "render", "figure_width", "real_trees")}
    replicates = args.replicates
    if args.quick:
        replicates = min(replicates, 5)
        settings = _merge(settings, {"epochs": 400, "adversarial_epochs": 100, "discriminator": {"steps": 150}})
    settings = _merge(settings, _parse_set(args.set))
    model, _ = stage_settings(settings)  # validates
    print(f"tree-AE settings: {json.dumps(model.as_dict(), sort_keys=True)}")
    print(f"FastTree: {find_fasttree() or 'not installed'}; IQ-TREE: {find_iqtree() or 'not installed'};"
          f" torch threads 1; CPU count {os.cpu_count()}")  # fmt: skip
    results = []
    for name in args.settings:
        out = run_setting(name, replicates, settings, args.seed, args.verbose)
        results.append(out)
        print("\n".join(summarise(out)), flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"settings": model.as_dict(), "results": results}, handle, indent=1, default=float)
    return 0


if __name__ == "__main__":
    sys.exit(main())
