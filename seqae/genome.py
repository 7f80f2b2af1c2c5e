"""Genome access: base codes, whole-chromosome reads, chromosome-name harmonising.

Sequences are held as ``uint8`` base codes, ``A=0, C=1, G=2, T=3, N=4``
(lower case is read as upper case; IUPAC ambiguity codes become N). A
chromosome is read in one vectorised step from the FASTA bytes through the
pyfaidx index, so extraction never fetches sequence window by window.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyfaidx

from seqae.errors import InputError
from seqae.fileio import require_file

BASES = "ACGTN"
CODE_N = 4

_IUPAC = b"ACGTNRYSWKMBDHVU"


def _code_table() -> np.ndarray:
    """ASCII byte -> base code; 255 marks a byte that is not IUPAC DNA."""
    table = np.full(256, 255, dtype=np.uint8)
    for byte in _IUPAC + _IUPAC.lower():
        table[byte] = CODE_N
    for code, base in enumerate(b"ACGT"):
        table[base] = code
        table[base + 32] = code  # lower case (soft-masked repeats)
    return table


ASCII_TO_CODE = _code_table()


def encode(seq: str | bytes) -> np.ndarray:
    """DNA text -> ``uint8`` codes of shape ``[len(seq)]`` (non-ACGT -> N)."""
    raw = np.frombuffer(seq.encode() if isinstance(seq, str) else seq, dtype=np.uint8)
    codes = ASCII_TO_CODE[raw]
    codes[codes == 255] = CODE_N
    return codes


def decode(codes: np.ndarray) -> str:
    """``uint8`` codes ``[L]`` -> DNA text of length L."""
    return np.frombuffer(b"ACGTN", dtype=np.uint8)[np.asarray(codes)].tobytes().decode()


def chrom_key(name: str) -> str:
    """A name under which ``chr1``/``1``/``Chr1`` and ``chrM``/``MT``/``M`` meet."""
    key = name.strip().lower()
    if key.startswith("chr"):
        key = key[3:]
    return "m" if key in ("m", "mt") else key


def harmonise_chrom_names(names: Iterable[str], reference: Iterable[str]) -> dict[str, str]:
    """Map each of ``names`` to the ``reference`` (FASTA) name it denotes.

    An exact match wins; otherwise names are matched by :func:`chrom_key`
    (``chr`` prefix and mitochondrion spelling ignored). Names with no
    counterpart are left out of the mapping.
    """
    reference = list(reference)
    exact = set(reference)
    by_key: dict[str, str] = {}
    for ref in reference:
        by_key.setdefault(chrom_key(ref), ref)
    mapping: dict[str, str] = {}
    for name in set(names):
        if name in exact:
            mapping[name] = name
        elif chrom_key(name) in by_key:
            mapping[name] = by_key[chrom_key(name)]
    return mapping


_LINE_RE = re.compile(r"at line (\d+)")


class Genome:
    """A FASTA genome opened through its pyfaidx index.

    Args:
        fasta: path to a FASTA (plain or bgzip-compressed). Its ``.fai`` index
            is built beside it when missing, which needs a writable folder.

    Raises:
        InputError: missing file, malformed FASTA, duplicate record names,
            or no index and no permission to write one.
    """

    def __init__(self, fasta: str | os.PathLike[str], max_cached_bases: int = 1 << 30):
        self.path = require_file(fasta, "genome FASTA")
        # Chromosomes already decoded are kept while they fit in this budget
        # (bytes = bases), so a second pass over the genome reads nothing again.
        self._max_cached_bases = max_cached_bases
        self._cache: dict[str, np.ndarray] = {}
        index_path = Path(f"{self.path}.fai")
        if not index_path.exists() and not os.access(self.path.parent, os.W_OK):
            raise InputError(
                self.path,
                f"FASTA has no index ({index_path.name}) and its folder is not writable; "
                "index it with `samtools faidx` or copy it to a writable folder",
            )
        try:
            self._fasta = pyfaidx.Fasta(str(self.path), as_raw=True, sequence_always_upper=False, rebuild=False)
        except pyfaidx.FastaIndexingError as exc:
            match = _LINE_RE.search(str(exc))
            raise InputError(self.path, f"malformed FASTA: {exc}", line=int(match.group(1)) if match else None) from None
        except ValueError as exc:  # pyfaidx: 'Duplicate key "chr1"'
            raise InputError(self.path, f"malformed FASTA: {exc}") from None
        except OSError as exc:
            raise InputError(self.path, f"cannot read or index FASTA ({exc.strerror or exc})") from None
        self._index = self._fasta.faidx.index
        if not self._index:
            raise InputError(self.path, "FASTA holds no sequence records")
        self.chrom_sizes: dict[str, int] = {name: int(rec.rlen) for name, rec in self._index.items()}
        self._bgzip = bool(getattr(self._fasta.faidx, "_bgzf", False))

    @property
    def chroms(self) -> list[str]:
        """Record names in FASTA order."""
        return list(self.chrom_sizes)

    def chrom_codes(self, chrom: str) -> np.ndarray:
        """Whole chromosome as base codes, ``uint8 [chrom_sizes[chrom]]`` (read-only).

        Uncompressed FASTAs are read straight from the file bytes, dropping the
        line ends by reshaping (no per-base Python work). Decoded chromosomes
        are cached while the genome fits in ``max_cached_bases``.

        Raises:
            InputError: a character outside IUPAC DNA in this record.
        """
        if chrom in self._cache:
            return self._cache[chrom]
        codes = self._read_codes(chrom)
        if sum(map(len, self._cache.values())) + len(codes) <= self._max_cached_bases:
            codes.flags.writeable = False  # shared between callers
            self._cache[chrom] = codes
        return codes

    def _read_codes(self, chrom: str) -> np.ndarray:
        rec = self._index[chrom]
        length, line_bases, line_width = int(rec.rlen), int(rec.lenc), int(rec.lenb)
        if self._bgzip or length == 0:
            raw = np.frombuffer(self._fasta[chrom][:].encode(), dtype=np.uint8) if length else np.zeros(0, np.uint8)
        else:
            n_lines = -(-length // line_bases)
            n_bytes = (n_lines - 1) * line_width + (length - (n_lines - 1) * line_bases)
            with open(self.path, "rb") as handle:
                handle.seek(int(rec.offset))
                buf = np.frombuffer(handle.read(n_bytes), dtype=np.uint8)
            full = (n_lines - 1) * line_width
            body = buf[:full].reshape(n_lines - 1, line_width)[:, :line_bases].ravel()
            raw = np.concatenate([body, buf[full:]])
        codes = ASCII_TO_CODE[raw]
        bad = np.flatnonzero(codes == 255)
        if bad.size:
            pos = int(bad[0])
            raise InputError(
                self.path,
                f"character {chr(raw[pos])!r} at position {pos + 1} is not IUPAC DNA",
                line=f"record {chrom!r}",
            )
        return codes

    def close(self) -> None:
        """Release the FASTA file handle and the cached chromosomes."""
        self._cache.clear()
        self._fasta.close()

    def __enter__(self) -> Genome:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def gather_windows(codes: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    """Cut equal-length windows out of one chromosome's codes.

    Args:
        codes: ``uint8 [chrom_len]`` base codes.
        starts: ``int64 [n]`` 0-based window starts; every window must lie
            inside the chromosome.
        length: window length (bp).

    Returns:
        ``uint8 [n, length]``.
    """
    view = np.lib.stride_tricks.sliding_window_view(codes, length)
    return view[np.asarray(starts, dtype=np.int64)]


def gc_and_n_fraction(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GC fraction among called bases and N fraction of windows ``uint8 [n, L]``.

    Returns:
        ``(gc, n_fraction)``, both ``float64 [n]``; gc is NaN for an all-N window.
    """
    length = windows.shape[1]
    n_count = np.count_nonzero(windows == CODE_N, axis=1)
    gc_count = np.count_nonzero((windows == 1) | (windows == 2), axis=1)
    called = length - n_count
    with np.errstate(invalid="ignore", divide="ignore"):
        gc = np.where(called > 0, gc_count / np.maximum(called, 1), np.nan)
    return gc, n_count / length
