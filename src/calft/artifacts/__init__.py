"""calft's artifacts: every file a stage writes and a later stage reads.

* `kinds`: each parquet kind's schema and invariants;
* `records`: provenance (kind, configuration, code version) and prepared folders' file checksums;
* `paths`: inputs opened only as regular files; outputs swapped in atomically, replacing only
  calft's own artifacts of the same kind;
* `parquet`: parquet artifacts written with their provenance and read with everything checked.
"""

from calft.artifacts.kinds import KINDS, TARGETS_SCHEMA, TRIE_COLUMNS, TRIES_SCHEMA
from calft.artifacts.parquet import (
    check_same_targets,
    evaluation_reference,
    parquet_writer,
    parts,
    read_prompts,
    read_provenance,
    read_table,
    recorded_reference,
    require,
    string_buffers,
    string_column,
    write_frame,
)
from calft.artifacts.paths import atomic_path, check_input, check_output, open_regular
from calft.artifacts.records import (
    RECORD,
    code_version,
    provenance,
    read_record,
    record_data,
    sha256,
    verify_data,
    write_record,
)

__all__ = [
    "KINDS",
    "TARGETS_SCHEMA",
    "TRIE_COLUMNS",
    "TRIES_SCHEMA",
    "check_same_targets",
    "evaluation_reference",
    "parquet_writer",
    "parts",
    "recorded_reference",
    "read_prompts",
    "read_provenance",
    "read_table",
    "require",
    "string_buffers",
    "string_column",
    "write_frame",
    "atomic_path",
    "check_input",
    "check_output",
    "open_regular",
    "RECORD",
    "code_version",
    "provenance",
    "read_record",
    "record_data",
    "sha256",
    "verify_data",
    "write_record",
]
