# Models (calft.modeling). The preparing and downloading rules run on the submit host (localrules):
# compute nodes often have no internet access, and later jobs load models and adapters from resources/
# or from the Hugging Face cache offline. A declared adapter (the config's `adapters`) is checked
# against its base model and imported into results/<model>/<name>/adapter, where every evaluation
# loads it as it loads a trained one.


localrules:
    prepare_embedded_model,
    download_hub_model,
    download_hub_adapter,


rule prepare_embedded_model:
    output:
        directory(layout.EMBEDDED_MODEL.replace("{model}", "{embedded_model}")),
    params:
        settings=job_settings("prepare_embedded_model"),
    log:
        "logs/prepare_model/{embedded_model}.log",
    benchmark:
        "results/benchmarks/prepare_model/{embedded_model}.tsv"
    priority: 20  # every model job waits for it: it starts first
    conda:
        "../../envs/cpu.yaml"
    shell:
        "calft prepare-model --settings {params.settings:q} --output {output:q} > {log:q} 2>&1"


rule download_hub_model:
    output:
        layout.HUB_MODEL_MARKER.replace("{model}", "{hub_model}"),
    params:
        settings=job_settings("download_hub_model"),
    log:
        "logs/prepare_model/{hub_model}.log",
    benchmark:
        "results/benchmarks/prepare_model/{hub_model}.tsv"
    priority: 20
    conda:
        "../../envs/cpu.yaml"
    shell:
        "calft prepare-model --settings {params.settings:q} --output {output:q} > {log:q} 2>&1"


rule download_hub_adapter:
    output:
        layout.HUB_ADAPTER_MARKER,
    params:
        settings=job_settings("download_hub_adapter"),
    log:
        "logs/prepare_adapter/{adapter}.log",
    benchmark:
        "results/benchmarks/prepare_adapter/{adapter}.tsv"
    priority: 20
    conda:
        "../../envs/cpu.yaml"
    shell:
        "calft prepare-model --settings {params.settings:q} --output {output:q} > {log:q} 2>&1"


rule import_adapter:
    input:
        unpack(import_adapter_inputs),
    output:
        directory(layout.ADAPTER),
    wildcard_constraints:
        method=_alternatives(ADAPTERS),
        variant="(?:)",  # no training variant
    params:
        model=lambda wildcards: shlex.quote(model_source(wildcards.model)),
        settings=job_settings("import_adapter"),
    log:
        "logs/import_adapter/{model}/{method}{variant}.log",
    benchmark:
        "results/benchmarks/import_adapter/{model}/{method}{variant}.tsv"
    threads: 1
    priority: 10
    resources:
        mem_mb=64000,  # the base model's weights, on the CPU
        runtime=60,
    conda:
        "../../envs/cpu.yaml"
    shell:
        "calft import-adapter --settings {params.settings:q} --model-dir {params.model} --source {input.source:q} "
        "--output {output:q} > {log:q} 2>&1"
