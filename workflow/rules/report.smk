# Report (calft.report): tables and figures from the per-prompt parquet files, on CPU, without any
# model. The rule's inputs are exactly the files the report reads (calft.layout.report_inputs).
# Rebuild them from cached parquet alone with: snakemake --cores 1 tables --allowed-rules aggregate
# The ablations (ablations: in the config) have their own report and target, never part of `all`:
#   snakemake --cores 1 ablations --allowed-rules aggregate_ablations


localrules:
    aggregate,
    tables,
    aggregate_ablations,
    ablations,


rule aggregate:
    input:
        aggregate_inputs,
        ood_targets=[reference_targets("ood")] if "ood" in PROMPTS["evaluation"] else [],
    output:
        [report_item(path) if path.endswith((".png", ".md")) else path for path in aggregate_outputs()],
    params:
        settings=job_settings("aggregate"),
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


rule aggregate_ablations:
    input:
        ablation_inputs,
        construction_cost=layout.CONSTRUCTION_COST,
        ood_targets=[reference_targets("ood")] if "ood" in PROMPTS["evaluation"] else [],
    output:
        [report_item(path) if path.endswith((".png", ".md")) else path for path in ablation_outputs()],
    params:
        settings=job_settings("aggregate_ablations"),
        ood_targets=ood_targets_option,
        folder=folder_of("table24_construction_cost.csv"),
    log:
        "logs/aggregate/ablations.log",
    benchmark:
        "results/benchmarks/aggregate/ablations.tsv"
    conda:
        "../../envs/cpu.yaml"
    shell:
        "calft aggregate-ablations --settings {params.settings:q} --results results "
        "--construction-cost {input.construction_cost:q} {params.ood_targets} --output {params.folder:q} > {log:q} 2>&1"


rule ablations:
    input:
        ablation_targets(),
