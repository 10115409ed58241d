# Retention and perplexity (calft.retention): the TinyBenchmarks tasks (or the offline probes) and
# PALOMA perplexity (or the offline slices) through lm-eval, for base and each adapter. Their data is
# generated offline for the local default, or fetched once on the head node (localrules: compute
# nodes need no internet).


localrules:
    retention_data_tinybenchmarks,
    fetch_irt_parameters,
    fetch_paloma,


rule retention_data_offline:
    output:
        directory(layout.RETENTION_DATA.format(suite="offline")),
    params:
        settings=json.dumps(RETENTION),
    log:
        "logs/eval_data/retention_offline.log",
    benchmark:
        "results/benchmarks/eval_data/retention_offline.tsv"
    conda:
        "../../envs/cpu.yaml"
    shell:
        "calft eval-data retention-offline --settings {params.settings:q} --output {output:q} > {log:q} 2>&1"


rule retention_data_tinybenchmarks:
    output:
        directory(layout.RETENTION_DATA.format(suite="tinybenchmarks")),
    params:
        settings=json.dumps(RETENTION),
    log:
        "logs/eval_data/retention_tinybenchmarks.log",
    benchmark:
        "results/benchmarks/eval_data/retention_tinybenchmarks.tsv"
    conda:
        "../../envs/cpu.yaml"
    shell:
        "calft eval-data retention-tinybenchmarks --settings {params.settings:q} --output {output:q} > {log:q} 2>&1"


rule fetch_irt_parameters:
    output:
        RETENTION["irt_parameters"] or layout.IRT_PARAMETERS,
    params:
        url=RETENTION["irt_url"],
        sha256=f"--sha256 {shlex.quote(RETENTION['irt_sha256'])}" if RETENTION["irt_sha256"] else "",
    log:
        "logs/eval_data/fetch_irt_parameters.log",
    conda:
        "../../envs/cpu.yaml"
    shell:
        "calft fetch-irt --url {params.url:q} {params.sha256} --output {output:q} > {log:q} 2>&1"


rule fetch_paloma:
    output:
        directory(layout.PALOMA),
    params:
        settings=json.dumps(PERPLEXITY),
    log:
        "logs/eval_data/fetch_paloma.log",
    benchmark:
        "results/benchmarks/eval_data/fetch_paloma.tsv"
    conda:
        "../../envs/cpu.yaml"
    shell:
        "HF_HUB_DISABLE_PROGRESS_BARS=1 calft eval-data paloma --settings {params.settings:q} --output {output:q} "
        "> {log:q} 2>&1"


rule perplexity_data_offline:
    output:
        directory(layout.PALOMA_OFFLINE),
    params:
        settings=json.dumps(PERPLEXITY),
    log:
        "logs/eval_data/perplexity_offline.log",
    benchmark:
        "results/benchmarks/eval_data/perplexity_offline.tsv"
    conda:
        "../../envs/cpu.yaml"
    shell:
        "calft eval-data perplexity-offline --settings {params.settings:q} --output {output:q} > {log:q} 2>&1"


rule retention:
    input:
        unpack(model_and_adapter),
        data=RETENTION_DATA,
        irt=[RETENTION["irt_parameters"]] if USE_IRT else [],
    output:
        tasks=layout.RETENTION,
        examples=layout.RETENTION_EXAMPLES,
    params:
        **EVALUATED_MODEL_PARAMS,
        retention=json.dumps(RETENTION),
        irt=irt_option,
    log:
        "logs/retention/{model}/{method}.log",
    benchmark:
        "results/benchmarks/retention/{model}/{method}.tsv"
    threads: 1
    resources:
        gpu=RETENTION["gpus"],
        mem_mb=64000,
        runtime=120,
    conda:
        "../../envs/gpu.yaml"
    shell:
        "HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 calft retention --model-dir {params.model_dir:q} {params.adapter} "
        "--model-config {params.model_config:q} --retention {params.retention:q} --data-dir {input.data:q} "
        "{params.irt} --examples {output.examples:q} --output {output.tasks:q} > {log:q} 2>&1"


rule perplexity:
    input:
        unpack(model_and_adapter),
        data=PERPLEXITY_DATA,
    output:
        layout.PERPLEXITY,
    params:
        **EVALUATED_MODEL_PARAMS,
        perplexity=json.dumps(PERPLEXITY),
    log:
        "logs/perplexity/{model}/{method}.log",
    benchmark:
        "results/benchmarks/perplexity/{model}/{method}.tsv"
    threads: 1
    resources:
        gpu=PERPLEXITY["gpus"],
        mem_mb=64000,
        runtime=240,
    conda:
        "../../envs/gpu.yaml"
    shell:
        "HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 calft perplexity --model-dir {params.model_dir:q} {params.adapter} "
        "--model-config {params.model_config:q} --perplexity {params.perplexity:q} --data-dir {input.data:q} "
        "--output {output:q} > {log:q} 2>&1"
