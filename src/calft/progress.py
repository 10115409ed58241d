"""Progress of a long job, for its log file: a tqdm bar written as one plain line every
PROGRESS_SECONDS (done / total, percentage, elapsed, ETA, rate, and what the job adds), and a closing
line with the total time and throughput. No carriage returns: a log file gets lines.

Cheap to import (tqdm only): every job takes it.
"""

from __future__ import annotations

import logging
import os

from tqdm import tqdm

PROGRESS_SECONDS = float(os.environ.get("CALFT_PROGRESS_SECONDS", "15"))
FORMAT = (
    "{desc}: {n_fmt}/{total_fmt} {unit} ({percentage:.0f}%), {elapsed} elapsed, ETA {remaining}, {rate_fmt}{postfix}"
)

tqdm.monitor_interval = 0  # no monitor thread in jobs that fork or join a process group


class _LogLines:
    """The file tqdm writes to: each refresh goes to the log as one line."""

    def __init__(self, logger: logging.Logger):
        self.logger = logger

    def write(self, text: str) -> None:
        line = text.strip("\r\n ")
        if line:
            self.logger.info(line)

    def flush(self) -> None:
        pass


class _Progress(tqdm):
    """A bar whose closing line says the job finished: an interrupted or failed loop closes silently
    (its last line stays the error's)."""

    def close(self) -> None:
        if self.total is not None and self.n < self.total:
            self.leave = False
        super().close()


def progress(
    iterable=None, total: int | None = None, label: str = "", unit: str = "it", initial: int = 0, quiet: bool = False
):
    """A tqdm bar over `iterable` (or `total` manual updates, from `initial`) that logs a line every
    PROGRESS_SECONDS and one when it closes; `quiet`: none (another process of the job reports)."""
    return _Progress(
        iterable,
        total=total,
        initial=initial,
        disable=quiet,
        desc=label,
        unit=unit,
        file=_LogLines(logging.getLogger("calft.progress")),
        mininterval=PROGRESS_SECONDS,
        maxinterval=PROGRESS_SECONDS,
        bar_format=FORMAT,
        dynamic_ncols=False,
    )
