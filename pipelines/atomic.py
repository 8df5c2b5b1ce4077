"""Atomic writes: a reader never sees half an artifact, and nothing is overwritten silently.

Everything we write goes first into a temporary folder or file *beside* the target (same
filesystem, so the final ``os.replace`` is atomic), and only a complete result is moved into
place. If the process is killed half-way, the target is untouched and the temporary is left
under a dot-name that the next run ignores.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from typing import Iterator

from .errors import EraseError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _publish_mode(path: str, directory: bool) -> None:
    """mkdtemp/mkstemp create private (0700/0600) entries; give the result the usual umask mode."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def refuse_existing(target: str, overwrite: bool, flag: str = "--overwrite") -> None:
    """Raise a teaching error if ``target`` exists and the caller did not ask to replace it, or if
    it could not be written at all. Commands call this before their work, so that a bad output
    path costs nothing (not an hour of training then a traceback)."""
    if os.path.exists(target) and not overwrite:
        raise EraseError(
            f"output '{target}' already exists; choose another output path or pass {flag} to replace it"
        )
    _check_writable(target)


def work_dir(target: str, kind: str) -> str:
    """Where a long command's resumable state for ``target`` waits: ``.NAME.KIND`` beside it.

    Never inside ``target``, so that an interrupted run is never mistaken for a finished one, and
    a dot-name, so that listings of the results skip it.
    """
    target = os.path.abspath(target).rstrip(os.sep)
    return os.path.join(os.path.dirname(target), f".{os.path.basename(target)}.{kind}")


def _check_writable(target: str) -> None:
    """The nearest existing folder above ``target`` must be a folder this process can write in."""
    parent = os.path.dirname(os.path.abspath(target))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise EraseError(f"output '{target}' cannot be created: '{parent}' is a file, not a folder; choose another output path")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise EraseError(f"output '{target}' cannot be created: no permission to write in '{parent}'; choose an "
                         "output path in a folder you can write")


@contextmanager
def _creating(target: str) -> Iterator[None]:
    """Turn a failure to create the output's folders or temporary into a one-line error."""
    try:
        yield
    except OSError as error:
        raise EraseError(f"output '{target}' cannot be created ({error.strerror or error}); choose another output "
                         "path or free the disk") from None


@contextmanager
def atomic_folder(target: str, overwrite: bool = False) -> Iterator[str]:
    """Yield an empty temporary folder; on success it replaces ``target`` in one rename.

    On any exception the temporary folder is removed and ``target`` is left as it was.
    """
    target = os.path.abspath(target)
    refuse_existing(target, overwrite)
    parent = os.path.dirname(target)
    with _creating(target):
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.tmp-", dir=parent)
        _publish_mode(tmp, directory=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if os.path.exists(target):
        # Move the old one aside first so that at every instant one complete version exists.
        old = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.old-", dir=parent)
        os.replace(target, os.path.join(old, "previous"))
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)


@contextmanager
def atomic_file(target: str, overwrite: bool = True) -> Iterator[str]:
    """Yield a temporary path beside ``target``; on success it replaces ``target``."""
    target = os.path.abspath(target)
    refuse_existing(target, overwrite)
    with _creating(target):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.tmp-", dir=os.path.dirname(target))
        os.close(fd)
        _publish_mode(tmp, directory=False)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text(target: str, text: str) -> None:
    """Write a small text file atomically."""
    with atomic_file(target) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
