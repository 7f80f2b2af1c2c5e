"""Genes, nearest gene, TSS distance and region class.

Gene annotations come from GTF or GFF3 files, whose coordinates are 1-based
and inclusive; they are converted on reading to seqae's 0-based half-open
convention (``start0 = start1 - 1``, ``end0 = end1``).  A gene's TSS is the
0-based position of its first transcribed base: ``start`` on the ``+``
strand, ``end - 1`` on the ``-`` strand.

Parsing is vectorised like :mod:`seqae.intervals` (whose text helpers are
used here): lines are split by pandas' C parser, and attributes, taken only
from the lines that are used, are pulled out with column-wide regular
expressions (Arrow's RE2), never a Python loop per line.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from seqae.errors import InputError
from seqae.intervals import (
    Problem,
    TabText,
    group_by_chrom,
    parse_tab_columns,
    raise_first_problem,
    read_tab_text,
    sort_by_chrom,
)

__all__ = ["GENE_COLUMNS", "read_genes", "annotate_positions"]

GENE_COLUMNS = ["gene_id", "gene_name", "gene_biotype", "gene_family", "chrom", "start", "end", "strand", "tss"]

_GFF_GENE_FEATURES = ("gene", "ncRNA_gene", "pseudogene")
# Used only when a file has no gene lines: genes are the span of these.
_FALLBACK_FEATURES = ("transcript", "exon", "mRNA")
_GFF_TRANSCRIPT_FEATURES = ("transcript", "mRNA")

# Attribute syntax, for sniffing the dialect and for hints in error messages.
_GTF_ATTR_RE = r'\s*[^\s=;"]+\s+"'  # key "value"
_GFF_ATTR_RE = r'\s*[^\s=;"]+='  # key=value


def _dialect_from_name(path: Path) -> str | None:
    """'gtf', 'gff3' or None (decide by content) from the file name, ignoring .gz/.bgz."""
    suffixes = [s.lower() for s in path.suffixes]
    while suffixes and suffixes[-1] in (".gz", ".bgz"):
        suffixes.pop()
    last = suffixes[-1] if suffixes else ""
    # '.gff' is used for GFF3 and for GTF-like GFF2, so it is sniffed.
    return {".gtf": "gtf", ".gff3": "gff3"}.get(last)


def _sniff_dialect(attributes: pa.Array) -> str | None:
    """'gtf' or 'gff3' by which attribute syntax most of the given lines use; None if unclear."""
    n_gtf = pc.sum(pc.match_substring_regex(attributes, "^" + _GTF_ATTR_RE)).as_py() or 0
    n_gff = pc.sum(pc.match_substring_regex(attributes, "^" + _GFF_ATTR_RE)).as_py() or 0
    if n_gtf == n_gff:
        return None
    return "gtf" if n_gtf > n_gff else "gff3"


def _extract(attributes: pa.Array, pattern: str, strip: str | None = None, unescape: bool = False) -> np.ndarray:
    """object [n]: the text captured by ``pattern``'s named groups (concatenated); None where absent or empty.

    Runs Arrow's RE2 over the whole column.  Patterns with alternative groups
    (quoted or bare GTF values) work because an unmatched group captures ''.
    ``strip`` is a regex removed from each value (e.g. ``^gene:``);
    ``unescape`` decodes GFF3 percent-encoding (``%3B`` -> ``;``).
    """
    found = pc.extract_regex(attributes, pattern=pattern)
    groups = [found.field(i) for i in range(found.type.num_fields)]
    value = groups[0] if len(groups) == 1 else pc.binary_join_element_wise(*groups, pa.scalar("", groups[0].type))
    if strip is not None:
        value = pc.replace_substring_regex(value, pattern=strip, replacement="")
    value = pc.if_else(pc.and_(found.is_valid(), pc.not_equal(value, "")), value, pa.scalar(None, value.type))
    out = value.to_numpy(zero_copy_only=False)
    if unescape:
        # Only the rare values that contain '%' go through urllib.
        escaped = np.flatnonzero(pc.fill_null(pc.match_substring(value, "%"), False).to_numpy(zero_copy_only=False))
        if escaped.size:
            out[escaped] = [unquote(v) for v in out[escaped]]
    return out


def _attribute(attributes: pa.Array, key: str, dialect: str, strip: str | None = None) -> np.ndarray:
    """object [n]: attribute ``key`` of each line (GTF ``key "value";``, GFF3 ``key=value;``); None where absent."""
    if dialect == "gtf":
        return _extract(attributes, rf'(?:^|;)\s*{re.escape(key)}\s+(?:"(?P<q>[^"]*)"|(?P<u>[^";\s]+))', strip)
    return _extract(attributes, rf"(?:^|;)\s*{re.escape(key)}=(?P<v>[^;]*)", strip, unescape=True)


def _first_present(*candidates: np.ndarray) -> np.ndarray:
    """object [n]: element-wise the first non-None value among ``candidates``."""
    out = candidates[0].copy()
    for other in candidates[1:]:
        missing = pd.isna(out)
        out[missing] = other[missing]
    return out


def _gene_ids(attributes: pa.Array, dialect: str, fallback: bool) -> np.ndarray:
    """object [n]: the gene id of each used line; None where it has none.

    Ensembl GFF3 ids are ``gene:ENSG...``; the prefix is not part of the id.
    """
    if dialect == "gtf":
        return _attribute(attributes, "gene_id", dialect)
    if not fallback:
        return _attribute(attributes, "ID", dialect, strip="^gene:")
    # Transcript/exon lines: ID= is the transcript's; the gene is gene_id= or a transcript's Parent=.
    return _first_present(
        _attribute(attributes, "gene_id", dialect), _attribute(attributes, "Parent", dialect, strip="^gene:")
    )


def _gene_details(attributes: pa.Array, dialect: str, fallback: bool) -> dict[str, np.ndarray]:
    """gene_name, gene_biotype, gene_family (object arrays, None where absent) of gene lines."""
    get = lambda key: _attribute(attributes, key, dialect)  # noqa: E731
    if dialect == "gtf":
        name = get("gene_name")
        biotype = _first_present(get("gene_biotype"), get("gene_type"))
    elif fallback:
        # On transcript lines Name= and biotype= describe the transcript.
        name = get("gene_name")
        biotype = _first_present(get("gene_biotype"), get("gene_type"))
    else:
        name = _first_present(get("Name"), get("gene_name"))
        biotype = _first_present(get("biotype"), get("gene_biotype"), get("gene_type"))
    return {"gene_name": name, "gene_biotype": biotype, "gene_family": get("gene_family")}


def read_genes(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read genes from a GTF or GFF3 file (optionally gzipped).

    Dialect: by file name (``.gtf`` -> GTF ``key "value";`` attributes,
    ``.gff3`` -> GFF3 ``key=value;`` attributes, URL-escaped; ``.gz``
    ignored); other names, ``.gff`` included, are decided by sniffing the
    attribute syntax of the first 1000 lines (GFF3 when unclear).

    Genes are the ``gene`` lines (GFF3 also ``ncRNA_gene`` and
    ``pseudogene``).  GTF: ``gene_id``, ``gene_name`` (else the id),
    ``gene_biotype`` or ``gene_type`` (else ''), ``gene_family`` (else '').
    GFF3: id from ``ID=`` without a ``gene:`` prefix, name from ``Name=`` (or
    ``gene_name=``), biotype from ``biotype=``/``gene_biotype=``/``gene_type=``.
    A file without gene lines gets one gene per ``gene_id`` (GFF3: also a
    transcript's ``Parent=``) spanning its transcript/exon lines (min start,
    max end; name, biotype and family from its first line).  Comment lines
    (``#``, ``##gff-version 3``, ``###``) are skipped and a ``##FASTA`` line
    ends the features.

    Returns:
        :data:`GENE_COLUMNS`, sorted by chrom then start: gene_id, gene_name,
        gene_biotype, gene_family, chrom, strand (str: '+' or '-'), start/end
        (int64, 0-based half-open), tss (int64, 0-based position of the first
        transcribed base: start for '+', end - 1 for '-').

    Raises:
        InputError: ``<path>:<line>: <what>`` for a missing file, no genes, a
            line without 9 tab-separated columns, a non-integer or non-positive
            start/end, start > end (1-based inclusive, so start == end is a
            1-bp feature and fine), a gene whose strand is not + or -, a gene
            line without gene_id (GTF) / ID (GFF3), and a gene whose
            transcript/exon lines disagree on chromosome or strand.  The line is
            the first bad line in the file.
    """
    text = read_tab_text(path, what="gene annotation", stop_prefix=b"##FASTA")
    p = text.path
    if len(text) == 0:
        raise InputError(p, "no genes found (the file has no feature lines)")

    ncols = text.ncols
    problems: list[Problem] = [
        (ncols != 9, lambda r: f"has {ncols[r]} tab-separated columns; a GTF/GFF line needs 9"),
    ]
    # The wide attribute column is not parsed here; only the lines that are
    # used get their attributes, via text.column_strings.
    frame, parse_problems = parse_tab_columns(
        text,
        {0: ("chrom", "str"), 2: ("feature", "str"), 3: ("start", "int"), 4: ("end", "int"), 6: ("strand", "str")},
    )
    start1 = frame["start"].to_numpy(dtype=np.float64)
    end1 = frame["end"].to_numpy(dtype=np.float64)
    problems += [
        ((frame["chrom"] == "").to_numpy(), lambda r: "the chromosome name (column 1) is empty"),
        *parse_problems,
        (start1 < 1, lambda r: f"start {int(start1[r])} is not a 1-based coordinate (must be >= 1)"),
        (start1 > end1, lambda r: f"start {int(start1[r])} is greater than end {int(end1[r])}"),
    ]

    full = np.flatnonzero(ncols == 9)
    dialect = _dialect_from_name(p) or _sniff_dialect(text.column_strings(full[:1000], 8)) or "gff3"
    feature = frame["feature"]
    is_gene = feature.isin(["gene"] if dialect == "gtf" else _GFF_GENE_FEATURES).to_numpy() & (ncols == 9)
    fallback = not is_gene.any()
    if fallback:
        used = feature.isin(_FALLBACK_FEATURES).to_numpy() & (ncols == 9)
        if dialect == "gff3":
            # A GFF3 exon's Parent= is its transcript, so exons count only with gene_id=.
            candidates = np.flatnonzero(used)
            has_gene_id = pc.match_substring_regex(text.column_strings(candidates, 8), r"(?:^|;)\s*gene_id=")
            used[candidates] = feature.iloc[candidates].isin(_GFF_TRANSCRIPT_FEATURES).to_numpy() | np.asarray(
                has_gene_id.to_numpy(zero_copy_only=False), dtype=bool
            )
    else:
        used = is_gene
    rows = np.flatnonzero(used)
    if rows.size == 0:
        # Report earlier bad lines first; otherwise there is simply nothing to read.
        raise_first_problem(p, text.lineno, problems)
        raise InputError(p, "no genes found (no gene, transcript or exon lines)")

    attributes = text.column_strings(rows, 8)
    gene_id = _gene_ids(attributes, dialect, fallback)
    strand = frame["strand"].to_numpy(dtype=object)
    position = np.full(len(frame), -1, dtype=np.int64)  # data row -> index into rows
    position[rows] = np.arange(rows.size)
    kind = "gene" if not fallback else "transcript/exon"
    id_key = "gene_id" if dialect == "gtf" or fallback else "ID"

    def missing_id(r: int) -> str:
        # A wrong extension makes every id go missing; say so when the syntax shows it.
        other_re, other = (
            (_GFF_ATTR_RE, "GFF3 (key=value)") if dialect == "gtf" else (_GTF_ATTR_RE, 'GTF (key "value")')
        )
        hint = ""
        if re.match(other_re, attributes[int(position[r])].as_py() or ""):
            hint = f"; its attributes look like {other} - is the file name's extension right?"
        return f"{kind} line has no {id_key} attribute{hint}"

    no_id = np.zeros(len(frame), dtype=bool)
    no_id[rows] = pd.isna(gene_id)
    bad_strand = np.zeros(len(frame), dtype=bool)
    bad_strand[rows] = ~np.isin(strand[rows], ["+", "-"])
    problems += [
        (no_id, missing_id),
        (
            bad_strand,
            lambda r: f"strand {strand[r]!r} of {kind} '{gene_id[position[r]]}' "
            "is not + or - (the TSS would be undefined)",
        ),
    ]

    genes = pd.DataFrame(
        {
            "gene_id": gene_id,
            "chrom": frame["chrom"].to_numpy(dtype=object)[rows],
            "start": start1[rows] - 1,  # 1-based inclusive -> 0-based half-open
            "end": end1[rows],
            "strand": strand[rows],
        }
    )
    if fallback:
        genes, detail_rows, group_problem = _genes_from_parts(genes, rows, text)
        problems.append(group_problem)
    else:
        detail_rows = np.arange(rows.size)
    raise_first_problem(p, text.lineno, problems)

    details = _gene_details(attributes.take(pa.array(detail_rows)), dialect, fallback)
    genes["gene_name"] = _first_present(details["gene_name"], genes["gene_id"].to_numpy(dtype=object))
    genes["gene_biotype"] = pd.Series(details["gene_biotype"], dtype=object).fillna("").to_numpy()
    genes["gene_family"] = pd.Series(details["gene_family"], dtype=object).fillna("").to_numpy()
    genes["start"] = genes["start"].to_numpy(dtype=np.int64)
    genes["end"] = genes["end"].to_numpy(dtype=np.int64)
    genes["tss"] = np.where(genes["strand"] == "+", genes["start"], genes["end"] - 1).astype(np.int64)
    genes = genes[GENE_COLUMNS].copy()
    for col in ("gene_id", "gene_name", "gene_biotype", "gene_family", "chrom", "strand"):
        genes[col] = genes[col].astype(str)
    return sort_by_chrom(genes, "start")


def _genes_from_parts(parts: pd.DataFrame, rows: np.ndarray, text: TabText) -> tuple[pd.DataFrame, np.ndarray, Problem]:
    """One gene per gene_id spanning its transcript/exon lines.

    Args:
        parts: one row per used line: gene_id (None = missing, reported
            elsewhere), chrom, start (0-based), end, strand.
        rows: the data row of each line in ``text``.

    Returns:
        (genes with gene_id, chrom, start, end, strand; the index into
        ``parts`` of each gene's first line, where its name and biotype are
        read; the problem "a line disagrees with its gene's first line on
        chromosome or strand").
    """
    codes, ids = pd.factorize(parts["gene_id"].to_numpy(dtype=object))
    has_id = codes >= 0
    # The first line of each gene: codes[has_id] holds every code 0..K-1 at
    # least once, and np.unique returns first occurrences.
    _, first_among_valid = np.unique(codes[has_id], return_index=True)
    first = np.flatnonzero(has_id)[first_among_valid]

    chrom = parts["chrom"].to_numpy(dtype=object)
    strand = parts["strand"].to_numpy(dtype=object)
    gene_first = np.where(has_id, first[np.maximum(codes, 0)], -1)
    differs = has_id & ((chrom != chrom[gene_first]) | (strand != strand[gene_first]))
    flagged = np.zeros(len(text), dtype=bool)
    flagged[rows[differs]] = True
    line_of = np.full(len(text), -1, dtype=np.int64)
    line_of[rows] = np.arange(len(rows))

    def describe(r: int) -> str:
        i = line_of[r]
        f = gene_first[i]
        return (
            f"gene '{parts['gene_id'].iloc[i]}' is on {chrom[i]} {strand[i]} here "
            f"but on {chrom[f]} {strand[f]} at line {int(text.lineno[rows[f]])}"
        )

    span = (
        pd.DataFrame(
            {"code": codes[has_id], "start": parts["start"].to_numpy()[has_id], "end": parts["end"].to_numpy()[has_id]}
        )
        .groupby("code", sort=True)
        .agg(start=("start", "min"), end=("end", "max"))
    )
    genes = pd.DataFrame(
        {
            "gene_id": np.asarray(ids, dtype=object),
            "chrom": chrom[first],
            "start": span["start"].to_numpy(),
            "end": span["end"].to_numpy(),
            "strand": strand[first],
        }
    )
    return genes, first, (flagged, describe)


def annotate_positions(
    chrom: np.ndarray | pd.Series,
    pos: np.ndarray | pd.Series,
    genes: pd.DataFrame,
    promoter_upstream: int = 1000,
    promoter_downstream: int = 500,
) -> pd.DataFrame:
    """Nearest gene by TSS and region class for 0-based positions (e.g. window centres).

    Args:
        chrom: [n] chromosome names.
        pos: [n] 0-based positions.
        genes: :func:`read_genes` output (:data:`GENE_COLUMNS`).
        promoter_upstream, promoter_downstream: bp around the nearest TSS that
            count as promoter.

    Returns:
        A frame aligned with the input (same length and order, RangeIndex):
        ``gene_id``, ``gene_name``, ``gene_biotype``, ``gene_family`` (str of
        the nearest gene by TSS on the same chromosome; '' when the chromosome
        has no gene); ``tss_distance`` (float64 bp, signed and strand-aware:
        ``pos - tss`` for '+' genes, ``tss - pos`` for '-' genes, so negative
        means upstream of the TSS; NaN without a gene); ``region_class``:
        ``"promoter"`` if ``-promoter_upstream <= tss_distance <=
        promoter_downstream``, else ``"gene_body"`` if ``pos`` lies in any
        gene's ``[start, end)``, else ``"intergenic"``.  Two equidistant TSSs:
        the one with the smaller coordinate wins; genes sharing one TSS: the
        first in ``genes`` order.
    """
    chrom = np.asarray(chrom, dtype=object)
    pos = np.asarray(pos, dtype=np.int64)
    n = len(chrom)
    if len(pos) != n:
        raise ValueError(f"chrom and pos differ in length ({n} vs {len(pos)})")
    nearest = np.full(n, -1, dtype=np.int64)  # row in genes, -1 = none
    in_body = np.zeros(n, dtype=bool)

    if len(genes):
        g_tss_all = genes["tss"].to_numpy(dtype=np.int64)
        g_start_all = genes["start"].to_numpy(dtype=np.int64)
        g_end_all = genes["end"].to_numpy(dtype=np.int64)
        gene_rows = dict(group_by_chrom(genes["chrom"].to_numpy(dtype=object)))
        for name, idx in group_by_chrom(chrom):
            g = gene_rows.get(name)
            if g is None:
                continue
            q = pos[idx]
            # Nearest TSS: distinct TSS coordinates (first gene of each, in
            # genes order), then the neighbours on either side of each query.
            by_tss = g[np.argsort(g_tss_all[g], kind="stable")]
            tss_sorted = g_tss_all[by_tss]
            distinct = np.r_[True, tss_sorted[1:] != tss_sorted[:-1]]
            tss_u, gene_u = tss_sorted[distinct], by_tss[distinct]
            right = np.searchsorted(tss_u, q, side="left")  # first TSS >= q
            left = right - 1
            right_c = np.minimum(right, len(tss_u) - 1)
            left_c = np.maximum(left, 0)
            d_left = np.where(left >= 0, q - tss_u[left_c], np.iinfo(np.int64).max)
            d_right = np.where(right < len(tss_u), tss_u[right_c] - q, np.iinfo(np.int64).max)
            # '<=': a tie goes to the left, i.e. the smaller TSS coordinate.
            nearest[idx] = np.where(d_left <= d_right, gene_u[left_c], gene_u[right_c])

            # Inside any gene: the last gene starting at or before q, with the
            # running maximum of ends (= merged gene intervals), covers q iff
            # that maximum end is beyond q.
            by_start = g[np.argsort(g_start_all[g], kind="stable")]
            starts = g_start_all[by_start]
            reach = np.maximum.accumulate(g_end_all[by_start])
            last = np.searchsorted(starts, q, side="right") - 1
            inside = last >= 0
            inside[inside] = reach[last[inside]] > q[inside]
            in_body[idx] = inside

    has = nearest >= 0
    tss_distance = np.full(n, np.nan)
    labels = {}
    if has.any():
        hit = nearest[has]
        tss = genes["tss"].to_numpy(dtype=np.int64)[hit]
        plus = genes["strand"].to_numpy(dtype=object)[hit] == "+"
        tss_distance[has] = np.where(plus, pos[has] - tss, tss - pos[has])
    for col in ("gene_id", "gene_name", "gene_biotype", "gene_family"):
        values = np.full(n, "", dtype=object)
        if has.any():
            values[has] = genes[col].to_numpy(dtype=object)[nearest[has]]
        labels[col] = values

    # NaN distances compare False, so positions without genes are never promoters.
    promoter = (tss_distance >= -promoter_upstream) & (tss_distance <= promoter_downstream)
    region = np.where(promoter, "promoter", np.where(in_body, "gene_body", "intergenic"))
    out = pd.DataFrame(
        {
            **labels,
            "tss_distance": tss_distance,
            "region_class": region.astype(object),
        }
    )
    for col in ("gene_id", "gene_name", "gene_biotype", "gene_family", "region_class"):
        out[col] = out[col].astype(str)
    return out
