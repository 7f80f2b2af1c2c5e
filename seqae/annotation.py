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

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from seqae.errors import InputError
from seqae.tabtext import (
    Problem,
    group_by_chrom,
    parse_tab_columns,
    raise_first_problem,
    read_tab_text,
    sort_by_chrom,
)

__all__ = ["GENE_COLUMNS", "read_genes", "annotate_positions"]

GENE_COLUMNS = ["gene_id", "gene_name", "gene_biotype", "gene_family", "chrom", "start", "end", "strand", "tss"]

#: Levels of the gene -> transcript -> exon -> CDS hierarchy (:func:`_feature_level`).
_GENE, _TRANSCRIPT, _EXON, _PART = 0, 1, 2, 3
_PART_FEATURES = frozenset(
    ("cds", "utr", "5utr", "3utr", "utr5", "utr3", "five_prime_utr", "three_prime_utr", "start_codon", "stop_codon")
    + ("selenocysteine", "stop_codon_redefined_as_selenocysteine")
)

# Attribute syntax, for sniffing the dialect and for hints in error messages.
_GTF_ATTR_RE = r'\s*[^\s=;"]+\s+"'  # key "value"
_GFF_ATTR_RE = r'\s*[^\s=;"]+='  # key=value
# A GTF attribute column holding one bare word (AUGUSTUS and GeneMark gene and transcript lines: "g1", "g1.t1").
_BARE_WORD_RE = r'^\s*(?P<v>[^\s";=]+)\s*;?\s*$'
#: Feature-type prefixes of GFF3 IDs (Ensembl ``gene:``/``transcript:``, RefSeq ``gene-``/``rna-``, ``mRNA:``).
_ID_PREFIX_RE = r"^(?i:gene|transcript|mrna|rna)[:-]"

log = logging.getLogger("seqae")


def _feature_level(feature: str) -> int:
    """Level of a feature type (column 3) in the gene hierarchy; -1 for types outside it.

    Sequence Ontology names and the spellings of GTF writers, any case:
    gene (0): ``gene``, ``pseudogene`` and every ``*_gene`` (``ncRNA_gene``,
    ``protein_coding_gene`` ...); transcript (1): ``transcript``, ``mRNA`` and
    every ``*RNA`` (``lnc_RNA``, ``tRNA`` ...), ``mRNA*`` (TAIR's
    ``mRNA_TE_gene``), ``*_transcript`` and
    ``*_gene_segment``; exon (2): ``exon``, ``*_exon``; part (3): CDS, UTRs,
    start/stop codons, selenocysteine.  Other types (``region``,
    ``repeat_region``, ``cDNA_match`` ...) are not read.
    """
    f = feature.lower()
    if f.startswith("mrna") or f in ("transcript", "primary_transcript"):  # TAIR's mRNA_TE_gene is an mRNA
        return _TRANSCRIPT
    if f in ("gene", "pseudogene") or f.endswith("_gene"):
        return _GENE
    if f.endswith(("rna", "_transcript", "_gene_segment")):
        return _TRANSCRIPT
    if f == "exon" or f.endswith("_exon"):
        return _EXON
    return _PART if f in _PART_FEATURES else -1


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


#: ASCII control characters (tab and line breaks included), which percent-decoding can produce.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _extract(attributes: pa.Array, pattern: str, unescape: bool = False) -> np.ndarray:
    """object [n]: the text captured by ``pattern``'s named groups (concatenated); None where absent or empty.

    Runs Arrow's RE2 over the whole column.  Patterns with alternative groups
    (quoted or bare GTF values) work because an unmatched group captures ''.
    ``unescape`` decodes GFF3 percent-encoding (``%3B`` -> ``;``); the control characters it can
    decode (``%09`` tab, ``%0A`` line feed, ...) become spaces, since a label holding them could not
    be written as one field of a tab-separated line.
    """
    found = pc.extract_regex(attributes, pattern=pattern)
    groups = [found.field(i) for i in range(found.type.num_fields)]
    value = groups[0] if len(groups) == 1 else pc.binary_join_element_wise(*groups, pa.scalar("", groups[0].type))
    value = pc.if_else(pc.and_(found.is_valid(), pc.not_equal(value, "")), value, pa.scalar(None, value.type))
    out = value.to_numpy(zero_copy_only=False)
    if unescape:
        # Only the rare values that contain '%' go through urllib.
        escaped = np.flatnonzero(pc.fill_null(pc.match_substring(value, "%"), False).to_numpy(zero_copy_only=False))
        if escaped.size:
            out[escaped] = [_CONTROL.sub(" ", unquote(v)) for v in out[escaped]]
    return out


def _attribute(attributes: pa.Array, key: str, dialect: str) -> np.ndarray:
    """object [n]: attribute ``key`` of each line (GTF ``key "value";``, GFF3 ``key=value;``); None where absent.

    A GFF3 value is percent-decoded; of a list (``Parent=a,b``) the first item is taken.
    """
    if dialect == "gtf":
        return _extract(attributes, rf'(?:^|;)\s*{re.escape(key)}\s+(?:"(?P<q>[^"]*)"|(?P<u>[^";\s]+))')
    return _extract(attributes, rf"(?:^|;)\s*{re.escape(key)}=(?P<v>[^;,]*)", unescape=True)


def _first_present(*candidates: np.ndarray) -> np.ndarray:
    """object [n]: element-wise the first non-None value among ``candidates``."""
    out = candidates[0].copy()
    for other in candidates[1:]:
        missing = pd.isna(out)
        out[missing] = other[missing]
    return out


@dataclass
class _LineGenes:
    """The gene of each line read (one entry per line).

    ``gene_id`` (None: unknown), ``own`` (the line's own ID: GFF3 ``ID=``, a
    GTF gene line's ``gene_id``), ``ignore`` (a line without ids that is
    skipped, not reported), and the attribute a line lacks when its gene is
    unknown (``missing``, for the message).
    """

    gene_id: np.ndarray
    own: np.ndarray
    ignore: np.ndarray
    missing: np.ndarray


def _line_genes(attributes: pa.Array, dialect: str, level: np.ndarray) -> _LineGenes:
    """Which gene each line belongs to, by one rule for every flavour.

    GTF: ``gene_id``; a gene line whose attributes are one bare word
    (AUGUSTUS, GeneMark) is that gene, a transcript line of that kind is
    skipped.  GFF3: a line climbs its ``Parent=`` chain through the lines read
    (exon -> transcript -> gene); a gene line is its own ``ID=``; a line that
    reaches no gene line belongs to its ``gene_id=``, else to its ``Parent=``
    (a parent the file does not hold: the gene of a transcript), else it is
    a gene itself (its ``ID=``: a transcript without a parent).
    """
    n = len(level)
    if dialect == "gtf":
        gene_id = _attribute(attributes, "gene_id", dialect)
        ignore = np.zeros(n, dtype=bool)
        lacking = np.flatnonzero(pd.isna(gene_id))
        if lacking.size:
            bare = _extract(attributes.take(pa.array(lacking)), _BARE_WORD_RE)
            gene_id[lacking] = np.where(level[lacking] == _GENE, bare, None)
            ignore[lacking] = ~pd.isna(bare) & (level[lacking] != _GENE)
        own = np.where(level == _GENE, gene_id, None)
        missing = np.full(n, "gene_id", dtype=object)
        return _LineGenes(gene_id, own, ignore, missing)

    own = _attribute(attributes, "ID", dialect)
    parent = _attribute(attributes, "Parent", dialect)
    top = _climb(own, parent, level)
    gene_id = own[top]
    orphan = np.flatnonzero(level[top] != _GENE)
    if orphan.size:
        tops = top[orphan]
        named = _attribute(attributes.take(pa.array(tops)), "gene_id", dialect)
        gene_id[orphan] = _first_present(named, parent[tops], own[tops])
    missing = np.where(level == _GENE, "ID", "ID or Parent").astype(object)
    return _LineGenes(gene_id, own, np.zeros(n, dtype=bool), missing)


def _climb(own: np.ndarray, parent: np.ndarray, level: np.ndarray, max_steps: int = 4) -> np.ndarray:
    """int64 [n]: for each line, the line it reaches going up ``Parent=`` links (itself if none).

    A step goes to the first line whose ID is the parent, when that line is
    at the same level or above (mRNA -> gene, exon -> mRNA, miRNA ->
    primary_transcript); ``max_steps`` bounds the walk.
    """
    has = ~pd.isna(own)
    keys = pd.Index(own[has])
    first = ~keys.duplicated()  # discontinuous features (CDS pieces) share an ID
    index, at = keys[first], np.flatnonzero(has)[first]
    top = np.arange(len(level))
    for _ in range(max_steps if len(at) else 0):
        cand = np.flatnonzero(level[top] > _GENE)
        if cand.size == 0:
            break
        hit = index.get_indexer(pd.Index(parent[top[cand]]))
        up = np.where(hit >= 0, at[np.maximum(hit, 0)], -1)
        ok = (up >= 0) & (up != top[cand])
        ok[ok] = level[up[ok]] <= level[top[cand[ok]]]
        if not ok.any():
            break
        top[cand[ok]] = up[ok]
    return top


def _gene_details(attributes: pa.Array, dialect: str, own_line: np.ndarray) -> dict[str, np.ndarray]:
    """gene_name, gene_biotype, gene_family (object arrays, None where absent) of each gene's first line.

    ``gene_name`` / ``gene`` and ``gene_biotype`` / ``gene_type`` describe the
    gene on any line; GFF3 ``Name=`` and ``biotype=`` only on a line that is
    the gene itself (``own_line``: a gene line, or a transcript without a
    parent), since on a transcript they describe the transcript.
    """
    get = lambda key: _attribute(attributes, key, dialect)  # noqa: E731
    name = _first_present(get("gene_name"), get("gene"))
    biotype = _first_present(get("gene_biotype"), get("gene_type"))
    if dialect == "gff3" and own_line.any():
        name = np.where(own_line, _first_present(get("Name"), name), name)
        biotype = np.where(own_line, _first_present(get("biotype"), biotype), biotype)
    return {"gene_name": name, "gene_biotype": biotype, "gene_family": get("gene_family")}


def read_genes(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read genes from a GTF or GFF3 file (optionally gzipped), of any common flavour.

    Dialect: by file name (``.gtf`` -> GTF ``key "value";`` attributes,
    ``.gff3`` -> GFF3 ``key=value;`` attributes, URL-escaped; ``.gz``
    ignored); other names, ``.gff`` included, are decided by sniffing the
    attribute syntax of the first 1000 lines (GFF3 when unclear).

    One rule for every flavour (Ensembl, GENCODE, RefSeq, UCSC, fungal and
    plant databases): every line of the gene hierarchy (:func:`_feature_level`)
    is assigned to a gene (:func:`_line_genes`), and each gene (one per gene
    id, chromosome and strand) spans the lines of its highest level: its gene
    line, else its transcripts, else its exons, else its CDS/UTR/codon lines.
    Genes without a gene line are logged once, as are
    feature-type prefixes of GFF3 IDs (``gene:``, ``gene-``, ``mRNA:`` ...),
    which are removed when every gene id carries one.  A gene id on several
    chromosomes or strands (alt contigs, PAR copies) gives one gene on each,
    with a warning.

    Names: ``gene_name``, ``gene``, and for GFF3 gene lines ``Name`` first
    (else the id); biotype: ``gene_biotype``, ``gene_type``, GFF3 gene lines
    ``biotype`` first (else ''); ``gene_family`` (else '').  Comment lines
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
            1-bp feature and fine), a gene whose strand is not + or -, a gene,
            transcript or exon line without gene_id (GTF) / a gene line
            without ID, a transcript or exon line without ID and Parent
            (GFF3).  The line is the first bad line in the file.
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
    feature = frame["feature"].to_numpy(dtype=object)
    codes, kinds = pd.factorize(feature)
    level = np.array([_feature_level(str(k)) for k in kinds] + [-1], dtype=np.int64)[codes]
    level[ncols != 9] = -1
    rows = np.flatnonzero(level >= 0)
    if rows.size == 0:
        # Report earlier bad lines first; otherwise there is simply nothing to read.
        raise_first_problem(p, text.lineno, problems)
        raise InputError(p, "no genes found (no gene, transcript, exon or CDS lines)")

    attributes = text.column_strings(rows, 8)
    lv = level[rows]
    lines = _line_genes(attributes, dialect, lv)
    strand = frame["strand"].to_numpy(dtype=object)
    chrom = frame["chrom"].to_numpy(dtype=object)

    def missing_id(r: int) -> str:
        i = int(position[r])
        # A wrong extension makes every id go missing; say so when the syntax shows it.
        other_re, other = (
            (_GFF_ATTR_RE, "GFF3 (key=value)") if dialect == "gtf" else (_GTF_ATTR_RE, 'GTF (key "value")')
        )
        hint = ""
        if re.match(other_re, attributes[i].as_py() or ""):
            hint = f"; its attributes look like {other} - is the file name's extension right?"
        key = lines.missing[i]
        what = f"no {key} attribute" if key != "ID or Parent" else "neither ID nor Parent attribute"
        return f"{feature[r]} line has {what}{hint}"

    position = np.full(len(frame), -1, dtype=np.int64)  # data row -> index into rows
    position[rows] = np.arange(rows.size)
    unknown = pd.isna(lines.gene_id) & ~lines.ignore
    no_id = np.zeros(len(frame), dtype=bool)
    no_id[rows] = unknown & (lv <= _EXON)
    problems.append((no_id, missing_id))

    # One gene per (gene id, chromosome, strand), spanning its lines of the highest level.
    sel = np.flatnonzero(~pd.isna(lines.gene_id))
    keys = pd.DataFrame({"g": lines.gene_id[sel], "c": chrom[rows[sel]], "s": strand[rows[sel]]})
    group = keys.groupby(["g", "c", "s"], sort=False).ngroup().to_numpy()
    n_genes = int(group.max()) + 1 if group.size else 0
    top_level = np.full(n_genes, _PART + 1, dtype=np.int64)
    np.minimum.at(top_level, group, lv[sel])
    use = lv[sel] == top_level[group]
    used, used_group = sel[use], group[use]
    span_start = np.full(n_genes, np.inf)
    span_end = np.full(n_genes, -np.inf)
    with np.errstate(invalid="ignore"):  # NaN at unparsable lines, reported below
        np.minimum.at(span_start, used_group, start1[rows[used]] - 1)  # 1-based inclusive -> 0-based half-open
        np.maximum.at(span_end, used_group, end1[rows[used]])
    first = np.full(n_genes, rows.size, dtype=np.int64)
    np.minimum.at(first, used_group, used)  # rows are in file order: the gene's first line

    bad_strand = np.zeros(len(frame), dtype=bool)
    bad_strand[rows[used]] = ~np.isin(strand[rows[used]], ["+", "-"])
    problems.append(
        (
            bad_strand,
            lambda r: (
                f"strand {strand[r]!r} of gene "
                f"'{lines.gene_id[position[r]]}' is not + or - (the TSS would be undefined)"
            ),
        )
    )
    raise_first_problem(p, text.lineno, problems)
    if n_genes == 0:
        raise InputError(p, "no genes found (no gene, transcript, exon or CDS line names its gene)")

    gene_id = lines.gene_id[first]
    own_line = ~pd.isna(lines.own[first]) & (lines.own[first] == gene_id)
    genes = pd.DataFrame(
        {
            "gene_id": gene_id,
            "chrom": chrom[rows[first]],
            "start": span_start.astype(np.int64),
            "end": span_end.astype(np.int64),
            "strand": strand[rows[first]],
        }
    )
    _log_genes_without_gene_lines(p, top_level, own_line, kinds[codes[rows[first]]], dialect)
    if dialect == "gff3":
        genes["gene_id"] = _strip_id_prefixes(p, genes["gene_id"].to_numpy(dtype=object))
    _warn_split_genes(p, genes)

    details = _gene_details(attributes.take(pa.array(first)), dialect, own_line)
    genes["gene_name"] = _first_present(details["gene_name"], genes["gene_id"].to_numpy(dtype=object))
    genes["gene_biotype"] = pd.Series(details["gene_biotype"], dtype=object).fillna("").to_numpy()
    genes["gene_family"] = pd.Series(details["gene_family"], dtype=object).fillna("").to_numpy()
    genes["tss"] = np.where(genes["strand"] == "+", genes["start"], genes["end"] - 1).astype(np.int64)
    genes = genes[GENE_COLUMNS].copy()
    for col in ("gene_id", "gene_name", "gene_biotype", "gene_family", "chrom", "strand"):
        genes[col] = genes[col].astype(str)
    return sort_by_chrom(genes, "start")


def _log_genes_without_gene_lines(
    path: Path, top_level: np.ndarray, own_line: np.ndarray, kinds: np.ndarray, dialect: str
) -> None:
    """Log once how the genes without a gene line were made (spans of which lines, named by what)."""
    orphan = top_level > _GENE
    if not orphan.any():
        return
    made_of = ", ".join(sorted({str(k) for k in kinds[orphan]}))
    if dialect == "gtf":  # a GTF line always names its gene_id
        log.info("%s: %d of %d genes have no gene line: each spans its %s lines, by gene_id",
                 path, int(orphan.sum()), len(top_level), made_of)  # fmt: skip
        return
    log.info(
        "%s: %d of %d genes have no gene line: each spans its %s lines; its id is their Parent or gene_id "
        "(%d genes) or, without one, the line's own ID (%d genes)",
        path,
        int(orphan.sum()),
        len(top_level),
        made_of,
        int((orphan & ~own_line).sum()),
        int((orphan & own_line).sum()),
    )


def _strip_id_prefixes(path: Path, ids: np.ndarray) -> np.ndarray:
    """GFF3 gene ids without their feature-type prefix (``gene:``, ``gene-``, ``transcript:``, ``mRNA:``, ``rna-``).

    The rule: a prefix is part of the file's ID scheme, not of the gene's
    name, when every gene id carries one; it is then removed from all, and
    logged.  A file where only some ids carry one keeps them all.
    """
    column = pa.array(ids, type=pa.large_string())
    if not len(ids) or not pc.all(pc.match_substring_regex(column, _ID_PREFIX_RE)).as_py():
        return ids
    stripped = pc.replace_substring_regex(column, pattern=_ID_PREFIX_RE, replacement="", max_replacements=1)
    found = pc.unique(pc.extract_regex(column, "(?P<p>" + _ID_PREFIX_RE[1:] + ")").field("p")).to_pylist()
    log.info(
        "%s: every gene ID carries a feature-type prefix (%s); removed (e.g. %s -> %s)",
        path,
        ", ".join(sorted(found)[:4]),
        ids[0],
        stripped[0].as_py(),
    )
    return stripped.to_numpy(zero_copy_only=False)


def _warn_split_genes(path: Path, genes: pd.DataFrame) -> None:
    """Warn once about gene ids found on several chromosomes or strands (each occurrence is kept)."""
    split = genes["gene_id"].duplicated(keep=False).to_numpy()
    if not split.any():
        return
    example = genes.loc[split, "gene_id"].iloc[0]
    places = genes.loc[genes["gene_id"] == example, ["chrom", "strand"]].astype(str).agg(" ".join, axis=1)
    log.warning(
        "%s: %d gene IDs occur on several chromosomes or strands (e.g. %r on %s); each occurrence is kept as a gene",
        path,
        int(genes.loc[split, "gene_id"].nunique()),
        example,
        ", ".join(places.iloc[:3]),
    )


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
        gene's ``[start, end)``, else ``"intergenic"``; ``""`` (unknown) on a
        chromosome without any gene in ``genes``.  Two equidistant TSSs:
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
    # A chromosome without any annotated gene (chrM, chrEBV, unplaced and alt contigs, which
    # GENCODE's primary GTF leaves out) is unannotated, not intergenic: its class is unknown.
    region = np.where(has, region, "")
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
