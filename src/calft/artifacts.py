"""Parquet artifacts: explicit schemas, provenance metadata, atomic writes, verified reads.

Every artifact carries, in its Arrow schema metadata under the key "calft", the artifact kind, the
configuration that produced it and the code version. Artifacts are single parquet files, or folders
of parquet parts written in parallel (targets and tries). Both are written under a temporary name in
the same folder and swapped into place only when complete: the final path always holds either the
old complete artifact or the new complete one, never a mix, and an interrupted writer leaves at most
a hidden temporary that the next write of the same artifact removes. Pages carry checksums, and
reads verify them and the artifact's invariants (masses, probabilities), so a damaged file is an
error, never wrong numbers.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import errno
import hashlib
import json
import os
import shutil
import socket
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from calft import __version__
from calft.errors import UserError

if TYPE_CHECKING:
    import pandas as pd

_DICT = pa.dictionary(pa.int32(), pa.string())

TARGETS_SCHEMA = pa.schema(
    [
        ("prompt_id", _DICT),
        ("family", _DICT),
        ("split", _DICT),
        ("params", _DICT),  # JSON object: printed parameter name -> value as printed
        ("prompt", _DICT),
        ("bin", pa.int32()),  # position of the value within the prompt's output space
        ("canonical", pa.string()),
        ("value", pa.float64()),
        ("mass", pa.float64()),
    ]
)

TRIES_SCHEMA = pa.schema(
    [
        ("prompt_id", _DICT),
        ("node", pa.int32()),  # 0 = root (empty prefix)
        ("parent", pa.int32()),  # -1 for the root
        ("depth", pa.int16()),
        ("token", pa.int32()),  # token from the parent to this node; -1 for the root
        ("mass", pa.float64()),  # total mass of canonical outputs with this prefix
        ("q", pa.float64()),  # mass / parent mass: target probability of `token` after the parent
        ("canonical_index", pa.int32()),  # for leaves: `bin` of the canonical output; else -1
    ]
)


def code_version() -> str:
    """Package version plus the git commit of the source tree when there is one."""
    source = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no", "."],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return __version__
    return f"{__version__}+g{commit}{'.dirty' if dirty else ''}"


def sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def provenance(kind: str, config: dict) -> dict:
    return {
        "artifact": kind,
        "config": config,
        "code_version": code_version(),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def with_provenance(schema: pa.Schema, info: dict) -> pa.Schema:
    return schema.with_metadata({b"calft": json.dumps(info, sort_keys=True).encode()})


def parts(path: str | Path) -> list[Path]:
    """The parquet parts of an artifact folder, in order (a single file is its own only part)."""
    path = Path(path)
    if not path.is_dir():
        if not path.exists():
            raise UserError(f"{path} does not exist")
        return [path]
    found = sorted(path.glob("*.parquet"))
    if not found:
        raise UserError(f"{path} is not a calft artifact (a folder without parquet parts)")
    return found


def require(*paths) -> None:
    """Fail with a message naming the first of `paths` (None skipped) that does not exist."""
    for path in paths:
        if path is not None and not Path(path).exists():
            raise UserError(f"{path} does not exist")


def _provenance_of(schema: pa.Schema, part) -> dict:
    metadata = schema.metadata or {}
    try:
        info = json.loads(metadata[b"calft"]) if b"calft" in metadata else None
    except ValueError:
        info = None
    if not isinstance(info, dict) or "artifact" not in info:
        raise UserError(f"{part} is not a calft artifact (no readable 'calft' metadata)")
    return info


def read_provenance(path: str | Path) -> dict:
    """The provenance of a parquet file, or of a folder of parquet parts (all parts share it)."""
    part = parts(path)[0]
    try:
        schema = pq.read_schema(part)
    except (pa.ArrowException, OSError) as error:
        raise UserError(f"{part} cannot be read as parquet ({error}): the file is damaged or not an artifact") from None
    return _provenance_of(schema, part)


def _check_targets(part: Path, table: pa.Table) -> None:
    """Masses are finite and non-negative, and sum to 1 per prompt."""
    if "mass" not in table.column_names:
        return
    mass = table.column("mass").to_numpy()
    if not np.all(np.isfinite(mass) & (mass >= 0)):
        raise UserError(f"{part}: masses outside [0, inf): the file is damaged")
    if "prompt_id" in table.column_names:
        prompts = table.unify_dictionaries().column("prompt_id")
        if pa.types.is_dictionary(prompts.type):
            index = np.concatenate([chunk.indices.to_numpy() for chunk in prompts.chunks])
        else:
            index = np.unique(prompts.to_numpy(), return_inverse=True)[1]
        totals = np.bincount(index, weights=mass)
        present = np.bincount(index) > 0
        if np.any(np.abs(totals[present] - 1) > 1e-6):
            raise UserError(f"{part}: masses do not sum to 1 for every prompt: the file is damaged")


def _check_tries(part: Path, table: pa.Table) -> None:
    """Target probabilities q and prefix masses lie in [0, 1]."""
    for name in ("q", "mass"):
        if name in table.column_names:
            values = table.column(name).to_numpy()
            if not np.all((values >= 0) & (values <= 1 + 1e-9)):
                raise UserError(f"{part}: {name} outside [0, 1]: the file is damaged")


INVARIANTS = {"targets": _check_targets, "tries": _check_tries}


class _Replaced(Exception):
    """A folder artifact was swapped for a newer one while it was being read."""


def _read_part(stream, part: Path, kind: str | None, columns: list[str] | None) -> tuple[pa.Table, dict]:
    try:
        reader = pq.ParquetFile(stream, page_checksum_verification=True)
        info = _provenance_of(reader.schema_arrow, part)
        if kind is not None and info["artifact"] != kind:
            raise UserError(f"{part} is a '{info['artifact']}' artifact where a '{kind}' artifact is expected")
        missing = [c for c in columns or [] if c not in reader.schema_arrow.names]
        if missing:
            raise UserError(f"{part} has no column {missing[0]!r} (a {info['artifact']} artifact of another layout?)")
        table = reader.read(columns=columns)
    except (pa.ArrowException, OSError) as error:
        raise UserError(f"{part} cannot be read ({error}): the file is damaged") from None
    INVARIANTS.get(info["artifact"], lambda *_: None)(part, table)
    return table, info


def _read_once(path: Path, kind: str | None, columns: list[str] | None) -> list[pa.Table]:
    """Every part of one version of the artifact: a folder's parts are opened through one handle on
    the folder, so a concurrent writer swapping in a new version cannot mix two versions."""
    if not path.is_dir():
        require(path)
        with open(path, "rb") as stream:
            return [_read_part(stream, path, kind, columns)[0]]
    folder = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        names = sorted(name for name in os.listdir(folder) if name.endswith(".parquet"))
        if not names:
            raise UserError(f"{path} is not a calft artifact (a folder without parquet parts)")
        tables, provenance = [], set()
        for name in names:
            try:
                descriptor = os.open(name, os.O_RDONLY, dir_fd=folder)
            except FileNotFoundError:
                raise _Replaced from None
            with os.fdopen(descriptor, "rb") as stream:
                table, info = _read_part(stream, path / name, kind, columns)
            tables.append(table)
            provenance.add(json.dumps(info, sort_keys=True))
        if len(provenance) > 1:
            raise UserError(f"{path} holds parts of different artifacts: the folder was assembled by hand?")
        return tables
    finally:
        os.close(folder)


def read_table(path: str | Path, kind: str | None = None, columns: list[str] | None = None,
               allow_empty: bool = False) -> pa.Table:
    """An artifact (file or folder of parts) as one table, read with page checksums verified and
    its invariants checked. `kind` is the artifact kind the caller expects; a file of another kind,
    a missing column, a damaged file or (unless allowed) no rows at all is a UserError naming it."""
    for _ in range(5):
        try:
            tables = _read_once(Path(path), kind, columns)
            break
        except _Replaced:
            continue
    else:
        raise UserError(f"{path} kept being replaced while it was read")
    table = pa.concat_tables(tables)
    if not allow_empty and table.num_rows == 0:
        raise UserError(f"{path} has no rows")
    return table


def check_kind(path: str | Path, kind: str) -> dict:
    """The provenance of an artifact that must be of the given kind."""
    info = read_provenance(path)
    if info["artifact"] != kind:
        raise UserError(f"{path} is a '{info['artifact']}' artifact where a '{kind}' artifact is expected")
    return info


def check_same_targets(derived: str | Path, kind: str, targets: str | Path) -> None:
    """`derived`, a `kind` artifact (samples, tries), was made from the targets in `targets`, as its
    provenance records."""
    made_from = check_kind(derived, kind)["config"].get("targets")
    given = check_kind(targets, "targets")["config"]
    if made_from != given:
        describe = lambda config: (f"prompt set {config.get('prompt_set')!r}, d={config.get('decimals')}, "  # noqa: E731
                                   f"{config.get('max_bins')} bins") if isinstance(config, dict) else "unknown targets"
        raise UserError(f"{derived} was made from {describe(made_from)} but {targets} holds {describe(given)}: "
                        "they do not belong together")


def write_frame(frame: pd.DataFrame, schema: pa.Schema, path: str | Path, info: dict) -> None:
    """A data frame as an atomic parquet artifact with its provenance."""
    with parquet_writer(path, schema, info) as writer:
        writer.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False))


def read_prompts(path: str | Path, columns: list[str]) -> pd.DataFrame:
    """One row per prompt of a targets artifact (its first row), the given columns as strings."""
    table = read_table(path, "targets", ["prompt_id", *[c for c in columns if c != "prompt_id"]]).to_pandas()
    return table.drop_duplicates("prompt_id").astype(str).reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# Data folders prepared by calft (evaluation data) record the checksums of their files

DATA_PROVENANCE = "calft_provenance.json"


def data_files(folder: Path) -> dict[str, str]:
    """sha256 of every data file of a prepared data folder, by path relative to it (hidden files,
    such as Snakemake's timestamp, and the provenance record excluded)."""
    return {str(path.relative_to(folder)): sha256(path) for path in sorted(folder.rglob("*"))
            if path.is_file() and path.name != DATA_PROVENANCE and not path.name.startswith(".")}


def record_data(folder: Path, info: dict) -> None:
    """Write a prepared data folder's provenance, with the checksums of its files."""
    (folder / DATA_PROVENANCE).write_text(json.dumps(info | {"files": data_files(folder)}, indent=2))


def verify_data(folder: str | Path) -> None:
    """A data folder prepared by calft still holds exactly the files its provenance records."""
    folder = Path(folder)
    record = folder / DATA_PROVENANCE
    if not record.is_file():
        return  # the user's own data: nothing recorded to check
    if data_files(folder) != json.loads(record.read_text()).get("files", {}):
        raise UserError(f"{folder} no longer holds the files recorded in {record}: prepare it again")


# ---------------------------------------------------------------------------------------------
# Atomic writes

_HOST = socket.gethostname()


def _temporary_name(path: Path, role: str) -> Path:
    return path.with_name(f".{path.name}.{role}-{_HOST}-{os.getpid()}")


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
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def remove_stale_temporaries(path: Path) -> None:
    """Remove what writers of `path` on this host left when they were killed (their process is gone)."""
    for leftover in path.parent.glob(f".{path.name}.*-*"):
        role_host_pid = leftover.name[len(path.name) + 2:]
        role, _, host_pid = role_host_pid.partition("-")
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


def _make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocking = next(p for p in [path.parent, *path.parent.parents] if p.exists())
        raise UserError(f"cannot write {path}: {blocking} is a file, not a folder") from None


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling path (for a file or a folder) that becomes `path` only if the block
    succeeds; an existing artifact at `path` is replaced whole, in one step where the OS allows."""
    path = Path(path)
    _make_parent(path)
    remove_stale_temporaries(path)
    temporary = _temporary_name(path, "partial")
    _remove(temporary)
    try:
        yield temporary
        _install(temporary, path)
    finally:
        _remove(temporary)


@contextlib.contextmanager
def parquet_writer(path: str | Path, schema: pa.Schema, info: dict):
    """A ParquetWriter on a temporary file that becomes `path` when the block completes. Pages carry
    checksums. Only dictionary-typed columns are dictionary-encoded: trying it on millions of
    distinct floats doubles the write time for nothing. No column statistics: calft reads whole
    columns, and computing them costs a fifth of the write."""
    dictionary_columns = [field.name for field in schema if pa.types.is_dictionary(field.type)]
    with atomic_path(path) as temporary:
        writer = pq.ParquetWriter(
            temporary, with_provenance(schema, info), compression="zstd", use_dictionary=dictionary_columns,
            write_statistics=False, write_page_checksum=True)
        try:
            yield writer
        finally:
            writer.close()


def string_column(offsets: np.ndarray, data: np.ndarray) -> pa.Array:
    """A string column from Arrow's layout (int64 offsets, utf-8 bytes)."""
    return pa.LargeStringArray.from_buffers(
        len(offsets) - 1, pa.py_buffer(offsets.astype(np.int64)), pa.py_buffer(data)
    ).cast(pa.string())


def string_buffers(column: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The (int64 offsets starting at 0, utf-8 bytes) of a string column."""
    column = column.cast(pa.large_string())
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    _, offsets_buffer, data_buffer = column.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64)[column.offset : column.offset + len(column) + 1]
    data = np.frombuffer(data_buffer, dtype=np.uint8)[offsets[0] : offsets[-1]]
    return offsets - offsets[0], data
