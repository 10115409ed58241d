"""Provenance records: what every artifact says about itself (its kind, the configuration that made
it, the code version), and the checksum records of prepared folders.

A parquet artifact carries its record in its schema metadata (key "calft"); a folder artifact (an
adapter, a checkpoint, a prepared model or data folder) in its `calft_provenance.json`; a JSON
marker in itself. Prepared data folders also record the sha256 of every file in them, which the
jobs that read them verify.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
from pathlib import Path

from calft import __version__
from calft.errors import UserError

RECORD = "calft_provenance.json"
SNAKEMAKE_TIMESTAMP = ".snakemake_timestamp"  # written by Snakemake into directory outputs after the job


def code_version() -> str:
    """Package version plus the git commit of the source tree when there is one."""
    source = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no", "."],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
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
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def decode(text: str | bytes, where) -> dict:
    """A provenance record from its JSON text; anything else is a UserError naming `where`."""
    try:
        info = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        info = None
    if (
        not isinstance(info, dict)
        or not isinstance(info.get("artifact"), str)
        or not isinstance(info.get("config"), dict)
    ):
        raise UserError(f"{where} is not a calft artifact (no readable provenance record)")
    return info


def write_record(folder: Path, info: dict) -> None:
    (Path(folder) / RECORD).write_text(json.dumps(info, indent=2, sort_keys=True))


def read_record(folder: str | Path, kind: str | None = None) -> dict:
    """The provenance record of a folder artifact, which must be of `kind` when given."""
    path = Path(folder) / RECORD
    if not path.is_file():
        raise UserError(f"{folder} is not a calft artifact (it has no {RECORD})")
    info = decode(path.read_bytes(), path)
    if kind is not None and info["artifact"] != kind:
        raise UserError(f"{folder} is a '{info['artifact']}' artifact where a '{kind}' artifact is expected")
    return info


# ---------------------------------------------------------------------------------------------
# Prepared data folders record the checksum of every file a reader may read


def data_files(folder: Path) -> dict[str, str]:
    """sha256 of every file of a data folder by relative path, hidden ones included (only the record
    itself and Snakemake's timestamp are left out)."""
    return {
        str(path.relative_to(folder)): sha256(path)
        for path in sorted(Path(folder).rglob("*"))
        if not path.is_dir() and path.name not in (RECORD, SNAKEMAKE_TIMESTAMP)
    }


def record_data(folder: Path, info: dict) -> None:
    """Write a prepared data folder's provenance, with the checksums of its files."""
    write_record(folder, info | {"files": data_files(folder)})


def verify_data(folder: str | Path, trusted: bool, section: str) -> None:
    """A data folder still holds exactly the files its record lists, unchanged. A folder without a
    record (one calft did not prepare) is read only when the user trusts it: `trusted` is the config
    key <section>.trust_data_dir."""
    folder = Path(folder)
    if not (folder / RECORD).exists():
        if trusted:
            return
        raise UserError(
            f"{folder} has no {RECORD}, so calft cannot tell whether its files changed: let the workflow "
            f"prepare it, or set {section}.trust_data_dir: true to read it as it is"
        )
    recorded = read_record(folder).get("files")
    if not isinstance(recorded, dict) or data_files(folder) != recorded:
        raise UserError(f"{folder} no longer holds the files recorded in its {RECORD}: prepare it again")
