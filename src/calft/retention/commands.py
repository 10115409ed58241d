"""The retention stage's commands: prepare the evaluation data, fetch the IRT parameters, run the
retention suite and PALOMA perplexity through lm-eval."""

from __future__ import annotations

import logging
from pathlib import Path

from calft import artifacts
from calft.errors import UserError
from calft.retention.cli import perplexity_data_kind, retention_data_kind
from calft.retention.settings import Perplexity, PerplexitySettings, Retention, RetentionSettings

log = logging.getLogger(__name__).info


def retention_data(settings: Retention, output: str) -> None:
    """The offline probes, or tinyBenchmarks from the hub, in a folder whose provenance records the
    commits read and every file's checksum."""
    from calft.retention import data

    kind, fetched = retention_data_kind({"settings": settings}), None
    with artifacts.atomic_path(output, kind) as folder:
        folder.mkdir()
        if settings.suite == "offline":
            data.arithmetic_probe(settings.probe_items, settings.seed).to_parquet(
                folder / "arithmetic.parquet", index=False
            )
            data.choice_probe(settings.probe_items, settings.seed).to_parquet(
                folder / "multiple_choice.parquet", index=False
            )
        else:
            fetched = data.fetch_tinybenchmarks(
                folder, settings.tinybenchmarks_source, settings.tinybenchmarks_revisions
            )
        artifacts.record_data(folder, artifacts.provenance(kind, settings.to_dict()) | {"revisions": fetched})
    log(f"wrote {settings.suite} retention data to {output}")
    for task, commit in (fetched or {}).items():
        if not settings.tinybenchmarks_revisions.get(task) and commit != "local":
            log(f"read {task} at commit {commit}: pin it as retention.tinybenchmarks_revisions.{task}")


def perplexity_data(settings: Perplexity, output: str) -> None:
    """The offline slices, or PALOMA from the hub (gated), in a folder whose provenance records the
    commit read and every file's checksum."""
    from calft.retention import data

    kind, fetched = perplexity_data_kind({"settings": settings}), None
    with artifacts.atomic_path(output, kind) as folder:
        folder.mkdir()
        if settings.offline:
            for name, documents in data.offline_slices(
                settings.offline_max_documents, settings.offline_max_chars
            ).items():
                if not documents:
                    raise UserError(
                        f"perplexity.offline_max_chars {settings.offline_max_chars} leaves the offline slice "
                        f"'{name}' without a document: raise it"
                    )
                data.write_slice(folder / name, documents)
        else:
            fetched = data.fetch_paloma(
                folder, settings.paloma_repository, settings.paloma_revision, settings.slices, settings.split
            )
        artifacts.record_data(folder, artifacts.provenance(kind, settings.to_dict()) | {"revisions": fetched})
    log(f"wrote perplexity data to {output}")
    if fetched and not settings.paloma_revision:
        log(f"read {settings.paloma_repository} at commit {fetched}: pin it as perplexity.paloma_revision")


def fetch_irt(settings: Retention, output: str) -> None:
    from calft.retention import data

    digest = data.fetch_irt_parameters(settings.irt_url, Path(output), settings.irt_sha256)
    log(f"fetched {settings.irt_url} to {output}: sha256 {digest}")


def retention(
    settings: RetentionSettings,
    model_dir: str,
    adapter: str | None,
    data_dir: str,
    irt_parameters: str | None,
    examples: str,
    output: str,
) -> None:
    from calft.modeling.loader import adapter_record, load, model_record
    from calft.retention.data import load_bundles
    from calft.retention.harness import CalftLM
    from calft.retention.scoring import summarize
    from calft.retention.tasks import evaluate_tasks

    section = settings.retention
    artifacts.require(data_dir, irt_parameters)
    artifacts.verify_data(data_dir, section.trust_data_dir, "retention")
    bundles, irt_sha256 = {}, None
    if irt_parameters:
        bundles, irt_sha256 = load_bundles(Path(irt_parameters)), artifacts.sha256(irt_parameters)
    lm = CalftLM(
        load(model_dir, settings.model, adapter),
        batch_size=section.batch_size,
        max_gen_toks=section.max_gen_toks,
        choice_format=section.choice_format,
    )
    scores = evaluate_tasks(lm, Path(data_dir), section)
    summary = summarize(scores, bundles)
    info = artifacts.provenance(
        "retention",
        {
            "model": model_record(settings.model, model_dir),
            "adapter": adapter_record(adapter),
            "retention": section.to_dict(),
            "irt_parameters": irt_parameters,
            "irt_sha256": irt_sha256,
        },
    )
    artifacts.write_frame(scores, examples, info | {"artifact": "retention_examples"})
    artifacts.write_frame(summary, output, info)
    log("retention:\n" + summary.to_string(index=False))


def perplexity(settings: PerplexitySettings, model_dir: str, adapter: str | None, data_dir: str, output: str) -> None:
    from calft.modeling.loader import adapter_record, load, model_record
    from calft.retention.harness import CalftLM
    from calft.retention.perplexity import evaluate_slices

    section = settings.perplexity
    artifacts.require(data_dir)
    artifacts.verify_data(data_dir, section.trust_data_dir, "perplexity")
    lm = CalftLM(
        load(model_dir, settings.model, adapter),
        batch_size=1,
        context=section.context,
        stride=section.stride,
        prepend_bos=section.prepend_bos,
    )
    table = evaluate_slices(lm, Path(data_dir), section.slices, section.split, section.max_documents)
    info = artifacts.provenance(
        "perplexity",
        {
            "model": model_record(settings.model, model_dir),
            "adapter": adapter_record(adapter),
            "perplexity": section.to_dict(),
            "bos": lm.bos is not None,
        },
    )
    artifacts.write_frame(table, output, info)
    log("perplexity:\n" + table.to_string(index=False))
