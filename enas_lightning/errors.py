"""User-facing errors.

Every mistake a user can make (a wrong setting, a broken file, an impossible shape) is raised as an
:class:`ENASError` whose message is one line naming the setting, the bad value and what is
allowed. The command-line entry point prints that line (:func:`exit_with`) and exits non-zero
instead of a traceback. Faults of the machine get one line too: a file that cannot be written
(:class:`WriteError`) and a DDP rank that died (:class:`RankDied`).
"""

from __future__ import annotations

import sys
from typing import NoReturn


class ENASError(Exception):
    """Base class of errors caused by user input; the message is shown as one line."""

    exit_code = 2


class ConfigError(ENASError):
    """A setting has a value that is not allowed."""

    def __init__(self, setting: str, value: object, allowed: str) -> None:
        self.setting, self.value, self.allowed = setting, value, allowed
        super().__init__(f"{setting}={value!r} is not allowed: {allowed}")


class ArchError(ENASError):
    """An architecture (record, JSON file or integer string) is invalid for its search space."""


class DataError(ENASError):
    """A dataset is missing, corrupt or unreadable."""


class CheckpointError(ENASError):
    """A checkpoint cannot be used with the current configuration."""


class NonFiniteError(ENASError):
    """Training produced too many non-finite losses in a row."""

    exit_code = 3


def one_line(exc: BaseException) -> str:
    """``exc``'s message on one line (its type name if it has none), to quote in a message."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


class WriteError(ENASError):
    """A file of the run could not be written (disk full, quota, read-only, permissions, I/O).

    ``after`` is filled in by whoever knows the run: what survives of it and the command that
    resumes it (:func:`enas_lightning.checkpointing.after_failure`).
    """

    exit_code = 74  # sysexits.h EX_IOERR

    def __init__(self, path: object, reason: str, space: str = "") -> None:
        self.path, self.reason, self.space = path, reason, space
        self.after = ""
        super().__init__(path, reason, space)

    def __str__(self) -> str:
        space = f" ({self.space})" if self.space else ""
        return f"could not write {self.path}: {self.reason}{space}{self.after}"


class RankDied(ENASError):
    """A DDP rank ended without the others (killed, or out of memory): the run stops."""

    exit_code = 75  # sysexits.h EX_TEMPFAIL: resume later


def exit_with(e: ENASError) -> NoReturn:
    """One line naming the setting and what is allowed, no traceback, the error's exit code."""
    print(f"error: {e}", file=sys.stderr, flush=True)
    sys.exit(e.exit_code)
