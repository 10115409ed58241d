"""The `calft` command line: assembles the commands that each stage declares in its `cli.py` and
runs the one asked for. A command's function, in its stage's `commands` module, is imported only
when it runs, so `calft --help` imports no torch."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import signal
import sys
import threading

from calft.command import check_paths
from calft.errors import RunError, Stopped, UserError

STAGES = ("targets", "modeling", "training", "evaluation", "transfer", "retention", "report")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="calft", description="Calibration Fine-Tuning stages. Each subcommand is one workflow step."
    )
    top.add_argument("--version", action=_Version)
    sub = top.add_subparsers(dest="command", required=True)
    for module in [*(f"calft.{stage}.cli" for stage in STAGES), "calft.plan"]:
        importlib.import_module(module).add_commands(sub)
    return top


class _Version(argparse.Action):
    """--version: calft's version and the git commit of its source tree, the code version every
    artifact records (computed only when asked)."""

    def __init__(self, option_strings, dest, **options):
        super().__init__(
            option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="print calft's version and exit"
        )

    def __call__(self, parser, namespace, values, option_string=None):
        from calft.artifacts import code_version

        print(f"calft {code_version()}")
        parser.exit()


LIBRARY_BARS_OFF = {"TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}


def quiet_library_bars() -> None:
    """A job's log gets calft's progress lines (calft.progress) and not the libraries' bars, which
    fill a file with carriage returns: their default, read when tqdm is first imported, is off
    (calft's bars pass theirs explicitly). A variable the user set is kept."""
    for name, value in LIBRARY_BARS_OFF.items():
        os.environ.setdefault(name, value)


def configure_logging() -> None:
    """calft's own messages on stderr, one timestamped line each."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[calft %(asctime)s] %(message)s", datefmt="%H:%M:%S"))
    logger = logging.getLogger("calft")
    logger.handlers = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False


def _stop(signum: int, _frame) -> None:
    raise Stopped(signum)


def _cap_threads() -> None:
    """Never more compute threads than the CPUs this process may run on: a cluster without cgroups
    grants a job more CPUs than its node has cores, and oversubscribed threads crawl."""
    available = len(os.sched_getaffinity(0))
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if os.environ.get(name, "").isdigit() and int(os.environ[name]) > available:
            os.environ[name] = str(available)


def load_run(path: str):
    """A config file, validated as the workflow validates it (defaults filled in), as the rules read it."""
    from calft.command import read_mapping
    from calft.config import validate
    from calft.jobs import Run

    values = read_mapping(path, "the config")
    validate(values, [path])
    return Run(values)


def derive_settings(subparser: argparse.ArgumentParser, args: dict) -> None:
    """Replace --config FILE and the job's options in `args` by the settings its rule derives
    (calft.jobs), unless --settings gave them."""
    args.pop("settings_section", None)
    job = args.pop("job", None)
    if job is None:
        return
    config = args.pop("config")
    given = {option: args.pop(option) for option in job.options}
    if args["settings"] is not None:
        if config is not None:
            raise UserError("give --settings or --config, not both")
        return
    if config is None:
        raise UserError("give --settings, or --config FILE with the job's options (see --help)")
    values = job.settings(load_run(config), **given)
    args["settings"] = subparser.get_default("settings_section").from_json(json.dumps(values))


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand. Exit status: 0; 2 for a user mistake (one line on stderr naming the
    option, file or key); 1 for a run-time failure (one line: non-finite numbers, a killed worker, a
    full disk); 3 for training stopped by SIGTERM after a checkpoint; 128 + the signal for a command
    stopped by SIGINT or SIGTERM (within a second, its temporaries removed)."""
    quiet_library_bars()
    top = parser()
    try:
        args = vars(top.parse_args(argv))
    except SystemExit as stopped:  # argparse: --help, or a bad option already explained
        return stopped.code
    subparsers = top._subparsers._group_actions[0].choices
    command, target = args.pop("command"), args.pop("target")
    module, function = target.split(":")
    environment = dict(os.environ)
    if args.pop("offline"):
        os.environ |= {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    configure_logging()
    _cap_threads()
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        logging.getLogger("calft").info(f"CUDA_VISIBLE_DEVICES={os.environ['CUDA_VISIBLE_DEVICES']}")
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = (
        {signum: signal.signal(signum, _stop) for signum in (signal.SIGTERM, signal.SIGINT)} if in_main_thread else {}
    )
    try:
        derive_settings(subparsers[command], args)
        check_paths(subparsers[command], args)
        getattr(importlib.import_module(module), function)(**args)
    except UserError as error:
        print(f"calft {command}: error: {error}", file=sys.stderr)
        return 2
    except (RunError, OSError) as error:  # OSError: a full disk, a read-only or vanished file system
        print(f"calft {command}: failed: {error}", file=sys.stderr)
        return 1
    except Stopped as stopped:
        print(f"calft {command}: {stopped}", file=sys.stderr)
        return 128 + stopped.signum
    finally:
        os.environ.clear()
        os.environ.update(environment)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
