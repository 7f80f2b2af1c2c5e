"""Output files that are never left half-written.

Writers produce a temporary file beside the target and rename it into place
only when the write completed, so a crash or a kill leaves either the old file
or no file, never a truncated one.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Self

import pandas as pd

from seqae.errors import InputError, SeqaeError


class ClosedOnExit:
    """Mixin: ``with obj:`` returns the object and calls its ``close()`` on the way out, error or not."""

    close: Callable[[], None]  # each class that mixes this in defines its own

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _create_temporary(target: Path, suffix: str) -> Path:
    """Create an empty, new file ``.<name>.<random><suffix>`` beside ``target``.

    The name is drawn *before* the file is created, so that a signal turned
    into an exception at any point (Python runs signal handlers between any
    two bytecodes, e.g. just after ``os.open`` returned) still knows which
    file to remove; ``tempfile.mkstemp`` would lose the name in that instant.
    """
    while True:
        tmp = target.parent / f".{target.name}.{secrets.token_hex(6)}{suffix}"
        try:
            # O_EXCL: a new file of our own; mode 0o666 less the umask: the usual permissions.
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue  # another writer's name: draw again
        except OSError:
            raise
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; rename it to ``path`` on success.

    The folder is created if needed. On any exception (SIGTERM included, see
    ``seqae.cli``) the temporary file is removed and the exception
    propagates; ``path`` is untouched. ``suffix`` ends the temporary name,
    for writers that choose the format by extension.
    """
    target = Path(path)
    if target.is_dir():
        raise SeqaeError(f"{target}: is a folder; give the path of a file to write")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = _create_temporary(target, suffix)
    except OSError as exc:
        raise SeqaeError(f"{target}: cannot write output here ({_why_not_writable(target.parent, exc)})") from None
    try:
        yield tmp
        try:
            os.replace(tmp, target)
        except OSError as exc:
            raise SeqaeError(f"{target}: cannot write output here ({exc.strerror or exc})") from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def output_folder(path: str | os.PathLike[str]) -> Path:
    """Create the output folder ``path`` (and its parents) if needed; a one-line error where that cannot be.

    Raises:
        SeqaeError: ``path``, or a folder above it, is a file, or it cannot be created.
    """
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SeqaeError(f"{folder}: cannot create this output folder ({_why_not_writable(folder, exc)})") from None
    return folder


def check_output_folder(path: str | os.PathLike[str]) -> None:
    """Fail now, in one line, where :func:`output_folder` would fail later; creates nothing.

    For long work whose outputs come at its end: a file in the way, or a folder
    it may not write in, is named before the work rather than after it.

    Raises:
        SeqaeError: ``path``, or the nearest folder above it that exists, is a file or not writable.
    """
    folder = Path(path)
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            if not candidate.is_dir():
                raise SeqaeError(f"{folder}: cannot create this output folder ({candidate} is a file, not a folder)")
            if not os.access(candidate, os.W_OK | os.X_OK):
                raise SeqaeError(f"{folder}: cannot create this output folder (no permission to write in {candidate})")
            return


def _why_not_writable(folder: Path, exc: OSError) -> str:
    """Why ``folder`` could not be made or written into: a file in the way, named, else the system's reason."""
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            if not candidate.is_dir():
                return f"{candidate} is a file, not a folder"
            break
    return exc.strerror or str(exc)


def remove_stale_temporaries(folder: str | os.PathLike[str], names: Iterable[str]) -> list[Path]:
    """Remove the temporary files that :func:`atomic_output` left beside ``folder/<name>``.

    A process killed outright (SIGKILL: a scheduler ending the job, the
    out-of-memory killer) cannot remove the file it was writing. The next run
    that owns ``folder`` calls this first, so that only complete outputs
    remain. Only ``.<name>.*`` files of the given output names are touched.

    Returns:
        The paths removed.
    """
    return remove_earlier_outputs(folder, [f".{glob.escape(name)}.*" for name in names])


def remove_earlier_outputs(folder: str | os.PathLike[str], patterns: Iterable[str]) -> list[Path]:
    """Remove the files matching the glob ``patterns`` (relative to ``folder``) that an earlier run wrote.

    For the temporaries of a killed run (:func:`remove_stale_temporaries`),
    and for a command told not to draw (``evaluate.figures: false``,
    ``trees.render: false``): the figures of its earlier runs would otherwise
    stand beside the new results (Snakemake does not remove what a rule no
    longer declares) and be shown in the report as if current.

    Returns:
        The files removed.
    """
    removed = []
    for pattern in patterns:
        for path in sorted(Path(folder).glob(pattern)):
            if path.is_file():
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed.append(path)
    return removed


def require_file(path: str | os.PathLike[str], what: str = "input file") -> Path:
    """Return ``path`` as a Path, or raise a one-line error if it is not a readable file."""
    p = Path(path)
    if not p.exists():
        raise InputError(p, f"{what} does not exist")
    if not p.is_file():
        raise InputError(p, f"{what} is not a regular file")
    if not os.access(p, os.R_OK):
        raise InputError(p, f"{what} is not readable")
    return p


#: Leading bytes of files that are not the text a reader expected -> what they are and what to do.
_NOT_TEXT = (
    (b"BZh", "bzip2-compressed: decompress it (`bunzip2 -k FILE`)"),
    (b"\xfd7zXZ\x00", "xz-compressed: decompress it (`unxz -k FILE`)"),
    (b"(\xb5/\xfd", "zstd-compressed: decompress it (`unzstd FILE`)"),
    (b"PK\x03\x04", "a zip archive: unzip it and give the file inside"),
    (b"\xff\xfe", "UTF-16 text: save it as UTF-8 (or ASCII)"),
    (b"\xfe\xff", "UTF-16 text: save it as UTF-8 (or ASCII)"),
)


def not_text(head: bytes) -> str | None:
    """What a file starting with ``head`` (its first few KiB) is when it is not plain text, else None.

    For readers that would otherwise complain about its first line: a
    compressed file, UTF-16 text, or any file holding NUL bytes (binary).
    """
    for magic, what in _NOT_TEXT:
        if head.startswith(magic):
            return what
    return "a binary file, not text" if b"\x00" in head[:4096] else None


def write_tsv(table: pd.DataFrame, path: str | os.PathLike[str], header: bool = True) -> Path:
    """Write a DataFrame as tab-separated text (temp file, then rename): :func:`write_tsv_to`."""
    with atomic_output(path) as tmp:
        write_tsv_to(table, tmp, header, name=path)
    return Path(path)


def write_tsv_to(
    table: pd.DataFrame, path: str | os.PathLike[str], header: bool = True, name: str | os.PathLike[str] | None = None
) -> None:
    """Write a DataFrame as tab-separated text straight to ``path``, for a caller that holds its own temporary.

    Uses Arrow's multithreaded CSV writer; missing values are written as
    empty fields, which pandas, R and spreadsheet programs read as missing.
    ``name`` is the file the errors name (default ``path``).

    Raises:
        SeqaeError: a value holds a tab or a line break, which unquoted tab-separated text cannot hold.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    arrow = pa.Table.from_pandas(table, preserve_index=False)
    options = pacsv.WriteOptions(include_header=False, delimiter="\t", quoting_style="none")
    with open(path, "wb") as handle:
        if header:  # written here: Arrow would quote the column names
            handle.write(("\t".join(map(str, table.columns)) + "\n").encode())
        try:
            pacsv.write_csv(arrow, handle, write_options=options)
        except pa.ArrowInvalid as exc:
            value = str(exc).partition("Invalid value: ")[2]
            raise SeqaeError(
                f"{name or path}: a value holds a tab or a line break, which a tab-separated field cannot hold: "
                f"{value!r}"
            ) from None
