"""calft: Calibration Fine-Tuning of chat language models, as a Snakemake workflow."""

__version__ = "0.1.0"
