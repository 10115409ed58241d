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


def way_out(folder: Path) -> str:
    return f"delete {folder}, or rerun with --restart to train from the first step"


def _integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def state_problem(state, total_steps: int, weights: dict | None) -> str | None:
    """How a loaded state contradicts itself or this run: its step, its log rows and its schedule
    must agree, and its adapter weights must be finite and of the model's names and shapes
    (`weights`: the model's state dict; None skips names and shapes)."""
    if not isinstance(state, dict) or not {"step", "rows", "adapter", "optimizer", "scheduler", "rng"} <= set(state):
        return "lacks part of the training state"
    step, rows = state["step"], state["rows"]
    if not _integer(step) or not 1 <= step <= total_steps:
        return f"is at step {step!r}, not one of this run's steps 1..{total_steps}"
    if not isinstance(rows, list) or [row.get("step") if isinstance(row, dict) else None for row in rows] != list(
        range(1, step + 1)
    ):
        return f"is at step {step} but its training log does not hold exactly steps 1..{step}"
    scheduler = state["scheduler"]
    if not isinstance(scheduler, dict) or scheduler.get("last_epoch") != step:
        return f"is at step {step} but its learning-rate schedule is not"
    if not isinstance(state["optimizer"], dict) or not {"state", "param_groups"} <= set(state["optimizer"]):
        return "has no optimizer state"
    rng = state["rng"]
    if not isinstance(rng, torch.Tensor) or rng.dtype != torch.uint8:
        return "has no random-generator state"
    adapter = state["adapter"]
    if not isinstance(adapter, dict) or not adapter or not all(isinstance(t, torch.Tensor) for t in adapter.values()):
        return "has no adapter weights"
    for name, tensor in adapter.items():
        if weights is not None and (name not in weights or weights[name].shape != tensor.shape):
            return f"has an adapter weight {name} that this model does not have in that shape"
        if not torch.isfinite(tensor).all():
            return f"has non-finite adapter weights ({name})"
    return None


def optimizer_problem(optimizer) -> str | None:
    """How a restored optimizer state does not fit its parameters, or None."""
    for group in optimizer.param_groups:
        for parameter in group["params"]:
            for name, value in optimizer.state.get(parameter, {}).items():
                if name != "step" and isinstance(value, torch.Tensor) and value.shape != parameter.shape:
                    shapes = f"{tuple(value.shape)} for a weight of {tuple(parameter.shape)}"
                    return f"has optimizer state {name} of shape {shapes}"
                if isinstance(value, torch.Tensor) and not torch.isfinite(value).all():
                    return f"has non-finite optimizer state ({name})"
    return None


def load(folder: Path) -> tuple[str, dict]:
    """(fingerprint, state) of the checkpoint folder `folder`."""
    from safetensors.torch import load_file

    remedy = way_out(folder)
    try:
        fingerprint = artifacts.read_record(folder, "checkpoint")["config"]["fingerprint"]
        return fingerprint, _unflatten(json.loads((folder / STATE).read_text()), load_file(folder / TENSORS))
    except UserError as error:
        raise UserError(f"{error}: {remedy}") from None
    except Exception as error:  # noqa: BLE001 - safetensors, json and a changed tree raise their own kinds
        raise UserError(f"the checkpoint {folder} is damaged ({type(error).__name__}: {error}): {remedy}") from None
