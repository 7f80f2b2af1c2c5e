#!/usr/bin/env python
"""Run the measurements that need a GPU in one go and summarise them against the quality bars.

Parts (run in this order; each writes ``<part>.log`` under ``--out``):

``data``
    The demo data and its windows with the GPU overlay's configuration
    (``config/config.yaml`` + ``config/gpu.yaml``, merged as Snakemake merges
    config files, results under ``--out``).
``bench_train``
    ``benchmarks/bench_train.py``: the data path vs tensors on the device vs
    BPNet (bpnet-lite, when installed), TFLOP/s, embeddings/s.
``models``
    Every model of the merged config: ``seqae train`` (``--resume``, so a run
    cut short continues), ``embed``, ``evaluate``; then ``compare``. The
    quality bars are read from ``comparison.tsv`` (:func:`quality_bars`).
``trees``
    ``benchmarks/bench_trees.py`` with the tree autoencoder on CUDA (seconds
    per family on the GPU beside nRF and the discriminator's AUC).
``ddp``
    One model trained through torchrun with one process per visible GPU
    (data-parallel when there are several).

Summary: ``gpu_checks.md`` (and ``gpu_checks.json``) under ``--out``, with
wall seconds per part and the quality-bar table.

    python scripts/gpu_checks.py --out gpu_run                  # every part
    python scripts/gpu_checks.py --out gpu_run --parts models   # after `data`, on the same folder
    python scripts/gpu_checks.py --out gpu_species --parts data models \
        --overlay config/species.yaml config/gpu.yaml               # the four-species demo at GPU size
    python scripts/gpu_checks.py --out gpu_run --parts data models --model-jobs 4  # four models at once
    python scripts/gpu_checks.py --out gpu_weights --parts data models --model-jobs 8 \
        --overlay config/gpu.yaml benchmarks/loss_weights_sweep.yaml       # loss weights side by side
    python scripts/gpu_checks.py --out gpu_two_level --parts data models --model-jobs 12 \
        --overlay config/gpu.yaml benchmarks/two_level_sweep.yaml          # the two-level model's ablations

Needs seqae's dependencies without Snakemake (pyfaidx, pyBigWig, biopython,
ete3, isal, jsonschema and the rest of pyproject.toml); PyQt5 only for tree
figures, which the benchmark does not draw.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
PARTS = ("data", "bench_train", "models", "trees", "ddp")


def merge_configs(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """``overlay`` merged into ``base``: nested mappings updated key by key, anything else replaced.

    Unlike the workflow (:func:`seqae.config.merge_config_layers`), an overlay's
    models are added to the base's: the sweep overlays rely on it.
    """
    from seqae.config import deep_merge

    return deep_merge(dict(base), dict(overlay))


def relocate(value: Any, old: str, new: str) -> Any:
    """``value`` with every string path under folder ``old`` moved under ``new`` (lists and mappings walked)."""
    if isinstance(value, Mapping):
        return {k: relocate(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [relocate(v, old, new) for v in value]
    if isinstance(value, str) and value.startswith(old.rstrip("/") + "/"):
        return new.rstrip("/") + value[len(old.rstrip("/")) :]
    return value


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def quality_bars(row: Mapping[str, Any], codebook_size: int | None = None) -> list[dict[str, Any]]:
    """The quality bars of one model's comparison row (``seqae compare`` columns).

    Each bar: ``{"bar", "value", "target", "passed"}``; ``passed`` is None when
    the row lacks the numbers (e.g. a swap that was not computed, or a model
    without a latent sequence). Bars: each labelled block's probe >= the k-mer
    baseline and the residual's probe <= chance + 0.02 on that label;
    reconstruction accuracy >= PCA's at the same number of dimensions (one
    component per global coordinate and per local code; PCA at the latent's
    size for a model without local codes); the swap judge assigns the donor's
    chromosome to >= 0.9 x its accuracy on real donor windows; the anomaly
    AUROC against shuffled windows (sequence error less an order-1 chain's,
    the correction the Markov baseline also makes) >= the order-k Markov
    baseline's, for the error through the latent and, for an autoregressive
    decoder, for its own chain (latent off); the latent's own contribution on real windows exceeds its
    contribution on their shuffles by >= 0.01 nats per base; VQ perplexity
    >= 0.3 x codebook size (VQ models, when ``codebook_size`` is given).
    """
    bars: list[dict[str, Any]] = []

    def add(name: str, value: float, target: float, passed: bool, target_text: str) -> None:
        ok = None if math.isnan(value) or math.isnan(target) else bool(passed)
        bars.append({"bar": name, "value": value, "target": target_text, "passed": ok})

    blocks = sorted(key[: -len("_probe")] for key in row if key.endswith("_probe"))
    for block in blocks:
        probe, kmer = _num(row.get(f"{block}_probe")), _num(row.get(f"{block}_kmer"))
        residual, chance = _num(row.get(f"{block}_residual")), _num(row.get(f"{block}_chance"))
        label = row.get(f"{block}_label") or block
        add(f"{block} block probe on {label} >= k-mer", probe, kmer, probe >= kmer, f">= {kmer:.3f}")
        add(f"residual probe on {label} <= chance + 0.02", residual, chance, residual <= chance + 0.02,
            f"<= {chance + 0.02:.3f}")  # fmt: skip
    recon = _num(row.get("recon_accuracy"))
    same = _num(row.get("pca_same_dims_recon_accuracy"))
    pca = same if not math.isnan(same) else _num(row.get("pca_recon_accuracy"))
    add("reconstruction accuracy >= PCA (same dims)", recon, pca, recon >= pca, f">= {pca:.3f}")
    donor, judge = _num(row.get("swap_chrom_donor")), _num(row.get("swap_chrom_judge"))
    add("swap: donor's chromosome >= 0.9 x judge", donor, judge, donor >= 0.9 * judge, f">= {0.9 * judge:.3f}")
    auroc, markov = _num(row.get("seq_corrected_auroc_shuffled")), _num(row.get("markov_auroc_shuffled"))
    add("anomaly AUROC vs shuffled (order-1 corrected) >= Markov", auroc, markov, auroc >= markov, f">= {markov:.3f}")
    chain = _num(row.get("chain_corrected_auroc_shuffled"))
    if not math.isnan(chain):  # an autoregressive decoder's own chain (latent off): its code length of the window
        add("anomaly AUROC vs shuffled, decoder's chain (order-1 corrected) >= Markov", chain, markov, chain >= markov,
            f">= {markov:.3f}")  # fmt: skip
    gain = _num(row.get("latent_gain_real")) - _num(row.get("latent_gain_shuffled"))
    add("latent contribution real - shuffled >= 0.01 nats/base", gain, 0.01, gain >= 0.01, ">= 0.010")
    if row.get("kind") == "vq" and codebook_size:
        perplexity = _num(row.get("vq_perplexity"))
        add("VQ perplexity >= 0.3 x codebook", perplexity, 0.3 * codebook_size, perplexity >= 0.3 * codebook_size,
            f">= {0.3 * codebook_size:.1f}")  # fmt: skip
    return bars


def _run(cmd: Sequence[str], log: Path, env: Mapping[str, str] | None = None) -> float:
    """Run ``cmd`` with its output in ``log``; returns wall seconds. Raises on failure, naming the log."""
    start = time.perf_counter()
    with open(log, "a") as out:
        out.write("$ " + " ".join(map(str, cmd)) + "\n")
        out.flush()
        done = subprocess.run(list(map(str, cmd)), stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
                              env={**os.environ, **(env or {})}, check=False)  # fmt: skip
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        tail = log.read_text().splitlines()[-15:]
        what = " ".join(map(str, cmd[1:5]))
        raise RuntimeError(f"{what} ... failed (exit {done.returncode}); see {log}:\n" + "\n".join(tail))
    return seconds


def _seqae(*args: Any) -> list[str]:
    return [sys.executable, "-m", "seqae", "--quiet", *map(str, args)]


def part_data(out: Path, config: Mapping[str, Any], cfg_path: Path) -> dict[str, Any]:
    log = out / "data.log"
    results = Path(config["results"])
    seconds = _run(_seqae("simulate", "--config", cfg_path, "--outdir", results / "demo_data"), log)
    seconds += _run(_seqae("extract", "--config", cfg_path, "--out", results / "windows" / "windows.h5"), log)
    return {"seconds": seconds}


def part_bench_train(out: Path) -> dict[str, Any]:
    log = out / "bench_train.log"
    return {"seconds": _run([sys.executable, "benchmarks/bench_train.py"], log)}


def _train_embed_evaluate(model: str, results: Path, cfg_path: Path, log: Path) -> dict[str, float]:
    """``seqae train`` (resumable), ``embed`` and ``evaluate`` of one model; wall seconds of each."""
    windows = results / "windows" / "windows.h5"
    model_dir = results / "models" / model
    seconds = {
        f"{model}.train": _run(
            _seqae(
                "train", "--config", cfg_path, "--model", model, "--windows", windows, "--outdir", model_dir, "--resume"
            ),
            log,
        )  # fmt: skip
    }
    seconds[f"{model}.embed"] = _run(
        _seqae("embed", "--model", model_dir / "best.pt", "--windows", windows, "--outdir", model_dir / "embed"), log
    )
    seconds[f"{model}.evaluate"] = _run(
        _seqae("evaluate", "--config", cfg_path, "--model", model_dir / "best.pt", "--windows", windows,
               "--outdir", model_dir / "evaluate"), log)  # fmt: skip
    return seconds


def part_models(out: Path, config: Mapping[str, Any], cfg_path: Path, jobs: int = 1) -> dict[str, Any]:
    """Every model trained, embedded and evaluated; ``jobs`` models at a time (they share the GPU).

    One model's training leaves most of an H100 idle (the large model ran at
    about 33 TFLOP/s), so several at once finish the set sooner; each model's
    commands go to ``models.<model>.log``.
    """
    from concurrent.futures import ThreadPoolExecutor

    import pandas as pd

    log = out / "models.log"
    results = Path(config["results"])
    seconds: dict[str, float] = {}
    models = list(config["models"])
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(_train_embed_evaluate, m, results, cfg_path, out / f"models.{m}.log") for m in models]
        for future in futures:
            seconds.update(future.result())
    metrics = [results / "models" / m / "evaluate" / "metrics.json" for m in models]
    table_path = results / "models" / "comparison.tsv"
    seconds["compare"] = _run(_seqae("compare", "--metrics", *metrics, "--out", table_path), log)
    table = pd.read_csv(table_path, sep="\t")
    bars, gains = {}, {}
    for row in table.to_dict("records"):
        evaluation = json.loads((results / "models" / row["model"] / "evaluate" / "metrics.json").read_text())
        codebook = (evaluation.get("vq") or {}).get("codebook_size")
        bars[row["model"]] = quality_bars(row, codebook)
        # Sequence error's gain over the window's own composition, real vs shuffled (nats/base):
        # only the difference is structure learnt, what the anomaly AUROC can rest on.
        gains[row["model"]] = {f"seq_gain_{c}": _num(row.get(f"seq_gain_{c}")) for c in ("real", "shuffled")}
        # Two-level models: what the latent adds to the decoder's own order-k chain (nats/base), the
        # AUROC with the order-1 correction the Markov baseline also uses, and the bottleneck.
        for key in ("latent_gain_real", "latent_gain_shuffled", "seq_auroc_shuffled", "seq_corrected_auroc_shuffled",
                    "chain_corrected_auroc_shuffled",
                    "markov_auroc_shuffled", "recon_accuracy", "pca_recon_accuracy", "pca_same_dims_recon_accuracy",
                    "local_bits_per_base"):  # fmt: skip
            gains[row["model"]][key] = _num(row.get(key))
    throughput, last_epoch = {}, {}
    for model in config["models"]:
        history = pd.read_csv(results / "models" / model / "metrics.csv")
        throughput[model] = float(
            history["samples_per_s"].iloc[1:].median() if len(history) > 1 else history["samples_per_s"].iloc[0]
        )
        # How far the sequence got, and how hard head_gradient_cap held the heads back (1: not at all; absent: cap off).
        last = history.iloc[-1]
        # val_auroc_shuffled: the validation windows against their shuffles, the anomaly bar's trend.
        keys = ("val_seq_ce", "train_head_gradient_scale", "val_auroc_shuffled")
        last_epoch[model] = {key: _num(last.get(key)) for key in keys}
        last_epoch[model].update(gains.get(model, {"seq_gain_real": math.nan, "seq_gain_shuffled": math.nan}))
        last_epoch[model]["epochs"] = len(history)
    return {"seconds": seconds, "bars": bars, "train_samples_per_s": throughput, "last_epoch": last_epoch}


def part_trees(out: Path, replicates: int) -> dict[str, Any]:
    log = out / "trees.log"
    report = out / "bench_trees.json"
    seconds = _run([sys.executable, "benchmarks/bench_trees.py", "--replicates", replicates, "--set", "device=cuda",
                    "--json", report], log)  # fmt: skip
    return {"seconds": seconds, "json": report.name}


def part_ddp(out: Path, config: Mapping[str, Any], cfg_path: Path, model: str) -> dict[str, Any]:
    import pandas as pd
    import torch

    log = out / "ddp.log"
    n = max(1, torch.cuda.device_count())
    results = Path(config["results"])
    outdir = out / f"ddp_{model}"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", n, "-m", "seqae", "--quiet",
           "train", "--config", cfg_path, "--model", model, "--windows", results / "windows" / "windows.h5",
           "--outdir", outdir, "--resume"]  # fmt: skip
    seconds = _run(cmd, log)
    history = pd.read_csv(outdir / "metrics.csv")
    return {"seconds": seconds, "processes": n, "epochs": len(history),
            "samples_per_s": float(history["samples_per_s"].iloc[1:].median() if len(history) > 1 else math.nan),
            "best_val_loss": float(history["val_loss"].min())}  # fmt: skip


def write_summary(out: Path, summary: Mapping[str, Any]) -> None:
    lines = ["# GPU checks", ""]
    device = summary.get("device", "?")
    lines += [f"Device: {device}", "", "| part | wall s |", "| --- | ---: |"]
    for part, result in summary["parts"].items():
        seconds = result.get("seconds")
        total = sum(seconds.values()) if isinstance(seconds, Mapping) else seconds
        lines.append(
            f"| {part} | {total:.1f} |" if isinstance(total, float) else f"| {part} | {result.get('error', '')} |"
        )
    models = summary["parts"].get("models", {})
    if "bars" in models:
        lines += [
            "",
            "## Quality bars (test split)",
            "",
            "| model | bar | value | target | passed |",
            "| --- | --- | ---: | --- | --- |",
        ]
        for model, bars in models["bars"].items():
            for bar in bars:
                mark = {True: "yes", False: "**no**", None: "n/a"}[bar["passed"]]
                lines.append(f"| {model} | {bar['bar']} | {bar['value']:.3f} | {bar['target']} | {mark} |")
        lines += ["", "Training samples/s (median epoch): "
                  + ", ".join(f"{m} {v:.0f}" for m, v in models["train_samples_per_s"].items())]  # fmt: skip
        header = ("| model | val seq CE (last epoch) | head gradient scale (train, last epoch) "
                  "| val AUROC vs shuffled (last epoch) "
                  "| test seq gain over composition, real (nats/base) | same, shuffled |")  # fmt: skip
        lines += ["", header, "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for model, last in models.get("last_epoch", {}).items():
            gain_real, gain_shuffled = last.get("seq_gain_real", math.nan), last.get("seq_gain_shuffled", math.nan)
            lines.append(f"| {model} | {last['val_seq_ce']:.4f} | {last['train_head_gradient_scale']:.3g} "
                         f"| {last.get('val_auroc_shuffled', math.nan):.3f} "
                         f"| {gain_real:.4f} | {gain_shuffled:.4f} |")  # fmt: skip
        header = ("| model | epochs | local bits/base | recon | PCA, same dims | latent gain real (nats/base) "
                  "| latent gain shuffled | AUROC shuffled, raw | order-1 corrected | chain, corrected "
                  "| Markov baseline |")  # fmt: skip
        lines += ["", header, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for model, last in models.get("last_epoch", {}).items():
            cells = [last.get(k, math.nan) for k in (
                "local_bits_per_base", "recon_accuracy", "pca_same_dims_recon_accuracy", "latent_gain_real",
                "latent_gain_shuffled", "seq_auroc_shuffled", "seq_corrected_auroc_shuffled",
                "chain_corrected_auroc_shuffled", "markov_auroc_shuffled")]  # fmt: skip
            lines.append(f"| {model} | {last.get('epochs', '')} | " + " | ".join(f"{v:.4g}" for v in cells) + " |")
    for part in ("bench_train", "trees", "ddp"):
        if part in summary["parts"]:
            lines += ["", f"{part}: see {part}.log", "```", json.dumps(summary["parts"][part], indent=1), "```"]
    (out / "gpu_checks.md").write_text("\n".join(lines) + "\n")
    (out / "gpu_checks.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the results, logs and gpu_checks.md")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--overlay", type=Path, nargs="+", default=[REPO / "config" / "gpu.yaml"],
                        help="config files merged onto config/config.yaml in order, as Snakemake merges "
                        "--configfile (default: config/gpu.yaml)")  # fmt: skip
    parser.add_argument("--tree-replicates", type=int, default=10, help="families per setting of the tree benchmark")
    parser.add_argument("--ddp-model", default="plain")
    parser.add_argument("--model-jobs", type=int, default=1,
                        help="models trained at the same time on the one GPU (the models part)")  # fmt: skip
    args = parser.parse_args(argv)

    import torch

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    for overlay in args.overlay:
        config = merge_configs(config, yaml.safe_load(overlay.read_text()) or {})
    # Results (and the demo files the config points at) go under --out.
    config = relocate(config, config["results"], str(out / "results"))
    config["results"] = str(out / "results")
    cfg_path = out / "config.yaml"
    cfg_path.write_text(yaml.safe_dump(config, sort_keys=False))
    summary_path = out / "gpu_checks.json"
    summary: dict[str, Any] = json.loads(summary_path.read_text()) if summary_path.exists() else {"parts": {}}
    summary["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    status = 0
    for part in PARTS:
        if part not in args.parts:
            continue
        if part in ("models", "ddp") and "error" in summary["parts"].get("data", {}):
            print(f"gpu_checks: {part}: skipped, the data part failed", file=sys.stderr)
            continue
        print(f"gpu_checks: {part} ...", flush=True)
        try:
            if part == "data":
                result = part_data(out, config, cfg_path)
            elif part == "bench_train":
                result = part_bench_train(out)
            elif part == "models":
                result = part_models(out, config, cfg_path, args.model_jobs)
            elif part == "trees":
                result = part_trees(out, args.tree_replicates)
            else:
                result = part_ddp(out, config, cfg_path, args.ddp_model)
        except (RuntimeError, OSError) as exc:
            print(f"gpu_checks: {part}: {exc}", file=sys.stderr)
            result, status = {"error": str(exc).splitlines()[0]}, 1
        summary["parts"][part] = result
        write_summary(out, summary)  # after every part: a run cut short keeps what it measured
    print((out / "gpu_checks.md").read_text())
    return status


if __name__ == "__main__":
    sys.exit(main())
