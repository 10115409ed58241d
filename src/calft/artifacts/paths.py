"""Opening inputs and replacing outputs safely.

Inputs: only regular files and folders are read; a FIFO or a device, which would block a reader
until someone writes to it, is refused at once.

Outputs are written under a temporary name beside the final path and swapped into place only when
complete, so the final path always holds the old complete artifact or the new one, never a mix, and
an interrupted writer leaves at most a hidden temporary that the next write removes. An existing
path is replaced only when it is an artifact of the same kind that calft wrote (its provenance
record says so), or an empty folder: never the user's own files. Files that cannot carry a record
inside (csv, md, tex and png tables and figures) are listed, with their kind, in a `.calft-files.json`
beside them.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import os
import shutil
import socket
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, TypeVar

from calft.artifacts.records import RECORD, decode
from calft.errors import UserError

SELF_DESCRIBING = (".parquet", ".json", ".npz")  # file formats whose provenance is inside them
MANIFEST = ".calft-files.json"
MANIFEST_LOCK = ".calft-files.lock"  # held by the process updating the manifest
Read = TypeVar("Read")


def open_regular(path: str | Path, dir_fd: int | None = None, label: str | Path | None = None) -> BinaryIO:
    """A regular file opened for reading (FileNotFoundError when missing); anything else is refused
    before a single byte is read (opening a FIFO without O_NONBLOCK would wait for a writer)."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK, dir_fd=dir_fd)
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise UserError(f"{label or path} is not a regular file (a FIFO, socket or device?)")
    os.set_blocking(descriptor, True)
    return os.fdopen(descriptor, "rb")


def check_input(path: str | Path) -> None:
    """An existing input is a regular file or a folder of regular files and folders (links followed)."""
    path = Path(path)
    if not os.path.lexists(path):
        return
    if path.is_file():
        return
    if not path.is_dir():
        raise UserError(f"{path} is not a regular file or folder (a FIFO, socket, device or broken link?)")
    for folder, _, files in os.walk(path):
        for name in files:
            if not os.path.isfile(os.path.join(folder, name)):
                raise UserError(
                    f"{os.path.join(folder, name)} is not a regular file (a FIFO, socket, device or broken link?)"
                )


# ---------------------------------------------------------------------------------------------
# What is at a path


def _manifest(folder: Path) -> dict:
    try:
        listed = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    return listed if isinstance(listed, dict) else {}


def _list_in_manifest(path: Path, kind: str) -> None:
    """Add `path` to its folder's manifest; writers in other processes wait their turn (a lock)."""
    import fcntl

    with open(path.parent / MANIFEST_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        listed = _manifest(path.parent)
        if listed.get(path.name) == kind:
            return
        temporary = _temporary_name(path.parent / MANIFEST, "partial")
        temporary.write_text(json.dumps(listed | {path.name: kind}, indent=1, sort_keys=True))
        os.replace(temporary, path.parent / MANIFEST)


def _parquet_record(path: Path) -> dict | None:
    """The provenance record of a parquet file, None when it has no readable one."""
    import pyarrow.parquet as pq

    try:
        with open_regular(path) as stream:
            metadata = pq.read_schema(stream).metadata or {}
        return decode(metadata.get(b"calft", b""), path)
    except Exception:  # noqa: BLE001 - whatever it is, it is not a readable calft artifact
        return None


def _file_kind(path: Path) -> str | None:
    import numpy as np

    try:
        if path.suffix == ".parquet":
            record = _parquet_record(path)
            return record["artifact"] if record else None
        if path.suffix == ".json":
            with open_regular(path) as stream:
                return decode(stream.read(), path)["artifact"]
        if path.suffix == ".npz":
            with open_regular(path) as stream, np.load(stream, allow_pickle=False) as archive:
                return decode(str(archive["__provenance__"]), path)["artifact"]
    except Exception:  # noqa: BLE001 - whatever it is, it is not a readable calft artifact
        return None
    return _manifest(path.parent).get(path.name)


def identify(path: str | Path) -> str | None:
    """The kind of the calft artifact at `path`, or None when it is not one: a folder with a
    provenance record, a folder of nothing but parquet parts of one kind, or a file (see
    SELF_DESCRIBING and MANIFEST)."""
    path = Path(path)
    if path.is_dir():
        return read_folder(path, lambda _, names: _folder_kind(path, names))
    return _file_kind(path) if path.is_file() else None


def _folder_kind(path: Path, names: list[str]) -> str | None:
    if RECORD in names:
        try:
            return decode((path / RECORD).read_bytes(), path)["artifact"]
        except (OSError, UserError):
            return None
    entries = [path / name for name in names if name != ".snakemake_timestamp"]
    records = [_parquet_record(entry) if entry.suffix == ".parquet" and entry.is_file() else None for entry in entries]
    first = records[0] if records else None  # the parts of one artifact share one record, as the reader requires
    return first["artifact"] if first and all(record == first for record in records) else None


def _still_at(folder: int, path: Path) -> bool:
    """Whether the folder open as `folder` is still the one at `path`."""
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(folder)
    return (held.st_dev, held.st_ino) == (found.st_dev, found.st_ino)


def read_folder(path: Path, read: Callable[[int, list[str]], Read]) -> Read:
    """`read(folder descriptor, its entries' names)` on one version of a folder artifact. A writer
    swaps a new version in whole (see atomic_path) and then removes the old one, perhaps while it is
    being listed or read: such a read, whatever it found or failed on, starts again on the new
    version, so it never sees a version with files missing."""
    for _ in range(5):
        folder = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            try:
                result = read(folder, sorted(os.listdir(folder)))
            except (FileNotFoundError, UserError) as error:
                if not _still_at(folder, path):
                    continue
                if isinstance(error, FileNotFoundError):
                    raise UserError(f"{path / error.filename} was removed while it was read") from None
                raise
            if _still_at(folder, path):
                return result
        finally:
            os.close(folder)
    raise UserError(f"{path} kept being replaced while it was read")


def check_output(path: str | Path, kind: str) -> None:
    """`path` may be written as a `kind` artifact: a name, whose folder can exist, that holds nothing
    or an empty folder or a calft artifact of the same kind."""
    if not str(path) or Path(path).name in ("", ".", ".."):
        raise UserError(f"'{path}' names no file or folder to write")
    path = Path(path)
    if len(path.name.encode()) > 255:
        raise UserError(f"{path.name[:40]}...: a file name longer than the 255 bytes a file system allows")
    blocking = next((p for p in path.parents if os.path.lexists(p) and not p.is_dir()), None)
    if blocking is not None:
        raise UserError(f"cannot write {path}: {blocking} is a file, not a folder")
    if not os.path.lexists(path):
        return
    if not path.is_symlink() and path.is_dir() and not any(path.iterdir()):
        return
    found = None if path.is_symlink() else identify(path)
    if found != kind:
        what = f"a calft '{found}' artifact" if found else "not a calft artifact"
        raise UserError(
            f"{path} exists and is {what}; calft replaces only its own '{kind}' artifacts: move it "
            "away or choose another path"
        )


# ---------------------------------------------------------------------------------------------
# Atomic writes

_HOST = socket.gethostname()


def _temporary_name(path: Path, role: str) -> Path:
    """A hidden sibling named by a digest of the final name (so any valid name fits) and its writer."""
    digest = hashlib.sha256(path.name.encode()).hexdigest()[:16]
    return path.with_name(f".calft-{digest}.{role}-{_HOST}-{os.getpid()}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        path.unlink(missing_ok=True)


def remove_stale_temporaries(path: Path) -> None:
    """Remove what writers of `path` on this host left when they were killed (their process is gone)."""
    prefix = _temporary_name(path, "").name.split(".")[1]
    for leftover in path.parent.glob(f".{prefix}.*-*"):
        role, _, host_pid = leftover.name[len(prefix) + 2 :].partition("-")
        host, _, pid = host_pid.rpartition("-")
        if role in ("partial", "old") and host == _HOST and pid.isdigit() and not _alive(int(pid)):
            _remove(leftover)


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths in one atomic step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(second))


def _install(temporary: Path, path: Path) -> None:
    """Put the complete `temporary` at `path`; an existing artifact there is swapped out whole."""
    if temporary.is_dir() and (path.is_dir() or path.is_file()):
        if _exchange(temporary, path):
            return  # the old artifact is now at `temporary`, removed by the caller
        aside = _temporary_name(path, "old")
        os.rename(path, aside)  # no exchange: a moment without the artifact, never a partial one
        os.rename(temporary, path)
        _remove(aside)
        return
    os.replace(temporary, path)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _umask()  # read once, at import: setting it to read it is not thread-safe


def _readable(path: Path) -> None:
    """Readable by whoever the umask lets read new files: some writers (safetensors) create theirs
    readable by their owner alone, which a shared results folder, or an adapter to publish, must not be."""
    wanted = 0o444 & ~_UMASK
    for item in [path, *path.rglob("*")] if path.is_dir() else [path]:
        if item.is_file() and not item.is_symlink() and item.stat().st_mode & wanted != wanted:
            item.chmod(item.stat().st_mode | wanted)


@contextlib.contextmanager
def atomic_path(path: str | Path, kind: str) -> Iterator[Path]:
    """Yield a temporary sibling path (for a file or a folder) that becomes `path`, a `kind`
    artifact, only if the block succeeds. What is at `path` must be replaceable (check_output),
    before the work and again just before the swap."""
    path = Path(path)
    check_output(path, kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    temporary = _temporary_name(path, "partial")
    _remove(temporary)
    try:
        yield temporary
        _readable(temporary)
        check_output(path, kind)
        if not temporary.is_dir() and path.suffix not in SELF_DESCRIBING:
            _list_in_manifest(path, kind)
        _install(temporary, path)
    finally:
        _remove(temporary)
