# calft: Calibration Fine-Tuning as a Snakemake workflow. See README.md.

from snakemake.utils import min_version

min_version("9.0")


# The local default, unless the command line names config files: a --configfile replaces config.yaml
# (merged into it, the models of both would run), with or without --replace-workflow-config.
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"



report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/modeling.smk"
include: "workflow/rules/targets.smk"
include: "workflow/rules/training.smk"
include: "workflow/rules/evaluation.smk"
include: "workflow/rules/retention.smk"
include: "workflow/rules/transfer.smk"
include: "workflow/rules/report.smk"


localrules:
    all,


rule all:
    default_target: True
    input:
        all_outputs(),
