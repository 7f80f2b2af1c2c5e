"""Benchmark: the tree latent against NJ, FastTree and IQ-TREE on simulated families.

Three settings, as in issue 19 (HKY85 kappa = 2, discrete Gamma alpha = 0.5,
4 categories; Yule trees with a strict clock):

* ``20x1000``: 20 taxa x 1000 sites, root-to-tip height 0.5 substitutions/site;
* ``50x300``: 50 taxa x 300 sites, height 1.0;
* ``100x500``: 100 taxa x 500 sites, height 1.0.

Per setting it fits the tree latent (:func:`seqae.phylo.hypertree.fit_latent_trees`)
on **all replicates in one batch** and times it (families per second on this
CPU, torch threads 1), runs the baselines one family at a time (NJ on
p-distances, BME-NNI on p, NJ on JC69, FastTree ``-gtr -gamma`` and IQ-TREE
``-m GTR+G``, each timed, one thread), and prints:

* the mean normalised Robinson-Foulds distance (nRF) of each tree to the true
  tree, with its standard error; for the latent, three trees from the same
  fit: ``latent`` (after ML NNI refinement, the default), ``latent_decoded``
  (decoded from the trained hyperbolic points, no refinement: the ablation)
  and ``latent_start`` (decoded from the points' initial fit to the JC69
  distances, before any likelihood training);
* each tree's log-likelihood under one GTR + Gamma(4) model per family
  (fitted on IQ-TREE's tree, else FastTree's, as the tree stage does): the
  families where the latent tree's is at least FastTree's (within 0.01) and
  the mean gaps to FastTree and IQ-TREE;
* families per second for seqae batched, FastTree and IQ-TREE.

    python benchmarks/bench_trees.py                   # 20 replicates per setting, all three settings
    python benchmarks/bench_trees.py --quick           # 5 replicates per setting
    python benchmarks/bench_trees.py --replicates 50 --settings 50x300
    python benchmarks/bench_trees.py --set refine=none --set epochs=200
    python benchmarks/bench_trees.py --real             # three real alignments with published trees

``--real`` runs the tree stage (:func:`seqae.phylo.stage.run_families`) on
three public alignments with published trees that ete3 ships with its tests
(``ete3/test/ete_evol_data``; the examples of ETE's evolution tutorial): 15
primate eosinophil RNase genes ECP/EDN (``CladeModelCD/ECP_EDN_15``; the
gene tree of Zhang, Rosenberg & Nei 1998, PNAS 95:3708), 7 primate
sequences (``L_example``) and protamine 1 of 98 mammals
(``protamine/PRM1``; its tree is the mammal species tree).

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
from dataclasses import asdict

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402 - after the thread limits, which BLAS reads when it loads

SETTINGS = {
    "20x1000": {"n": 20, "n_sites": 1000, "height": 0.5},
    "50x300": {"n": 50, "n_sites": 300, "height": 1.0},
    "100x500": {"n": 100, "n_sites": 500, "height": 1.0},
}
METHODS = (
    "latent",
    "latent_unresolved",
    "latent_decoded",
    "latent_start",
    "latent_adv",
    "latent_decoded_adv",
    "nj_p",
    "bme_p",
    "nj_jc69",
    "fasttree",
    "fasttree_resolved",
    "iqtree",
    "iqtree_resolved",
)
#: Trees scored under the family's one GTR + Gamma(4) model.
SCORED = ("latent", "latent_decoded", "latent_adv", "latent_decoded_adv", "nj_p", "fasttree", "iqtree")
#: Methods whose time is measured (the latent's three trees come from one batched fit).
TIMED = ("latent", "nj_p", "bme_p", "nj_jc69", "fasttree", "iqtree")


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


def simulated_families(name: str, replicates: int, seed: int) -> list:
    """The ``replicates`` families of setting ``name`` (HKY85, kappa 2, Gamma alpha 0.5), family r from seed ``seed + r``."""
    from seqae.phylo.simulate import SubstitutionModel, simulate_family

    spec = SETTINGS[name]
    model = SubstitutionModel.hky85(2.0, alpha=0.5)
    return [
        simulate_family(spec["n"], spec["n_sites"], np.random.default_rng(seed + r), model=model, height=spec["height"])
        for r in range(replicates)
    ]


def run_setting(
    name: str, replicates: int, settings: dict, seed: int, verbose: bool, adversary: float = 0.0, baselines: bool = True
) -> dict:
    """Simulate ``replicates`` families of a setting; fit the tree latent on all of them in one batch; run baselines."""
    import torch

    from seqae.phylo.baselines import run_baselines
    from seqae.phylo.compare import normalized_rf
    from seqae.phylo.distance import jc69_distance
    from seqae.phylo.hypertree import FLAT_LENGTH, LatentTreeSettings, fit_latent_trees
    from seqae.phylo.mlfit import score_trees
    from seqae.phylo.nni import resolve_flat_branches
    from seqae.phylo.outputs import MODEL_TREE_ORDER
    from seqae.phylo.treejudge import JudgeCache

    torch.set_num_threads(1)
    fams = simulated_families(name, replicates, seed)
    start = time.perf_counter()
    judges = JudgeCache()  # the fit with the adversary reuses the first fit's judges (the same ones either way)
    latents = fit_latent_trees(
        [(f.codes, f.names) for f in fams], LatentTreeSettings.from_mapping(settings), seed=seed, judges=judges
    )
    seconds_latent = time.perf_counter() - start
    with_adversary = [None] * replicates
    if adversary > 0:
        with_adversary = fit_latent_trees(
            [(f.codes, f.names) for f in fams],
            LatentTreeSettings.from_mapping({**settings, "adversarial_weight": adversary}), seed=seed, judges=judges,
        )  # fmt: skip
    rows = []
    for r, (fam, lat, adv) in enumerate(zip(fams, latents, with_adversary)):
        trees = {"latent": lat.tree, "latent_decoded": lat.decoded_tree, "latent_start": lat.start_tree}
        row = {"seconds_latent": seconds_latent / replicates, "nni_moves": lat.nni_moves,
               "judge_auc_latent": lat.judge_auc, "judge_auc_latent_decoded": np.nan}  # fmt: skip
        if adv is not None:
            trees.update(latent_adv=adv.tree, latent_decoded_adv=adv.decoded_tree)
            row["judge_auc_latent_adv"] = adv.judge_auc
        for method, tree in trees.items():
            row[method] = normalized_rf(tree, fam.tree)
        # The flat-branch resolution's ablation, and the same resolution given to FastTree's and
        # IQ-TREE's trees (so the comparison stays like for like).
        row["latent_unresolved"] = normalized_rf(lat.search_tree, fam.tree)
        row["flat_interchanges"] = lat.flat_interchanges
        for b in run_baselines(fam.codes, fam.names, fam.tree, seed=seed + r) if baselines else []:
            row[b.method] = np.nan if b.nrf is None else b.nrf
            row[f"seconds_{b.method}"] = b.seconds
            if b.tree is not None:
                trees[b.method] = b.tree
        jc69 = jc69_distance(fam.codes)
        for m in ("fasttree", "iqtree"):
            if m in trees:
                resolved, _ = resolve_flat_branches(trees[m], jc69, fam.names, FLAT_LENGTH)
                row[f"{m}_resolved"] = normalized_rf(resolved, fam.tree)
        scored = [m for m in SCORED if m in trees]
        t0 = time.perf_counter()
        model_tree = next(m for m in (*MODEL_TREE_ORDER, "latent") if m in scored)
        scores = score_trees(fam.codes, fam.names, [trees[m] for m in scored], reference=scored.index(model_tree))
        row["seconds_loglik"] = time.perf_counter() - t0
        for m in SCORED:
            row[f"loglik_{m}"] = float(scores.log_likelihood[scored.index(m)]) if m in scored else np.nan
        rows.append(row)
        if verbose:
            print(f"  {name} #{r:02d}: " + "  ".join(f"{m} {row[m]:.3f}" for m in METHODS if m in row)
                  + f"  logL latent - fasttree {row['loglik_latent'] - row['loglik_fasttree']:+.2f}",
                  file=sys.stderr, flush=True)  # fmt: skip
    return {"name": name, "rows": rows, "seconds_latent": seconds_latent}


def summarise(out: dict) -> list[str]:
    """Printable lines: nRF, speed and log-likelihood comparisons of one setting."""
    rows = out["rows"]
    k = len(rows)

    def col(key: str) -> np.ndarray:
        return np.array([r.get(key, np.nan) for r in rows], dtype=float)

    lines = [f"{out['name']} ({k} replicates)"]
    for m in METHODS:
        v = col(m)
        if np.isnan(v).all():
            lines.append(f"  {m:<22} n/a")
            continue
        se = np.nanstd(v, ddof=1) / np.sqrt(np.sum(~np.isnan(v))) if k > 1 else float("nan")
        secs = col("seconds_latent" if m.startswith("latent") else f"seconds_{m}")
        speed = f"{np.nanmean(secs):7.2f} s/family  {1.0 / np.nanmean(secs):7.3f} families/s" if m in TIMED else ""
        lines.append(f"  {m:<22} nRF {np.nanmean(v):.4f} +- {se:.4f}   {speed}")
    lines.append("  (latent: the tree latent after ML NNI refinement, its zero-length branches resolved as configured;")
    lines.append("   latent_unresolved: the same tree as the search left it; latent_decoded: the tree decoded from the")
    lines.append("   trained hyperbolic points, no refinement;")
    lines.append(
        "   latent_start: decoded from the points' distance fit, no likelihood; *_resolved: FastTree's and IQ-TREE's"
    )
    lines.append("   trees with their zero-length branches resolved by BME on JC69, as the latent's are)")
    for ours, m in (("latent_adv", "latent"), ("latent_decoded_adv", "latent_decoded")):
        gap = col(f"loglik_{ours}") - col(f"loglik_{m}")
        gap = gap[~np.isnan(gap)]
        if gap.size:
            lines.append(f"  with vs without the adversary: {ours} >= {m} (log-likelihood, within 0.01) on "
                         f"{int((gap >= -0.01).sum())}/{gap.size} families; mean difference {gap.mean():+.2f}")  # fmt: skip
    for key in ("judge_auc_latent", "judge_auc_latent_adv"):
        if not np.isnan(col(key)).all():
            lines.append(f"  judge AUC, held-out real trees vs {key[10:]}: {np.nanmean(col(key)):.3f}")
    for ours in ("latent", "latent_decoded"):
        for m in ("fasttree", "iqtree"):
            gap = col(f"loglik_{ours}") - col(f"loglik_{m}")
            gap = gap[~np.isnan(gap)]
            if gap.size:
                lines.append(
                    f"  log-likelihood {ours} vs {m} (one GTR+G4 per family): {ours} >= {m} (within 0.01) on "
                    f"{int((gap >= -0.01).sum())}/{gap.size} families; mean difference {gap.mean():+.2f}"
                )
    lines.append(f"  NNIs accepted per family {np.nanmean(col('nni_moves')):.1f}, across zero-length branches"
                 f" {np.nanmean(col('flat_interchanges')):.1f}; scoring the trees under the shared"
                 f" model {np.nanmean(col('seconds_loglik')):.2f} s/family (not counted above)")  # fmt: skip
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

    torch.set_num_threads(1)
    fams = simulated_families(name, replicates, seed)
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


#: Real alignments with published trees shipped with ete3's tests (``ete3/test/ete_evol_data``; name: FASTA, tree).
REAL = {
    "ecp_edn15": ("CladeModelCD/ECP_EDN_15.fasta", "CladeModelCD/ECP_EDN_15.nw"),
    "primates7": ("L_example/alignment_L_measuring_evol.fasta", "L_example/measuring_L_tree.nw"),
    "prm1": ("protamine/PRM1/alignments.fasta_ali", "protamine/PRM1/tree.nw"),
}


def real_alignments(settings: dict) -> list[str]:
    """The tree stage (latent, NJ, FastTree, IQ-TREE) on the three real alignments of :data:`REAL`."""
    import importlib.util
    import tempfile
    from pathlib import Path

    import pandas as pd
    import torch

    from seqae.phylo.stage import run_families

    torch.set_num_threads(1)
    spec = importlib.util.find_spec("ete3")
    if spec is None or spec.origin is None:
        return ["ete3 is not installed: no real alignments"]
    root = Path(spec.origin).parent / "test" / "ete_evol_data"
    with tempfile.TemporaryDirectory(prefix="seqae-real-") as folder:
        families = [{"name": name, "fasta": root / fasta, "reference": root / tree, "outdir": Path(folder) / name}
                    for name, (fasta, tree) in REAL.items()]  # fmt: skip
        missing = [str(f["fasta"]) for f in families if not Path(f["fasta"]).exists()]
        if missing:
            return [f"not found (an ete3 without its test data?): {', '.join(missing)}"]
        start = time.perf_counter()
        # Seed 1: the seed of the README's real-alignment figures.
        rows = run_families(families, {"latent_tree": settings, "render": False, "seed": 1})
        seconds = time.perf_counter() - start
    cols = ["n_taxa", "n_sites", "nrf_latent", "nrf_nj_p", "nrf_bme_p", "nrf_fasttree", "nrf_iqtree", "loglik_latent",
            "loglik_nj_p", "loglik_fasttree", "loglik_iqtree", "nrf_latent_adv", "loglik_latent_adv"]  # fmt: skip
    table = pd.DataFrame([{k: r[k] for k in cols} for r in rows], index=[r["family"] for r in rows])
    lines = [f"real alignments (ete3 test data; published trees as references), {seconds:.0f} s in all",
             table.T.to_string(float_format=lambda x: f"{x:.4f}"),
             "mean nRF: " + ", ".join(f"{c[4:]} {table[c].mean():.4f}" for c in cols if c.startswith("nrf_"))]  # fmt: skip
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=20, help="families per setting (default 20)")
    parser.add_argument("--quick", action="store_true", help="5 replicates per setting (a smoke run)")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument(
        "--config", help="YAML config whose `trees:` section sets the model (default: the schema defaults)"
    )
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a latent_tree setting, e.g. --set refine=none --set epochs=200")  # fmt: skip
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument(
        "--adversary",
        type=float,
        default=0.0,
        metavar="W",
        help="also fit every family with the adversarial weight W (same families; with/without rows)",
    )
    parser.add_argument("--no-baselines", action="store_true", help="skip NJ, FastTree and IQ-TREE (latent trees only)")
    parser.add_argument(
        "--real",
        action="store_true",
        help="run the tree stage on three real alignments with published trees (ete3's test data) instead",
    )
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
    from seqae.phylo.hypertree import LatentTreeSettings
    from seqae.phylo.iqtree import find_iqtree

    settings: dict = {}
    if args.config:
        from seqae.config import load_config

        settings = dict(load_config(args.config)["trees"].get("latent_tree") or {})
    replicates = args.replicates
    if args.quick:
        replicates = min(replicates, 5)
    settings = _merge(settings, _parse_set(args.set))
    model = LatentTreeSettings.from_mapping(settings)  # validates
    if args.real:
        print("\n".join(real_alignments(settings)), flush=True)
        return 0
    print(f"tree latent settings: {json.dumps(asdict(model), sort_keys=True)}")
    print(f"FastTree: {find_fasttree() or 'not installed'}; IQ-TREE: {find_iqtree() or 'not installed'};"
          f" torch threads 1; CPU count {os.cpu_count()}; replicates per setting {replicates}")  # fmt: skip
    results = []
    for name in args.settings:
        out = run_setting(name, replicates, settings, args.seed, args.verbose, args.adversary, not args.no_baselines)
        results.append(out)
        print("\n".join(summarise(out)), flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"settings": asdict(model), "results": results}, handle, indent=1, default=float)
    return 0


if __name__ == "__main__":
    sys.exit(main())
