"""Faults: long commands killed at random points, concurrent writers, damaged files, and a fuzz of
the command line's numbers. Whatever happens, the final path holds a complete artifact (the old one
or the new one), no process outlives its parent, a rerun leaves no temporaries, a damaged input is
an error and never wrong numbers, and no input gets a traceback."""

from __future__ import annotations

import collections
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import build_tries, discretize
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from calft import artifacts
from calft.artifacts.paths import identify
from calft.cli import main
from calft.errors import UserError

FAMILIES = "gaussian,uniform,beta,gamma,lognormal,laplace"


def _processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line contains `text` (a parent and the workers it forked)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                state = (entry / "stat").read_text().split(")")[-1].split()[0]
            except OSError:
                continue
            if text in command and state != "Z":
                found.append(int(entry.name))
    return found


def _discretize(output: Path, per_family: int) -> list[str]:
    return [
        *discretize(output, "train", 5, 16384, families=FAMILIES.split(","), per_family=per_family),
        "--workers",
        "2",
    ]


def _complete(output: Path, kind: str) -> dict:
    """The provenance of the complete artifact at `output`: every part readable, every family there
    with as many prompts as the others (read from the table: a listing of the folder could meet a
    writer removing the version it just swapped out)."""
    prompts = set(artifacts.read_table(output, kind, columns=["prompt_id"])["prompt_id"].to_pylist())
    per_family = collections.Counter(prompt.split("_")[0] for prompt in prompts)
    assert sorted(per_family) == sorted(FAMILIES.split(",")) and len(set(per_family.values())) == 1
    return artifacts.read_provenance(output)["config"]


@pytest.fixture(scope="module")
def tries_inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fault-targets")
    for per_family in (2, 6):
        assert main(_discretize(folder / f"targets-{per_family}.parquet", per_family)) == 0
    return folder


def _run_and_kill(arguments: list[str], marker: str, delay: float, signum: int) -> int:
    process = subprocess.Popen(
        [sys.executable, "-m", "calft.cli", *arguments], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    time.sleep(delay)
    process.send_signal(signum)
    code = process.wait(timeout=60)
    deadline = time.monotonic() + 5
    while _processes_mentioning(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _processes_mentioning(marker), f"workers outlived their parent ({signal.Signals(signum).name})"
    return code


@pytest.mark.slow
@pytest.mark.parametrize("command", ["discretize", "build-tries"])
def test_killed_commands_leave_the_old_or_the_new_artifact_and_no_orphans(tmp_path, tries_inputs, smollm2_dir, command):
    output = tmp_path / f"{command}.parquet"
    if command == "discretize":
        kind, old, new = "targets", _discretize(output, 2), _discretize(output, 6)
        version = lambda config: config["per_family"]  # noqa: E731
    else:
        kind = "tries"
        old, new = (
            [*build_tries(tries_inputs / f"targets-{n}.parquet", smollm2_dir, output), "--workers", "2"] for n in (2, 6)
        )
        version = lambda config: config["targets"]["per_family"]  # noqa: E731
    started = time.monotonic()
    assert main(new) == 0
    duration = time.monotonic() - started
    assert main(old) == 0
    rng = random.Random(7)
    for signum in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):
        for _ in range(2):
            code = _run_and_kill(new, str(output), rng.uniform(0.2, 1.5 * duration + 1.0), signum)
            assert code in (0, -signal.SIGKILL, -signum, 128 + signum), code  # -signum: still starting up
            assert version(_complete(output, kind)) in (2, 6)
            if code != 0:
                assert main(old) == 0  # back to the old version for the next kill
    assert main(new) == 0 and version(_complete(output, kind)) == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == [output.name]  # no temporaries left


@pytest.mark.slow
def test_a_stopped_command_exits_at_once(tmp_path):
    """SIGINT or SIGTERM stops a multi-process command without waiting for its workers' tasks."""
    output = tmp_path / "targets.parquet"
    for signum in (signal.SIGINT, signal.SIGTERM):
        process = subprocess.Popen(
            [sys.executable, "-m", "calft.cli", *_discretize(output, 40)], stderr=subprocess.PIPE, text=True
        )
        for line in process.stderr:
            if "worker(s)" in line:
                break
        time.sleep(0.5)
        sent = time.monotonic()
        process.send_signal(signum)
        assert process.wait(timeout=30) == 128 + signum
        elapsed = time.monotonic() - sent
        assert elapsed < 10, elapsed  # about 0.2 s here; the bound only guards against waiting for tasks
        assert not output.exists() and not list(tmp_path.iterdir())


def test_concurrent_writers_never_expose_a_partial_or_mixed_folder(tmp_path):
    output = tmp_path / "targets.parquet"
    runs = " && ".join([" ".join([sys.executable, "-m", "calft.cli", "{}"])] * 3)
    writers = [
        subprocess.Popen(
            ["bash", "-c", runs.replace("{}", shlex.join(_discretize(output, n)))], stderr=subprocess.DEVNULL
        )
        for n in (1, 3)
    ]
    seen = set()
    while any(writer.poll() is None for writer in writers):
        if output.exists():
            seen.add(_complete(output, "targets")["per_family"])
    assert [writer.returncode for writer in writers] == [0, 0]
    assert seen <= {1, 3} and _complete(output, "targets")["per_family"] in (1, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == [output.name]


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("two-versions")
    assert main(_discretize(folder / "older", 1)) == 0 and main(_discretize(folder / "newer", 3)) == 0
    return folder


FOLDER_READERS = {
    "read_table": lambda path: artifacts.read_table(path, "targets"),
    "read_provenance": artifacts.read_provenance,
    "identify": identify,
}


@pytest.mark.parametrize("removed", [1, 6], ids=["some parts", "every part"])
@pytest.mark.parametrize("reader", FOLDER_READERS)
def test_a_folder_swapped_out_before_it_is_listed_is_read_again_whole(
    tmp_path, monkeypatch, two_versions, reader, removed
):
    """The reader holds the old folder open; a writer swaps the new one in and is removing the old
    one's parts when the reader lists them: the read starts again on the new folder."""
    read = FOLDER_READERS[reader]
    output, newer = tmp_path / "targets.parquet", tmp_path / "newer.parquet"
    shutil.copytree(two_versions / "older", output)
    shutil.copytree(two_versions / "newer", newer)
    expected = read(newer)
    listdir = os.listdir

    def listdir_after_a_swap(folder):
        monkeypatch.setattr(os, "listdir", listdir)
        os.rename(output, tmp_path / "older")
        os.rename(newer, output)
        for part in sorted((tmp_path / "older").iterdir())[:removed]:
            part.unlink()
        return listdir(folder)

    monkeypatch.setattr(os, "listdir", listdir_after_a_swap)
    assert read(output) == expected and os.listdir is listdir  # read, and swapped while reading


def test_a_damaged_targets_part_is_an_error_never_wrong_tries(tmp_path, smollm2_dir):
    targets = tmp_path / "targets.parquet"
    assert main(discretize(targets, "ood", 3, 500, families=["weibull"])) == 0

    def build(output):  # in this process: the reader is what is tested, not the pool
        return [*build_tries(targets, smollm2_dir, output), "--workers", "1"]

    assert main(build(tmp_path / "reference.parquet")) == 0
    reference = artifacts.read_table(tmp_path / "reference.parquet", "tries")
    (part,) = artifacts.parts(targets)
    original = part.read_bytes()
    rng = random.Random(3)
    for position in sorted(rng.sample(range(4, len(original) - 8), 40)):
        damaged = bytearray(original)
        damaged[position] ^= 0x10
        part.write_bytes(bytes(damaged))
        output = tmp_path / f"tries-{position}.parquet"
        code = main(build(output))
        assert code in (0, 2)
        if code == 0:  # the flip hit bytes that carry no data (padding, a timestamp): same tries
            assert artifacts.read_table(output, "tries").equals(reference)
    part.write_bytes(original)


def test_masses_that_do_not_sum_to_one_are_refused(tmp_path):
    import pyarrow as pa

    targets = tmp_path / "targets.parquet"
    assert main(discretize(targets, "ood", 1, 20, families=["poisson"])) == 0
    (part,) = artifacts.parts(targets)
    table = artifacts.read_table(targets, "targets")
    doubled = table.set_column(table.schema.get_field_index("mass"), "mass", pa.compute.multiply(table["mass"], 2.0))
    with artifacts.parquet_writer(part, artifacts.TARGETS_SCHEMA, artifacts.read_provenance(targets)) as writer:
        writer.write_table(doubled)
    with pytest.raises(UserError, match="masses do not sum to 1"):
        artifacts.read_table(targets, "targets")


numbers = st.one_of(
    st.integers(-(10**12), 10**12),
    st.integers(-3, 20),
    st.floats(allow_nan=True),
    st.sampled_from(["", "x", "1e3", "0x10", "1.0", "-0", " 7", "nan", "inf"]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(decimals=numbers, max_bins=numbers, per_family=numbers, workers=numbers)
def test_fuzzed_numbers_give_valid_output_or_a_one_line_refusal(
    tmp_path, capsys, decimals, max_bins, per_family, workers
):
    output = tmp_path / "fuzz.parquet"
    arguments = [
        *discretize(output, "ood", decimals, max_bins, families=["poisson"], per_family=per_family),
        "--workers",
        str(workers),
    ]
    capsys.readouterr()
    code = main(arguments)
    if code == 0:
        table = artifacts.read_table(output, "targets")
        assert table.num_rows >= 1 and table.num_rows <= 3 * int(max_bins)
    else:
        assert code == 2 and "Traceback" not in capsys.readouterr().err


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(num_samples=numbers, temperature=numbers, top_p=numbers, chunk_size=numbers, max_new_tokens=numbers)
def test_fuzzed_sampling_settings_are_checked_before_anything_runs(
    tmp_path, capsys, num_samples, temperature, top_p, chunk_size, max_new_tokens
):
    import json

    values = {
        "num_samples": num_samples,
        "temperature": temperature,
        "top_p": top_p,
        "chunk_size": chunk_size,
        "max_new_tokens": max_new_tokens,
    }
    sampling = json.dumps({k: v for k, v in values.items() if not isinstance(v, str) or not v})
    capsys.readouterr()
    model = {"source": "embedded", "tokenizer": "t", "terminator": "x"}
    code = main(
        [
            "sample",
            "--settings",
            json.dumps({"model": model, "sampling": json.loads(sampling)}),
            "--model-dir",
            "m",
            "--targets",
            str(tmp_path / "missing.parquet"),
            "--output",
            str(tmp_path / "out.parquet"),
        ]
    )
    error = capsys.readouterr().err
    assert code == 2 and "Traceback" not in error
    assert "missing.parquet does not exist" in error or "sampling" in error
    assert os.listdir(tmp_path) == []
