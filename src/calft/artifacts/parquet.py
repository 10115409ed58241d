"""Parquet artifacts: written atomically with their provenance, read with their kind checked.

Artifacts are single parquet files, or folders of parquet parts written in parallel (targets and
tries). Pages carry checksums. A read verifies them, the kind recorded in the provenance, the
kind's columns and types, and its invariants (calft.artifacts.kinds), so a damaged or foreign
file is an error naming it, never wrong numbers.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from calft.artifacts.kinds import KINDS, layout_problem
from calft.artifacts.paths import atomic_path, open_regular, read_folder
from calft.artifacts.records import decode
from calft.errors import UserError

if TYPE_CHECKING:
    import pandas as pd


def with_provenance(schema: pa.Schema, info: dict) -> pa.Schema:
    return schema.with_metadata({b"calft": json.dumps(info, sort_keys=True).encode()})


def parts(path: str | Path) -> list[Path]:
    """The parquet parts of an artifact folder, in order (a single file is its own only part)."""
    path = Path(path)
    if not path.is_dir():
        require(path)
        return [path]
    return [path / name for name in _parquet_parts(path, sorted(os.listdir(path)))]


def require(*paths) -> None:
    """Fail with a message naming the first of `paths` (None skipped) that does not exist."""
    for path in paths:
        if path is not None and not Path(path).exists():
            raise UserError(f"{path} does not exist")


def _provenance_of(schema: pa.Schema, part) -> dict:
    return decode((schema.metadata or {}).get(b"calft", b""), part)


def read_provenance(path: str | Path) -> dict:
    """The provenance of a parquet file, or of a folder of parquet parts (all parts share it)."""
    path = Path(path)

    def read(stream, part: Path) -> dict:
        try:
            schema = pq.read_schema(stream)
        except (pa.ArrowException, OSError) as error:
            raise UserError(
                f"{part} cannot be read as parquet ({error}): the file is damaged or not an artifact"
            ) from None
        return _provenance_of(schema, part)

    if not path.is_dir():
        require(path)
        with open_regular(path) as stream:
            return read(stream, path)

    def read_first(folder: int, names: list[str]) -> dict:
        first = _parquet_parts(path, names)[0]
        with open_regular(first, dir_fd=folder, label=path / first) as stream:
            return read(stream, path / first)

    return read_folder(path, read_first)


def check_kind(path: str | Path, kind: str) -> dict:
    """The provenance of an artifact that must be of the given kind."""
    info = read_provenance(path)
    if info["artifact"] != kind:
        raise UserError(f"{path} is a '{info['artifact']}' artifact where a '{kind}' artifact is expected")
    return info


def _read_part(stream, part: Path, kind: str, columns: list[str] | None) -> tuple[pa.Table, dict]:
    try:
        reader = pq.ParquetFile(stream, page_checksum_verification=True)
        info = _provenance_of(reader.schema_arrow, part)
        if info["artifact"] != kind:
            raise UserError(f"{part} is a '{info['artifact']}' artifact where a '{kind}' artifact is expected")
        problem = layout_problem(kind, reader.schema_arrow)
        if problem:
            raise UserError(f"{part} is not laid out as a '{kind}' artifact ({problem}): made by another calft?")
        absent = [field for field in KINDS[kind].schema if field.name not in reader.schema_arrow.names]
        table = reader.read(
            columns=None if columns is None else [c for c in columns if c not in {f.name for f in absent}]
        )
        table = _with_later_columns(table, absent, columns, KINDS[kind].schema)
    except (pa.ArrowException, OSError) as error:
        raise UserError(f"{part} cannot be read ({error}): the file is damaged") from None
    return table, info


def _with_later_columns(table: pa.Table, absent: list, columns: list[str] | None, schema: pa.Schema) -> pa.Table:
    """A file written before some of its kind's columns were added, with those columns as nulls."""
    for field in absent:
        if columns is None or field.name in columns:
            table = table.append_column(field, pa.nulls(table.num_rows, field.type))
    return table.select(columns if columns is not None else schema.names) if absent else table


def _parquet_parts(path: Path, names: list[str]) -> list[str]:
    """The parquet parts among the names of the folder `path`'s entries; none is an error."""
    found = [name for name in names if name.endswith(".parquet")]
    if not found:
        raise UserError(f"{path} is not a calft artifact (a folder without parquet parts)")
    return found


def _read_parts(path: Path, kind: str, columns: list[str] | None) -> list[pa.Table]:
    """Every part of one version of the artifact (see read_folder), of one provenance."""
    if not path.is_dir():
        require(path)
        with open_regular(path) as stream:
            return [_read_part(stream, path, kind, columns)[0]]

    def read(folder: int, names: list[str]) -> list[pa.Table]:
        tables, provenance = [], set()
        for name in _parquet_parts(path, names):
            with open_regular(name, dir_fd=folder, label=path / name) as stream:
                table, info = _read_part(stream, path / name, kind, columns)
            tables.append(table)
            provenance.add(json.dumps(info, sort_keys=True))
        if len(provenance) > 1:
            raise UserError(f"{path} holds parts of different artifacts: the folder was assembled by hand?")
        return tables

    return read_folder(path, read)


IDENTIFIERS = ("prompt_id", "family", "split")  # the columns a row is found by: never empty


def read_table(path: str | Path, kind: str, columns: list[str] | None = None) -> pa.Table:
    """A `kind` artifact (file or folder of parts) as one table: page checksums verified, its kind,
    layout and invariants checked. Anything else, or no rows at all, is a UserError naming the file."""
    read = None if columns is None else list(dict.fromkeys([*columns, *KINDS[kind].needs]))
    table = pa.concat_tables(_read_parts(Path(path), kind, read))
    if table.num_rows == 0:
        raise UserError(f"{path} has no rows")
    missing = [name for name in IDENTIFIERS if name in table.column_names and table.column(name).null_count]
    problem = f"rows without a {missing[0]}" if missing else KINDS[kind].check(table)
    if problem:
        raise UserError(f"{path}: {problem}: the file is damaged or was not made by calft")
    return table if columns is None else table.select(columns)


def check_same_targets(derived: str | Path, kind: str, targets: str | Path) -> None:
    """`derived`, a `kind` artifact (samples, tries), was made from the targets in `targets`, as its
    provenance records."""
    made_from = check_kind(derived, kind)["config"].get("targets")
    given = check_kind(targets, "targets")["config"]
    if made_from != given:

        def describe(config) -> str:
            if not isinstance(config, dict):
                return "unknown targets"
            return f"prompt set {config.get('prompt_set')!r}, d={config.get('decimals')}, {config.get('max_bins')} bins"

        raise UserError(
            f"{derived} was made from {describe(made_from)} but {targets} holds {describe(given)}: "
            "they do not belong together"
        )


def evaluation_reference(targets: str | Path) -> dict:
    """The evaluation reference a targets artifact is: its prompt set, decimals and bin cap. Scores
    and logit KL record it, so that the report never compares numbers measured against different ones."""
    config = check_kind(targets, "targets")["config"]
    return {key: config.get(key) for key in ("prompt_set", "decimals", "max_bins")}


def recorded_reference(path: str | Path) -> dict:
    """The evaluation reference a scores or logit KL artifact records (older scores: the one of the
    targets its samples were drawn for)."""
    config = read_provenance(path)["config"]
    if "reference" in config:
        return config["reference"]
    targets = (config.get("samples") or {}).get("targets") or {}
    if not targets:
        raise UserError(f"{path} records no evaluation reference: rerun the step that made it")
    return {key: targets.get(key) for key in ("prompt_set", "decimals", "max_bins")}


@contextlib.contextmanager
def parquet_writer(path: str | Path, schema: pa.Schema, info: dict):
    """A ParquetWriter on a temporary file that becomes `path`, an artifact of the kind `info`
    names, when the block completes. Pages carry checksums. Only dictionary-typed columns are
    dictionary-encoded: trying it on millions of distinct floats doubles the write time for nothing.
    No column statistics: calft reads whole columns, and computing them costs a fifth of the write."""
    dictionary_columns = [field.name for field in schema if pa.types.is_dictionary(field.type)]
    with atomic_path(path, info["artifact"]) as temporary:
        writer = pq.ParquetWriter(
            temporary,
            with_provenance(schema, info),
            compression="zstd",
            use_dictionary=dictionary_columns,
            write_statistics=False,
            write_page_checksum=True,
        )
        try:
            yield writer
        finally:
            writer.close()


def write_frame(frame: pd.DataFrame, path: str | Path, info: dict) -> None:
    """A data frame as an atomic parquet artifact of the kind `info` names, with its provenance."""
    schema = KINDS[info["artifact"]].schema
    with parquet_writer(path, schema, info) as writer:
        writer.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False))


def read_prompts(path: str | Path, columns: list[str]) -> pd.DataFrame:
    """One row per prompt of a targets artifact (its first row), the given columns as strings."""
    table = read_table(path, "targets", ["prompt_id", *[c for c in columns if c != "prompt_id"]]).to_pandas()
    return table.drop_duplicates("prompt_id").astype(str).reset_index(drop=True)


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
