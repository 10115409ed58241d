# Discretize every prompt's target law into canonical strings with masses (calft.discretize).
# The output is a folder of parquet parts, one per family, written by parallel workers.


rule discretize:
    output:
        directory(TARGETS_PATH),
    params:
        selection=discretize_selection,
    log:
        "logs/discretize/{prompt_set}_d{decimals}_b{bins}.log",
    benchmark:
        "results/benchmarks/discretize/{prompt_set}_d{decimals}_b{bins}.tsv"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=30,
    conda:
        "../../envs/cpu.yaml"
    shell:
        "calft discretize --prompt-set {wildcards.prompt_set} --decimals {wildcards.decimals} "
        "--max-bins {wildcards.bins} {params.selection} --workers {threads} --output {output} > {log} 2>&1"
