"""Output files that are never left half-written.

Writers produce a temporary file beside the target and rename it into place
only when the write completed, so a crash or a kill leaves either the old file
or no file, never a truncated one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from seqae.errors import InputError, SeqaeError


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; rename it to ``path`` on success.

    The folder is created if needed. On any exception the temporary file is
    removed and the exception propagates; ``path`` is untouched. ``suffix``
    ends the temporary name, for writers that choose the format by extension.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    except OSError as exc:
        raise SeqaeError(f"{target}: cannot write output here ({exc.strerror or exc})") from None
    tmp = Path(tmp_name)
    try:  # from the moment the file exists: an exception anywhere below removes it
        os.close(fd)
        # mkstemp creates the file 0600; give the output the usual permissions.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


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


def write_tsv(table: pd.DataFrame, path: str | os.PathLike[str], header: bool = True) -> Path:
    """Write a DataFrame as tab-separated text (temp file, then rename).

    Uses Arrow's multithreaded CSV writer; missing values are written as
    empty fields, which pandas, R and spreadsheet programs read as missing.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    arrow = pa.Table.from_pandas(table, preserve_index=False)
    options = pacsv.WriteOptions(include_header=False, delimiter="\t", quoting_style="none")
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as handle:
            if header:  # written here: Arrow would quote the column names
                handle.write(("\t".join(map(str, table.columns)) + "\n").encode())
            pacsv.write_csv(arrow, handle, write_options=options)
    return Path(path)
