"""`snakemake --profile slurm` for real, on the single-node cluster of `.ci/slurm-cluster` (real
accounting, fake `gpu:a100` GRES): the micro configuration's structured-sampling pipeline (targets,
tries, both trainings, every method's samples, scores and logit KL, the report) through
profiles/slurm itself, with only its first status-check delay shortened (the account and partitions
come from the environment, as on a user's cluster). Every job goes through sbatch and sacct, the GPU
jobs get what the profile declares, the tables equal the local micro run's, a single target submits
only what it needs, and a failed job is reported with SLURM's state and leaves no output that looks
complete. Skipped where no cluster answers (`.ci/run` starts one).

The retention, perplexity, transfer and SSOT stages stay out of the SLURM run: their jobs go through the
same sbatch path as these, and on two cores every extra job costs about ten CPU seconds of Python
start-up; the resources the profile gives them are checked on the paper's dry run
(test_workflow.py)."""

from __future__ import annotations

import copy
import filecmp
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from calft import layout

ROOT = Path(__file__).resolve().parents[1]
SITE = {"CALFT_SLURM_ACCOUNT": "calft-test", "CALFT_SLURM_PARTITION": "cpu", "CALFT_SLURM_GPU_PARTITION": "gpu"}
SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+) \(log: .*/rule_(\w+)/")

pytestmark = pytest.mark.slurm


def _cluster_answers() -> bool:
    return shutil.which("sinfo") is not None and subprocess.run(["sinfo"], capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def profile(tmp_path_factory) -> Path:
    """profiles/slurm as committed, with a first status check after 5 s instead of 40; the test
    cluster's account and partitions come from the environment (SITE)."""
    if not _cluster_answers():
        pytest.skip("no SLURM cluster answers (start one with .ci/slurm-cluster up)")
    text = (ROOT / "profiles" / "slurm" / "config.yaml").read_text()
    folder = tmp_path_factory.mktemp("profile") / "slurm"
    folder.mkdir()
    (folder / "config.yaml").write_text(text + "\nslurm-init-seconds-before-status-checks: 5\n")
    return folder


def _start_snakemake(profile: Path, workdir: Path, *targets: str) -> subprocess.Popen:
    """A Snakemake run through the profile, started. OMP_WAIT_POLICY=PASSIVE: the jobs share two real
    cores, and spinning OpenMP threads would starve each other."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(ROOT / "Snakefile"),
            *targets,
            "--profile",
            str(profile),
            "--configfile",
            "micro.yaml",
        ],  # targets first: --configfile would take them as more config files
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ | SITE | {"OMP_WAIT_POLICY": "PASSIVE"},
    )


def _finish(process: subprocess.Popen) -> tuple[int, str, dict[int, str]]:
    """Wait for a run: its exit status, its output, and the SLURM job ids it submitted, by rule."""
    stdout, stderr = process.communicate()
    output = stdout + stderr
    return process.returncode, output, {int(job): rule for job, rule in SUBMITTED.findall(output)}


def _snakemake(profile: Path, workdir: Path, *targets: str) -> tuple[int, str, dict[int, str]]:
    return _finish(_start_snakemake(profile, workdir, *targets))


def _sacct(jobs) -> dict[int, dict]:
    fields = ["JobID", "JobName", "Comment", "State", "Partition", "AllocTRES", "Timelimit", "ReqMem", "Account"]
    output = subprocess.run(
        ["sacct", "-X", "-P", "-n", "-j", ",".join(map(str, jobs)), "--format", ",".join(fields)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = [dict(zip(fields, line.split("|"))) for line in output.splitlines() if line]
    return {int(row["JobID"]): row for row in rows}


STAGES_OFF = {
    "retention": {"enabled": False},
    "perplexity": {"enabled": False},
    "transfer": {"open_ended": {"enabled": False}, "mcq": {"enabled": False}, "ssot": {"enabled": False}},
}


def _structured_only(config: dict) -> dict:
    """The micro configuration with the stages beyond structured sampling turned off (SSOT too: its
    jobs are the sample and score rules again)."""
    config = copy.deepcopy(config)
    for section, changes in STAGES_OFF.items():
        for key, value in changes.items():
            node = config.setdefault(section, {})
            node[key] = {**node.get(key, {}), **value} if isinstance(value, dict) else value
    config.pop("ablations", None)
    return config


@pytest.fixture(scope="module")
def slurm_run(profile, tmp_path_factory, micro_workflow_config, request):
    workdir = tmp_path_factory.mktemp("slurm-run")
    (workdir / "micro.yaml").write_text(yaml.safe_dump(_structured_only(micro_workflow_config)))
    started = time.monotonic()
    process = _start_snakemake(profile, workdir)
    request.getfixturevalue("local_micro_run")  # the local reference run meanwhile: the SLURM run mostly waits
    code, output, submitted = _finish(process)
    minutes = (time.monotonic() - started) / 60
    assert code == 0, output[-10000:]
    print(
        f"\nthe micro workflow through the SLURM profile (beside the local run) took {minutes:.1f} min, "
        f"{len(submitted)} SLURM jobs"
    )
    return workdir, submitted


def test_every_job_went_through_sbatch_and_sacct_lists_it_under_its_rule(slurm_run):
    workdir, submitted = slurm_run
    local = {
        "all",
        "aggregate",
        "prepare_embedded_model",
        "download_hub_model",
        "retention_data",
        "fetch_irt_parameters",
        "fetch_paloma",
        "download_noveltybench_model",
        "fetch_noveltybench_prompts",
    }
    planned = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(ROOT / "Snakefile"),
            "-n",
            "--forceall",
            "--configfile",
            "micro.yaml",
            "--quiet",
            "rules",
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    expected = {
        rule: int(count)
        for rule, count in re.findall(r"^(\w+)\s+(\d+)$", planned, re.M)
        if rule not in local | {"total"}
    }
    counted = {}
    for rule in submitted.values():
        counted[rule] = counted.get(rule, 0) + 1
    assert counted == expected
    for job, row in _sacct(submitted).items():
        assert row["State"] == "COMPLETED" and row["Account"] == "calft-test", row
        assert row["Comment"].startswith(f"rule_{submitted[job]}"), row


def _megabytes(memory: str) -> float:
    """sacct's ReqMem ('250G', '62.50G', '4000M') in MB."""
    return float(memory[:-1]) * {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024**2}[memory[-1]]


def test_gpu_jobs_got_the_resources_the_profile_declares_and_saw_their_gpus(slurm_run):
    workdir, submitted = slurm_run
    declared = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())["set-resources"]
    rows = _sacct(submitted)
    logs = {
        "train_soft": "logs/train/smol/soft.log",
        "train_hard": "logs/train/smol/hard.log",
        "sample": "logs/sample/smol/base/ood.log",
    }
    for rule, log in logs.items():
        row = next(rows[job] for job, name in submitted.items() if name == rule)
        wanted = declared[rule]
        assert row["Partition"] == "gpu", row
        assert f"gres/gpu:{wanted['gpu_model']}={wanted['gpu']}" in row["AllocTRES"], row
        assert _megabytes(row["ReqMem"]) == wanted["mem_mb"], row
        hours, minutes = divmod(wanted["runtime"], 60)
        assert row["Timelimit"] == f"{hours:02d}:{minutes:02d}:00", row
        visible = re.search(r"CUDA_VISIBLE_DEVICES=([\d,]+)", (workdir / log).read_text()).group(1)
        assert len(visible.split(",")) == wanted["gpu"], (rule, visible)


def test_the_structured_tables_equal_the_local_micro_runs(slurm_run, local_micro_run):
    workdir, _ = slurm_run
    local_tables, _ = local_micro_run
    names = sorted(
        p.name
        for p in (workdir / layout.TABLES).iterdir()
        if p.name.startswith("structured_") or p.name in ("summary.csv", "per_prompt.csv")
    )
    assert {"structured_ood.csv", "structured_ood.tex", "summary.csv", "per_prompt.csv"} <= set(names)
    assert all(filecmp.cmp(local_tables / name, workdir / layout.TABLES / name, shallow=False) for name in names), names


SOFT_OOD = dict(model="smol", method="soft", variant="", prompt_set="ood")
HARD_OOD = dict(model="smol", method="hard", variant="", prompt_set="ood")


@pytest.fixture(scope="module")
def follow_up_runs(slurm_run, profile):
    """Two more runs in the SLURM run's folder, started together (they mostly wait for the cluster,
    and Snakemake locks only the files each one reads and writes): soft/OOD's samples and scores
    removed and its scores asked for; hard/OOD's samples damaged and its scores asked for with only
    the score rule allowed. Returns each run's (exit status, output, SLURM jobs)."""
    workdir, _ = slurm_run
    for template in (layout.SAMPLES, layout.SCORES):
        (workdir / template.format(**SOFT_OOD)).unlink()
    samples, scores = (workdir / template.format(**HARD_OOD) for template in (layout.SAMPLES, layout.SCORES))
    samples.write_bytes(samples.read_bytes()[:-100])  # damaged: score refuses it
    scores.unlink()
    started = {
        "single target": _start_snakemake(profile, workdir, layout.SCORES.format(**SOFT_OOD)),
        "failed job": _start_snakemake(profile, workdir, layout.SCORES.format(**HARD_OOD), "--allowed-rules", "score"),
    }
    return {name: _finish(process) for name, process in started.items()}


def test_a_single_target_submits_only_the_jobs_it_needs(follow_up_runs):
    code, output, submitted = follow_up_runs["single target"]
    assert code == 0, output[-3000:]
    assert sorted(submitted.values()) == ["sample", "score"]


def test_a_failed_job_is_reported_with_slurms_state_and_leaves_no_output(slurm_run, profile, follow_up_runs):
    workdir, _ = slurm_run
    code, output, submitted = follow_up_runs["failed job"]
    retries = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())["retries"]
    assert code != 0 and list(submitted.values()) == ["score"] * (1 + retries), output[
        -3000:
    ]  # the profile retries once
    for job in submitted:
        assert re.search(rf"SLURM-job '{job}' failed, SLURM status is: 'FAILED'\. Reasons?: ", output), output[-3000:]
    scores = workdir / layout.SCORES.format(**HARD_OOD)
    assert not scores.exists() and not list(scores.parent.glob(f".{scores.name}*"))
    _, again, _ = _snakemake(profile, workdir, layout.SCORES.format(**HARD_OOD), "--allowed-rules", "score", "-n")
    assert "score" in again and "Nothing to be done" not in again
