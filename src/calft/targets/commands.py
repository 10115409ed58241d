"""The targets stage's commands: discretize a prompt set's laws, build the token tries of its
canonical outputs. Both write folders of parquet parts, one per family, from parallel workers."""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import itertools
import json
import logging
import multiprocessing
import os
import signal
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np
import pyarrow as pa

from calft import artifacts
from calft.errors import RunError, UserError
from calft.targets.settings import ConstructionCostSettings, DiscretizeSettings, TriesSettings

log = logging.getLogger(__name__).info


def _libc():
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def keep_freed_memory() -> None:
    """Let glibc reuse freed memory instead of returning it to the OS: these stages allocate many
    large temporary arrays, and fresh pages cost more than the math."""
    if libc := _libc():
        m_mmap_max, m_trim_threshold = -4, -1
        libc.mallopt(m_mmap_max, 0)
        libc.mallopt(m_trim_threshold, 2**40)


def _start_worker(parent: int, initializer, initargs: tuple) -> None:
    """A worker dies with its parent (PR_SET_PDEATHSIG), leaves SIGINT to it, and dies on SIGTERM."""
    if libc := _libc():
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    keep_freed_memory()
    if initializer is not None:
        initializer(*initargs)


class _InProcess(concurrent.futures.Executor):
    """A single worker that is this process: each task runs when it is submitted."""

    def submit(self, function, /, *args, **kwargs) -> concurrent.futures.Future:
        future = concurrent.futures.Future()
        try:
            future.set_result(function(*args, **kwargs))
        except Exception as error:  # delivered by future.result(), as a pool would
            future.set_exception(error)
        return future


@contextlib.contextmanager
def worker_pool(workers: int, initializer=None, initargs: tuple = ()):
    """Worker processes that never outlive this one: a killed parent takes them along, and a stopped
    one (SIGINT, SIGTERM, an error) kills them at once instead of waiting for their tasks. One worker
    is this process itself: no process to start, nothing to send across."""
    if workers == 1:
        if initializer is not None:
            initializer(*initargs)
        yield _InProcess()
        return
    pool = concurrent.futures.ProcessPoolExecutor(
        max_workers=workers, initializer=_start_worker, initargs=(os.getpid(), initializer, initargs)
    )
    try:
        yield pool
    except BaseException as error:
        for process in multiprocessing.active_children():
            process.kill()
        # Waiting is quick with every worker dead, and lets the pool's manager thread finish closing
        # its pipe before interpreter exit writes to it (a race in CPython 3.11's atexit hook).
        pool.shutdown(wait=True, cancel_futures=True)
        if isinstance(error, BrokenProcessPool):
            raise RunError("a worker process died (killed by a signal, or by the out-of-memory killer)") from None
        raise
    pool.shutdown()


# ---------------------------------------------------------------------------------------------
# discretize


def discretize(settings: DiscretizeSettings, output: str, workers: int) -> None:
    from calft.targets import declared
    from calft.targets.discretize import QUANTILE_HIGH, QUANTILE_LOW
    from calft.targets.prompts import prompt_set

    keep_freed_memory()
    declared.register(settings.declared_families)
    decimals, max_bins = settings.decimals, settings.max_bins
    prompts = prompt_set(settings.prompt_set, settings.number_format, settings.families, settings.per_family)
    config = settings.to_dict() | {"quantile_low": QUANTILE_LOW, "quantile_high": QUANTILE_HIGH}
    info = artifacts.provenance("targets", config)
    runs = [list(run) for _, run in itertools.groupby(prompts, key=lambda p: p.family)]
    log(
        f"discretize {settings.prompt_set}: {len(prompts)} prompts in {len(runs)} families at d={decimals}, "
        f"max_bins={max_bins}, {workers} worker(s)"
    )
    rows = 0
    with artifacts.atomic_path(output, "targets") as folder:
        folder.mkdir()
        with worker_pool(min(workers, len(runs)), declared.register, (settings.declared_families,)) as pool:
            futures = [
                pool.submit(_targets_part, run, decimals, max_bins, folder / f"part-{i:04d}.parquet", info)
                for i, run in enumerate(runs)
            ]
            for run, future in zip(runs, futures):
                count = future.result()
                rows += count
                log(f"  {run[0].family}: {len(run)} prompts, {count} values")
    log(f"wrote {rows} rows to {output}")


def _targets_part(prompts: list, decimals: int, max_bins: int, part: Path, info: dict) -> int:
    """Discretize the prompts of one family and write them as one part; returns the row count."""
    from calft.targets.discretize import discretize_laws, format_canonical

    (chunk,) = discretize_laws(prompts, decimals, max_bins)
    offsets, data = format_canonical(chunk.grid_index, chunk.decimals)
    labels = {
        "prompt_id": [p.prompt_id for p in prompts],
        "family": [p.family for p in prompts],
        "split": [p.split for p in prompts],
        "params": [json.dumps({k: _json_number(v) for k, v in p.printed.items()}) for p in prompts],
        "prompt": [p.text for p in prompts],
    }
    index = pa.array(chunk.prompt_index, pa.int32())
    batch = pa.record_batch(
        [pa.DictionaryArray.from_arrays(index, pa.array(values, pa.string())) for values in labels.values()]
        + [
            pa.array(chunk.bin, pa.int32()),
            artifacts.string_column(offsets, data),
            pa.array(chunk.value),
            pa.array(chunk.mass),
        ],
        schema=artifacts.TARGETS_SCHEMA,
    )
    with artifacts.parquet_writer(part, artifacts.TARGETS_SCHEMA, info) as writer:
        writer.write_batch(batch, row_group_size=len(index))
    return len(index)


def _json_number(printed: str):
    """The printed text as a JSON number with the same text (25 -> 25, 25.0 -> 25.0)."""
    return int(printed) if printed.lstrip("-").isdigit() else float(printed)


# ---------------------------------------------------------------------------------------------
# build-tries

_worker_state: dict = {}


def _init_tries_worker(backend_json: str) -> None:
    from tokenizers import Tokenizer

    from calft.targets.canonical import CanonicalTokenizer

    _worker_state["tokenizer"] = CanonicalTokenizer(Tokenizer.from_str(backend_json))


def _tries_part(targets_part: Path, terminator: int, part: Path, info: dict) -> tuple[int, int]:
    """Build the tries of one part (one family) of the targets and write them as one part."""
    from calft.targets.tries import build_trie_forest

    table = artifacts.read_table(targets_part, "targets", ["prompt_id", "bin", "canonical", "mass"])
    prompt_ids = table.column("prompt_id").combine_chunks()
    offsets, data = artifacts.string_buffers(table.column("canonical"))
    sequences = _worker_state["tokenizer"].encode(offsets, data, terminator)
    prompt_index = np.asarray(prompt_ids.indices, dtype=np.int32)
    trie = build_trie_forest(prompt_index, table.column("bin").to_numpy(), sequences, table.column("mass").to_numpy())
    with artifacts.parquet_writer(part, artifacts.TRIES_SCHEMA, info) as writer:
        writer.write_batch(_trie_batch(prompt_ids.dictionary, trie), row_group_size=len(trie.node))
    return len(np.unique(prompt_index)), len(trie.node)


def _trie_batch(labels: pa.Array, trie) -> pa.RecordBatch:
    return pa.record_batch(
        [
            pa.DictionaryArray.from_arrays(pa.array(trie.prompt_index), labels),
            pa.array(trie.node),
            pa.array(trie.parent),
            pa.array(trie.depth),
            pa.array(trie.token),
            pa.array(trie.mass),
            pa.array(trie.q),
            pa.array(trie.canonical_index),
        ],
        schema=artifacts.TRIES_SCHEMA,
    )


def build_tries(
    settings: TriesSettings, targets: str, tokenizer: str, output: str, same_tokenizer: list[str], workers: int
) -> None:
    from calft.modeling.tokenizer import fingerprint, load_backend, single_token_id

    keep_freed_memory()
    terminator = settings.terminator
    targets_info = artifacts.read_provenance(targets)
    backend = load_backend(tokenizer)
    term_id = single_token_id(backend, terminator)
    expected = fingerprint(backend, terminator)
    for other in same_tokenizer:
        try:
            same = fingerprint(load_backend(other), terminator) == expected
        except UserError:  # the terminator is not even a token there
            same = False
        if not same:
            raise UserError(
                f"the tokenizer of '{other}' differs from that of '{tokenizer}', so they cannot share "
                "tries; give that model its own `tokenizer` name in the config"
            )
    config = {
        "targets": targets_info["config"],
        "targets_code_version": targets_info["code_version"],
        "tokenizer": str(tokenizer),
        "terminator": terminator,
        "terminator_id": term_id,
        "fingerprint": expected,
        "same_tokenizer": list(same_tokenizer),
    }
    info = artifacts.provenance("tries", config)
    targets_parts = artifacts.parts(targets)
    log(
        f"build-tries: {len(targets_parts)} families, tokenizer fingerprint {expected}, "
        f"terminator {terminator!r} (id {term_id}), {workers} worker(s)"
    )
    nodes = 0
    with artifacts.atomic_path(output, "tries") as folder:
        folder.mkdir()
        with worker_pool(min(workers, len(targets_parts)), _init_tries_worker, (backend.to_str(),)) as pool:
            futures = [
                pool.submit(_tries_part, targets_part, term_id, folder / targets_part.name, info)
                for targets_part in targets_parts
            ]
            for done, future in enumerate(futures, 1):
                prompts, count = future.result()
                nodes += count
                log(f"  {done}/{len(futures)}: {prompts} prompts, {count} nodes")
    log(f"wrote {nodes} trie nodes to {output}")


def print_fingerprint(settings: TriesSettings, tokenizer: str) -> None:
    from calft.modeling.tokenizer import fingerprint, load_backend

    print(fingerprint(load_backend(tokenizer), settings.terminator))


# ---------------------------------------------------------------------------------------------
# construction-cost


def construction_cost(settings: ConstructionCostSettings, tokenizer: str | None, output: str) -> None:
    from calft.targets.canonical import CharacterTokenizer
    from calft.targets.cost import construction_cost as measure
    from calft.targets.prompts import evenly_spaced, prompt_set

    cost = settings.construction_cost
    prompts = evenly_spaced(prompt_set(cost["prompt_set"], settings.number_format), cost["max_prompts"])
    if cost["tokenizer"] == "characters":
        tokens, terminator_id, tokenizer = CharacterTokenizer(), CharacterTokenizer.TERMINATOR, "characters"
    elif tokenizer is None:
        raise UserError("construction_cost.tokenizer is 'model': give the model's tokenizer with --tokenizer")
    else:
        tokens, terminator_id = _model_tokens(tokenizer, settings.terminator)
    log(
        f"construction-cost: {len(prompts)} {cost['prompt_set']} prompts over {len(settings.grid)} grid points, "
        f"{tokenizer} tokens, the reference's algorithm and calft's"
    )
    frame = measure(prompts, settings.grid, tokens, terminator_id)
    info = artifacts.provenance("construction_cost", settings.to_dict() | {"tokenizer": str(tokenizer)})
    artifacts.write_frame(frame, output, info)
    log(f"wrote {len(frame)} rows to {output}")


def _model_tokens(tokenizer: str, terminator: str):
    from calft.modeling.tokenizer import load_backend, single_token_id
    from calft.targets.canonical import CanonicalTokenizer

    backend = load_backend(tokenizer)
    return CanonicalTokenizer(backend), single_token_id(backend, terminator)
