"""Resumable training state without pickle: its tensors in a safetensors file, the rest (numbers,
strings, the nesting of dicts and lists) as JSON. Loading a checkpoint never runs code, and a
damaged or foreign one is a one-line error that names the folder and the way out."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from calft import artifacts
from calft.errors import UserError

TENSORS = "tensors.safetensors"
STATE = "state.json"


def _flatten(node, tensors: dict):
    """The JSON tree of `node`, its tensors moved into `tensors` by name. Dict keys keep their type
    (an optimizer's state is keyed by parameter index)."""
    if isinstance(node, torch.Tensor):
        name = f"t{len(tensors)}"
        tensors[name] = node.detach().cpu().clone().contiguous()
        return {"tensor": name}
    if isinstance(node, dict):
        return {"dict": [[key, _flatten(value, tensors)] for key, value in node.items()]}
    if isinstance(node, (list, tuple)):
        return {"list": [_flatten(value, tensors) for value in node]}
    if node is None or isinstance(node, (bool, int, float, str)):
        return {"value": node}
    raise TypeError(f"a checkpoint cannot hold a {type(node).__name__}")


def _unflatten(node, tensors: dict):
    ((kind, value),) = node.items()
    if kind == "tensor":
        return tensors[value]
    if kind == "dict":
        return {key: _unflatten(child, tensors) for key, child in value}
    if kind == "list":
        return [_unflatten(child, tensors) for child in value]
    if kind == "value":
        return value
    raise ValueError(f"unknown node {kind!r}")


def save(folder: Path, state: dict, fingerprint: str) -> None:
    """Write `state` as the checkpoint folder `folder`, replacing the previous one in one step."""
    from safetensors.torch import save_file

    tensors: dict = {}
    tree = _flatten(state, tensors)
    with artifacts.atomic_path(folder, "checkpoint") as temporary:
        temporary.mkdir()
        save_file(tensors, temporary / TENSORS)
        (temporary / STATE).write_text(json.dumps(tree))
        artifacts.write_record(temporary, artifacts.provenance("checkpoint", {"fingerprint": fingerprint}))


def load(folder: Path) -> tuple[str, dict]:
    """(fingerprint, state) of the checkpoint folder `folder`."""
    from safetensors.torch import load_file

    way_out = f"delete {folder}, or rerun with --restart to train from the first step"
    try:
        fingerprint = artifacts.read_record(folder, "checkpoint")["config"]["fingerprint"]
        return fingerprint, _unflatten(json.loads((folder / STATE).read_text()), load_file(folder / TENSORS))
    except UserError as error:
        raise UserError(f"{error}: {way_out}") from None
    except Exception as error:  # noqa: BLE001 - safetensors, json and a changed tree raise their own kinds
        raise UserError(f"the checkpoint {folder} is damaged ({type(error).__name__}: {error}): {way_out}") from None
