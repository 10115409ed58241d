# Model preparation. Both rules run on the submit host (localrules): compute nodes often have no
# internet access, and later jobs load models from resources/ or from the Hugging Face cache offline.

localrules:
    prepare_embedded_model,
    download_hub_model,


rule prepare_embedded_model:
    output:
        directory("resources/models/{embedded_model}"),
    log:
        "logs/prepare_model/{embedded_model}.log",
    benchmark:
        "results/benchmarks/prepare_model/{embedded_model}.tsv"
    conda:
        "../../envs/cpu.yaml"
    shell:
        "calft prepare-model --source embedded --output {output} > {log} 2>&1"


rule download_hub_model:
    output:
        "resources/models/{hub_model}.json",
    params:
        model_id=lambda wildcards: MODELS[wildcards.hub_model]["source"],
        revision=lambda wildcards: MODELS[wildcards.hub_model]["revision"] or "main",
    log:
        "logs/prepare_model/{hub_model}.log",
    benchmark:
        "results/benchmarks/prepare_model/{hub_model}.tsv"
    conda:
        "../../envs/cpu.yaml"
    shell:
        "calft prepare-model --source {params.model_id:q} --revision {params.revision:q} "
        "--output {output} > {log} 2>&1"
