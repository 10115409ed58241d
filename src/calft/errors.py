"""The one error type for user mistakes: a bad option, file, config key or input artifact."""

from __future__ import annotations


class UserError(Exception):
    """A mistake in what the user gave calft (never a bug). The command line prints it as one line
    that names the option, file or key, and exits with status 2; tracebacks are for bugs only."""


class RunError(Exception):
    """A run-time failure that is not a bug (non-finite numbers, a worker killed, a full disk): one
    line on stderr naming what failed, exit status 1."""


class Stopped(BaseException):
    """SIGINT or SIGTERM arrived: the command stops at once and removes its temporaries. A
    BaseException, so that no `except Exception` swallows it."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"stopped by signal {signum}")
