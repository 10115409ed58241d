# Retention and perplexity (calft.retention): the TinyBenchmarks tasks (or the offline probes) and
# PALOMA perplexity (or the offline slices) through lm-eval, for the base model and each adapter.
# Their data is generated offline for the local default, or fetched once on the head node
# (localrules: compute nodes need no internet).


localrules:
    retention_data,
    fetch_irt_parameters,
    fetch_paloma,


rule retention_data:
    output:
        directory(layout.RETENTION_DATA),
    wildcard_constraints:
        suite=_alternatives(SUITES),
    params:
        settings=job_settings("retention_data"),
    log:
        "logs/eval_data/retention_{suite}.log",
    benchmark:
        "results/benchmarks/eval_data/retention_{suite}.tsv"
    conda:
        "../../envs/cpu.yaml"
    shell:
        "calft retention-data --settings {params.settings:q} --output {output:q} > {log:q} 2>&1"


rule fetch_irt_parameters:
    output:
        RETENTION["irt_parameters"] or layout.IRT_PARAMETERS,
    params:
        settings=job_settings("fetch_irt_parameters"),
    log:
        "logs/eval_data/fetch_irt_parameters.log",
    conda:
        "../../envs/cpu.yaml"
    shell:
        "calft fetch-irt --settings {params.settings:q} --output {output:q} > {log:q} 2>&1"


rule fetch_paloma:
    output:
        directory(layout.PALOMA),
    params:
        settings=job_settings("fetch_paloma"),
    log:
        "logs/eval_data/fetch_paloma.log",
    benchmark:
        "results/benchmarks/eval_data/fetch_paloma.tsv"
    conda:
        "../../envs/cpu.yaml"
    shell:
        "HF_HUB_DISABLE_PROGRESS_BARS=1 calft perplexity-data --settings {params.settings:q} --output {output:q} "
        "> {log:q} 2>&1"


rule perplexity_data_offline:
    output:
        directory(layout.PALOMA_OFFLINE),
    params:
        settings=job_settings("perplexity_data_offline"),
    log:
        "logs/eval_data/perplexity_offline.log",
    benchmark:
        "results/benchmarks/eval_data/perplexity_offline.tsv"
    conda:
        "../../envs/cpu.yaml"
    shell:
        "calft perplexity-data --settings {params.settings:q} --output {output:q} > {log:q} 2>&1"


rule retention:
    input:
        unpack(model_and_adapter),
        data=RETENTION_DATA,
        irt=[RETENTION["irt_parameters"]] if USE_IRT else [],
    output:
        tasks=layout.RETENTION,
        examples=layout.RETENTION_EXAMPLES,
    params:
        model=model_paths,
        settings=job_settings("retention"),
        irt=irt_option,
    log:
        "logs/retention/{model}/{method}{variant}.log",
    benchmark:
        "results/benchmarks/retention/{model}/{method}{variant}.tsv"
    threads: 1
    resources:
        gpu=RETENTION["gpus"],
        mem_mb=64000,
        runtime=120,
    conda:
        "../../envs/gpu.yaml"
    shell:
        "calft retention --settings {params.settings:q} {params.model} --data-dir {input.data:q} {params.irt} "
        "--examples {output.examples:q} --output {output.tasks:q} > {log:q} 2>&1"


rule perplexity:
    input:
        unpack(model_and_adapter),
        data=PERPLEXITY_DATA,
    output:
        layout.PERPLEXITY,
    params:
        model=model_paths,
        settings=job_settings("perplexity"),
    log:
        "logs/perplexity/{model}/{method}{variant}.log",
    benchmark:
        "results/benchmarks/perplexity/{model}/{method}{variant}.tsv"
    threads: 1
    resources:
        gpu=PERPLEXITY["gpus"],
        mem_mb=64000,
        runtime=240,
    conda:
        "../../envs/gpu.yaml"
    shell:
        "calft perplexity --settings {params.settings:q} {params.model} --data-dir {input.data:q} "
        "--output {output:q} > {log:q} 2>&1"
