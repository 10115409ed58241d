"""Where the wall-clock time of a Snakemake run went: per-rule times, the critical path and idle cores.

Reads a run's Snakemake log (job starts and ends, threads, inputs and outputs) and the benchmark
files its rules wrote (exact seconds and CPU time per job), in the run's working folder:

    python benchmarks/wallclock.py [--workdir .] [--log .snakemake/log/<run>.snakemake.log]

It prints:
* per rule: jobs, summed and longest wall seconds, summed CPU seconds;
* the critical path: from the job that finished last, back through the input it waited for longest
  (the dependency that finished last), with each job's wall time and the wait before it started;
* idle cores: the share of cores x wall time that no job reserved (by its threads), and the share
  no job used (by its CPU time).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path

STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")


@dataclass
class Job:
    jobid: int
    rule: str
    start: dt.datetime
    end: dt.datetime | None = None
    threads: int = 1
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    benchmark: str | None = None
    seconds: float = 0.0
    cpu_seconds: float = 0.0


def _time(text: str) -> dt.datetime:
    return dt.datetime.strptime(" ".join(text.split()), "%a %b %d %H:%M:%S %Y")


def parse_log(path: Path) -> tuple[int, list[Job]]:
    """(cores, jobs) of one Snakemake log: a job starts at the timestamp before its `rule X:` block,
    which lists its inputs, outputs, jobid, threads and benchmark, and ends at `Finished jobid`."""
    lines = path.read_text().splitlines()
    cores = next((int(m.group(1)) for line in lines if (m := re.match(r"Provided cores: (\d+)", line))), 1)
    jobs: dict[int, Job] = {}
    stamp, block = None, None
    for line in lines + ["[Thu Jan  1 00:00:00 1970]"]:
        if (match := STAMP.match(line)) or re.match(r"^\S", line):
            if block and "jobid" in block:
                jobs[int(block["jobid"])] = Job(
                    int(block["jobid"]),
                    block["rule"],
                    block["start"],
                    threads=int(block.get("threads", 1)),
                    inputs=[p for p in block.get("input", "").split(", ") if p],
                    outputs=[p for p in block.get("output", "").split(", ") if p],
                    benchmark=block.get("benchmark"),
                )
            block = None
        if match:
            stamp = _time(match.group(1))
        elif match := re.match(r"^(?:local)?rule (\w+):$", line):
            block = {"rule": match.group(1), "start": stamp}
        elif block is not None and (match := re.match(r"^\s+(input|output|jobid|threads|benchmark): (.*)$", line)):
            block[match.group(1)] = match.group(2)
        elif match := re.match(r"^Finished jobid: (\d+)", line):
            jobs[int(match.group(1))].end = stamp
    return cores, [job for job in jobs.values() if job.end is not None]


def add_benchmarks(jobs: list[Job], workdir: Path) -> None:
    """Exact wall and CPU seconds from each job's benchmark file (log timestamps have 1 s steps)."""
    for job in jobs:
        job.seconds = (job.end - job.start).total_seconds()
        if job.benchmark and (workdir / job.benchmark).is_file():
            rows = list(csv.DictReader((workdir / job.benchmark).open(), delimiter="\t"))
            if rows:
                job.seconds = float(rows[-1]["s"])
                cpu = rows[-1].get("cpu_time")
                job.cpu_seconds = float(cpu) if cpu not in (None, "", "NA") else 0.0


def critical_path(jobs: list[Job]) -> list[tuple[Job, float]]:
    """(job, seconds it waited after its last input was ready), from the first job to the last."""
    made_by = {output: job for job in jobs for output in job.outputs}
    path, job = [], max(jobs, key=lambda j: j.end)
    while job is not None:
        inputs = [made_by[i] for i in job.inputs if i in made_by and made_by[i].end <= job.start]
        before = max(inputs, key=lambda j: j.end, default=None)
        ready = before.end if before else min(j.start for j in jobs)
        path.append((job, max(0.0, (job.start - ready).total_seconds())))
        job = before
    return path[::-1]


def report(cores: int, jobs: list[Job]) -> str:
    first, last = min(j.start for j in jobs), max(j.end for j in jobs)
    wall = (last - first).total_seconds()
    lines = [
        f"run: {len(jobs)} jobs, {wall:.0f} s wall ({wall / 60:.1f} min) on {cores} cores",
        "",
        f"{'rule':<26}{'jobs':>5}{'wall s':>10}{'longest s':>11}{'cpu s':>10}",
    ]
    rules: dict[str, list[Job]] = {}
    for job in jobs:
        rules.setdefault(job.rule, []).append(job)
    for rule, members in sorted(rules.items(), key=lambda item: -sum(j.seconds for j in item[1])):
        lines.append(
            f"{rule:<26}{len(members):>5}{sum(j.seconds for j in members):>10.1f}"
            f"{max(j.seconds for j in members):>11.1f}{sum(j.cpu_seconds for j in members):>10.1f}"
        )
    lines += ["", "critical path (wait = seconds between its last input and its start):"]
    total = 0.0
    for job, wait in critical_path(jobs):
        total += job.seconds + wait
        target = job.outputs[0] if job.outputs else ""
        lines.append(f"  {job.rule:<24}{job.seconds:>8.1f} s  wait {wait:>5.0f} s  {target}")
    lines.append(f"  {'':<24}{total:>8.1f} s in all")
    reserved = sum(min(j.threads, cores) * j.seconds for j in jobs) / (cores * wall) if wall else 0.0
    used = sum(j.cpu_seconds for j in jobs) / (cores * wall) if wall else 0.0
    lines += [
        "",
        f"idle cores: {1 - reserved:.1%} of cores x wall time reserved by no job, "
        f"{1 - used:.1%} used by no job (benchmark CPU time)",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("."), help="the run's working folder")
    parser.add_argument("--log", type=Path, default=None, help="Snakemake log (default: the newest in the workdir)")
    args = parser.parse_args()
    logs = (args.workdir / ".snakemake" / "log").glob("*.snakemake.log")
    log = args.log or max(logs, key=lambda path: path.stat().st_mtime)
    cores, jobs = parse_log(log)
    if not jobs:
        raise SystemExit(f"{log}: no finished jobs")
    add_benchmarks(jobs, args.workdir)
    print(f"log: {log}\n" + report(cores, jobs))


if __name__ == "__main__":
    main()
