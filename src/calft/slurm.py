"""The site settings of profiles/slurm: the SLURM account and partitions, which the tracked profile
reads from environment variables. They come from the user's environment, else from the untracked
overlay profiles/slurm/site.yaml; a run whose profile names one that neither sets stops before
anything is submitted, naming it."""

from __future__ import annotations

import os
import re
from pathlib import Path

from calft.errors import UserError

SITE_VARIABLES = {
    "CALFT_SLURM_ACCOUNT": "the SLURM account to charge (sbatch --account)",
    "CALFT_SLURM_PARTITION": "the partition of the CPU jobs",
    "CALFT_SLURM_GPU_PARTITION": "the partition of the GPU jobs (A100 nodes)",
}
OVERLAY = Path("profiles/slurm/site.yaml")
_REFERENCE = re.compile(r"\$\{?(CALFT_SLURM_\w+?)\}?(?:\W|$)")


def read_overlay(path: Path) -> dict[str, str]:
    """The overlay's settings (a YAML mapping of the SITE_VARIABLES to strings); none without one."""
    import yaml

    if not path.is_file():
        return {}
    settings = yaml.safe_load(path.read_text()) or {}
    if not isinstance(settings, dict):
        raise UserError(f"{path} must be a mapping of {', '.join(SITE_VARIABLES)} to their values")
    unknown = sorted(set(settings) - set(SITE_VARIABLES))
    if unknown:
        raise UserError(f"{path}: unknown setting {unknown[0]} (known: {', '.join(SITE_VARIABLES)})")
    return {name: str(value) for name, value in settings.items() if value not in (None, "")}


def apply_site(raw_values: list[str], environ=os.environ, overlay: Path = OVERLAY) -> None:
    """Fill the environment from the overlay where it lacks a setting, then check that every site
    variable the profile's resources (`raw_values`) refer to is set."""
    for name, value in read_overlay(overlay).items():
        environ.setdefault(name, value)
    referred = [name for raw in raw_values for name in _REFERENCE.findall(str(raw))]
    missing = [name for name in dict.fromkeys(referred) if not environ.get(name)]
    if missing:
        name = missing[0]
        raise UserError(
            f"set {name}, {SITE_VARIABLES.get(name, 'which profiles/slurm uses')}: `export {name}=...` "
            f"or `{name}: ...` in {overlay} (untracked)"
        )
