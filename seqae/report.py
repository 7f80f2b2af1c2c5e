"""A report from whatever a run has written: ``seqae report``.

Snakemake's own report (``snakemake --report``) needs a complete run: it stops
on outputs an interrupted run left incomplete, and on a figure marked for the
report that does not exist. This one reads the results folder instead. It
gathers every figure that exists into one self-contained HTML file (the PNGs
embedded), grouped as the pipeline's stages, and lists what the configuration
plans that is not there yet, and the outputs Snakemake marks as incomplete
(the jobs an interrupted run left running). It never fails for a missing part.

A figure whose inputs changed after it was drawn (windows rebuilt, a model
retrained, or removed by a failed rerun) is shown with a note saying so: it
may describe an earlier run. Like Snakemake, this reads the files' modification
times, so a results folder copied without them (``cp -r`` rather than
``cp -a``) can be marked wrongly.
"""

from __future__ import annotations

import base64
import html
import os
from base64 import urlsafe_b64decode
from dataclasses import dataclass, field
from pathlib import Path

from seqae.config import Config, genome_input_files
from seqae.errors import SeqaeError
from seqae.fileio import atomic_output

__all__ = ["ReportResult", "build_report", "incomplete_outputs", "out_of_date", "summary_lines"]

#: Short captions of the figures (Snakemake's report has the long ones, workflow/report/*.rst).
CAPTIONS = {
    "extract_qc": "Windows: GC of peak and background windows, windows per chromosome, mean signal around the summits.",
    "loss_curves": "Training: loss per epoch (train solid, validation dashed) and its terms; the title says how "
    "long the model trained.",
    "probe_matrix": "Linear probes on the test windows: colour and large number = accuracy minus chance, "
    "small number = accuracy.",
    "anomaly_scores": "Anomaly scores of real test windows against shuffled and foreign controls.",
    "latent": "A latent block of the test windows in two dimensions, coloured by a label.",
    "comparison": "Every model's headline numbers side by side (comparison.tsv has them all).",
    "trees_nrf": "Normalised Robinson-Foulds distance of each method's tree to the reference (lower is better).",
    "tree": "The latent tree of one family.",
}


@dataclass
class ReportResult:
    """What :func:`build_report` found: figures shown, planned outputs missing, outputs left incomplete,
    and the figures shown whose inputs changed after they were drawn (figure -> why)."""

    path: Path
    figures: list[Path] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)
    out_of_date: dict[Path, str] = field(default_factory=dict)


def incomplete_outputs(workdir: str | os.PathLike[str] = ".") -> list[str]:
    """Outputs that Snakemake marks as incomplete in ``workdir/.snakemake/incomplete``: those of jobs
    that were running when a run was killed (file names, as Snakemake records them, base64)."""
    folder = Path(workdir) / ".snakemake" / "incomplete"
    found = []
    if not folder.is_dir():
        return found
    for path in folder.rglob("*"):
        if not path.is_file() or path.name.startswith("@") or path.name == "migration_underway":
            continue
        # Long names are split into folders whose names start with "@".
        parts = [p.lstrip("@") for p in path.relative_to(folder).parts]
        try:
            found.append(urlsafe_b64decode("".join(parts).encode()).decode())
        except (ValueError, UnicodeDecodeError):
            continue
    return sorted(found)


def _planned(config: Config | None, results: Path) -> dict[str, list[Path]]:
    """Section -> the figure files the configuration plans (the models and families it names);
    without a configuration, the models and families found under ``results``."""
    models_dir, trees_dir = results / "models", results / "trees"
    if config is not None:
        models = list(config.get("models", {}))
        families = [f["name"] for f in config.get("trees", {}).get("families", [])]
        orthologs = bool(config.get("orthologs", {}).get("enabled"))
    else:
        models = sorted(p.name for p in models_dir.glob("*") if p.is_dir())
        families = sorted(p.name for p in trees_dir.glob("*") if p.is_dir())
        orthologs = (results / "orthologs").is_dir()
    sections: dict[str, list[Path]] = {"Windows": [results / "windows" / "extract_qc.png"]}
    sections["Training"] = [models_dir / m / "loss_curves.png" for m in models]
    evaluation = []
    for m in models:
        folder = models_dir / m / "evaluate"
        evaluation += [folder / "probe_matrix.png", folder / "anomaly_scores.png"]
        evaluation += sorted((folder / "latent").glob("latent_*.png"))
    if models:
        evaluation.append(models_dir / "comparison.png")
    sections["Evaluation"] = evaluation
    trees = [trees_dir / f / f"{f}.png" for f in families]
    if families:
        trees.append(trees_dir / "trees_nrf.png")
    sections["Trees"] = trees
    if orthologs:
        folder = results / "orthologs"
        family_trees = [p for p in sorted(folder.glob("trees/*/*.png")) if not p.name.endswith(".circular.png")]
        sections["Orthologous windows"] = [folder / "trees_nrf.png", *family_trees]
    return sections


def _inputs(path: Path, results: Path, config: Config | None) -> list[Path]:
    """The files the workflow makes ``path`` from (the inputs of its rule), for the outputs the report
    looks at and the files between them and the user's inputs; [] for anything else.

    The user's own inputs (genomes, peaks, tracks, family alignments) are named only with a config."""
    windows = results / "windows" / "windows.h5"
    models_dir, trees_dir, orthologs = results / "models", results / "trees", results / "orthologs"
    rel = path.relative_to(results).parts if path.is_relative_to(results) else ()
    if path == windows:
        if config is None:
            return []
        return [Path(name) for name in genome_input_files(config.get("genomes", []))]
    if rel == ("windows", "extract_qc.png"):
        return [windows]
    if len(rel) >= 3 and rel[0] == "models" and rel[2] in ("best.pt", "loss_curves.png"):
        return [windows]
    if len(rel) >= 4 and rel[0] == "models" and rel[2] == "evaluate":
        return [models_dir / rel[1] / "best.pt", windows]
    if rel == ("models", "comparison.png"):
        models = list(config.get("models", {})) if config is not None else None
        found = sorted(models_dir.glob("*/evaluate/metrics.json"))
        return found if models is None else [models_dir / m / "evaluate" / "metrics.json" for m in models]
    if rel == ("trees", "trees_nrf.png"):
        if config is None:
            return sorted(trees_dir.glob("*/*.tsv"))
        return [trees_dir / f["name"] / f"{f['name']}.tsv" for f in config.get("trees", {}).get("families", [])]
    if len(rel) == 3 and rel[0] == "trees" and config is not None:
        family = next((f for f in config.get("trees", {}).get("families", []) if f["name"] == rel[1]), None)
        return [Path(family[key]) for key in ("fasta", "reference", "labels") if family and family.get(key)]
    if rel == ("orthologs", "trees_nrf.png"):
        return sorted((orthologs / "trees").glob("*/*.tsv"))
    if len(rel) == 4 and rel[:2] == ("orthologs", "trees"):
        return [orthologs / "families" / f"{rel[2]}.fa"]
    return []


def out_of_date(path: Path, results: Path, config: Config | None = None) -> str | None:
    """Why the figure ``path`` may describe an earlier run, or None.

    As Snakemake decides what to rerun: ``path`` is out of date when a file it
    is made from, directly or through the files between, was written after the
    file made from it. A file of the results folder it is made from that is
    gone (removed by a failed rerun, or by hand) also makes it out of date."""
    made, seen = [path], set()
    while made:
        product = made.pop()
        if product in seen:
            continue
        seen.add(product)
        for source in _inputs(product, results, config):
            name = str(source.relative_to(results)) if source.is_relative_to(results) else str(source)
            try:
                newer = source.stat().st_mtime_ns > product.stat().st_mtime_ns
            except FileNotFoundError:
                if source.is_relative_to(results):
                    return f"{name} is gone (removed, or a rerun of its job failed)"
                continue  # the user's input moved: Snakemake would say so
            if newer:
                return f"{name} was written after it"
            made.append(source)
    return None


def _caption(path: Path) -> str:
    stem = path.stem
    for key in ("loss_curves", "probe_matrix", "anomaly_scores", "comparison", "trees_nrf", "extract_qc"):
        if stem == key:
            return CAPTIONS[key]
    return CAPTIONS["latent"] if stem.startswith("latent_") else CAPTIONS["tree"]


def _figure_html(path: Path, results: Path, why_out_of_date: str | None = None) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    name = html.escape(str(path.relative_to(results)) if path.is_relative_to(results) else str(path))
    warning = (
        f'<p class="stale"><b>May show an earlier run:</b> {html.escape(why_out_of_date)}. '
        "Run the workflow again to redraw it.</p>"
        if why_out_of_date
        else ""
    )
    return (
        f'<figure>{warning}<img src="data:image/png;base64,{data}" alt="{name}">'
        f"<figcaption><code>{name}</code>: {html.escape(_caption(path))}</figcaption></figure>"
    )


def build_report(
    results: str | os.PathLike[str],
    out: str | os.PathLike[str],
    config: Config | None = None,
    title: str = "seqae report",
    workdir: str | os.PathLike[str] = ".",
) -> ReportResult:
    """Write an HTML report of the figures under ``results`` to ``out``.

    Args:
        results: the results folder of a run (the config's ``results``).
        out: the HTML file to write (self-contained: the figures are embedded).
        config: the run's validated configuration, which says what to expect;
            None: the models and families found under ``results``.
        title: the page title.
        workdir: the folder Snakemake ran in (for its ``.snakemake`` records).

    Returns:
        The figures shown, the planned figures missing and the incomplete outputs.
    """
    results = Path(results)
    if results.exists() and not results.is_dir():
        raise SeqaeError(f"{results}: is a file; give the results folder of a run")
    result = ReportResult(Path(out))
    incomplete = incomplete_outputs(workdir)
    result.incomplete = [p for p in incomplete if Path(p).is_relative_to(results) or not Path(p).is_absolute()]
    marked = {os.path.normpath(p) for p in result.incomplete}
    body: list[str] = []
    for section, paths in _planned(config, results).items():
        shown = []
        for path in paths:
            if path.is_file() and os.path.normpath(path) not in marked:
                why = out_of_date(path, results, config)
                if why:
                    result.out_of_date[path] = why
                shown.append(_figure_html(path, results, why))
                result.figures.append(path)
            else:
                result.missing.append(str(path))
        if shown:
            body.append(f"<h2>{html.escape(section)}</h2>" + "".join(shown))
    notes = []
    if result.incomplete:
        notes.append(
            "<p><b>The last run stopped before it finished.</b> Snakemake marks these outputs as incomplete "
            "(their jobs were running); run the workflow again to finish them (a model's training resumes "
            "from its checkpoint):</p><ul>"
            + "".join(f"<li><code>{html.escape(p)}</code></li>" for p in result.incomplete)
            + "</ul>"
        )
    if result.out_of_date:
        notes.append(
            f"<p><b>{len(result.out_of_date)} figures may show an earlier run</b>: files they are drawn from "
            "changed after them (marked below). Run the workflow again to redraw them.</p>"
        )
    if result.missing:
        notes.append(
            "<p><b>Not in this report</b> (planned by the configuration, not written yet):</p><ul>"
            + "".join(f"<li><code>{html.escape(p)}</code></li>" for p in result.missing)
            + "</ul>"
        )
    page = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
        "img{max-width:100%;border:1px solid #ddd}figure{margin:1.5em 0}figcaption{font-size:90%;color:#333}"
        ".stale{background:#fff3cd;border-left:4px solid #e0a800;padding:.4em .8em}"
        "</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{len(result.figures)} figures from <code>{html.escape(str(results))}</code>."
        "</p>" + "".join(notes) + "".join(body) + "</body></html>\n"
    )
    with atomic_output(result.path) as tmp:
        Path(tmp).write_text(page)
    return result


def summary_lines(result: ReportResult, rerun_hint: str = "run the workflow again") -> list[str]:
    """What a person needs to read on the terminal after :func:`build_report`."""
    lines = [f"report with {len(result.figures)} figures written to {result.path}"]
    if result.incomplete:
        lines.append(
            f"the last run stopped before it finished ({len(result.incomplete)} outputs incomplete, e.g. "
            f"{result.incomplete[0]}): {rerun_hint} to finish it (training resumes from its checkpoint)"
        )
    if result.out_of_date:
        path, why = next(iter(result.out_of_date.items()))
        lines.append(
            f"{len(result.out_of_date)} figures may show an earlier run (marked in the report), e.g. {path}: "
            f"{why}; {rerun_hint} to redraw them"
        )
    if result.missing:
        lines.append(
            f"{len(result.missing)} planned figures are not there yet (listed in the report): e.g. {result.missing[0]}"
        )
    return lines
