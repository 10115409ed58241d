# Models (calft.modeling). Both rules run on the submit host (localrules): compute nodes often have
# no internet access, and later jobs load models from resources/ or from the Hugging Face cache offline.


localrules:
    prepare_embedded_model,
    download_hub_model,


rule prepare_embedded_model:
    output:
        directory(layout.EMBEDDED_MODEL.replace("{model}", "{embedded_model}")),
    params:
        settings=settings_json(source="embedded"),
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
        settings=lambda wildcards: settings_json(source=MODELS[wildcards.hub_model]["source"],
                                                 revision=MODELS[wildcards.hub_model]["revision"] or "main"),
    log:
        "logs/prepare_model/{hub_model}.log",
    benchmark:
        "results/benchmarks/prepare_model/{hub_model}.tsv"
    priority: 20
    conda:
        "../../envs/cpu.yaml"
    shell:
        "calft prepare-model --settings {params.settings:q} --output {output:q} > {log:q} 2>&1"
