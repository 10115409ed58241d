# Scoring: per-prompt valid rate, W1 and normalized W1 from the samples, on CPU (calft.score).


rule score:
    input:
        samples=SAMPLES_PATH,
        targets=lambda wildcards: targets_file(wildcards.prompt_set, TARGETS["eval_max_bins"]),
    output:
        SCORES_PATH,
    log:
        "logs/score/{model}/{method}/{prompt_set}.log",
    benchmark:
        "results/benchmarks/score/{model}/{method}/{prompt_set}.tsv"
    resources:
        mem_mb=4000,
        runtime=10,
    conda:
        "../../envs/cpu.yaml"
    shell:
        "calft score --samples {input.samples} --targets {input.targets} --output {output} > {log} 2>&1"
