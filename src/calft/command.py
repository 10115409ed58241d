"""How a stage declares its subcommands. Each stage's `cli.py` adds its commands with `command`, and
names the paths they read and write with `input_path` and `output_path`; everything else a command
takes comes in one typed `--settings` section (calft.settings), checked against the config schema
where it is parsed. Cheap to import: `calft --help` imports every stage's cli.py and no torch."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from calft.errors import UserError
from calft.settings import Section, SettingsError


def _typed(section: type[Section]):
    """An argparse type: JSON, or @FILE of JSON or YAML, parsed into a typed settings section."""

    def parse(text: str):
        try:
            return (
                section.from_dict(read_mapping(text[1:], "the settings file"))
                if text.startswith("@")
                else section.from_json(text)
            )
        except SettingsError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
        except UserError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    parse.__name__ = section.__name__
    return parse


def read_mapping(path: str, what: str) -> dict:
    """The mapping in a JSON or YAML file (JSON is YAML): `what` (settings, a config) names it in errors."""
    import yaml

    try:
        with open(path, encoding="utf-8") as stream:
            values = yaml.safe_load(stream)
    except OSError as error:
        raise UserError(f"cannot read {what} {path} ({error.strerror})") from None
    except yaml.YAMLError as error:
        raise UserError(f"{what} {path} is neither JSON nor YAML ({str(error).splitlines()[0]})") from None
    if not isinstance(values, dict):
        raise UserError(f"{what} {path} holds no mapping of keys")
    return values


def command(
    sub,
    name: str,
    target: str,
    settings: type[Section] | None = None,
    settings_help: str = "",
    offline: bool = False,
    job=None,
    **options,
) -> argparse.ArgumentParser:
    """A subcommand run by `target` ('module:function', imported only when it runs), whose parameters
    are the option names. `offline`: it reads models and datasets from local folders and the Hugging
    Face cache only (HF_HUB_OFFLINE, HF_DATASETS_OFFLINE); a job never downloads. `job`
    (calft.jobs.Job): the rule whose settings `--config FILE` and the job's options derive instead
    of `--settings`, exactly as the workflow derives them."""
    parser = sub.add_parser(name, **options)
    parser.set_defaults(target=target, offline=offline, job=job)
    if settings is not None:
        parser.add_argument(
            "--settings",
            type=_typed(settings),
            required=job is None,
            help=f"{settings_help}; or @FILE, a JSON or YAML file of them"
            + ("; or, instead, --config FILE and the job's options" if job is not None else ""),
        )
        parser.set_defaults(settings_section=settings)
    if job is not None:
        from calft.jobs import JOB_OPTIONS

        group = parser.add_argument_group("the job of a config, instead of --settings (the settings its rule gives)")
        group.add_argument("--config", metavar="FILE", default=None, help="a workflow config (e.g. config.yaml)")
        for option in job.options:
            group.add_argument(f"--{option.replace('_', '-')}", default=None, help=JOB_OPTIONS[option])
    return parser


def tracking_option(parser) -> None:
    """--tracking: the tracker run (calft.tracking) that takes the job's headline metrics."""
    from calft.tracking import TrackedRun

    parser.add_argument(
        "--tracking",
        type=_typed(TrackedRun),
        default=None,
        help="JSON: trackers, project, run, group, folder (calft.tracking); none by default",
    )


def input_path(parser, flag: str, **options) -> None:
    """An option naming a file or folder the command reads (a hub id is also allowed where the help
    says so). An existing one must be a regular file or a folder of them."""
    parser.add_argument(flag, **options).calft_role = ("input", None)


def output_path(parser, flag: str, kind, **options) -> None:
    """An option naming what the command writes: a `kind` artifact (a function of the parsed options
    where it depends on them), or, for kind None, a folder it writes files into. Checked before the
    command runs: a path holding anything but a calft artifact of the same kind is refused, and so is
    an output that is, or holds, one of the command's inputs."""
    parser.add_argument(flag, **options).calft_role = ("output", kind)


def model_paths(parser, adapter: bool = True) -> None:
    """The model a command runs, and the adapter on top of it."""
    input_path(
        parser,
        "--model-dir",
        required=True,
        help="model folder (weights, tokenizer, chat template), or the download marker of a hub model",
    )
    if adapter:
        input_path(parser, "--adapter", default=None, help="peft adapter folder (omit for the base model)")


def integer_in(minimum: int, maximum: int):
    """An argparse type: an integer in [minimum, maximum]."""

    def parse(text: str) -> int:
        if not (text.isascii() and text.isdigit()) or not minimum <= int(text) <= maximum:
            raise argparse.ArgumentTypeError(f"'{text}' is not an integer in [{minimum}, {maximum}]")
        return int(text)

    return parse


def workers_option(parser, what: str) -> None:
    """Processes in parallel: how fast, never what a command computes."""
    workers = min(2, os.cpu_count() or 1)
    parser.add_argument(
        "--workers", type=integer_in(1, 256), default=workers, help=f"processes that {what} (default: {workers})"
    )


def check_paths(subparser: argparse.ArgumentParser, args: dict) -> None:
    """The declared inputs and outputs of a parsed subcommand (see input_path, output_path)."""
    from calft import artifacts

    inputs, outputs = [], []
    for action in subparser._actions:
        role, kind = getattr(action, "calft_role", (None, None))
        values = args.get(action.dest)
        for value in values if isinstance(values, list) else [values]:
            if value is None or role is None:
                continue
            flag, path = action.option_strings[0], Path(value)
            if role == "input":
                artifacts.check_input(path)
                inputs += [(flag, path.resolve())] if path.exists() else []
            elif kind is None:
                if path.exists() and not path.is_dir():
                    raise UserError(f"{flag} {path} is not a folder")
                outputs.append((flag, path))
            else:
                artifacts.check_output(value, kind(args) if callable(kind) else kind)
                outputs.append((flag, path))
    for position, (output_flag, output) in enumerate(outputs):
        resolved = output.resolve()
        for input_flag, path in inputs:
            if path == resolved or resolved in path.parents:
                raise UserError(f"{output_flag} {output} would overwrite the input {input_flag} {path}")
        for other_flag, other in outputs[position + 1 :]:
            first, second = sorted(
                [(output_flag, resolved), (other_flag, other.resolve())], key=lambda o: len(o[1].parts)
            )
            if first[1] == second[1] or first[1] in second[1].parents:
                raise UserError(
                    f"{first[0]} {first[1]} and {second[0]} {second[1]} overlap: each output needs a place of its own"
                )
