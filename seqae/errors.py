"""User-facing errors.

Every problem with a user's input is raised as a :class:`SeqaeError` whose
message is one line naming the file, the line or record and what is wrong.
The command line prints that line and exits non-zero, without a traceback.
"""

from __future__ import annotations

from os import PathLike


class SeqaeError(Exception):
    """An error the user can fix; its message is shown as one line."""


class InputError(SeqaeError):
    """Bad input data: ``<path>:<line>: <message>`` (line optional).

    Args:
        path: the offending file.
        message: what is wrong, in the user's terms.
        line: 1-based line number in ``path``, or a record name such as
            ``"record 'chr2'"``; omitted when the whole file is at fault.
    """

    def __init__(self, path: str | PathLike[str], message: str, line: int | str | None = None):
        self.path = str(path)
        self.line = line
        self.message = message
        where = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{where}: {message}")


class ConfigError(SeqaeError):
    """A configuration key with a wrong name, type or value."""
