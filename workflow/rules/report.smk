# Report (calft.report): tables and figures from the per-prompt parquet files, on CPU, without any
# model. The rule's inputs are exactly the files the report reads (calft.layout.report_inputs).
# Rebuild them from cached parquet alone with: snakemake --cores 1 tables --allowed-rules aggregate


localrules:
    aggregate,
    tables,


rule aggregate:
    input:
        aggregate_inputs,
        ood_targets=[targets_file("ood", TARGETS["eval_max_bins"])] if "ood" in PROMPTS["evaluation"] else [],
    output:
        [report_item(path) if path.endswith((".png", ".md")) else path for path in aggregate_outputs()],
    params:
        models=",".join(RUN_MODELS),
        selection=aggregate_options(),
        ood_targets=ood_targets_option,
        tables=lambda wildcards, output: Path(output[0]).parent,  # summary.csv comes first
        figures=lambda wildcards, output: Path(output[-1]).parent,  # figures come last
    log:
        "logs/aggregate/aggregate.log",
    benchmark:
        "results/benchmarks/aggregate/aggregate.tsv"
    conda:
        "../../envs/cpu.yaml"
    shell:
        "calft aggregate --results results --models {params.models:q} {params.selection} {params.ood_targets} "
        "--tables {params.tables:q} --figures {params.figures:q} > {log:q} 2>&1"


rule tables:
    input:
        aggregate_outputs(),
