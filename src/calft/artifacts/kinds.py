"""Every parquet artifact kind: its Arrow schema and its invariants.

A reader names the kind it expects; the file must carry that kind in its provenance, exactly the
kind's columns and types, and its rows must satisfy the kind's invariants. A check returns a
problem (a short sentence) or None; it is given the columns the reader asked for plus those it
`needs`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

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
SAMPLES_SCHEMA = pa.schema(
    [
        ("prompt_id", pa.string()),
        ("family", pa.string()),
        ("split", pa.string()),
        ("sample_idx", pa.int32()),
        ("seed", pa.int64()),
        ("text", pa.string()),
        ("num_tokens", pa.int32()),
        ("stopped", pa.bool_()),  # ended with a stop token (else cut at max_new_tokens)
        ("value", pa.float64()),
        ("valid", pa.bool_()),
    ]
)
SCORES_SCHEMA = pa.schema(
    [
        ("prompt_id", pa.string()),
        ("family", pa.string()),
        ("split", pa.string()),
        ("params", pa.string()),
        ("num_samples", pa.int32()),
        ("num_valid", pa.int32()),
        ("valid_rate", pa.float64()),
        ("w1", pa.float64()),
        ("spread", pa.float64()),
        ("normalized_w1", pa.float64()),
        ("valid_rate_replicates", pa.list_(pa.float32())),  # on resampled samples, for the report's intervals
        ("normalized_w1_replicates", pa.list_(pa.float32())),
    ]
)
LOGIT_KL_SCHEMA = pa.schema(
    [
        ("prompt_id", pa.string()),
        ("family", pa.string()),
        ("split", pa.string()),
        ("logit_kl", pa.float64()),
        ("logit_kl_exact", pa.float64()),  # NaN unless computed exactly
    ]
)
CONSTRUCTION_ALGORITHMS = ("reference", "calft")  # the paper's construction, calft's
CONSTRUCTION_COST_SCHEMA = pa.schema(
    [
        ("algorithm", pa.string()),  # one of CONSTRUCTION_ALGORITHMS
        ("decimals", pa.int64()),
        ("max_bins", pa.int64()),
        ("prompt_id", pa.string()),
        ("family", pa.string()),
        ("outputs", pa.int64()),
        ("trie_nodes", pa.int64()),
        ("space_seconds", pa.float64()),
        ("space_peak_bytes", pa.int64()),  # tracemalloc peak above the start
        ("trie_seconds", pa.float64()),
        ("trie_peak_bytes", pa.int64()),
    ]
)
TRAIN_LOG_SCHEMA = pa.schema(
    [
        ("step", pa.int32()),
        ("epoch", pa.int16()),
        ("loss", pa.float64()),
        ("lr", pa.float64()),
        ("examples", pa.int32()),
        ("tokens", pa.int64()),
        ("seconds", pa.float64()),
        ("grad_norm", pa.float64()),  # the total gradient norm of the step (calft clips nothing, as the paper)
    ]
)
RETENTION_SCHEMA = pa.schema(
    [
        ("task", pa.string()),
        ("kind", pa.string()),
        ("metric", pa.string()),
        ("items", pa.int32()),
        ("accuracy", pa.float64()),
        ("irt", pa.float64()),
        ("pirt", pa.float64()),
        ("gpirt", pa.float64()),
    ]
)
RETENTION_EXAMPLES_SCHEMA = pa.schema(
    [
        ("task", pa.string()),
        ("kind", pa.string()),
        ("metric", pa.string()),
        ("doc_id", pa.int32()),
        ("score", pa.float64()),
        ("generation", pa.string()),  # generation tasks: the greedy answer
        ("loglikelihoods", pa.list_(pa.float64())),  # multiple-choice tasks: one per choice
    ]
)
PERPLEXITY_SCHEMA = pa.schema(
    [
        ("slice", pa.string()),
        ("documents", pa.int64()),
        ("tokens", pa.int64()),
        ("bytes", pa.int64()),
        ("nll", pa.float64()),
        ("perplexity", pa.float64()),
        ("bits_per_byte", pa.float64()),
    ]
)
OPEN_ENDED_SCHEMA = pa.schema(
    [
        ("prompt_index", pa.int32()),
        ("category", pa.string()),
        ("prompt", pa.string()),
        ("support_size", pa.int64()),  # top-90% first-token support; null under SSOT
        ("support_sizes", pa.list_(pa.int64())),  # at each of the thresholds recorded in the provenance
        ("samples", pa.int32()),
        ("empty", pa.int32()),
        ("answers", pa.int32()),  # ended by a stop token with a non-empty answer (not cut at max_new_tokens)
        ("unique_fraction", pa.float64()),  # reference normalization: case and punctuation kept
        ("unique_fraction_insensitive", pa.float64()),
    ]
)
OPEN_ENDED_SAMPLES_SCHEMA = pa.schema(
    [
        ("prompt_index", pa.int32()),
        ("sample_idx", pa.int32()),
        ("seed", pa.int64()),
        ("text", pa.string()),
        ("answer", pa.string()),
        ("normalized", pa.string()),
        ("normalized_insensitive", pa.string()),
    ]
)
MCQ_SCHEMA = pa.schema(
    [
        ("generations", pa.int32()),
        ("parseable", pa.int32()),
        ("parse_rate", pa.float64()),
        ("count_A", pa.int32()),
        ("count_B", pa.int32()),
        ("count_C", pa.int32()),
        ("count_D", pa.int32()),
        ("tv", pa.float64()),  # null when nothing parses
        ("max_deviation", pa.float64()),
        ("chi2_p", pa.float64()),
        ("unique_options_rate", pa.float64()),
    ]
)
MCQ_SAMPLES_SCHEMA = pa.schema(
    [
        ("sample_idx", pa.int32()),
        ("seed", pa.int64()),
        ("text", pa.string()),
        ("parseable", pa.bool_()),
        ("answer", pa.string()),
        ("errors", pa.list_(pa.string())),
    ]
)
NOVELTY_SCHEMA = pa.schema(
    [
        ("split", pa.string()),
        ("prompts", pa.int32()),
        ("mean_distinct", pa.float64()),
        ("mean_utility", pa.float64()),
    ]
)
NOVELTY_GENERATIONS_SCHEMA = pa.schema(
    [  # category: curated's, null for WildChat
        ("split", pa.string()),
        ("prompt_index", pa.int32()),
        ("category", pa.string()),
        ("prompt", pa.string()),
        ("generation", pa.int32()),
        ("seed", pa.int64()),
        ("text", pa.string()),
        ("partition", pa.int32()),
        ("representative", pa.bool_()),
        ("reward", pa.float64()),
        ("rating", pa.int32()),
    ]
)


TRIE_COLUMNS = ["prompt_id", "node", "parent", "depth", "token", "mass", "q", "canonical_index"]


def _column(table: pa.Table, name: str) -> np.ndarray | None:
    return table.column(name).to_numpy() if name in table.column_names else None


def _prompt_index(table: pa.Table) -> np.ndarray:
    """Each row's prompt as an integer code (dictionary indices where the column has them)."""
    column = table.unify_dictionaries().column("prompt_id")
    if pa.types.is_dictionary(column.type):
        return np.concatenate([chunk.indices.to_numpy() for chunk in column.chunks]).astype(np.int64)
    return np.unique(column.to_numpy(zero_copy_only=False), return_inverse=True)[1]


def _check_targets(table: pa.Table) -> str | None:
    mass, value = _column(table, "mass"), _column(table, "value")
    if value is not None and not np.all(np.isfinite(value)):
        return "non-finite values"
    if mass is None:
        return None
    if not np.all(np.isfinite(mass) & (mass >= 0)):
        return "masses outside [0, inf)"
    if "prompt_id" in table.column_names:
        prompt = _prompt_index(table)
        totals, present = np.bincount(prompt, weights=mass), np.bincount(prompt) > 0
        if np.any(np.abs(totals[present] - 1) > 1e-6):
            return "masses do not sum to 1 for every prompt"
    return None


def _within_unit(values: np.ndarray) -> bool:
    return bool(np.all((values >= 0) & (values <= 1 + 1e-9)))  # NaN fails both comparisons


def _check_tries(table: pa.Table) -> str | None:
    """q and prefix masses in [0, 1]; with every column read, each prompt's rows form a tree: nodes
    0..n-1, the root first, every other node's parent an earlier node one level up, children
    contiguous, their q summing to 1, leaves exactly the nodes without children, and the children's
    masses, q and tokens consistent (_children_problem)."""
    for name in ("q", "mass"):
        if name in table.column_names and not _within_unit(_column(table, name)):
            return f"{name} outside [0, 1]"
    if any(name not in table.column_names for name in TRIE_COLUMNS):
        return None
    prompt = _prompt_index(table)
    node = _column(table, "node").astype(np.int64)
    order = np.argsort(prompt * (int(node.max(initial=0)) + 1) + node, kind="stable")
    prompt, node = prompt[order], node[order]
    parent, depth, token, q, mass, leaf = (
        _column(table, name)[order].astype(dtype)
        for name, dtype in (
            ("parent", np.int64),
            ("depth", np.int64),
            ("token", np.int64),
            ("q", float),
            ("mass", float),
            ("canonical_index", np.int64),
        )
    )
    first_row = np.searchsorted(prompt, prompt)  # row of each prompt's root
    if np.any(node != np.arange(len(node)) - first_row):
        return "a prompt's node ids are not 0, 1, ..., n-1"
    root, inner = node == 0, node > 0
    if (
        np.any(parent[root] != -1)
        or np.any(token[root] != -1)
        or np.any(depth[root] != 0)
        or np.any(np.abs(mass[root] - 1) > 1e-6)
    ):
        return "a root that is not node 0 with parent -1, token -1, depth 0 and mass 1"
    if np.any((parent[inner] < 0) | (parent[inner] >= node[inner])):
        return "a parent that is not an earlier node of the same prompt"
    parent_row = first_row[inner] + parent[inner]
    if np.any(depth[inner] != depth[parent_row] + 1) or np.any(token[inner] < 0):
        return "a node whose depth or token does not follow from its parent"
    same_prompt = inner[1:] & inner[:-1]
    if np.any(np.diff(parent)[same_prompt] < 0):
        return "the children of a node are not contiguous"
    children = np.bincount(parent_row, minlength=len(node))
    child_q = np.bincount(parent_row, weights=q[inner], minlength=len(node))
    if np.any(np.abs(child_q[children > 0] - 1) > 1e-6):
        return "the q of a node's children do not sum to 1"
    if np.any((leaf >= 0) != (children == 0)):
        return "leaves that are not exactly the nodes without children"
    return _children_problem(parent_row, children, mass, inner, q[inner], token[inner])


def _children_problem(parent_row, children, mass, inner, child_q, child_token) -> str | None:
    """Children's masses sum to their parent's, each child's q is its mass over its parent's, and no
    two children of one node share a token (`parent_row`: the row of each inner node's parent)."""
    child_mass = np.bincount(parent_row, weights=mass[inner], minlength=len(mass))
    if np.any(np.abs(child_mass[children > 0] - mass[children > 0]) > 1e-6):
        return "the masses of a node's children do not sum to its own"
    parent_mass = mass[parent_row]
    with np.errstate(divide="ignore", invalid="ignore"):
        implied = np.where(parent_mass > 0, mass[inner] / parent_mass, child_q)
    if np.any(np.abs(child_q - implied) > 1e-6):
        return "a q that is not the node's mass over its parent's"
    siblings = np.lexsort((child_token, parent_row))
    if np.any((np.diff(parent_row[siblings]) == 0) & (np.diff(child_token[siblings]) == 0)):
        return "two children of one node with the same token"
    return None


def _check_samples(table: pa.Table) -> str | None:
    value, valid = _column(table, "value"), _column(table, "valid")
    if value is not None and valid is not None and not np.all(np.isfinite(value[valid])):
        return "valid samples with a non-finite value"
    return None


def _check_scores(table: pa.Table) -> str | None:
    rate, samples, valid = _column(table, "valid_rate"), _column(table, "num_samples"), _column(table, "num_valid")
    if rate is not None and not _within_unit(rate):
        return "valid rates outside [0, 1]"
    if samples is not None and valid is not None and np.any((valid < 0) | (valid > samples) | (samples < 1)):
        return "valid counts outside [0, number of samples]"
    for name in ("w1", "normalized_w1"):
        values = _column(table, name)
        if values is not None and np.any(values < 0):  # NaN is allowed: an undefined W1
            return f"negative {name}"
    return None


def _check_logit_kl(table: pa.Table) -> str | None:
    values = _column(table, "logit_kl")
    if values is not None and not np.all(np.isfinite(values)):
        return "non-finite logit KL"
    return None


def _check_construction_cost(table: pa.Table) -> str | None:
    if "algorithm" in table.column_names:
        unknown = set(table.column("algorithm").to_pylist()) - set(CONSTRUCTION_ALGORITHMS)
        if unknown:
            return f"unknown algorithm {sorted(map(str, unknown))}"
    for name in ("space_seconds", "trie_seconds", "space_peak_bytes", "trie_peak_bytes"):
        values = _column(table, name)
        if values is not None and not np.all(np.isfinite(values) & (values >= 0)):
            return f"negative or non-finite {name}"
    return None


@dataclass(frozen=True)
class Kind:
    name: str
    fields: pa.Schema
    check: Callable[[pa.Table], str | None] = lambda table: None
    needs: tuple[str, ...] = ()  # the columns `check` reads, whatever the reader asks for
    extra_columns: Callable[[], list[str]] = lambda: []  # float64 columns registered elsewhere
    added_later: tuple[str, ...] = ()  # columns files written before them lack: read as nulls

    @property
    def schema(self) -> pa.Schema:
        extra = [pa.field(name, pa.float64()) for name in self.extra_columns() if name not in self.fields.names]
        return pa.schema([*self.fields, *extra]) if extra else self.fields


def _sample_metrics() -> list[str]:
    """The metrics that scoring computes from the samples beside calft's own (calft.metrics)."""
    from calft.metrics import METRICS

    return [metric.name for metric in METRICS.values() if metric.from_samples]


KINDS = {
    kind.name: kind
    for kind in (
        Kind("targets", TARGETS_SCHEMA, _check_targets, ("prompt_id", "value", "mass")),
        Kind("tries", TRIES_SCHEMA, _check_tries, tuple(TRIE_COLUMNS)),
        Kind("samples", SAMPLES_SCHEMA, _check_samples, ("value", "valid")),
        Kind(
            "scores",
            SCORES_SCHEMA,
            _check_scores,
            ("num_samples", "num_valid", "valid_rate", "w1", "normalized_w1"),
            _sample_metrics,
        ),
        Kind("logit_kl", LOGIT_KL_SCHEMA, _check_logit_kl, ("logit_kl",)),
        Kind(
            "construction_cost",
            CONSTRUCTION_COST_SCHEMA,
            _check_construction_cost,
            ("algorithm", "space_seconds", "trie_seconds", "space_peak_bytes", "trie_peak_bytes"),
        ),
        Kind("train_log", TRAIN_LOG_SCHEMA, added_later=("grad_norm",)),
        Kind("retention", RETENTION_SCHEMA),
        Kind("retention_examples", RETENTION_EXAMPLES_SCHEMA),
        Kind("perplexity", PERPLEXITY_SCHEMA),
        Kind("open_ended", OPEN_ENDED_SCHEMA, added_later=("answers",)),
        Kind("open_ended_samples", OPEN_ENDED_SAMPLES_SCHEMA),
        Kind("mcq", MCQ_SCHEMA),
        Kind("mcq_samples", MCQ_SAMPLES_SCHEMA),
        Kind("noveltybench", NOVELTY_SCHEMA),
        Kind("noveltybench_generations", NOVELTY_GENERATIONS_SCHEMA),
    )
}


def layout_problem(kind: str, schema: pa.Schema) -> str | None:
    """How a file's schema differs from its kind's, or None."""
    expected = KINDS[kind].schema
    for field in expected:
        if field.name not in schema.names:
            if field.name in KINDS[kind].added_later:
                continue
            return f"no column {field.name!r}"
        if not schema.field(field.name).type.equals(field.type):
            return f"column {field.name!r} is {schema.field(field.name).type}, not {field.type}"
    extra = [name for name in schema.names if name not in expected.names]
    return f"an unexpected column {extra[0]!r}" if extra else None
