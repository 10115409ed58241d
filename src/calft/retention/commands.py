"""The retention stage's commands: prepare the evaluation data, fetch the IRT parameters, run the
retention suite and PALOMA perplexity through lm-eval."""

from __future__ import annotations

import logging
from pathlib import Path

from calft import artifacts
from calft.settings import ModelEntry, Perplexity, Retention

log = logging.getLogger(__name__).info


def eval_data(what: str, settings: str, output: str) -> None:
    """Offline retention probes, tinyBenchmarks from the hub, offline perplexity slices, or PALOMA
    from the hub (gated), in a folder whose provenance records the commits read and every file's
    checksum."""
    from calft.retention import data

    section = (Perplexity if what in ("perplexity-offline", "paloma") else Retention).from_json(settings)
    fetched = None
    with artifacts.atomic_path(output, f"eval_data/{what}") as folder:
        folder.mkdir()
        if what == "retention-offline":
            data.arithmetic_probe(section.probe_items, section.seed).to_parquet(folder / "arithmetic.parquet",
                                                                                  index=False)
            data.choice_probe(section.probe_items, section.seed).to_parquet(folder / "multiple_choice.parquet",
                                                                              index=False)
        elif what == "retention-tinybenchmarks":
            fetched = data.fetch_tinybenchmarks(folder, section.tinybenchmarks_source, section.tinybenchmarks_revisions)
        elif what == "paloma":
            fetched = data.fetch_paloma(folder, section.paloma_repository, section.paloma_revision, section.slices,
                                        section.split)
        else:
            for name, documents in data.offline_slices(section.offline_max_documents,
                                                       section.offline_max_chars).items():
                data.write_slice(folder / name, documents)
        artifacts.record_data(folder, artifacts.provenance(f"eval_data/{what}", section.to_dict()) | {"revisions": fetched})
    log(f"wrote {what} data to {output}")


def fetch_irt(url: str, sha256: str | None, output: str) -> None:
    from calft.retention import data

    digest = data.fetch_irt_parameters(url, Path(output), sha256)
    log(f"fetched {url} to {output}: sha256 {digest}")


def _harness_model(model_dir: str, model_config: ModelEntry, adapter: str | None, **options):
    from calft.modeling.loader import load
    from calft.retention.harness import CalftLM

    artifacts.require(adapter)
    return CalftLM(load(model_dir, model_config, Path(adapter) if adapter else None), **options)


def retention(model_dir: str, adapter: str | None, model_config: ModelEntry, retention: Retention, data_dir: str,
              irt_parameters: str | None, examples: str, output: str) -> None:
    from calft.retention import tasks
    from calft.retention.data import load_bundles

    artifacts.require(data_dir, irt_parameters)
    artifacts.verify_data(data_dir, retention.trust_data_dir, "retention")
    bundles, irt_sha256 = {}, None
    if irt_parameters:
        bundles, irt_sha256 = load_bundles(Path(irt_parameters)), artifacts.sha256(irt_parameters)
    lm = _harness_model(model_dir, model_config, adapter, batch_size=retention.batch_size,
                        max_gen_toks=retention.max_gen_toks)
    scores = tasks.evaluate(lm, Path(data_dir), retention)
    summary = tasks.summarize(scores, bundles)
    info = artifacts.provenance("retention", {"model": model_config.to_dict(), "adapter": adapter,
                                              "retention": retention.to_dict(), "irt_parameters": irt_parameters,
                                              "irt_sha256": irt_sha256})
    artifacts.write_frame(scores, examples, info | {"artifact": "retention_examples"})
    artifacts.write_frame(summary, output, info)
    log("retention:\n" + summary.to_string(index=False))


def perplexity(model_dir: str, adapter: str | None, model_config: ModelEntry, perplexity: Perplexity, data_dir: str,
               output: str) -> None:
    from calft.retention import perplexity as paloma

    artifacts.require(data_dir)
    artifacts.verify_data(data_dir, perplexity.trust_data_dir, "perplexity")
    lm = _harness_model(model_dir, model_config, adapter, batch_size=1, context=perplexity.context,
                        stride=perplexity.stride, prepend_bos=perplexity.prepend_bos)
    table = paloma.evaluate(lm, Path(data_dir), perplexity.slices, perplexity.split, perplexity.max_documents)
    info = artifacts.provenance("perplexity", {"model": model_config.to_dict(), "adapter": adapter,
                                               "perplexity": perplexity.to_dict(), "bos": lm.bos is not None})
    artifacts.write_frame(table, output, info)
    log("perplexity:\n" + table.to_string(index=False))
