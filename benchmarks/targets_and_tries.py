"""Benchmark: build the training targets and token tries, ours against a per-string baseline.

The baseline follows the reference implementation's algorithm (reference spec §4 and §5.1): one
SciPy law per prompt, one Python format call per canonical string, one `tokenizer.encode` call per
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
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

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


# ---------------------------------------------------------------------------------------------
# Baseline: the reference implementation's per-prompt, per-string algorithm.


def baseline_output_space(prompt, decimals, max_bins):
    from calft.targets.families import get_family

    family = get_family(prompt.family)
    law = family.frozen(prompt.params)
    low, high = family.support(prompt.params)
    if family.integer:
        lo = int(np.floor(low)) if low is not None else int(np.floor(law.ppf(0.001)))
        hi = int(np.ceil(high)) if high is not None else int(np.ceil(law.ppf(0.999)))
        values = list(range(lo, hi + 1))[:max_bins]
        masses = [float(law.pmf(v)) for v in values]
        if high is None:
            masses[-1] += max(0.0, 1.0 - float(law.cdf(values[-1])))
        strings = [str(v) for v in values]
    else:
        lower, upper = float(law.ppf(0.001)), float(law.ppf(0.999))
        lower = max(lower, low) if low is not None else lower
        upper = min(upper, high) if high is not None else upper
        step = 10**-decimals
        first, count = int(np.ceil(lower / step)), int(np.floor(upper / step)) - int(np.ceil(lower / step)) + 1
        kept = np.linspace(0, count - 1, max_bins).astype(int) if count > max_bins else range(count)
        centres = [(first + int(i)) * step for i in kept]
        edges = [lower] + [(a + b) / 2 for a, b in zip(centres, centres[1:])] + [upper]
        cdf = law.cdf(np.array(edges))
        masses = list(np.diff(cdf))
        masses[0] += float(cdf[0])
        masses[-1] += 1.0 - float(cdf[-1])
        strings = [f"{c:.{decimals}f}" for c in centres]
    total = sum(masses)
    return strings, [m / total for m in masses]


def baseline_trie(backend, terminator, strings, masses):
    encode = backend.encode  # the Rust encoder, one call per string: 3x cheaper than transformers' wrapper
    prefix_mass, next_mass = defaultdict(float), defaultdict(dict)
    for text, mass in zip(strings, masses):
        sequence = tuple(encode(text, add_special_tokens=False).ids) + (terminator,)
        for k in range(len(sequence)):
            prefix = sequence[:k]
            prefix_mass[prefix] += mass
            children = next_mass[prefix]
            children[sequence[k]] = children.get(sequence[k], 0.0) + mass
    return {p: ([*c], [m / prefix_mass[p] for m in c.values()]) for p, c in next_mass.items()}


def run_baseline(args) -> None:
    from calft.targets.canonical import load_backend, single_token_id
    from calft.targets.prompts import prompt_set

    prompts = prompt_set("train", per_family=args.per_family or None)
    backend = load_backend(args.model)
    terminator = single_token_id(backend, args.terminator)
    tries = []
    for prompt in prompts:
        strings, masses = baseline_output_space(prompt, args.decimals, args.max_bins)
        tries.append(baseline_trie(backend, terminator, strings, masses))
    print(f"baseline: {len(prompts)} prompts, {sum(len(t) for t in tries)} trie nodes", file=sys.stderr)


def run_ours_in_memory(args) -> None:
    """Our modules, the same work as the baseline: one process, one thread, nothing written."""
    from calft.targets.canonical import CanonicalTokenizer, load_backend, single_token_id
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
    thin = f" --per-family {per_family}" if per_family else ""
    return [
        "bash",
        "-c",
        f"calft discretize --prompt-set train{thin} --decimals {args.decimals} --max-bins {args.max_bins} "
        f"--workers {args.workers} --output {targets} 2>/dev/null && "
        f"calft build-tries --targets {targets} --tokenizer {args.model} --terminator '{args.terminator}' "
        f"--output {tries} --workers {args.workers} 2>/dev/null",
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
