"""The retention stage's commands: retention-data, perplexity-data, fetch-irt, retention, perplexity."""

from __future__ import annotations

from calft import jobs
from calft.command import command, input_path, model_paths, output_path
from calft.jobs import Job
from calft.retention.settings import Perplexity, PerplexitySettings, Retention, RetentionSettings

DATA_DESCRIPTION = (
    "Its calft_provenance.json records the commits read and every file's checksum, which the jobs "
    "that read the folder verify."
)


def retention_data_kind(args: dict) -> str:
    return f"eval_data/retention-{args['settings'].suite}"


def perplexity_data_kind(args: dict) -> str:
    return "eval_data/perplexity-offline" if args["settings"].offline else "eval_data/paloma"


def add_commands(sub) -> None:
    _retention_data(sub)
    _perplexity_data(sub)
    _fetch_irt(sub)
    _retention(sub)
    _perplexity(sub)


def _retention_data(sub) -> None:
    rd = command(
        sub,
        "retention-data",
        "calft.retention.commands:retention_data",
        Retention,
        "JSON of the config's retention section (its suite chooses the data)",
        job=Job("retention_data"),
        help="prepare the retention suite's data: the offline probes, or tinyBenchmarks (head node)",
        description="Writes a folder of <task>.parquet: the offline probes, generated, or the "
        "tinyBenchmarks datasets fetched from the hub. " + DATA_DESCRIPTION,
    )
    output_path(rd, "--output", retention_data_kind, required=True, help="folder to write")


def _perplexity_data(sub) -> None:
    pd_ = command(
        sub,
        "perplexity-data",
        "calft.retention.commands:perplexity_data",
        Perplexity,
        "JSON of the config's perplexity section (offline: true builds the offline slices)",
        job=Job(jobs.perplexity_data_job),
        help="prepare the perplexity slices: offline, or PALOMA fetched from the hub (gated; head node)",
        description="Writes a folder in PALOMA's layout, <slice>/<split>/*.jsonl.gz. " + DATA_DESCRIPTION,
    )
    output_path(pd_, "--output", perplexity_data_kind, required=True, help="folder to write")


def _fetch_irt(sub) -> None:
    fi = command(
        sub,
        "fetch-irt",
        "calft.retention.commands:fetch_irt",
        Retention,
        "JSON of the config's retention section (irt_url, irt_sha256: the download fails on a mismatch)",
        job=Job("fetch_irt_parameters"),
        help="download tinyBenchmarks' IRT parameter file (head node)",
    )
    output_path(fi, "--output", "irt_parameters", required=True, help="numpy archive to write")


def _retention(sub) -> None:
    rt = command(
        sub,
        "retention",
        "calft.retention.commands:retention",
        RetentionSettings,
        "JSON: model (the model's config entry) and retention (the config's section)",
        offline=True,
        job=Job("retention", ("model",), ("model",)),
        help="TinyBenchmarks-style retention through lm-eval",
        description="Runs the suite's tasks with lm-evaluation-harness on the model (and adapter); writes "
        "per-example scores and per-task accuracy with gp-IRT where IRT parameters exist.",
    )
    model_paths(rt)
    input_path(rt, "--data-dir", required=True, help="folder of <task>.parquet files")
    input_path(rt, "--irt-parameters", default=None, help="tinyBenchmarks IRT parameter file (tinyBenchmarks suite)")
    output_path(rt, "--examples", "retention_examples", required=True, help="per-example parquet file to write")
    output_path(rt, "--output", "retention", required=True, help="per-task parquet file to write")


def _perplexity(sub) -> None:
    pp = command(
        sub,
        "perplexity",
        "calft.retention.commands:perplexity",
        PerplexitySettings,
        "JSON: model (the model's config entry) and perplexity (the config's section)",
        offline=True,
        job=Job("perplexity", ("model",), ("model",)),
        help="PALOMA-style perplexity through lm-eval",
        description="Strided rolling log-likelihood of every document of each slice; writes per-slice "
        "NLL, tokens, bytes, perplexity and bits per byte.",
    )
    model_paths(pp)
    input_path(pp, "--data-dir", required=True, help="folder of <slice>/<split>/*.jsonl[.gz]")
    output_path(pp, "--output", "perplexity", required=True, help="parquet file to write")
