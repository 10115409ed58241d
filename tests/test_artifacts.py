import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from calft import artifacts
from calft.errors import UserError


def test_interrupted_write_leaves_no_file(tmp_path):
    path = tmp_path / "out.parquet"
    schema = pa.schema([("x", pa.int64())])
    with pytest.raises(RuntimeError):
        with artifacts.parquet_writer(path, schema, artifacts.provenance("test", {})) as writer:
            writer.write_batch(pa.record_batch([pa.array([1, 2])], schema=schema))
            raise RuntimeError("killed mid-write")
    assert list(tmp_path.iterdir()) == []


def test_complete_write_records_provenance(tmp_path):
    path = tmp_path / "out.parquet"
    schema = pa.schema([("x", pa.int64())])
    with artifacts.parquet_writer(path, schema, artifacts.provenance("test", {"k": 1})) as writer:
        writer.write_batch(pa.record_batch([pa.array([1, 2])], schema=schema))
    info = artifacts.read_provenance(path)
    assert info["artifact"] == "test" and info["config"] == {"k": 1} and info["code_version"]
    assert list(tmp_path.iterdir()) == [path]


def test_foreign_parquet_is_rejected(tmp_path):
    path = tmp_path / "plain.parquet"
    pq.write_table(pa.table({"x": [1]}), path)
    with pytest.raises(UserError, match="not a calft artifact"):
        artifacts.read_provenance(path)


def test_a_file_written_before_a_column_was_added_reads_it_as_nulls_and_a_missing_original_is_refused(tmp_path):
    """Training logs gained grad_norm: a log written before (its adapter took GPU hours) still reads."""
    from calft.artifacts.kinds import TRAIN_LOG_SCHEMA

    older = pa.schema([field for field in TRAIN_LOG_SCHEMA if field.name != "grad_norm"])
    row = {"step": 1, "epoch": 0, "loss": 1.5, "lr": 1e-4, "examples": 8, "tokens": 80, "seconds": 0.5}
    path = tmp_path / "log.parquet"
    with artifacts.parquet_writer(path, older, artifacts.provenance("train_log", {})) as writer:
        writer.write_table(pa.Table.from_pylist([row], schema=older))
    table = artifacts.read_table(path, "train_log")
    assert table.schema.names == TRAIN_LOG_SCHEMA.names and table.column("grad_norm").to_pylist() == [None]
    assert artifacts.read_table(path, "train_log", ["loss", "grad_norm"]).to_pylist() == [
        {"loss": 1.5, "grad_norm": None}
    ]
    no_loss = pa.schema([field for field in older if field.name != "loss"])
    damaged = tmp_path / "damaged.parquet"
    with artifacts.parquet_writer(damaged, no_loss, artifacts.provenance("train_log", {})) as writer:
        writer.write_table(pa.Table.from_pylist([row], schema=no_loss))
    with pytest.raises(UserError, match="no column 'loss'"):
        artifacts.read_table(damaged, "train_log")
