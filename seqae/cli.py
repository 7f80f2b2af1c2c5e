"""The ``seqae`` command line; the Snakemake rules call these subcommands.

Each subcommand reads the same configuration (``--config FILE`` or, from the
rules, ``--config-json STRING``), validated against the schema. Problems with
the user's input are printed as one line and exit with status 2; no
traceback, no half-written output.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from seqae import __version__
from seqae.config import Config, load_config
from seqae.errors import SeqaeError

log = logging.getLogger("seqae")


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--config", type=Path, help="YAML configuration file (see config/README.md)")
    group.add_argument("--config-json", help="the configuration as a JSON string (used by the Snakemake rules)")


def _config_from(args: argparse.Namespace) -> Config:
    if args.config_json is not None:
        return load_config(text=args.config_json)
    return load_config(args.config)


def _cmd_simulate(args: argparse.Namespace) -> None:
    config = _config_from(args)
    from seqae.simulate import simulate_demo

    outputs = simulate_demo(config["simulate"], args.outdir)
    log.info("demo data written to %s (%s)", args.outdir, ", ".join(sorted(outputs)))


def _cmd_extract(args: argparse.Namespace) -> None:
    config = _config_from(args)
    from seqae.extract import extract_windows

    report = extract_windows(config, args.out, progress=not args.quiet)
    log.info(
        "%d windows (%d peak, %d background) written to %s",
        report["n_windows"],
        report["n_peak_windows"],
        report["n_background_windows"],
        args.out,
    )


def _cmd_plot_extract(args: argparse.Namespace) -> None:
    from seqae.plots import plot_extract_qc

    plot_extract_qc(args.windows, args.out)
    log.info("QC figure written to %s", args.out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seqae", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"seqae {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("simulate", help="write the embedded demo data (genome, genes, peaks, tracks, truth)")
    _add_config_args(p)
    p.add_argument("--outdir", type=Path, required=True, help="folder for the demo data")
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser("extract", help="extract summit-centred windows with tracks and labels into an HDF5 file")
    _add_config_args(p)
    p.add_argument(
        "--out", type=Path, required=True, help="windows HDF5 file; windows.bed, windows.tsv and extract_report.json go beside it"
    )
    p.set_defaults(func=_cmd_extract)

    p = sub.add_parser("plot-extract", help="draw the extraction QC figure of a windows file (PNG or SVG)")
    p.add_argument("--windows", type=Path, required=True, help="windows HDF5 file written by `seqae extract`")
    p.add_argument("--out", type=Path, required=True, help="figure path; the format follows the extension")
    p.set_defaults(func=_cmd_plot_extract)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``seqae`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="seqae %(levelname)s: %(message)s", stream=sys.stderr)
    func: Callable[[argparse.Namespace], None] = args.func
    try:
        func(args)
    except SeqaeError as exc:
        print(f"seqae {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"seqae {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
