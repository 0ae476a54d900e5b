"""Every file a run writes: whole or not at all, with the umask's mode, one line when it cannot be.

- :func:`write_atomic` (and :func:`write_bytes`, :func:`write_text`, :func:`writing`) writes into
  a temporary file next to the target, flushes it to disk and ``os.replace``-s it over the
  target, so a full disk or a kill leaves either the old, complete file or the new, complete one.
  The temporary file is created the way ``open()`` creates files (mode ``0o666`` less the
  umask), not with ``tempfile.mkstemp``'s ``0o600``, so a checkpoint or an export can be read by
  whoever can read the run's other files.
- :func:`appending` adds rows to a file (``sampled_archs.csv``): the rows land whole or the file
  is cut back to its earlier length.
- Each raises :class:`~enas_lightning.errors.WriteError` naming the file, the space the write
  needed and the space left; :func:`write_error_of` finds such a failure in any exception (the
  writes of libraries included: Lightning's CSV logger, matplotlib), for the one line
  :mod:`enas_lightning.app` prints.
- :func:`optional`: a picture or a plot that cannot be written costs one warning line, never
  the run.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, TypeVar

from enas_lightning.errors import WriteError

log = logging.getLogger(__name__)
E = TypeVar("E", bound=BaseException)

# Failures of the disk rather than of the code: an OSError with one of these codes is reported in
# one line wherever it comes from. Others (EACCES on a file the run reads, say) keep their
# traceback unless they come from a write of this module.
DISK_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO}
    | ({errno.ESTALE} if hasattr(errno, "ESTALE") else set())
)
SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
# Only a write gets these; EIO (and ESTALE) also come from reads, so they count as a failed write
# only where the file being written is found.
WRITE_ONLY_ERRNOS = SPACE_ERRNOS | {errno.EROFS}


def human_size(n: float) -> str:
    """``15.5 MiB``: bytes in binary units, one decimal."""
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} bytes" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def free_bytes(path: Path) -> int | None:
    """Space left to this user on the file system of ``path`` (its nearest existing parent)."""
    for p in (path, *path.parents):
        try:
            return shutil.disk_usage(p).free
        except OSError:
            continue
    return None


def write_error(
    exc: OSError, path: object, needed: int | Callable[[], int] | None = None
) -> WriteError:
    """:class:`WriteError` for ``exc``: the file, the reason, and for a full disk (or quota) the
    bytes the write needed (``needed``, a count or a function computing it) and the bytes left."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if reason[1:2].islower():  # "No space left on device" -> "no space ..."; "I/O error" stays
        reason = reason[:1].lower() + reason[1:]
    space = ""
    if exc.errno in SPACE_ERRNOS:
        try:
            size = needed() if callable(needed) else needed
        except Exception:  # measuring is a courtesy; the failure is what matters
            size = None
        left = free_bytes(Path(str(path))) if exc.errno == errno.ENOSPC else None
        parts = [f"the write needed {human_size(size)}" if size is not None else ""]
        parts.append(f"{human_size(left)} left" if left is not None else "")
        space = ", ".join(p for p in parts if p)
    return WriteError(path, reason, space)


def in_chain(exc: BaseException, kind: type[E]) -> E | None:
    """``exc`` or the first exception of type ``kind`` it was raised from or while handling."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        if isinstance(e, kind):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def os_error_in(exc: BaseException) -> OSError | None:
    """The ``OSError`` behind ``exc`` (``torch.save`` turns a failed write into a
    ``RuntimeError`` raised while handling the ``OSError``)."""
    return in_chain(exc, OSError)


def _open_temp(path: Path) -> tuple[int, Path]:
    """A new file ``.<name>.<random>.tmp`` next to ``path``, created with mode 0o666 less the
    umask (``O_EXCL``, as ``mkstemp`` does, but with the mode ``open()`` would give)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(path))


def write_atomic(
    path: str | os.PathLike,
    write: Callable[[BinaryIO], object],
    needed: int | Callable[[], int] | None = None,
) -> None:
    """``write(f)`` into a temporary file next to ``path``, fsync, then ``os.replace``.

    Raises:
        WriteError: an ``OSError`` while creating, writing, syncing or renaming (the temporary
            file removed, an earlier ``path`` intact); ``needed`` sizes the message.
        Exception: whatever else ``write`` raises, unchanged (the temporary file removed).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _open_temp(path)
    except OSError as e:
        raise write_error(e, path, needed) from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic on POSIX within one file system
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        cause = os_error_in(e)
        if cause is None or isinstance(e, KeyboardInterrupt):
            raise
        raise write_error(cause, path, needed) from None


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """``data`` to ``path``, atomically (:func:`write_atomic`)."""
    write_atomic(path, lambda f: f.write(data), len(data))


def write_text(path: str | os.PathLike, text: str) -> None:
    """``text`` (UTF-8) to ``path``, atomically (:func:`write_atomic`)."""
    write_bytes(path, text.encode("utf-8"))


@contextmanager
def writing(path: str | os.PathLike) -> Iterator[io.StringIO]:
    """A text buffer written to ``path`` atomically when the block ends (``csv.writer`` on it
    writes what it writes to a file opened with ``newline=""``)."""
    buf = io.StringIO()
    yield buf
    write_text(path, buf.getvalue())


@contextmanager
def appending(path: str | os.PathLike) -> Iterator[io.StringIO]:
    """A text buffer appended to ``path`` when the block ends, whole or not at all: on a failed
    append the file is cut back to its earlier length (no torn last row)."""
    buf = io.StringIO()
    yield buf
    path = Path(path)
    data = buf.getvalue().encode("utf-8")
    try:
        start: int | None = path.stat().st_size
    except FileNotFoundError:
        start = None
    try:
        with path.open("ab") as f:
            f.write(data)
    except OSError as e:
        try:
            if start is None:
                path.unlink(missing_ok=True)
            else:
                os.truncate(path, start)
        except OSError:
            pass
        raise write_error(e, path, len(data)) from None


def _written_file(exc: BaseException) -> str | None:
    """The file a library was writing when ``exc`` was raised: an open, writable file object
    among the locals of the innermost frames of its traceback (a write error from ``write()``
    or ``close()`` carries no file name)."""
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):
        for value in list(frame.f_locals.values()):
            if not isinstance(value, io.IOBase):
                continue
            name = getattr(value, "name", None)
            if not isinstance(name, str):
                name = getattr(value, "path", None)  # fsspec's local files
            if isinstance(name, str) and _opened_for_writing(value):
                return name
    return None


def _opened_for_writing(f: io.IOBase) -> bool:
    # the mode of the file, or of the buffer a text wrapper holds (fsspec's files: Lightning's
    # CSV logger); the file is closed by now, so f.writable() could not be asked
    for mode in (getattr(f, "mode", None), getattr(getattr(f, "buffer", None), "mode", None)):
        if isinstance(mode, str):
            return bool(set(mode) & set("wax+"))
    return False


def write_error_of(
    exc: BaseException, what: object = "a file of the run", errnos: frozenset[int] = DISK_ERRNOS
) -> WriteError | None:
    """The write failure behind ``exc``, if it is one: a :class:`WriteError`, or an ``OSError``
    with one of ``errnos`` (a full, read-only or failing disk) from any library's write, named
    by its file where that can be found, else by ``what``."""
    failure = in_chain(exc, WriteError)
    if failure is not None:
        return failure
    cause = os_error_in(exc)
    if cause is None or (errnos and cause.errno not in errnos):
        return None
    written = _written_file(cause) or _written_file(exc)
    if errnos and cause.errno not in WRITE_ONLY_ERRNOS and written is None:
        return None  # an I/O error of a read, say: not this module's to tell
    return write_error(cause, cause.filename or written or what)


@contextmanager
def optional(what: str | os.PathLike) -> Iterator[None]:
    """A picture or plot (``what``: its path or stem) whose write fails: one warning line, and
    the run goes on without it."""
    try:
        yield
    except Exception as e:
        failure = write_error_of(e, what, errnos=frozenset())  # any OSError
        if failure is None:
            raise
        log.warning("%s; the run goes on without it", failure)
