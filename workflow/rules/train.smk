# Soft- and hard-target LoRA training (calft.train). One job per (model, method); with more than
# one GPU the job launches torchrun (DDP) on its node. A rerun resumes from results/<model>/<method>/checkpoints.


rule train_soft:
    input:
        unpack(lambda wildcards: train_inputs(wildcards, "soft")),
        tries=lambda wildcards: tries_file(MODELS[wildcards.model]["tokenizer"], "train", TARGETS["soft_max_bins"]),
    output:
        adapter=directory(ADAPTER_PATH.replace("{method}", "soft")),
        train_log=TRAIN_LOG_PATH.replace("{method}", "soft"),
    params:
        launcher=train_launcher,
        model_dir=lambda wildcards: model_source(wildcards.model),
        model_config=lambda wildcards: json.dumps(MODELS[wildcards.model]),
        training=json.dumps(config["training"]),
        checkpoints="results/{model}/soft/checkpoints",
    log:
        "logs/train/{model}/soft.log",
    benchmark:
        "results/benchmarks/train/{model}/soft.tsv"
    threads: 2
    resources:
        gpu=config["training"]["gpus"],
        gpu_model="a100",
        mem_mb=64000,
        runtime=240,
    conda:
        "../../envs/gpu.yaml"
    shell:
        "HF_HUB_OFFLINE=1 {params.launcher} train --method soft --model-dir {params.model_dir:q} "
        "--model-config {params.model_config:q} --training {params.training:q} --targets {input.targets} "
        "--tries {input.tries} --adapter {output.adapter} --train-log {output.train_log} "
        "--checkpoints {params.checkpoints} --threads {threads} > {log} 2>&1"


rule train_hard:
    input:
        unpack(lambda wildcards: train_inputs(wildcards, "hard")),
    output:
        adapter=directory(ADAPTER_PATH.replace("{method}", "hard")),
        train_log=TRAIN_LOG_PATH.replace("{method}", "hard"),
    params:
        launcher=train_launcher,
        model_dir=lambda wildcards: model_source(wildcards.model),
        model_config=lambda wildcards: json.dumps(MODELS[wildcards.model]),
        training=json.dumps(config["training"]),
        checkpoints="results/{model}/hard/checkpoints",
    log:
        "logs/train/{model}/hard.log",
    benchmark:
        "results/benchmarks/train/{model}/hard.tsv"
    threads: 2
    resources:
        gpu=config["training"]["gpus"],
        gpu_model="a100",
        mem_mb=64000,
        runtime=720,
    conda:
        "../../envs/gpu.yaml"
    shell:
        "HF_HUB_OFFLINE=1 {params.launcher} train --method hard --model-dir {params.model_dir:q} "
        "--model-config {params.model_config:q} --training {params.training:q} --targets {input.targets} "
        "--adapter {output.adapter} --train-log {output.train_log} "
        "--checkpoints {params.checkpoints} --threads {threads} > {log} 2>&1"
