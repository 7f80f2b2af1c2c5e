"""Orthologous windows across genomes, grouped into families for the tree stage.

``seqae orthologs`` (the ``ortholog_families`` rule) reads the genomes of
``config["genomes"]`` and the settings of ``config["orthologs"]``, and writes
one FASTA per family of orthologous windows, one sequence per species,
named by the species, so that each family's tree can be read against the
species tree.

**Which genes are orthologs**: an ortholog table (``orthologs.table``; one
row per family, one column per species holding that species' gene id, see
:func:`seqae.ortholog_table.read_ortholog_table`), or else a one-to-one gene-name match: genes
whose ``gene_name`` occurs exactly once in each of several annotations.

**Where the window sits** (``orthologs.anchor``):

- ``tss``: ``window_len`` bp centred on each ortholog's TSS;
- ``peak``: centred on the family's *matched peak*: the peak near the TSS
  (within ``max_tss_distance``) that most of the family's species share, at
  the same offset from the TSS give or take ``peak_match_distance`` (see
  :func:`matched_summits`); a species without it leaves the family (TF
  binding is gained and lost between species).

Windows are read on the gene's strand (reverse-complemented for genes on
``-``), so orthologs on opposite strands of their genomes line up. Families
with fewer than ``min_species`` windows are dropped (a tree needs 4 leaves);
the first ``max_families`` of the rest are kept, most species first.

**Alignment** (``orthologs.align``): ``mafft`` aligns each family with MAFFT
(``mafft --auto``), which real genomes need (indels move homologous bases);
``none`` keeps the windows as they are, right only when the genomes share
coordinates (the demo's species are evolved without indels).

Files written under ``outdir`` (built in a temporary folder that is renamed
into place, so a killed run leaves no half-written folder):

=====================  =====================================================
``<family>.fa``        the family's windows (aligned when ``align: mafft``),
                       one per species, named by the species
``<family>.nwk``       the species tree pruned to the family's species (when
                       ``orthologs.species_tree`` is given)
``members.tsv``        one row per window: family, species, gene_id,
                       gene_name, chrom, strand, tss, summit (-1 for ``tss``),
                       start, end (0-based, half-open, on the genome's + strand)
``families.tsv``       one row per family: family, n_species, species
``report.json``        counts: genes named / found / absent per species,
                       windows dropped and why, families kept and dropped
=====================  =====================================================
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from seqae.alphabet import CODE_N, reverse_complement
from seqae.errors import ConfigError, InputError, SeqaeError
from seqae.fileio import output_folder, write_tsv
from seqae.genome import Genome, decode, gather_windows
from seqae.mafft import align_families
from seqae.ortholog_table import few, match_gene_names, read_ortholog_table, resolve_genes

__all__ = ["MEMBER_COLUMNS", "anchor_windows", "build_ortholog_families", "matched_summits", "select_families"]

log = logging.getLogger("seqae")

#: Columns of ``members.tsv``.
MEMBER_COLUMNS = ("family", "species", "gene_id", "gene_name", "chrom", "strand", "tss", "summit", "start", "end")


def _peaks_near(members: pd.DataFrame, peaks: Mapping[str, pd.DataFrame], max_distance: int) -> pd.DataFrame:
    """Every (member, summit) pair within ``max_distance`` of the member's TSS.

    Returns:
        ``member`` (row of ``members``), ``family``, ``species``, ``summit``
        and ``offset`` (summit - TSS on the gene's strand, bp).
    """
    tss = members["tss"].to_numpy(np.int64)
    sign = np.where(members["strand"].to_numpy() == "-", -1, 1)
    member_parts, summit_parts = [], []
    for (sp, chrom), rows in members.groupby(["species", "chrom"], sort=False).indices.items():
        frame = peaks[sp]
        summits = np.sort(frame.loc[frame["chrom"] == chrom, "summit"].to_numpy(np.int64))
        lo = np.searchsorted(summits, tss[rows] - max_distance, side="left")
        hi = np.searchsorted(summits, tss[rows] + max_distance, side="right")
        counts = hi - lo
        # Expand each member's run of summits [lo, hi) without a loop per member.
        first = np.repeat(lo - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
        member_parts.append(np.repeat(rows, counts))
        summit_parts.append(summits[first + np.arange(counts.sum())] if counts.sum() else np.zeros(0, np.int64))
    member = np.concatenate(member_parts) if member_parts else np.zeros(0, np.int64)
    summit = np.concatenate(summit_parts) if summit_parts else np.zeros(0, np.int64)
    return pd.DataFrame({
        "member": member,
        "family": members["family"].to_numpy()[member],
        "species": members["species"].to_numpy()[member],
        "summit": summit,
        "offset": (summit - tss[member]) * sign[member],
    })  # fmt: skip


def matched_summits(
    members: pd.DataFrame, peaks: Mapping[str, pd.DataFrame], max_tss_distance: int, match_distance: int
) -> np.ndarray:
    """Each member's summit of its family's matched peak, or -1 where it has none.

    The matched peak of a family is the peak position, as an offset from the
    TSS on the gene's strand, that most of the family's species have a summit
    near (within ``match_distance``); ties go to the offset nearest the TSS.
    Each species then takes its summit nearest that offset. A species whose
    peaks near the gene are all elsewhere lost (or never had) the matched
    peak, and gets -1: a window on another peak would not be homologous.

    Args:
        members: ``family, species, chrom, strand, tss`` per member.
        peaks: species -> its peaks (``chrom``, ``summit``).
        max_tss_distance: only summits this close to the TSS count (bp).
        match_distance: summits of one peak in different species may differ
            by this much in offset (bp; indels and peak-calling noise).

    Returns:
        ``int64 [len(members)]`` summit positions.
    """
    out = np.full(len(members), -1, dtype=np.int64)
    near = _peaks_near(members, peaks, max_tss_distance)
    if near.empty:
        return out
    near["pair"] = np.arange(len(near))
    # Each pair's offset is a candidate centre; its support is the number of
    # the family's species with a summit within match_distance of it.
    both = near.merge(near[["family", "species", "offset"]], on="family", suffixes=("", "_other"))
    both = both[(both["offset"] - both["offset_other"]).abs() <= match_distance]
    support = both.groupby("pair")["species_other"].nunique()
    candidates = near.assign(support=support.reindex(near["pair"]).to_numpy(), distance=near["offset"].abs())
    best = (candidates.sort_values(["family", "support", "distance"], ascending=[True, False, True], kind="stable")
            .drop_duplicates("family").set_index("family")["offset"])  # fmt: skip
    near["centre"] = best.reindex(near["family"]).to_numpy()
    near["gap"] = (near["offset"] - near["centre"]).abs()
    chosen = near[near["gap"] <= match_distance].sort_values(["member", "gap"], kind="stable").drop_duplicates("member")
    out[chosen["member"].to_numpy()] = chosen["summit"].to_numpy()
    return out


def anchor_windows(
    members: pd.DataFrame,
    window_len: int,
    anchor: str,
    chrom_sizes: Mapping[str, Mapping[str, int]],
    peaks: Mapping[str, pd.DataFrame] | None = None,
    max_tss_distance: int = 5000,
    match_distance: int = 200,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Place each member's window: centred on its TSS or on the nearest peak summit.

    Args:
        members: resolved members (``species, chrom, strand, tss``, ...).
        window_len: window length (bp).
        anchor: ``"tss"`` or ``"peak"``.
        chrom_sizes: species -> chromosome -> length (bp).
        peaks: species -> its peaks (``chrom``, ``summit``); needed for ``peak``.
        max_tss_distance: ``peak``: the largest TSS-to-summit distance (bp).
        match_distance: ``peak``: see :func:`matched_summits`.

    Returns:
        ``(members, dropped)``: members with ``summit``, ``start``, ``end``
        (0-based half-open) that have a window inside their chromosome; and
        the counts dropped: ``no_peak`` (no summit of the family's matched
        peak) and ``off_chromosome``.
    """
    members = members.copy()
    tss = members["tss"].to_numpy(np.int64)
    if anchor == "peak":
        summit = matched_summits(members, peaks, max_tss_distance, match_distance)
        near = summit >= 0
        centre = summit
    elif anchor == "tss":
        summit = np.full(len(members), -1, dtype=np.int64)
        near = np.ones(len(members), dtype=bool)
        centre = tss
    else:
        raise ConfigError(f"orthologs.anchor: {anchor!r} is not one of ['tss', 'peak']")
    # The centre base sits at index window_len // 2 on the gene's strand.
    minus = members["strand"].to_numpy() == "-"
    start = np.where(minus, centre - (window_len - 1 - window_len // 2), centre - window_len // 2)
    size = np.array([chrom_sizes[sp][c] for sp, c in zip(members["species"], members["chrom"], strict=True)], np.int64)
    inside = (start >= 0) & (start + window_len <= size)
    members["summit"] = summit
    members["start"] = start
    members["end"] = start + window_len
    dropped = {"no_peak": int((~near).sum()), "off_chromosome": int((near & ~inside).sum())}
    return members[near & inside].reset_index(drop=True), dropped


def cut_windows(members: pd.DataFrame, genome: Genome) -> np.ndarray:
    """The members' windows from one genome, read on their gene's strand: ``uint8 [n, L]``."""
    length = int((members["end"] - members["start"]).iloc[0])
    out = np.empty((len(members), length), dtype=np.uint8)
    for chrom, rows in members.groupby("chrom", sort=False).indices.items():
        out[rows] = gather_windows(genome.chrom_codes(chrom), members["start"].to_numpy()[rows], length)
    minus = members["strand"].to_numpy() == "-"
    out[minus] = reverse_complement(out[minus])
    return out


def _read_species_tree(path: str | os.PathLike[str], species: Sequence[str]):
    from seqae.phylo.io import read_tree

    tree = read_tree(path)
    leaves = {leaf.name for leaf in tree.get_leaves()}
    missing = [s for s in species if s not in leaves]
    if missing:
        raise InputError(path, f"no leaf for species {few(missing)} (leaves: {few(sorted(leaves), 6)})")
    return tree


def _atomic_folder(target: Path) -> Path:
    """A new temporary folder beside ``target``, to be renamed onto it when complete."""
    output_folder(target.parent)
    return Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))


#: What an earlier run leaves in its folder, which a new run replaces as a whole.
_OWN_FILES = ("report.json", "families.tsv", "members.tsv", "*.fa", "*.nwk")


def _check_replaceable(target: Path) -> None:
    """Refuse, before any work, an output folder whose replacement would delete what is not ours.

    Raises:
        SeqaeError: ``target`` is the working folder, or holds files other than an earlier run's.
    """
    if not target.exists():
        return
    if target.resolve() == Path.cwd().resolve() or not target.is_dir():
        raise SeqaeError(
            f"{target}: the output folder is replaced as a whole; give a new folder (e.g. {target}/families)"
        )
    foreign = sorted(p.name for p in target.iterdir() if p.is_dir() or not any(p.match(g) for g in _OWN_FILES))
    if foreign:
        raise SeqaeError(
            f"{target}: holds {foreign[0]!r}{f' and {len(foreign) - 1} more' if len(foreign) > 1 else ''}, which is "
            "not from an earlier `seqae orthologs` run; the output folder is replaced as a whole: give a new or "
            "empty folder"
        )


def _replace_folder(tmp: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)


def _check_settings(config: Mapping[str, Any]) -> None:
    min_species = int(config["orthologs"]["min_species"])
    if len(config["genomes"]) < min_species:
        raise ConfigError(
            f"orthologs: {len(config['genomes'])} genomes, but families need orthologs in at least "
            f"min_species = {min_species} species (a tree needs 4 leaves)"
        )
    no_annotation = [g["species"] for g in config["genomes"] if not g.get("annotation")]
    if no_annotation:
        raise ConfigError(
            f"orthologs: genome {no_annotation[0]!r} has no annotation; ortholog windows are placed on genes"
        )


def _place_windows(
    config: Mapping[str, Any], window_len: int, genome_dir: Path
) -> tuple[pd.DataFrame, np.ndarray, dict[str, Any]]:
    """Read the genomes, find the orthologs, place and cut their windows.

    Returns:
        ``(placed, seqs, report)``: one row per window (``family, species,
        gene_id, ..., start, end``), its codes ``uint8 [n, window_len]``
        on the gene's strand, and the counts for ``report.json``.
    """
    from seqae.genome_inputs import genome_aliases, read_genome_genes, read_genome_peaks

    settings = config["orthologs"]
    species = [g["species"] for g in config["genomes"]]
    genomes = {g["species"]: Genome(g["fasta"], work_dir=genome_dir / g["species"]) for g in config["genomes"]}
    try:
        sizes = {sp: genome.chrom_sizes for sp, genome in genomes.items()}
        # Each genome's own chromosome-name rule (an alias table, auto, none), as for its peaks.
        aliases = {g["species"]: genome_aliases(g, genomes[g["species"]]) for g in config["genomes"]}
        genes = {g["species"]: read_genome_genes(g["annotation"], sizes[g["species"]], {}, aliases[g["species"]])
                 for g in config["genomes"]}  # fmt: skip
        peaks = None
        if settings["anchor"] == "peak":
            peaks = {}
            for g in config["genomes"]:
                frame, _ = read_genome_peaks(g, genomes[g["species"]], aliases[g["species"]])
                peaks[g["species"]] = frame[frame["peak_set"] == settings["tf"]] if settings.get("tf") else frame
        if settings.get("table"):
            source: str | os.PathLike[str] = settings["table"]
            named = read_ortholog_table(source, species)
        else:
            source = "gene-name match"
            named = match_gene_names(genes)
            if named.empty:
                raise ConfigError("orthologs (gene-name match): no gene_name occurs exactly once in an annotation")
        resolved, gene_counts = resolve_genes(named, genes, source)
        placed, dropped = anchor_windows(resolved, window_len, settings["anchor"], sizes, peaks,
                                         int(settings["max_tss_distance"]), int(settings["peak_match_distance"]))  # fmt: skip
        seqs = np.empty((len(placed), window_len), dtype=np.uint8)
        for sp, rows in placed.groupby("species", sort=False).indices.items():
            seqs[rows] = cut_windows(placed.iloc[rows], genomes[sp])
    finally:
        for genome in genomes.values():
            genome.close()
    mostly_n = (seqs == CODE_N).mean(axis=1) > float(config["extract"]["max_n_fraction"])
    dropped["too_many_n"] = int(mostly_n.sum())
    report = {"source": str(source), "genes": gene_counts, "windows_dropped": dropped}
    return placed[~mostly_n].reset_index(drop=True), seqs[~mostly_n], report


def select_families(
    placed: pd.DataFrame, species: Sequence[str], min_species: int, max_families: int
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Keep families with windows in ``min_species`` species or more; the first ``max_families``, most species first.

    Returns:
        ``(members, counts)``: the kept windows ordered by family (the
        kept order) then by species (``species`` order), with ``row``, the
        window's row in ``placed``; and the family counts for the report.
    """
    n_species = placed.groupby("family", sort=False)["species"].size()
    eligible = n_species[n_species >= min_species]
    chosen = eligible.sort_values(ascending=False, kind="stable").head(max_families)
    family_rank = {family: i for i, family in enumerate(chosen.index)}
    species_rank = {sp: i for i, sp in enumerate(species)}
    members = placed[placed["family"].isin(family_rank)].rename_axis("row").reset_index()
    members = members.assign(_family=members["family"].map(family_rank), _species=members["species"].map(species_rank))
    members = members.sort_values(["_family", "_species"], kind="stable").drop(columns=["_family", "_species"])
    counts = {
        "families_with_a_window": len(n_species),
        "families_too_few_species": len(n_species) - len(eligible),
        "families_left_out_by_max_families": len(eligible) - len(chosen),
        "families_written": len(chosen),
    }
    return members.reset_index(drop=True), counts


def _write_families(
    members: pd.DataFrame, seqs: np.ndarray, folder: Path, align: str, species_tree, threads: int = 1
) -> None:
    """One FASTA (and pruned species tree) per family, members.tsv and families.tsv, into ``folder``;
    ``threads`` single-threaded MAFFT processes at a time (the alignments do not depend on it)."""
    from seqae.phylo.io import write_family, write_newick

    groups = members.groupby("family", sort=False).indices
    windows = [
        {str(members.at[r, "species"]): decode(seqs[members.at[r, "row"]]) for r in rows} for rows in groups.values()
    ]
    if align == "mafft":
        windows = align_families(windows, threads)
    for family, records in zip(groups, windows, strict=True):
        write_family(records, folder / f"{family}.fa")
        if species_tree is not None:
            pruned = species_tree.copy()
            pruned.prune(list(records), preserve_branch_length=True)
            write_newick(pruned, folder / f"{family}.nwk")
    write_tsv(members[list(MEMBER_COLUMNS)], folder / "members.tsv")
    grouped = members.groupby("family", sort=False)["species"]
    families = pd.DataFrame({"n_species": grouped.size(), "species": grouped.agg(",".join)}).reset_index()
    write_tsv(families, folder / "families.tsv")


def build_ortholog_families(
    config: Mapping[str, Any], outdir: str | os.PathLike[str], threads: int = 1
) -> dict[str, Any]:
    """Write the families of orthologous windows (see the module docstring).

    Args:
        config: a validated config (``genomes``, ``extract``, ``orthologs``).
        outdir: the output folder (replaced as a whole when complete).
        threads: MAFFT processes run at a time (``align: mafft``).

    Returns:
        The report (also written as ``report.json``).

    Raises:
        ConfigError: fewer than ``min_species`` genomes, a genome without
            annotation (the windows are placed on genes), no family left
            by a gene-name match.
        InputError: a bad ortholog table, annotation, peak file, FASTA or
            species tree; no family left by the table; one line each.
    """
    settings = config["orthologs"]
    _check_settings(config)
    _check_replaceable(Path(outdir))
    species = [g["species"] for g in config["genomes"]]
    species_tree = _read_species_tree(settings["species_tree"], species) if settings.get("species_tree") else None
    window_len = int(settings.get("window_len") or config["extract"]["window_len"])
    # FASTA indexes seqae builds go beside the output folder, which is replaced as a whole.
    placed, seqs, found = _place_windows(config, window_len, Path(outdir).parent / "genome_index")
    members, counts = select_families(placed, species, int(settings["min_species"]), int(settings["max_families"]))
    report = {"anchor": settings["anchor"], "align": settings["align"], "window_len": window_len, **found, **counts}
    if members.empty:
        problem = (f"no family has windows in at least {settings['min_species']} species "
                   f"({counts['families_with_a_window']} families with a window; "
                   f"dropped windows: {found['windows_dropped']})")  # fmt: skip
        if settings.get("table"):
            raise InputError(settings["table"], problem)
        raise ConfigError(f"orthologs (gene-name match): {problem}")

    target = Path(outdir)
    tmp = _atomic_folder(target)
    try:
        _write_families(members, seqs, tmp, settings["align"], species_tree, threads)
        (tmp / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        _replace_folder(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("%d families of orthologous windows (%s anchor, %d bp) written to %s; %d more with fewer than %s species",
             counts["families_written"], settings["anchor"], window_len, target, counts["families_too_few_species"],
             settings["min_species"])  # fmt: skip
    return report
