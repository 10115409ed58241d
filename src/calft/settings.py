"""Typed settings: the mechanism behind every config section and every command's `--settings`.

Each section is a frozen dataclass, declared in its stage's `settings` module, whose fields are
exactly the schema's keys for it. Parsing checks
the values against the config schema (`config.schema.yaml`, shipped with the package), fills in the
schema's defaults (the only place defaults live), refuses unknown keys and runs the section's
cross-key checks. The schema is thus the one definition of every key's type and range, for the
workflow and the command line alike. Cheap to import: the workflow parses it in every job.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import math
import typing
from dataclasses import dataclass
from importlib import resources
from typing import Any, ClassVar

from calft.errors import UserError


class SettingsError(UserError):
    """Values that break the schema or a cross-key rule; every problem names its key."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


SCHEMA_URI = "urn:calft:config"


@functools.cache
def schema() -> dict:
    import yaml

    return yaml.safe_load(resources.files("calft").joinpath("config.schema.yaml").read_text())


@functools.cache
def _validator_class():
    """Draft 2020-12 that fills in defaults (as Snakemake's `validate` does), whose integers are
    integers (JSON Schema's `integer` would take 100.0, which crashes the job that receives it) and
    whose numbers are finite (NaN passes every comparison)."""
    import jsonschema

    base = jsonschema.Draft202012Validator
    validate_properties = base.VALIDATORS["properties"]

    def properties_with_defaults(validator, properties, instance, subschema):
        if isinstance(instance, dict):
            for name, property_schema in properties.items():
                if "default" in property_schema:
                    instance.setdefault(name, copy.deepcopy(property_schema["default"]))
        yield from validate_properties(validator, properties, instance, subschema)

    checker = base.TYPE_CHECKER.redefine_many(
        {
            "integer": lambda _, value: isinstance(value, int) and not isinstance(value, bool),
            "number": lambda _, value: (
                isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            ),
        }
    )
    return jsonschema.validators.extend(base, {"properties": properties_with_defaults}, type_checker=checker)


@functools.cache
def _registry():
    """The config schema as the one resource every reference resolves in (a command's section in
    $defs refers to the config's sections). Without its `$schema` key, which would make jsonschema
    switch to the plain draft validator (no defaults) wherever a reference enters it."""
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    contents = {key: value for key, value in schema().items() if key != "$schema"}
    return Registry().with_resource(SCHEMA_URI, Resource.from_contents(contents, default_specification=DRAFT202012))


def schema_problems(instance: Any, path: tuple[str, ...] = (), label: str = "") -> list[str]:
    """'key.path: message' for each schema violation of `instance` (checked against the subschema at
    `path` of the config schema; `format: date` must be a real date), filling in defaults in place.
    `label` prefixes the keys."""
    validator_class = _validator_class()
    pointer = "".join(f"/{key}" for key in path)
    validator = validator_class(
        {"$ref": f"{SCHEMA_URI}#{pointer}"}, registry=_registry(), format_checker=validator_class.FORMAT_CHECKER
    )
    problems = []
    for error in sorted(validator.iter_errors(instance), key=lambda e: [str(p) for p in e.path]):
        key = ".".join([label, *map(str, error.path)] if label else map(str, error.path)) or "(top level)"
        problems.append(f"{key}: {error.message}")
    return problems


@dataclass(frozen=True)
class Section:
    """A config section, or a command's settings, as typed settings. Subclasses name their place in
    the schema; a field typed as another Section holds that section (a command's settings hold the
    model entry and the config sections the command reads)."""

    SCHEMA_PATH: ClassVar[tuple[str, ...]]
    LABEL: ClassVar[str]  # how messages name the section's keys

    @classmethod
    def from_dict(cls, values: dict):
        values = copy.deepcopy(values)
        problems = schema_problems(values, cls.SCHEMA_PATH, cls.LABEL)
        if problems:
            raise SettingsError(problems)
        section = cls._build(values)
        problems = section.problems()
        if problems:
            raise SettingsError(problems)
        return section

    @classmethod
    def _build(cls, values: dict):
        """The section of schema-checked values, its nested sections built too."""
        nested = {
            name: kind
            for name, kind in typing.get_type_hints(cls).items()
            if isinstance(kind, type) and issubclass(kind, Section)
        }
        return cls(**{key: nested[key]._build(value) if key in nested else value for key, value in values.items()})

    @classmethod
    def from_json(cls, text: str):
        try:
            values = json.loads(text)
        except json.JSONDecodeError as error:
            raise SettingsError([f"{cls.LABEL}: not valid JSON ({error})"]) from None
        except RecursionError:
            raise SettingsError([f"{cls.LABEL}: JSON nested too deeply to be settings"]) from None
        if not isinstance(values, dict):
            raise SettingsError([f"{cls.LABEL}: expected a JSON object, got {type(values).__name__}"])
        try:
            return cls.from_dict(values)
        except RecursionError:
            raise SettingsError([f"{cls.LABEL}: JSON nested too deeply to be settings"]) from None

    def problems(self) -> list[str]:
        """Cross-key checks (the schema checks one key at a time), the nested sections' included."""
        return [problem for value in vars(self).values() if isinstance(value, Section) for problem in value.problems()]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
