"""Benchmark: build the training targets and token tries, ours against a per-string baseline.

The baseline is the reference implementation's algorithm as `calft.targets.paper_construction`
restates it for Table 24 (reference spec §4 and §5.1): one SciPy law per prompt, the whole decimal
grid materialized before the bin cap, one Python format call and one `tokenizer.encode` call per
canonical string, and a trie of Python dicts keyed by token tuples. Ours is the real CLI
(`calft discretize` then `calft build-tries`). Each side runs in its own process; we record wall
time and the peak resident memory of its whole process tree (workers included). Ours is measured
twice: through the CLI (two processes, 2 workers, parquet written) and, for the same work as the
baseline, in memory in one process with one thread. Ours is the best of `--repeats` runs (default 3):
shared machines are noisy, and a run is seconds against the baseline's minutes.

    python benchmarks/targets_and_tries.py --model resources/models/smollm2-135m-instruct

At (d=5, 16384) the baseline needs tens of GB over the full training grid, so by default it runs on
10 evenly spaced prompts per family (`calft discretize --per-family 10`, 240 prompts) and both
sides are timed on that same subset; ours also runs on the full grid.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

# The reference implementation's own figures on a 2-core machine with the SmolLM2 tokenizer, full
# training grid (1988 prompts), targets plus tries: the goal is 20x faster.
REFERENCE_SECONDS = {(5, 1001): 94.0, (5, 16384): 950.0}


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of a process and all its descendants, from /proc."""
    children = defaultdict(list)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    parent = int(handle.read().rsplit(")", 1)[1].split()[1])
                children[parent].append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            with open(f"/proc/{current}/statm") as handle:
                total += int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            pass
        stack.extend(children[current])
    return total


def measure(command: list[str], repeats: int = 1) -> tuple[float, float]:
    """Run a command `repeats` times; return the best (wall seconds, peak GB of its process tree)."""
    runs = [_measure_once(command) for _ in range(repeats)]
    return min(wall for wall, _ in runs), min(peak for _, peak in runs)


def _measure_once(command: list[str]) -> tuple[float, float]:
    start = time.perf_counter()
    process = subprocess.Popen(command)
    peak = 0
    done = threading.Event()

    def sample():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss_bytes(process.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    code = process.wait()
    done.set()
    sampler.join()
    if code:
        raise SystemExit(f"command failed ({code}): {' '.join(command)}")
    return time.perf_counter() - start, peak / 1e9


def run_baseline(args) -> None:
    from calft.modeling.tokenizer import load_backend, single_token_id
    from calft.targets import paper_construction
    from calft.targets.canonical import CanonicalTokenizer
    from calft.targets.prompts import prompt_set

    prompts = prompt_set("train", per_family=args.per_family or None)
    backend = load_backend(args.model)
    terminator = single_token_id(backend, args.terminator)
    tries = []
    encode = CanonicalTokenizer(backend).encode_text  # the Rust encoder, one call per string
    for prompt in prompts:
        strings, masses = paper_construction.output_space(prompt, args.decimals, args.max_bins)
        tries.append(paper_construction.trie(strings, masses, encode, terminator))
    print(f"baseline: {len(prompts)} prompts, {sum(len(t) for t in tries)} trie nodes", file=sys.stderr)


def run_ours_in_memory(args) -> None:
    """Our modules, the same work as the baseline: one process, one thread, nothing written."""
    from calft.modeling.tokenizer import load_backend, single_token_id
    from calft.targets.canonical import CanonicalTokenizer
    from calft.targets.discretize import discretize_laws, format_canonical
    from calft.targets.prompts import prompt_set
    from calft.targets.tries import build_trie_forest

    backend = load_backend(args.model)
    terminator = single_token_id(backend, args.terminator)
    canonical = CanonicalTokenizer(backend)
    nodes = 0
    for chunk in discretize_laws(prompt_set("train", per_family=args.per_family or None), args.decimals, args.max_bins):
        sequences = canonical.encode(*format_canonical(chunk.grid_index, chunk.decimals), terminator)
        nodes += len(build_trie_forest(chunk.prompt_index, chunk.bin, sequences, chunk.mass).node)
    print(f"ours in memory: {nodes} trie nodes", file=sys.stderr)


# ---------------------------------------------------------------------------------------------


def ours(args, folder: Path, per_family: int) -> list[str]:
    """A shell command running our CLI on the training grid (`per_family` 0 = all prompts)."""
    targets, tries = folder / f"targets_{per_family}.parquet", folder / f"tries_{per_family}.parquet"
    grid = {
        "prompt_set": "train",
        "decimals": args.decimals,
        "max_bins": args.max_bins,
        "per_family": per_family or None,
    }
    return [
        "bash",
        "-c",
        f"calft discretize --settings {shlex.quote(json.dumps(grid))} --workers {args.workers} --output {targets} "
        f"2>/dev/null && calft build-tries --settings {shlex.quote(json.dumps({'terminator': args.terminator}))} "
        f"--targets {targets} --tokenizer {shlex.quote(args.model)} --output {tries} --workers {args.workers} "
        "2>/dev/null",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resources/models/smollm2-135m-instruct", help="tokenizer folder")
    parser.add_argument("--terminator", default="<|im_end|>")
    parser.add_argument("--decimals", type=int, default=5)
    parser.add_argument(
        "--settings",
        default="1001:all,16384:10",
        help="comma-separated max_bins:baseline_subset pairs; the subset is 'all', 'none' "
        "(no baseline) or a number of prompts per family",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="runs of ours; the best is reported")
    parser.add_argument("--internal-baseline", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--internal-ours", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--per-family", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--max-bins", type=int, default=1001, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.internal_baseline:
        return run_baseline(args)
    if args.internal_ours:
        return run_ours_in_memory(args)

    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for setting in args.settings.split(","):
            bins, subset = setting.split(":")
            args.max_bins = int(bins)
            label = f"d={args.decimals}, max_bins={args.max_bins}"
            full = measure(ours(args, Path(scratch), 0), args.repeats)
            rows.append((label, "ours, CLI (2 processes, writes parquet), 1988 prompts", *full))
            if (args.decimals, args.max_bins) in REFERENCE_SECONDS:
                reference = REFERENCE_SECONDS[args.decimals, args.max_bins]
                rows.append(
                    (label, f"ratio published reference ({reference} s)/ours CLI", reference / full[0], float("nan"))
                )
            if subset == "none":
                continue
            per_family = 0 if subset == "all" else int(subset)
            name = "full training grid" if not per_family else f"{per_family} prompts per family"
            mine = measure(ours(args, Path(scratch), per_family), args.repeats) if per_family else full
            in_process = [
                sys.executable,
                __file__,
                "--model",
                args.model,
                "--terminator",
                args.terminator,
                "--decimals",
                str(args.decimals),
                "--max-bins",
                str(args.max_bins),
                "--per-family",
                str(per_family),
            ]
            memory = measure(in_process + ["--internal-ours"], args.repeats)
            base = measure(in_process + ["--internal-baseline"])
            if per_family:
                rows.append((label, f"ours, CLI, {name}", *mine))
            rows.append((label, f"ours, in memory, 1 process, {name}", *memory))
            rows.append((label, f"baseline, in memory, 1 process, {name}", *base))
            rows.append((label, "ratio baseline/ours CLI", base[0] / mine[0], base[1] / mine[1]))
            rows.append((label, "ratio baseline/ours in memory", base[0] / memory[0], base[1] / memory[1]))
    print(f"\n{'setting':<22} {'run':<44} {'wall s / ratio':>14} {'peak GB / ratio':>16}")
    for label, run, wall, peak in rows:
        print(f"{label:<22} {run:<44} {wall:>14.2f} {peak:>16.2f}")


if __name__ == "__main__":
    main()
