"""String Seed of Thought's instructions (reference spec §9): four texts, one per task (numeric
sampling, one answer to an open-ended question) and chat protocol (a system message, or the
developer message of GPT-OSS's harmony format). Each is read from the file the config names
(`transfer.ssot.instructions`); calft's own wording ships in `ssot_instructions/` beside this
module and is the default. The text is a model input, so results record its checksum. Pure: no torch.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from calft.errors import UserError

ROLES = ("numeric", "open_ended", "numeric_harmony", "open_ended_harmony")
DEFAULTS = Path(__file__).with_name("ssot_instructions")


def role(protocol: str, open_ended: bool = False) -> str:
    """The instruction a model speaking `protocol` needs for numeric sampling or an open-ended answer."""
    task = "open_ended" if open_ended else "numeric"
    return f"{task}_harmony" if protocol == "harmony" else task


def instruction_file(configured: dict, name: str) -> str:
    """The file of instruction `name`: the one the config names, else calft's wording."""
    return configured.get(name) or str(DEFAULTS / f"{name}.txt")


@dataclass(frozen=True)
class Instruction:
    role: str
    text: str
    path: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    def record(self) -> dict:
        return {"role": self.role, "path": self.path, "sha256": self.sha256}


def read(path: str, name: str) -> Instruction:
    """The instruction in `path`, leading and trailing whitespace removed (as the reference strips
    its own); a missing, unreadable or empty file is an error naming it."""
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"the SSOT instruction '{name}' cannot be read from {path}: {error}") from None
    if not text:
        raise UserError(f"the SSOT instruction '{name}' in {path} is empty")
    return Instruction(name, text, str(path))


def job_instruction(ssot: bool, path: str | None, protocol: str, open_ended: bool = False) -> Instruction | None:
    """The instruction a generating job reads: one for String Seed of Thought prompting, none else."""
    name = role(protocol, open_ended)
    if not ssot:
        if path is not None:
            raise UserError("--ssot-instruction is for String Seed of Thought prompting, not direct prompting")
        return None
    if path is None:
        raise UserError(
            f"String Seed of Thought prompting needs --ssot-instruction: the file of the instruction '{name}'"
        )
    return read(path, name)
