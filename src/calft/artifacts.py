"""Parquet artifacts: explicit schemas, provenance metadata, atomic writes.

Every artifact carries, in its Arrow schema metadata under the key "calft", the artifact kind, the
configuration that produced it and the code version. Artifacts are single parquet files, or folders
of parquet parts written in parallel (the tries). Both are written under a temporary name in the
same folder and renamed into place only when complete, so an interrupted job never leaves an
artifact that looks finished.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from calft import __version__

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
            raise FileNotFoundError(f"{path} does not exist")
        return [path]
    found = sorted(path.glob("*.parquet"))
    if not found:
        raise ValueError(f"{path} is not a calft artifact (a folder without parquet parts)")
    return found


def require(*paths) -> None:
    """Fail with a message naming the first of `paths` (None skipped) that does not exist."""
    for path in paths:
        if path is not None and not Path(path).exists():
            raise FileNotFoundError(f"{path} does not exist")


def write_frame(frame: pd.DataFrame, schema: pa.Schema, path: str | Path, info: dict) -> None:
    """A data frame as an atomic parquet artifact with its provenance."""
    with parquet_writer(path, schema, info) as writer:
        writer.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False))


def read_prompts(path: str | Path, columns: list[str]) -> pd.DataFrame:
    """One row per prompt of a targets artifact (its first row), the given columns as strings."""
    table = pq.read_table(path, columns=["prompt_id", *[c for c in columns if c != "prompt_id"]]).to_pandas()
    return table.drop_duplicates("prompt_id").astype(str).reset_index(drop=True)


def read_provenance(path: str | Path) -> dict:
    """The provenance of a parquet file, or of a folder of parquet parts (all parts share it)."""
    path = parts(path)[0]
    metadata = pq.read_schema(path).metadata or {}
    if b"calft" not in metadata:
        raise ValueError(f"{path} is not a calft artifact (no 'calft' metadata)")
    return json.loads(metadata[b"calft"])


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling path (for a file or a folder); rename it to `path` only if the
    block succeeds. A folder replaces an existing folder of the same name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        yield temporary
        if temporary.is_dir() and path.is_dir():
            shutil.rmtree(path)
        os.replace(temporary, path)
    finally:
        if temporary.is_dir():
            shutil.rmtree(temporary)
        elif temporary.exists():
            temporary.unlink()


@contextlib.contextmanager
def parquet_writer(path: str | Path, schema: pa.Schema, info: dict):
    """A ParquetWriter on a temporary file that becomes `path` when the block completes.
    Only dictionary-typed columns are dictionary-encoded: trying it on millions of distinct floats
    doubles the write time for nothing. No column statistics: calft reads whole columns, and
    computing them costs a fifth of the write."""
    dictionary_columns = [field.name for field in schema if pa.types.is_dictionary(field.type)]
    with atomic_path(path) as temporary:
        writer = pq.ParquetWriter(
            temporary, with_provenance(schema, info), compression="zstd", use_dictionary=dictionary_columns,
            write_statistics=False)
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
