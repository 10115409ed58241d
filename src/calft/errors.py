"""The one error type for user mistakes: a bad option, file, config key or input artifact."""

from __future__ import annotations


class UserError(Exception):
    """A mistake in what the user gave calft (never a bug). The command line prints it as one line
    that names the option, file or key, and exits with status 2; tracebacks are for bugs only."""
