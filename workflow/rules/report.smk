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
        settings=settings_json(**REPORT),
        ood_targets=ood_targets_option,
        tables=folder_of("summary.csv"),
        figures=folder_of("figure2_family_median_w1.png"),
    log:
        "logs/aggregate/aggregate.log",
    benchmark:
        "results/benchmarks/aggregate/aggregate.tsv"
    conda:
        "../../envs/cpu.yaml"
    shell:
        "calft aggregate --settings {params.settings:q} --results results {params.ood_targets} "
        "--tables {params.tables:q} --figures {params.figures:q} > {log:q} 2>&1"


rule tables:
    input:
        aggregate_outputs(),
