"""The ``seqae`` command line; the Snakemake rules call these subcommands.

Each subcommand reads the same configuration (``--config FILE``, as the
Snakemake rules pass it, or ``--config-json STRING``), validated against the schema. Problems with
the user's input are printed as one line and exit with status 2; no
traceback, no half-written output.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from seqae import __version__
from seqae.config import Config, load_config
from seqae.errors import ConfigError, SeqaeError

log = logging.getLogger("seqae")


DESCRIPTION = (
    "seqae: sequence autoencoders for DNA windows around TF ChIP-seq peak summits. "
    "The Snakemake workflow runs these commands one job at a time; run seqae COMMAND --help for the options of one."
)


def _command(sub: argparse._SubParsersAction, name: str, help: str, config: bool = False) -> argparse.ArgumentParser:
    """A subcommand whose one-line ``help`` (the list in ``seqae --help``) is also
    the description at the top of ``seqae NAME --help``; ``config``: it reads the
    configuration (``--config`` or ``--config-json``, one of them required)."""
    parser = sub.add_parser(name, help=help, description=f"seqae {name}: {help}.")
    if config:
        _add_config_args(parser)
    return parser


def _add_config_args(
    parser: argparse.ArgumentParser, required: bool = True, help: str = "YAML configuration file (see config/README.md)"
) -> None:
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument("--config", type=Path, help=help)
    group.add_argument("--config-json", help="the configuration as a JSON string")


def _add_model_run_args(parser: argparse.ArgumentParser, outdir_help: str) -> None:
    """--model, --windows and --outdir of a command that runs a trained model over a windows file."""
    parser.add_argument("--model", type=Path, required=True, help="model file (best.pt) written by seqae train")
    parser.add_argument("--windows", type=Path, required=True, help="windows HDF5 file written by seqae extract")
    parser.add_argument("--outdir", type=Path, required=True, help=outdir_help)


def _config_from(args: argparse.Namespace, genomes_required: bool = True) -> Config:
    if args.config_json is not None:
        return load_config("--config-json", text=args.config_json, genomes_required=genomes_required)
    if args.config is None and not genomes_required:  # every setting at its default
        return load_config(text="{}", genomes_required=False)
    return load_config(args.config, genomes_required=genomes_required)


def _cmd_simulate(args: argparse.Namespace) -> None:
    config = _config_from(args)
    from seqae.simulate import simulate_demo

    outputs = simulate_demo(config["simulate"], args.outdir)
    log.info("demo data written to %s (%s)", args.outdir, ", ".join(sorted(outputs)))


def _cmd_extract(args: argparse.Namespace) -> None:
    config = _config_from(args)
    from seqae.extract import extract_windows

    report = extract_windows(config, args.out, progress=not args.quiet, threads=args.threads)
    log.info(
        "%d windows (%d peak, %d background) written to %s",
        report["n_windows"],
        report["n_peak_windows"],
        report["n_background_windows"],
        args.out,
    )


def _cmd_extract_plan(args: argparse.Namespace) -> None:
    config = _config_from(args)
    from seqae.shards import plan_shards, shard_dir

    plan = plan_shards(config, args.out, args.shards)
    log.info("%d windows planned in %d shards in %s", plan["n_windows"], len(plan["shards"]), shard_dir(args.out))


def _cmd_extract_shard(args: argparse.Namespace) -> None:
    config = _config_from(args)
    from seqae.shards import write_shard

    path = write_shard(config, args.out, args.shard, threads=args.threads, progress=not args.quiet)
    log.info("shard %d written to %s", args.shard, path)


def _cmd_extract_gather(args: argparse.Namespace) -> None:
    config = _config_from(args)
    from seqae.shards import gather_shards

    report = gather_shards(config, args.out, threads=args.threads)
    log.info("%d windows gathered into %s", report["n_windows"], args.out)


def _cmd_plot_extract(args: argparse.Namespace) -> None:
    from seqae.plots import plot_extract_qc

    plot_extract_qc(args.windows, args.out)
    log.info("QC figure written to %s", args.out)


def _cmd_train(args: argparse.Namespace) -> None:
    config = _config_from(args)
    from seqae.distributed import env_world
    from seqae.training import resolve_model, train_model

    source = str(args.config) if args.config is not None else "--config-json"
    resolve_model(config, args.model, source)  # unknown model or bad settings: one line before any data is read
    # Under torchrun every process runs this; they train data-parallel and rank 0 reports.
    result = train_model(config, args.model, args.windows, args.outdir, resume=args.resume, progress=not args.quiet)
    if env_world().is_main:
        log.info(
            "%s: training %s after %d epochs (%d steps); best selection loss %.4g at epoch %d; model: %s",
            args.model,
            "complete" if result["finished"] else "stopped",
            result["epochs_completed"],
            result["steps"],
            result["best_val_loss"],
            result["best_epoch"],
            Path(args.outdir) / "best.pt",
        )


def _cmd_embed(args: argparse.Namespace) -> None:
    from seqae.embed import embed_windows
    from seqae.embed_shards import embed_shard

    common = {
        "batch_size": args.batch_size,
        "device": args.device,
        "splits": args.splits,
        "progress": not args.quiet,
        "chrom_sizes": args.chrom_sizes,
        "recon_tracks": not args.no_recon_tracks,
        "threads": args.threads,
        "precision": args.precision,
    }
    if (args.shard is None) != (args.shards is None):
        raise SeqaeError("--shard and --shards go together: give both to embed one shard, or neither")
    if args.shard is not None:
        path = embed_shard(args.model, args.windows, args.outdir, args.shard, args.shards, **common)
        log.info("shard %d of %d embedded into %s", args.shard, args.shards, path)
        return
    result = embed_windows(args.model, args.windows, args.outdir, **common)
    s = result.summary
    log.info(
        "%d windows embedded in %.1f s (%.0f windows/s on %s, %s); outputs in %s",
        s["n_windows"], s["seconds"], s["windows_per_second"], s["device"], s["precision"], args.outdir,
    )  # fmt: skip


def _cmd_embed_gather(args: argparse.Namespace) -> None:
    from seqae.embed_shards import gather_embedding

    result = gather_embedding(
        args.model, args.windows, args.outdir, args.shards, batch_size=args.batch_size, splits=args.splits,
        chrom_sizes=args.chrom_sizes, recon_tracks=not args.no_recon_tracks,
    )  # fmt: skip
    log.info("%d windows gathered from %d shards; outputs in %s", result.summary["n_windows"], args.shards, args.outdir)


def _cmd_evaluate(args: argparse.Namespace) -> None:
    from seqae.evaluation import evaluate_model

    settings = None
    if args.config is not None or args.config_json is not None:
        settings = _config_from(args).get("evaluate")
    metrics = evaluate_model(
        args.model, args.windows, args.outdir, settings=settings, device=args.device, progress=not args.quiet
    )
    log.info(
        "%s evaluated on %d test windows in %.1f s; metrics.json and figures in %s",
        metrics["model"]["name"], metrics["data"]["n_test"], metrics["timings"]["total"], args.outdir,
    )  # fmt: skip


def _cmd_compare(args: argparse.Namespace) -> None:
    from seqae.compare import compare_models

    table = compare_models(args.metrics, args.out, args.png)
    log.info("%d models compared: %s (+ .md, figure)", len(table), args.out)


def _cmd_trees(args: argparse.Namespace) -> None:
    """``seqae trees`` (one family) and ``seqae trees-gather`` (rows -> trees.tsv)."""
    if args.command == "trees-gather":
        from seqae.phylo.trees_table import draw_tree_summary, gather_trees, summarise_trees, summary_line

        table = gather_trees(args.rows, args.out)
        log.info("%d family rows gathered into %s", len(table), args.out)
        if args.summary is not None:
            import json

            from seqae.fileio import atomic_output

            summary = summarise_trees(table)
            with atomic_output(args.summary) as tmp:
                tmp.write_text(json.dumps(summary, indent=2) + "\n")
            log.info("%s", summary_line(summary))
        if args.figure is not None:
            draw_tree_summary(table, args.figure, title=args.title)
        return
    from seqae.phylo.stage import run_families, run_family

    config = _config_from(args, genomes_required=False)
    settings = {**config.get("trees", {}), "seed": config["seed"]}
    figures = " and figures" if settings.get("render", True) else ""
    if args.batch is not None or args.all:
        from seqae.phylo.inputs import read_batch

        one_family = [f"--{k}" for k in ("family", "fasta", "reference", "labels") if getattr(args, k) is not None]
        if args.batch is not None and args.all:
            raise ConfigError("give --batch or --all, not both (--all fits the configuration's trees.families)")
        if one_family:
            raise ConfigError(
                f"{one_family[0]} names one family; --batch and --all fit the families they list (give one or the other)"
            )

        if args.batch is not None:
            specs = read_batch(args.batch, args.outdir)
        else:
            specs = [{"name": f["name"], "fasta": f["fasta"], "reference": f.get("reference"), "labels": f.get("labels"),
                      "outdir": args.outdir / f["name"]} for f in config["trees"].get("families") or []]  # fmt: skip
            if not specs:
                raise ConfigError("--all: the configuration lists no trees.families")
        rows = run_families(specs, settings, progress=not args.quiet)
        log.info("%d families fitted together; latent trees%s written under %s", len(rows), figures, args.outdir)
        return
    if args.family is None or args.fasta is None:
        raise ConfigError("give --family and --fasta (one family), --batch or --all (several)")
    row = run_family(args.fasta, args.outdir, settings, reference_tree=args.reference, labels=args.labels,
                     family=args.family, progress=not args.quiet)  # fmt: skip
    log.info("%s: latent tree%s written to %s", row["family"], figures, args.outdir)


def _cmd_report(args: argparse.Namespace) -> None:
    from seqae.config import merge_config_layers, read_config_yaml, validate_config
    from seqae.report import build_report, summary_lines

    config = None
    if args.config:
        layers = [read_config_yaml(path) for path in args.config]
        for path, layer in zip(args.config, layers, strict=True):
            if layer is not None and not isinstance(layer, dict):
                raise SeqaeError(f"{path}: expected a mapping of keys at the top level")
        # Merged as the workflow merges --configfile (a later file's models replace the earlier's).
        config = validate_config(merge_config_layers(layers), " + ".join(map(str, args.config)))
    results = args.results if args.results is not None else Path(config["results"] if config else "results")
    result = build_report(results, args.out, config=config, title=args.title)
    for line in summary_lines(result, rerun_hint=args.rerun_hint):
        log.info("%s", line)


def _cmd_orthologs(args: argparse.Namespace) -> None:
    from seqae.orthologs import build_ortholog_families

    build_ortholog_families(_config_from(args), args.outdir, threads=args.threads)


def _add_extract_args(p: argparse.ArgumentParser) -> None:
    _add_config_args(p)
    p.add_argument(
        "--out", type=Path, required=True,
        help="windows HDF5 file; windows.bed, windows.tsv and extract_report.json go beside it, and the shards in shards/",
    )  # fmt: skip


def _count(text: str) -> int:
    """An argparse type: an integer of at least 1 (shards, threads)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is below 1")
    return value


def _add_threads_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--threads", type=_count, default=None, metavar="N",
        help="CPU threads: one reads ahead, N - 1 compress (default: the CPUs this process may use, up to 5)",
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seqae", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"seqae {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = _command(
        sub, "simulate", help="write the embedded demo data (genome, genes, peaks, tracks, truth)", config=True
    )
    p.add_argument("--outdir", type=Path, required=True, help="folder for the demo data")
    p.set_defaults(func=_cmd_simulate)

    p = _command(sub, "extract", help="extract summit-centred windows with tracks and labels into an HDF5 file")
    _add_extract_args(p)
    _add_threads_arg(p)
    p.set_defaults(func=_cmd_extract)

    # Sharded extraction (seqae/shards.py): the three steps take the same --config and --out.
    steps = {
        "extract-plan": ("sharded extraction, step 1: plan the windows and the shards", _cmd_extract_plan),
        "extract-shard": ("sharded extraction, step 2: write one shard of the plan", _cmd_extract_shard),
        "extract-gather": ("sharded extraction, step 3: gather the shards into the windows file", _cmd_extract_gather),
    }
    step = {}
    for name, (text, func) in steps.items():
        step[name] = _command(sub, name, help=text)
        _add_extract_args(step[name])
        step[name].set_defaults(func=func)
    step["extract-gather"].set_defaults(threads=1)  # it copies compressed chunks: nothing to spread over threads
    step["extract-plan"].add_argument(
        "--shards", type=_count, required=True, help="number of shards (jobs writing groups of chromosomes)"
    )
    step["extract-shard"].add_argument("--shard", type=int, required=True, help="the shard to write (0 ... shards - 1)")
    _add_threads_arg(step["extract-shard"])

    p = _command(sub, "plot-extract", help="draw the extraction QC figure of a windows file (PNG or SVG)")
    p.add_argument("--windows", type=Path, required=True, help="windows HDF5 file written by seqae extract")
    p.add_argument("--out", type=Path, required=True, help="figure path; the format follows the extension")
    p.set_defaults(func=_cmd_plot_extract)

    p = _command(
        sub, "train", help="train one configured model on a windows file (on the GPU when there is one)", config=True
    )
    p.add_argument("--model", required=True, help="name of a model under models: in the config")
    p.add_argument("--windows", type=Path, required=True, help="windows HDF5 file written by seqae extract")
    p.add_argument(
        "--outdir",
        type=Path,
        required=True,
        help="folder for checkpoint.pt, best.pt, model.json, metrics.csv, loss_curves.png and tensorboard/",
    )
    p.add_argument(
        "--resume", action="store_true", help="continue from OUTDIR/checkpoint.pt where it stopped, if it exists"
    )
    p.set_defaults(func=_cmd_train)

    p = _command(
        sub, "embed", help="embed windows with a trained model: latents + anomaly scores (Parquet), tracks (bigWig)"
    )
    _add_model_run_args(p, "folder for embeddings.parquet, recon_<track>.bw, anomaly.bw and embed_summary.json")
    p.add_argument(
        "--batch-size", type=int, default=None,
        help="windows per forward pass (default: 512 on a GPU, 32 on the CPU, where larger batches are slower)",
    )  # fmt: skip
    p.add_argument(
        "--device", choices=["auto", "cpu", "cuda"], default="auto", help="default auto: the GPU when there is one"
    )
    p.add_argument(
        "--splits", nargs="+", metavar="SPLIT", help="embed only these splits (e.g. test); default all windows"
    )
    p.add_argument(
        "--chrom-sizes", type=Path,
        help="UCSC chrom.sizes for the bigWig headers (seqae extract writes one beside the windows file); without it "
        "a chromosome's size is the last base the windows file holds (genome browsers need the real sizes for "
        "whole-genome views)",
    )  # fmt: skip
    p.add_argument(
        "--no-recon-tracks", action="store_true", help="skip the recon_<track>.bw files (the slowest output)"
    )
    p.add_argument("--threads", type=int, help="CPU threads of the model (default: every core torch sees)")
    p.add_argument(
        "--precision", choices=["auto", "fp32", "bf16"], default="auto",
        help="the model's precision; default auto: bf16 on a GPU and on CPUs with AMX or AVX512-BF16 "
        "(up to 1.4x as fast end to end; latents within about 1e-3 of fp32's), else fp32",
    )  # fmt: skip
    p.add_argument(
        "--shard", type=int, help="embed only shard SHARD of --shards (0-based); seqae embed-gather writes the outputs"
    )
    p.add_argument("--shards", type=_count, help="shards the windows are cut into (with --shard)")
    p.set_defaults(func=_cmd_embed)

    p = _command(
        sub, "embed-gather", help="write the outputs of seqae embed from its shards (OUTDIR/shards/embed_shard_*.h5)"
    )
    p.add_argument("--model", type=Path, required=True, help="the model file the shards were embedded with")
    p.add_argument("--windows", type=Path, required=True, help="the windows file the shards were embedded from")
    p.add_argument("--outdir", type=Path, required=True, help="the --outdir of the shards")
    p.add_argument("--shards", type=_count, required=True, help="number of shards")
    p.add_argument("--batch-size", type=int, default=None, help="the shards' --batch-size (default: as theirs)")
    p.add_argument("--splits", nargs="+", metavar="SPLIT", help="the shards' --splits")
    p.add_argument("--chrom-sizes", type=Path, help="the shards' --chrom-sizes")
    p.add_argument("--no-recon-tracks", action="store_true", help="the shards' --no-recon-tracks")
    p.set_defaults(func=_cmd_embed_gather)

    p = _command(
        sub, "evaluate", help="evaluate a trained model on the test split: probes vs baselines, swaps, AUROC, figures"
    )
    _add_model_run_args(
        p,
        "folder for metrics.json, probe_matrix.tsv and the figures "
        "(probe_matrix.png, latent_<block>.png, anomaly_scores.png)",
    )
    p.add_argument(
        "--device", choices=["auto", "cpu", "cuda"], default="auto", help="default auto: the GPU when there is one"
    )
    _add_config_args(p, required=False, help="YAML configuration whose evaluate: settings apply (optional)")
    p.set_defaults(func=_cmd_evaluate)

    p = _command(sub, "compare", help="tabulate several models' metrics.json side by side (TSV, Markdown, bar figure)")
    p.add_argument(
        "--metrics", type=Path, nargs="+", required=True, help="metrics.json files written by seqae evaluate"
    )
    p.add_argument(
        "--out", type=Path, required=True, help="comparison table (TSV); the Markdown table goes beside it as .md"
    )
    p.add_argument("--png", type=Path, help="grouped bar figure (default: --out with suffix .png)")
    p.set_defaults(func=_cmd_compare)

    p = _command(
        sub,
        "orthologs",
        help="families of orthologous windows across the genomes (one FASTA per family) for seqae trees",
        config=True,
    )
    p.add_argument(
        "--outdir", type=Path, required=True,
        help="folder for <family>.fa, <family>.nwk (pruned species tree), members.tsv, families.tsv and report.json",
    )  # fmt: skip
    p.add_argument("--threads", type=int, default=1, metavar="N", help="MAFFT alignments run at a time (default 1)")
    p.set_defaults(func=_cmd_orthologs)

    p = _command(
        sub,
        "trees",
        help="latent tree of one aligned family, or of a batch fitted together: Newick/NHX, figures, summary rows",
    )
    _add_config_args(p, required=False, help="YAML configuration whose trees: settings and seed apply (optional: the "
                     "defaults; it needs no genomes: section)")  # fmt: skip
    p.add_argument("--family", help="family name (names the outputs: NAME.nwk, NAME.nhx, NAME.png, NAME.tsv, ...)")
    p.add_argument(
        "--fasta",
        type=Path,
        help="the family's alignment: FASTA (plain or gzip), or NEXUS, PHYLIP, Stockholm or Clustal "
        "(align unaligned families first, e.g. with MAFFT)",
    )
    p.add_argument("--batch", type=Path,
                   help="TSV of families fitted together (columns name, fasta, and optionally reference, labels); "
                   "each family's outputs go to OUTDIR/NAME/")  # fmt: skip
    p.add_argument(
        "--all",
        action="store_true",
        help="fit every family of the configuration's trees.families together (outputs in OUTDIR/NAME/)",
    )
    p.add_argument(
        "--reference",
        type=Path,
        help="reference/true tree of the family (Newick, or NEXUS with one tree), for the nRF columns",
    )
    p.add_argument(
        "--labels", type=Path, help="leaf labels: two-column TSV (sequence name, label) for the figures and NHX"
    )
    p.add_argument(
        "--outdir", type=Path, required=True, help="folder for the family's outputs (with --batch: their parent)"
    )
    p.set_defaults(func=_cmd_trees)
    p = _command(sub, "report", help="an HTML report of the figures a run has written so far, listing what is missing")
    p.add_argument(
        "--config", type=Path, nargs="+",
        help="the run's configuration files, merged in order as snakemake --configfile merges them; they say where "
        "the results are and which models and families to expect (without: those found under --results)",
    )  # fmt: skip
    p.add_argument(
        "--results", type=Path, help="the results folder (default: the configuration's results, else results)"
    )
    p.add_argument("--out", type=Path, required=True, help="the HTML file to write (figures embedded)")
    p.add_argument("--title", default="seqae report", help="the page title")
    p.add_argument("--rerun-hint", default="run the workflow again", help=argparse.SUPPRESS)
    p.set_defaults(func=_cmd_report)

    p = _command(sub, "trees-gather", help="concatenate the families' one-row TSVs of seqae trees into trees.tsv")
    p.add_argument("--rows", type=Path, nargs="+", required=True, help="NAME.tsv files written by seqae trees")
    p.add_argument("--out", type=Path, required=True, help="trees.tsv to write")
    p.add_argument("--summary", type=Path, help="JSON of mean nRF per method and latent vs NJ-p counts")
    p.add_argument("--figure", type=Path, help="bar figure of mean nRF per method (PNG or SVG)")
    p.add_argument("--title", default="Trees", help="the figure's title (default: Trees)")
    p.set_defaults(func=_cmd_trees)
    return parser


class _Terminated(BaseException):
    """SIGTERM, raised as an exception (not an Exception: nothing may catch it on the way)."""


def _raise_terminated(signum: int, frame: object) -> None:
    # Once: a scheduler may signal the job's processes more than once (SLURM's
    # `scancel --full` reaches the batch step and its children), and a second
    # exception raised inside the first one's clean-up would leave its
    # temporary file behind. SIGKILL still follows after the grace time.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise _Terminated(signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``seqae`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="seqae %(levelname)s: %(message)s", stream=sys.stderr)
    func: Callable[[argparse.Namespace], None] = args.func
    # A scheduler stops a job with SIGTERM (SLURM at a time limit or on
    # scancel), whose default action ends the process on the spot. As an
    # exception it unwinds instead: every atomic_output removes its temporary
    # file, so no half-written file is left beside the outputs.
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        func(args)
    except SeqaeError as exc:
        print(f"seqae {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"seqae {args.command}: interrupted", file=sys.stderr)
        return 130
    except _Terminated:
        print(f"seqae {args.command}: terminated (SIGTERM); unfinished files removed", file=sys.stderr)
        return 128 + signal.SIGTERM
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 0


if __name__ == "__main__":
    sys.exit(main())
