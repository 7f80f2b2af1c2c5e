"""Which genes are orthologs: an ortholog table, or a one-to-one gene-name match, found in the annotations.

:func:`read_ortholog_table` reads a table (one row per family, one column per
species holding its gene id); :func:`match_gene_names` matches gene names that
occur once in each annotation, in any case; :func:`resolve_genes` looks the
members up in their species' annotation (ids matching across a version
suffix). :mod:`seqae.orthologs` places the families' windows and writes them.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from seqae.errors import InputError
from seqae.fileio import require_file

__all__ = ["ABSENT_CELLS", "FAMILY_COLUMN_NAMES", "few", "match_gene_names", "read_ortholog_table", "resolve_genes"]

log = logging.getLogger("seqae")

#: Header names of an ortholog table's optional family-name column.
FAMILY_COLUMN_NAMES = ("family", "group", "orthogroup")
#: Cells of an ortholog table that mean "no ortholog in this species".
ABSENT_CELLS = frozenset({"", ".", "-", "NA", "na", "None"})
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")
#: Stripped from the ends of a family's name: it names files and is an argument of ``seqae trees --family``
#: (``..`` would be a folder, ``-x`` an option).
_UNSAFE_ENDS = "_.-"
#: A version suffix of a gene id (Ensembl's ``.15``).
_VERSION = r"\.\d+$"


def few(items: Sequence[str], k: int = 3) -> str:
    shown = ", ".join(repr(x) for x in items[:k])
    return shown + (f" and {len(items) - k} more" if len(items) > k else "")


def read_ortholog_table(path: str | os.PathLike[str], species: Sequence[str]) -> pd.DataFrame:
    """Read an ortholog table: one family per row, one species per column.

    Format: tab-separated, a header line naming the columns; every column is
    a species of the config (``genomes[].species``) except an optional
    column named ``family``, ``group`` or ``orthogroup``, which names the
    families (else they are ``OG<row>``, counted from 1). A cell holds that
    species' gene id (the annotation's ``gene_id``; GFF3: ``ID`` without a
    ``gene:`` prefix); empty, ``.``, ``-`` or ``NA`` mean no ortholog. Lines
    starting with ``#`` and blank lines are skipped.

    Returns:
        One row per named gene: ``family`` (str, made safe for file names),
        ``species``, ``gene_id``, ``line`` (1-based line of the table).

    Raises:
        InputError: ``<path>:<line>: <what>`` for an empty file, a column that
            is neither a species nor the family column, a repeated column, a
            line with another number of fields than the header, a family
            named twice, or a gene listed in two families of one species
            (orthologs here are one-to-one).
    """
    p = require_file(path, "ortholog table")
    lines = [
        (n, line) for n, line in enumerate(p.read_text().splitlines(), 1) if line.strip() and not line.startswith("#")
    ]
    if not lines:
        raise InputError(p, "empty file: no header line naming the species columns")
    header_line, header = lines[0][0], lines[0][1].split("\t")
    known = set(species)
    family_col = None
    for i, name in enumerate(header):
        if name in known:
            continue
        if name.lower() in FAMILY_COLUMN_NAMES and family_col is None:
            family_col = i
            continue
        raise InputError(
            p, f"column {name!r} is neither a species of the config ({', '.join(species)}) nor 'family'", header_line
        )
    twice = sorted({x for x in header if header.count(x) > 1})
    if twice:
        raise InputError(p, f"column {twice[0]!r} appears twice", header_line)
    species_cols = [(i, name) for i, name in enumerate(header) if i != family_col]
    if len(species_cols) < 2:
        raise InputError(p, "the header names fewer than 2 species: no orthologs to compare", header_line)
    lacking = [sp for sp in species if sp not in header]
    if lacking:
        log.warning(
            "%s: no column for %s: %s in no family", p, few(lacking), "it is" if len(lacking) == 1 else "they are"
        )

    rows: list[tuple[str, str, str, int]] = []
    family_line: dict[str, int] = {}
    seen: dict[tuple[str, str], tuple[str, int]] = {}
    for k, (number, line) in enumerate(lines[1:], 1):
        fields = line.rstrip("\n").split("\t")
        if len(fields) != len(header):
            raise InputError(p, f"{len(fields)} fields, the header has {len(header)}", number)
        raw_name = fields[family_col].strip() if family_col is not None else f"OG{k:05d}"
        family = _UNSAFE_NAME.sub("_", raw_name).strip(_UNSAFE_ENDS)
        if not family:
            raise InputError(p, "empty family name", number)
        if family in family_line:
            raise InputError(p, f"family {family!r} is already named on line {family_line[family]}", number)
        family_line[family] = number
        for i, sp in species_cols:
            gene = fields[i].strip()
            if gene in ABSENT_CELLS:
                continue
            if (sp, gene) in seen:
                other, other_line = seen[(sp, gene)]
                raise InputError(
                    p, f"gene {gene!r} of {sp} is also in family {other!r} (line {other_line}); "
                    "orthologs must be one-to-one", number,
                )  # fmt: skip
            seen[(sp, gene)] = (family, number)
            rows.append((family, sp, gene, number))
    if not rows:
        raise InputError(p, "no gene named under any species column")
    return pd.DataFrame(rows, columns=["family", "species", "gene_id", "line"])


def match_gene_names(genes: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Families by one-to-one gene-name match: names that occur once in each annotation, compared in upper case.

    A name occurring twice in one species (paralogs, or a name reused) is not
    one-to-one there, so that species gives no member for it.

    Args:
        genes: species -> its genes (:func:`seqae.annotation.read_genes`).

    Returns:
        ``family`` (the gene name in upper case, made safe for file names), ``species``,
        ``gene_id``, ``line`` (0: no table line), sorted by family.
    """
    frames = []
    for sp, table in genes.items():
        # Symbols match whatever their case: human GATA1, mouse Gata1, zebrafish gata1.
        names = table["gene_name"].astype(str).str.upper()
        unique = ~names.duplicated(keep=False) & (names != "")
        frames.append(pd.DataFrame({"family": names[unique], "species": sp,
                                    "gene_id": table.loc[unique, "gene_id"].astype(str)}))  # fmt: skip
    members = pd.concat(frames, ignore_index=True)
    members["family"] = members["family"].str.replace(_UNSAFE_NAME, "_", regex=True).str.strip(_UNSAFE_ENDS)
    members = members[members["family"] != ""]
    members = members[~members.duplicated(["family", "species"], keep=False)]  # two names made equal by the renaming
    members["line"] = 0
    return members.sort_values(["family", "species"], kind="stable").reset_index(drop=True)


def resolve_genes(
    members: pd.DataFrame, genes: Mapping[str, pd.DataFrame], source: str | os.PathLike[str]
) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    """Look the members' genes up in their species' annotation.

    Args:
        members: ``family, species, gene_id, line`` (:func:`read_ortholog_table`).
        genes: species -> its genes (chromosomes already named as in its FASTA).
        source: the ortholog table, named in errors.

    Returns:
        ``(members, counts)``: the members whose gene was found, with
        ``gene_name, chrom, strand, tss`` added; and per species ``named``,
        ``found``, ``absent`` and up to 5 ``absent_examples``.

    Raises:
        InputError: not one gene named in the table is in the annotations.
    """
    found_parts, counts = [], {}
    for sp, part in members.groupby("species", sort=False):
        table = genes[sp].drop_duplicates("gene_id").set_index("gene_id")
        part = part.assign(gene_id=_with_versions(part["gene_id"], table.index))
        hit = part["gene_id"].isin(table.index)
        absent = part.loc[~hit, "gene_id"].tolist()
        counts[str(sp)] = {
            "named": len(part),
            "found": int(hit.sum()),
            "absent": len(absent),
            "absent_examples": absent[:5],
        }
        if absent:
            log.warning("%s: %d of %d genes named for %s are not in its annotation (%s)",
                        source, len(absent), len(part), sp, few(absent))  # fmt: skip
        info = table.loc[part.loc[hit, "gene_id"], ["gene_name", "chrom", "strand", "tss"]].reset_index(drop=True)
        found_parts.append(pd.concat([part[hit].reset_index(drop=True), info], axis=1))
    found = pd.concat(found_parts, ignore_index=True)
    if found.empty:
        first = members.iloc[0]
        raise InputError(
            source, f"none of the {len(members)} genes it names is in the annotations "
            f"(e.g. {first['gene_id']!r} is not a gene_id of {first['species']})",
        )  # fmt: skip
    return found, counts


def _with_versions(named: pd.Series, annotated: pd.Index) -> pd.Series:
    """Table ids as the annotation spells them, where they differ only in a version suffix
    (``ENSG00000102145`` and ``ENSG00000102145.15``, either way round, one annotation gene each)."""
    unversioned = annotated.str.replace(_VERSION, "", regex=True)
    unique = ~unversioned.duplicated(keep=False)
    by_stem = pd.Series(annotated[unique], index=unversioned[unique])
    stem = named.str.replace(_VERSION, "", regex=True)
    spelled = stem.map(by_stem)
    return named.where(named.isin(annotated) | spelled.isna(), spelled)
