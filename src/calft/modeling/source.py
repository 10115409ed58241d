"""Where a job reads a model from: a local folder, or the hub snapshot that `calft prepare-model`
downloaded and recorded in its marker (model id, the revision asked for, the commit it resolved to,
the snapshot folder and the size of every file in it).

A marker resolves to its snapshot folder, so every `from_pretrained` reads exactly the pinned
commit's files from disk: never `refs/main`, never the network. No torch, no transformers."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from calft.errors import UserError

MARKER_KIND = "hub_model"
COMMIT = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class ModelSource:
    """A model as a job reads it: `folder` for from_pretrained; `model_id` and `commit` for a hub
    snapshot (None for a local folder)."""

    folder: Path
    model_id: str | None = None
    commit: str | None = None

    def record(self) -> dict:
        """What results record about the weights they were computed with."""
        return {"model_id": self.model_id, "commit": self.commit} if self.commit else {"folder": str(self.folder)}


def resolve(given: str | Path) -> ModelSource:
    """The model a `--model-dir`-like option names: a folder, or a download marker."""
    path = Path(given)
    if path.is_dir():
        return ModelSource(path)
    if path.is_file():
        return _from_marker(path)
    raise UserError(
        f"'{given}' is neither a model folder nor the download marker of a hub model "
        "(`calft prepare-model` writes one; the workflow's rule download_hub_model runs it)"
    )


def read_marker(marker: Path) -> dict:
    try:
        info = json.loads(marker.read_text())
    except (ValueError, UnicodeDecodeError):
        info = None
    if not isinstance(info, dict) or info.get("artifact") != MARKER_KIND:
        raise UserError(f"{marker} is not a hub model's download marker")
    config = info.get("config", {})
    missing = [key for key in ("model_id", "commit", "snapshot", "files") if key not in config]
    if missing:
        raise UserError(
            f"{marker} was written by an older calft (it does not record {', '.join(missing)}); "
            "rerun the rule download_hub_model for it"
        )
    return config


def _from_marker(marker: Path) -> ModelSource:
    config = read_marker(marker)
    model_id, commit = config["model_id"], config["commit"]
    for folder in (Path(config["snapshot"]), cache_snapshot(model_id, commit)):
        problem = incomplete(folder, config["files"])
        if problem is None:
            return ModelSource(folder, model_id, commit)
    raise UserError(
        f"model {model_id} at revision {commit} is not in the Hugging Face cache ({problem}); "
        f"rerun the rule download_hub_model on a node with internet access: snakemake --forcerun {marker}"
    )


def cache_snapshot(model_id: str, commit: str) -> Path:
    """Where this environment's Hugging Face cache keeps a commit of a model: found there when the
    marker's folder is not, e.g. a cache mounted at another path on the compute nodes."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE) / f"models--{model_id.replace('/', '--')}" / "snapshots" / commit


def snapshot_files(folder: Path) -> dict[str, int]:
    """Every file of a snapshot folder with its size (following the cache's links to blobs)."""
    return {
        path.relative_to(folder).as_posix(): path.stat().st_size for path in sorted(folder.rglob("*")) if path.is_file()
    }


def incomplete(folder: Path, files: dict[str, int]) -> str | None:
    """Why `folder` does not hold the recorded files (None: it does)."""
    if not folder.is_dir():
        return f"no snapshot folder {folder}"
    for name, size in files.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing from {folder}"
        if path.stat().st_size != size:
            return f"{name} in {folder} has {path.stat().st_size} bytes, not the {size} downloaded"
    return None
