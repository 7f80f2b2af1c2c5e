"""Genome access: base codes, whole-chromosome reads (chromosome names: :mod:`seqae.chrom_names`).

Sequences are held as ``uint8`` base codes, ``A=0, C=1, G=2, T=3, N=4``
(lower case is read as upper case; IUPAC ambiguity codes become N). A
chromosome is read in one vectorised step from the FASTA bytes through the
pyfaidx index, so extraction never fetches sequence window by window.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import os
import re
import shutil
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyfaidx

from seqae.alphabet import ASCII_TO_CODE, BASES, CODE_N
from seqae.errors import InputError
from seqae.fasta_lines import LineLengthError, plain_spans_codes
from seqae.fileio import ClosedOnExit, atomic_output, not_text, require_file
from seqae.spans import ReadStats, read_by_spans

log = logging.getLogger("seqae")


_DECODE = ASCII_TO_CODE.tobytes()  # the same table for bytes.translate

#: Gap (bp) between two windows worth reading rather than starting a new span.
#: Measured with :meth:`Genome.spans_codes` on a 248 Mb chromosome in the OS
#: cache (2 CPU cores shared with a training run, best of 15 runs, three
#: times): one more span of 200 costs 1.0-1.1 µs (a ``pread``), one more base
#: 0.58-0.61 ns (read and translate, the reader before the Arrow decode), so a gap pays
#: for itself below 1.6-1.8 kb.
FASTA_MAX_GAP = 1_700


def encode(seq: str | bytes) -> np.ndarray:
    """DNA text -> ``uint8`` codes of shape ``[len(seq)]`` (non-ACGT -> N)."""
    raw = np.frombuffer(seq.encode() if isinstance(seq, str) else seq, dtype=np.uint8)
    codes = ASCII_TO_CODE[raw]
    codes[codes == 255] = CODE_N
    return codes


def decode(codes: np.ndarray) -> str:
    """``uint8`` codes ``[L]`` -> DNA text of length L."""
    return np.frombuffer(BASES.encode(), dtype=np.uint8)[np.asarray(codes)].tobytes().decode()


_LINE_RE = re.compile(r"at line (\d+)")
_RECORD_RE = re.compile(r"found in (>\S+)")


def _first_blank_line(path: Path, line: int) -> int | None:
    """The 1-based number of a blank line at ``line`` or just after it in the FASTA ``path``, or None.

    pyfaidx reports a blank line inside a sequence at the blank line itself, and two or more at a
    record's end at the sequence line before them. Read only on that error path.
    """
    opener = gzip.open if fasta_compression(path) != "plain" else open
    try:
        with opener(path, "rb") as handle:
            for number, text in enumerate(handle, start=1):
                if number >= line and not text.strip():
                    return number
                if number > line:
                    return None
    except (OSError, EOFError, zlib.error):
        return None
    return None


def fasta_compression(path: Path) -> str:
    """``"plain"``, ``"bgzip"`` (blocked gzip, which pyfaidx reads in place) or ``"gzip"`` (any other gzip)."""
    with open(path, "rb") as handle:
        head = handle.read(18)
    if head[:2] != b"\x1f\x8b":
        return "plain"
    # BGZF: gzip with the FEXTRA flag and a 'BC' subfield first (SAM/BAM specification, section 4.1).
    return "bgzip" if len(head) >= 14 and head[3] & 4 and head[12:14] == b"BC" else "gzip"


@contextlib.contextmanager
def _fasta_errors(path: Path) -> Iterator[None]:
    """pyfaidx's and the file system's exceptions as one-line :class:`InputError` lines about ``path``."""
    try:
        yield
    except pyfaidx.FastaIndexingError as exc:
        match = _LINE_RE.search(str(exc))
        line = int(match.group(1)) if match else None
        blank = _first_blank_line(path, line) if line is not None else None
        if blank is not None:
            record = _RECORD_RE.search(str(exc))
            where = f" of {record.group(1)}" if record else ""
            raise InputError(
                path,
                f"malformed FASTA: a blank line inside or after the sequence{where}, which pyfaidx cannot index "
                "(one blank line at a record's end is all it allows); remove the blank lines",
                line=blank,
            ) from None
        raise InputError(path, f"malformed FASTA: {exc}", line=line) from None
    except ValueError as exc:  # pyfaidx: 'Duplicate key "chr1"'
        raise InputError(path, f"malformed FASTA: {exc}") from None
    except (EOFError, zlib.error) as exc:
        raise InputError(path, f"truncated or corrupt bgzip data ({exc})") from None
    except OSError as exc:
        raise InputError(path, f"cannot read or index FASTA ({exc.strerror or exc})") from None


def _is_fresh(index: Path, fasta: Path) -> bool:
    return index.exists() and index.stat().st_mtime >= fasta.stat().st_mtime


def _index_misses_records(fai: Path, fasta: Path) -> bool:
    """Whether a plain FASTA holds more than its ``.fai`` says: anything but white space after the last record.

    A newer modification time is not enough: ``wget`` and ``gunzip`` give a
    downloaded FASTA the server's (older) time, so the index of an earlier,
    shorter download looks fresh. (A FASTA shorter than its index is named
    when a record is read.) Reads the index and at most 4 KiB of the FASTA.
    """
    try:
        columns = pd.read_csv(fai, sep="\t", header=None, usecols=[1, 2, 3, 4], dtype=np.int64).to_numpy()
        length, offset, line_bases, line_bytes = columns.T
        full_lines = np.floor_divide(length, line_bases, where=line_bases > 0, out=np.zeros_like(length))
        end = int((offset + full_lines * line_bytes + (length - full_lines * line_bases)).max(initial=0))
        with open(fasta, "rb") as handle:
            handle.seek(end)
            tail = handle.read(4096)
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return False  # an unreadable index: pyfaidx names the problem when it reads it
    return bool(tail.strip())


def _build_index(fasta: Path, fai: Path, gzi: Path | None) -> None:
    """Index ``fasta`` into ``fai`` (and ``gzi`` for bgzip), atomically: a failed build leaves no index."""
    with atomic_output(fai) as tmp_fai, atomic_output(gzi) if gzi else contextlib.nullcontext() as tmp_gzi:
        # pyfaidx would read the empty placeholders as an index: it writes them itself.
        tmp_fai.unlink()
        if tmp_gzi is not None:
            tmp_gzi.unlink()
        if gzi is None:
            _check_plain_text(fasta)
        with _fasta_errors(fasta):
            pyfaidx.Faidx(
                str(fasta), indexname=str(tmp_fai), gzi_indexname=str(tmp_gzi) if tmp_gzi else None, as_raw=True
            ).close()


def _check_plain_text(fasta: Path) -> None:
    """Refuse what pyfaidx would misread without a word, or name wrongly: a byte-order mark, or line breaks of
    a lone carriage return (old Mac text, which it reads as one line). Reads the first 64 KiB."""
    with open(fasta, "rb") as handle:
        head = handle.read(65536)
    what = not_text(head)
    if what is not None:
        raise InputError(fasta, f"is {what}")
    if head.startswith(b"\xef\xbb\xbf"):
        raise InputError(fasta, "starts with a UTF-8 byte-order mark, which FASTA readers cannot index; remove it "
                         "(`sed -i '1s/^\\xEF\\xBB\\xBF//' FILE`)", line=1)  # fmt: skip
    if b"\r" in head and b"\n" not in head:
        raise InputError(fasta, "lines end in a lone carriage return (old Mac text), which FASTA readers cannot "
                         "index; convert them (`tr '\\r' '\\n'`)")  # fmt: skip


def _bgzip_advice(source: Path) -> str:
    """The command that recompresses the gzip FASTA ``source`` with bgzip, into a new file (never onto itself)."""
    stem = source.name[: -len(".gz")] if source.name.endswith(".gz") else source.name
    return f"`gunzip -c {source.name} | bgzip > {stem}.bgz`"


def _decompressed_copy(source: Path, work_dir: Path) -> tuple[Path, list[Path]]:
    """A plain copy of the gzip FASTA ``source`` in ``work_dir``, made once (remade when ``source`` changes).

    Returns:
        (the copy, the files made by this call: none when an earlier copy was reused).
    """
    name = source.name[: -len(".gz")] if source.name.endswith(".gz") else source.name + ".fa"
    target = work_dir / name
    stamp = work_dir / f"{name}.source.json"
    st = source.stat()
    want = {"source": str(source.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if target.exists() and stamp.exists():
        with contextlib.suppress(ValueError):
            if json.loads(stamp.read_text()) == want:
                return target, []
    log.info(
        "%s: gzip-compressed but not bgzip, so it cannot be indexed in place; decompressing it once into %s "
        "(to skip this, recompress it: %s)",
        source, target, _bgzip_advice(source),
    )  # fmt: skip
    with atomic_output(target) as tmp:
        try:
            with gzip.open(source, "rb") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 22)
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise InputError(source, f"is not a valid gzip file ({exc})") from None
    with atomic_output(stamp) as tmp:
        tmp.write_text(json.dumps(want) + "\n")
    return target, [target, stamp]


class Genome(ClosedOnExit):
    """A FASTA genome opened through its pyfaidx index.

    Args:
        fasta: path to a FASTA: plain, bgzip-compressed (read in place), or
            gzip-compressed (decompressed once into ``work_dir``; refused
            without one, with the command that bgzips it).
        max_cached_bases: decoded chromosomes are kept while they fit.
        work_dir: a folder seqae owns (e.g. under the results). The index
            (``.fai``, and ``.gzi`` for bgzip) is used from beside the FASTA
            or in ``work_dir`` when one is there and not older than the
            FASTA; otherwise it is built beside the FASTA, or here when the
            FASTA's folder is not writable (without a work_dir that is an
            error). An index is built under a temporary name and renamed
            when complete, so a failed build leaves none; the caller removes
            what a failed run made with :meth:`discard_created`.

    Raises:
        InputError: missing file, malformed FASTA, duplicate record names,
            or no index and no permission to write one.
    """

    def __init__(
        self,
        fasta: str | os.PathLike[str],
        max_cached_bases: int = 1 << 30,
        work_dir: str | os.PathLike[str] | None = None,
    ):
        self.source = require_file(fasta, "genome FASTA")
        # Chromosomes already decoded are kept while they fit in this budget
        # (bytes = bases), so a second pass over the genome reads nothing again.
        self._max_cached_bases = max_cached_bases
        self._cache: dict[str, np.ndarray] = {}
        self.created: list[Path] = []  # files made here; see discard_created
        self._fasta = None
        self._fd: int | None = None  # raw descriptor of a plain FASTA, for pread
        self._work = Path(work_dir) if work_dir is not None else None
        try:
            self._open(self._work)
        except BaseException:
            self.discard_created()
            raise

    def _open(self, work: Path | None) -> None:
        compression = fasta_compression(self.source)
        if compression == "gzip":
            if work is None:
                raise InputError(
                    self.source,
                    "FASTA is gzip-compressed, which cannot be indexed for random access; recompress it with "
                    f"bgzip: {_bgzip_advice(self.source)} (htslib)",
                )
            work.mkdir(parents=True, exist_ok=True)
            self.path, made = _decompressed_copy(self.source, work)
            self.created += made
            compression = "plain"
        else:
            self.path = self.source
        self._bgzip = compression == "bgzip"
        fai, gzi = self._index_paths(work)
        with _fasta_errors(self.path):
            self._fasta = pyfaidx.Fasta(
                str(self.path),
                indexname=str(fai),
                gzi_indexname=str(gzi) if gzi else None,
                as_raw=True,
                sequence_always_upper=False,
                rebuild=False,
                build_index=False,
            )
        self.index_path = fai
        self._index = self._fasta.faidx.index
        if not self._index:
            raise InputError(self.path, "FASTA holds no sequence records")
        self.chrom_sizes: dict[str, int] = {name: int(rec.rlen) for name, rec in self._index.items()}
        if not self._bgzip:
            self._fd = os.open(self.path, os.O_RDONLY)

    def _index_paths(self, work: Path | None) -> tuple[Path, Path | None]:
        """The index files to read (building them first if needed): beside the FASTA, or in ``work``."""
        path = self.path

        def named(folder: Path) -> tuple[Path, Path | None]:
            return folder / f"{path.name}.fai", (folder / f"{path.name}.gzi" if self._bgzip else None)

        for folder in [path.parent] + ([work] if work is not None and work != path.parent else []):
            fai, gzi = named(folder)
            if _is_fresh(fai, path) and (gzi is None or _is_fresh(gzi, path)):
                if gzi is not None or not _index_misses_records(fai, path):
                    return fai, gzi
                log.warning("%s: does not cover the whole FASTA (an index of an earlier version?); indexing again", fai)
        if os.access(path.parent, os.W_OK):
            fai, gzi = named(path.parent)
        elif work is not None:
            fai, gzi = named(work)
            log.info("%s: the FASTA's folder is not writable; indexing it into %s", path, work)
        else:
            raise InputError(
                path,
                f"FASTA has no index ({path.name}.fai) and its folder is not writable; "
                "index it with `samtools faidx` or copy it to a writable folder",
            )
        _build_index(path, fai, gzi)
        self.created += [f for f in (fai, gzi) if f is not None]
        return fai, gzi

    def discard_created(self) -> None:
        """Remove the files this object created (index, decompressed copy): a failed run leaves none."""
        self.close()
        for path in self.created:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        self.created.clear()
        if self._work is not None:
            for folder in (self._work, self._work.parent):  # seqae's folders, when nothing else is in them
                with contextlib.suppress(OSError):
                    folder.rmdir()

    @property
    def chroms(self) -> list[str]:
        """Record names in FASTA order."""
        return list(self.chrom_sizes)

    def chrom_codes(self, chrom: str) -> np.ndarray:
        """Whole chromosome as base codes, ``uint8 [chrom_sizes[chrom]]`` (read-only).

        Read with :meth:`span_codes` (no per-base Python work). Decoded
        chromosomes are cached while the genome fits in ``max_cached_bases``.

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
        return self.span_codes(chrom, 0, self.chrom_sizes[chrom])

    @property
    def thread_safe_reads(self) -> bool:
        """Whether several threads may read spans at once: a plain FASTA (``pread``), not a bgzip one."""
        return self._fd is not None

    def span_codes(self, chrom: str, start: int, end: int) -> np.ndarray:
        """Base codes of ``[start, end)`` of ``chrom`` (0-based, inside the record), ``uint8 [end - start]``.

        See :meth:`spans_codes`.
        """
        return self.spans_codes(chrom, np.array([start]), np.array([max(start, end)]))

    def spans_codes(self, chrom: str, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Base codes of spans ``[starts[k], ends[k])`` of ``chrom``, concatenated: ``uint8 [sum(ends - starts)]``.

        A plain FASTA is read with one ``preadv`` per span of the whole lines
        it covers, and decoded without holding the GIL (see
        :func:`seqae.fasta_lines.plain_spans_codes`); should the spans hold a fault, one
        ``bytes.translate`` over them names it. No per-base Python work.
        Thread-safe for plain FASTAs.

        Raises:
            InputError: a character outside IUPAC DNA in a span, or line
                lengths that disagree with the index.
        """
        rec = self._index[chrom]
        starts, ends = np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64)
        if self._fd is not None:
            try:
                codes = plain_spans_codes(self._fd, rec, starts, ends)
            except LineLengthError as err:
                raise self._misaligned(chrom, err.args[0]) from None
            if codes is not None:
                return codes
            # Something is wrong in these spans: the slower path below names it.
        if self._fd is None:  # bgzip: pyfaidx decompresses the blocks each span covers
            pieces = [self._fasta[chrom][int(a) : int(b)].encode() for a, b in zip(starts, ends, strict=True)]
        else:
            line_bases, line_width, offset = int(rec.lenc), int(rec.lenb), int(rec.offset)
            first = offset + (starts // line_bases) * line_width + starts % line_bases
            last = offset + ((ends - 1) // line_bases) * line_width + (ends - 1) % line_bases + 1
            pieces = [os.pread(self._fd, int(b - a), int(a)) for a, b in zip(first, last, strict=True) if b > a]
        raw = b"".join(pieces)
        codes = np.frombuffer(raw.translate(_DECODE, b"\r\n"), dtype=np.uint8)
        lengths = ends - starts
        if len(codes) != int(lengths.sum()):
            raise self._misaligned(chrom, int(starts[0]))
        if len(codes) and codes.max() == 255:
            at = int(np.flatnonzero(codes == 255)[0])
            k = int(np.searchsorted(np.cumsum(lengths), at, side="right"))  # the span holding it
            pos = int(starts[k]) + at - int(lengths[:k].sum())
            char = raw.replace(b"\r", b"").replace(b"\n", b"")[at : at + 1].decode(errors="replace")
            raise InputError(
                self.path,
                f"character {char!r} at position {pos + 1} is not IUPAC DNA",
                line=f"record {chrom!r}",
            )
        return codes

    def _misaligned(self, chrom: str, position: int) -> InputError:
        """The error for lines of ``chrom`` that do not match the index, near ``position`` (0-based)."""
        return InputError(
            self.path,
            f"line lengths disagree with the index {self.index_path.name} near position {position + 1} "
            "(re-index the FASTA)",
            line=f"record {chrom!r}",
        )

    def window_codes(
        self,
        chrom: str,
        starts: np.ndarray,
        length: int,
        stats: ReadStats | None = None,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """Base codes of windows ``[s, s + length)`` for sorted ``starts``, ``uint8 [n, length]``.

        Only the spans the windows cover are read (see
        :func:`seqae.spans.cluster_windows`; :data:`FASTA_MAX_GAP` is the gap
        worth reading to save a call), so sparse windows on a large genome do
        not decode the whole chromosome, and dense ones read it once.
        ``stats`` counts reads, bases read and bases needed.
        """
        if out is None:
            out = np.empty((len(starts), length), dtype=np.uint8)

        def read_spans(span_starts: np.ndarray, span_ends: np.ndarray) -> np.ndarray:
            return self.spans_codes(chrom, span_starts, span_ends)

        return read_by_spans(read_spans, starts, length, out, FASTA_MAX_GAP, stats=stats)

    def close(self) -> None:
        """Release the FASTA file handles and the cached chromosomes."""
        self._cache.clear()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._fasta is not None:
            self._fasta.close()


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
    windows = np.asarray(windows, dtype=np.uint8)  # the wrap-around below needs uint8 (no copy when it is)
    length = windows.shape[1]
    # Codes 1 and 2 (C, G) are the bytes b with (b - 1) < 2 in uint8 arithmetic (0 wraps to 255): one
    # comparison, and a summing reduce with an int32 accumulator, which is about twice count_nonzero(axis=1).
    gc_count = np.add.reduce((windows - np.uint8(1)) < 2, axis=1, dtype=np.int32)
    n_count = np.add.reduce(windows == CODE_N, axis=1, dtype=np.int32)
    called = length - n_count
    with np.errstate(invalid="ignore", divide="ignore"):
        gc = np.where(called > 0, gc_count / np.maximum(called, 1), np.nan)
    return gc, n_count / length
