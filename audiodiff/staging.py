"""Atomic staging: a save writes into a hidden sibling of its folder and moves into place when
complete, so a killed save never leaves a folder that looks loadable.

The hidden folder's name carries the saving process's host and id (.NAME.saving-<random>-<host>-<pid>),
so the next save into that folder (or the next fine-tuning start) removes one whose process is
gone. Also here: refusing, before any work, a folder outputs can't be written into, and flushing
a file to disk before it is renamed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import time
import uuid
from pathlib import Path


def check_writable_folder(folder: str | os.PathLike, flag: str = "--output-dir", error: type[Exception] = ValueError) -> Path:
    """Refuse, before any work, a folder that outputs can't be written into: a file, under a
    file, behind a broken link, or not writable. Raises `error` with a sentence naming `flag`;
    creates nothing (a missing folder is tried in its nearest existing parent, by a real write,
    so permissions, read-only file systems and immutable folders all show). Returns the Path."""
    import tempfile

    folder = Path(folder).expanduser()
    existing = folder
    while not existing.exists() and existing != existing.parent:
        if existing.is_symlink():
            raise error(f"{flag} {folder} can't be created: {existing} is a broken symbolic link")
        existing = existing.parent
    if not existing.is_dir():
        where = "is a file" if existing == folder else f"is under {existing}, which is a file"
        raise error(f"{flag} {folder} {where}, not a folder; choose a folder for the outputs")
    try:
        tempfile.TemporaryDirectory(prefix=".write-test-", dir=existing).cleanup()
    except OSError as exc:
        what = folder if existing == folder else f"{existing} (where {folder} would be created)"
        raise error(f"{flag} {what} is not writable ({exc.strerror or exc}); choose a folder you can write to") from exc
    return folder


def fsync_path(path: Path) -> None:
    """Flush one file to disk (atomic saves rename only what is already durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


STAGING_MARK = ".saving-"
# Staging folders named by older versions carry no process id: removed once this old (seconds)
LEGACY_STAGING_SECONDS = 600


def _host_tag() -> str:
    return hashlib.blake2b(socket.gethostname().encode(), digest_size=4).hexdigest()


def staging_folder(folder: Path, pid: int | None = None) -> Path:
    """The hidden sibling a save into `folder` stages in: .NAME.saving-<random>-<host>-<pid>."""
    folder = Path(folder)
    pid = os.getpid() if pid is None else pid
    return folder.parent / f".{folder.name}{STAGING_MARK}{uuid.uuid4().hex[:8]}-{_host_tag()}-{pid}"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    except (OverflowError, ValueError):
        return False
    return True


def clean_stale_staging(parent: str | os.PathLike, name: str | None = None) -> list[Path]:
    """Remove the staging folders in `parent` (of saves into `parent/name`, or of any save when name
    is None) that a killed save left behind: those whose process, on this host, is gone, and
    unnamed ones of older versions once LEGACY_STAGING_SECONDS old. Another host's or a running
    save's staging folder is left alone. Returns the folders removed."""
    parent = Path(parent)
    if not parent.is_dir():
        return []
    prefix = f".{name}{STAGING_MARK}" if name is not None else "."
    removed = []
    for path in parent.iterdir():
        if not (path.name.startswith(prefix) and STAGING_MARK in path.name) or path.is_symlink() or not path.is_dir():
            continue
        owner = path.name.rsplit(STAGING_MARK, 1)[1].split("-")
        if len(owner) == 3 and owner[2].isdigit():
            if owner[1] != _host_tag() or _process_alive(int(owner[2])):
                continue
        elif len(owner) != 1 or time.time() - path.stat().st_mtime < LEGACY_STAGING_SECONDS:
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed
