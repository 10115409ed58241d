# Targets (calft.targets): every prompt's target law discretized into canonical strings with masses,
# and the token tries over them, once per tokenizer shared by several models. Both outputs are
# folders of parquet parts, one per family, written by parallel workers. The construction cost of
# both over a precision grid (the ablations' Table 24) is measured one prompt at a time.


rule discretize:
    output:
        directory(layout.TARGETS),
    params:
        settings=job_settings("discretize"),
    log:
        "logs/discretize/{prompt_set}_d{decimals}_b{bins}.log",
    benchmark:
        "results/benchmarks/discretize/{prompt_set}_d{decimals}_b{bins}.tsv"
    threads: 1  # seconds of work: one core, the other prepares the model meanwhile
    priority: 10  # on the critical path (targets, tries, training) of every run
    resources:
        mem_mb=8000,
        runtime=30,
    conda:
        "../../envs/cpu.yaml"
    shell:
        "calft discretize --settings {params.settings:q} --workers {threads} --output {output:q} > {log:q} 2>&1"


rule build_tries:
    input:
        unpack(tries_inputs),
    output:
        directory(layout.TRIES),
    params:
        tokenizer=lambda wildcards: model_source(tokenizer_users(wildcards.tokenizer)[0]),
        settings=job_settings("build_tries"),
        same_tokenizer=same_tokenizer_options,
    log:
        "logs/build_tries/{tokenizer}/{prompt_set}_d{decimals}_b{bins}.log",
    benchmark:
        "results/benchmarks/build_tries/{tokenizer}/{prompt_set}_d{decimals}_b{bins}.tsv"
    threads: 1  # locally beside the first training; the SLURM profile gives it more
    priority: 10
    resources:
        mem_mb=16000,
        runtime=60,
    conda:
        "../../envs/cpu.yaml"
    shell:
        "calft build-tries --settings {params.settings:q} --targets {input.targets:q} --tokenizer {params.tokenizer:q} "
        "{params.same_tokenizer} --workers {threads} --output {output:q} > {log:q} 2>&1"


rule construction_cost:
    input:
        unpack(construction_cost_inputs),
    output:
        layout.CONSTRUCTION_COST,
    params:
        tokenizer_option=construction_cost_tokenizer_option,
        settings=job_settings("construction_cost"),
    log:
        "logs/construction_cost.log",
    benchmark:
        "results/benchmarks/construction_cost.tsv"
    resources:
        mem_mb=construction_cost_mem_mb,  # the reference's construction holds a prompt's whole decimal grid
        runtime=120,
    conda:
        "../../envs/cpu.yaml"
    shell:
        "calft construction-cost --settings {params.settings:q} {params.tokenizer_option} --output {output:q} > {log:q} 2>&1"
