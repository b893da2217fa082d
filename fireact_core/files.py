"""Writing a user's file safely: every file the project writes goes through `write_file` or `written_path`, and
every log it adds to line by line (a training run's metrics.jsonl) through `append_line`.

The content goes to a temporary file created exclusively (random name, `O_EXCL`) in the target's own folder,
is flushed to disk, then moved onto the target with `os.replace`, so a reader sees the old file or the new one,
never half of one. The target must be absent, or a regular file that `force` allows to replace (its mode is
kept); a folder, a device, a pipe or a symbolic link is refused before anything is written. On any failure
(the disk full included) the temporary file is removed and a `FireactError` says what happened.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from .errors import FireactError

_UMASK = os.umask(0o022)
os.umask(_UMASK)


def _target_mode(target: Path, force: bool) -> int | None:
    """The mode of the regular file to replace, None when the target is absent; else a FireactError."""
    if not target.parent.is_dir():
        raise FireactError(f"{target}: folder {target.parent} does not exist")
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise FireactError(f"{target}: cannot be written: {exc.strerror}") from exc
    if stat.S_ISLNK(st.st_mode):
        raise FireactError(f"{target}: is a symbolic link; give the path of a regular file to write")
    if stat.S_ISDIR(st.st_mode):
        raise FireactError(f"{target}: is a folder; give a file name inside it")
    if not stat.S_ISREG(st.st_mode):
        raise FireactError(f"{target}: is not a regular file (a device, pipe or socket); give another path")
    if not force:
        raise FireactError(f"{target}: exists already; add --force to replace it")
    return stat.S_IMODE(st.st_mode)


def _failure(target: Path, exc: OSError) -> FireactError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return FireactError(f"{target}: the disk is full; nothing was written (free some space and try again)")
    return FireactError(f"{target}: cannot be written: {exc.strerror or exc}")


@contextmanager
def written_path(target: str | os.PathLike, force: bool = False) -> Iterator[Path]:
    """A fresh, empty temporary file beside `target` for a writer that takes a path (Parquet); it becomes
    `target` when the block ends without error, and is removed otherwise."""
    target = Path(target)
    mode = _target_mode(target, force)
    try:
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise _failure(target, exc) from exc
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        _sync(tmp)
        _target_mode(target, True)  # still absent or a regular file: nothing was planted meanwhile
        os.chmod(tmp, mode if mode is not None else 0o666 & ~_UMASK)
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _failure(target, exc) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def write_file(target: str | os.PathLike, force: bool = False, binary: bool = False) -> Iterator[IO]:
    """An open file (text, UTF-8 with "\\n" line ends, or `binary`) whose content replaces `target` when the
    block ends without error (see the module's rules)."""
    with written_path(target, force) as tmp:
        fh: IO[Any] = (open(tmp, "r+b", opener=_no_follow) if binary else
                       open(tmp, "r+", opener=_no_follow, encoding="utf-8", newline="\n"))
        try:
            yield fh
            fh.flush()
        finally:
            fh.close()


def write_text(target: str | os.PathLike, text: str, force: bool = True) -> None:
    """`write_file` of one string (a run folder's status or config: replaced as a matter of course)."""
    with write_file(target, force=force) as fh:
        fh.write(text)


def _no_follow(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW)


def _sync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


MAX_LOG_LINE = 1 << 20  # a line of a run folder's log longer than this (1 MB) is not one the project wrote: skipped


def append_line(target: str | os.PathLike, line: str) -> None:
    """Add one line to `target` (created when absent). The target must be absent or a regular file: a symbolic
    link, a folder, a device or a pipe is refused (a FireactError) and nothing is written. The line goes in one
    write under an exclusive lock on the file, so the lines of writers in several threads or processes never
    interleave; a line a crashed writer left unfinished is ended first, so it cannot swallow this one."""
    target = Path(target)
    _target_mode(target, True)
    try:
        fd = os.open(target, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     0o666)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise FireactError(f"{target}: is a symbolic link; give the path of a regular file to write") from exc
        raise _failure(target, exc) from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # replaced by something else since it was looked at
            raise FireactError(f"{target}: is not a regular file (a device, pipe or socket); give another path")
        data = line.rstrip("\n").encode("utf-8") + b"\n"
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except OSError as exc:
        raise _failure(target, exc) from exc
    finally:
        os.close(fd)  # lets go of the lock


def read_json_lines(path: str | os.PathLike) -> Iterator[Any]:
    """Each JSON value of a run folder's log (metrics.jsonl, events.jsonl), read one line at a time (memory does
    not grow with the file). Lines that are not JSON, such as one a writer is adding at this moment, and lines over
    `MAX_LOG_LINE` are skipped; a path that is not a regular file (missing, a pipe, a device) gives nothing."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return
    with open(fd, "rb") as fh:
        while raw := fh.readline(MAX_LOG_LINE + 1):
            if len(raw) > MAX_LOG_LINE:
                while raw and not raw.endswith(b"\n"):  # the rest of the long line, a piece at a time
                    raw = fh.readline(MAX_LOG_LINE)
                continue
            try:
                yield json.loads(raw)
            except ValueError:
                continue
