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
