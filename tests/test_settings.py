"""Typed settings: exactly the schema's keys, defaults from the schema, refusals that name the key."""

import dataclasses
import json

import pytest

from calft import settings
from calft.evaluation.settings import Sampling
from calft.modeling.settings import ModelEntry
from calft.retention.settings import Perplexity
from calft.settings import SettingsError
from calft.training.settings import Training


def _sections(module_names=("modeling", "targets", "training", "evaluation", "transfer", "retention", "report")):
    """Every settings section of every stage (its `settings` module)."""
    import importlib
    import inspect

    return [
        section
        for stage in module_names
        for _, section in inspect.getmembers(importlib.import_module(f"calft.{stage}.settings"), inspect.isclass)
        if issubclass(section, settings.Section)
        and hasattr(section, "SCHEMA_PATH")
        and section.__module__ == f"calft.{stage}.settings"
    ]


def test_every_config_section_and_command_settings_has_a_typed_section():
    from calft.config import SECTIONS

    names = {section.__name__ for section in _sections()}
    assert {section.__name__ for section in SECTIONS.values()} <= names
    commands = {name for name in settings.schema()["$defs"] if name.endswith("_settings")}
    entries = {"model", "adapter"}  # a config entry that command settings hold
    assert (
        commands == {section.SCHEMA_PATH[1] for section in _sections() if section.SCHEMA_PATH[0] == "$defs"} - entries
    )


@pytest.mark.parametrize("section", _sections(), ids=lambda section: section.__name__)
def test_fields_are_exactly_the_schema_keys_and_every_key_has_a_default_or_is_required(section):
    subschema = settings.schema()
    for key in section.SCHEMA_PATH:
        subschema = subschema[key]
    assert {field.name for field in dataclasses.fields(section)} == set(subschema["properties"])
    for name, property_schema in subschema["properties"].items():
        assert "default" in property_schema or name in subschema.get("required", []), name


def test_defaults_come_from_the_schema():
    training = Training.from_dict({})
    schema = settings.schema()["properties"]["training"]["properties"]
    assert training.to_dict() == {key: value["default"] for key, value in schema.items()}
    assert Training.from_json(json.dumps(training.to_dict())) == training


@pytest.mark.parametrize(
    "values, message",
    [
        ({"bogus": 1}, "training: Additional properties are not allowed ('bogus' was unexpected)"),
        ({"global_batch_size": 8.0}, "training.global_batch_size: 8.0 is not of type 'integer'"),
        ({"global_batch_size": True}, "training.global_batch_size: True is not of type 'integer'"),
        ({"learning_rate": 0}, "training.learning_rate: 0 is less than or equal to the minimum of 0"),
        (
            {"hard_group_size": 3},
            "training.hard_group_size: 3 does not divide training.hard_samples_per_prompt_per_epoch",
        ),
        (
            {"global_batch_size": 12, "per_device_batch_size": 8},
            "training.per_device_batch_size: 8 does not divide training.global_batch_size (12)",
        ),
    ],
)
def test_bad_values_are_refused_naming_the_key(values, message):
    with pytest.raises(SettingsError) as refused:
        Training.from_dict(values)
    assert message in str(refused.value)


def test_json_that_is_not_an_object_is_refused():
    for text, message in (("[1]", "expected a JSON object"), ("{", "not valid JSON")):
        with pytest.raises(SettingsError, match=message):
            Sampling.from_json(text)


def test_model_entry_needs_its_identity_and_takes_the_rest_from_defaults():
    entry = ModelEntry.from_json(json.dumps({"source": "embedded", "tokenizer": "smollm2", "terminator": "<|im_end|>"}))
    assert entry.dtype == "bfloat16" and entry.chat_template_kwargs == {} and entry.template_date is None
    with pytest.raises(SettingsError, match="model.dtype: 'float99' is not one of"):
        ModelEntry.from_dict({"source": "x", "tokenizer": "t", "terminator": "e", "dtype": "float99"})


def test_perplexity_stride_may_not_exceed_the_context():
    with pytest.raises(SettingsError, match="perplexity.stride: 300 exceeds perplexity.context"):
        Perplexity.from_dict({"context": 256, "stride": 300})
