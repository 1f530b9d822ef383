"""Config loading and validation: defaults, overrides, and errors that name the key."""

from __future__ import annotations

import pytest

from cluster.config import load_config
from cluster.config.schema import ReasoningParams
from cluster.engine import resolve_params, validate_question
from cluster.errors import ConfigError, InvalidRequestError


def test_default_config_loads():
    cfg = load_config()
    assert cfg.reasoning.method == "specreason" and cfg.draft.backend == "transformers"


def test_overrides_apply():
    cfg = load_config(overrides=["reasoning.threshold=5", "target.dtype=float32"])
    assert cfg.reasoning.threshold == 5 and cfg.target.dtype == "float32"


@pytest.mark.parametrize("override, key", [
    ("reasoning.threshold=12", "reasoning.threshold"),
    ("reasoning.max_total_tokens=0", "reasoning.max_total_tokens"),
    ("reasoning.method=magic", "reasoning.method"),
    ("reasoning.bogus=1", "reasoning.bogus"),
    ("draft.backend=tgi", "draft.backend"),
    ("deployments.verifier.max_batch_size=99", "deployments.verifier"),
], ids=["tau-range", "budget", "method", "unknown-knob", "backend", "batch-vs-ongoing"])
def test_invalid_config_names_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(overrides=[override])


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config([tmp_path / "nope.yaml"])


def test_every_field_has_a_description():
    from cluster.config import schema

    for model in [schema.AppArgs, schema.ModelSpec, schema.ReasoningParams, schema.DeploymentSpec,
                  schema.BatchedDeploymentSpec, schema.ServerConfig, schema.AutoscalingConfig]:
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name}"


def test_request_overrides_validate():
    p = resolve_params(ReasoningParams(), {"threshold": 5, "method": "target"})
    assert p.threshold == 5 and p.method == "target"
    with pytest.raises(InvalidRequestError) as e:
        resolve_params(ReasoningParams(), {"threshold": -1})
    assert e.value.field == "threshold"
    with pytest.raises(InvalidRequestError) as e:
        resolve_params(ReasoningParams(), {"temprature": 0.5})
    assert e.value.field == "temprature"


def test_question_validation():
    assert validate_question("  hi ", 10) == "hi"
    with pytest.raises(InvalidRequestError, match="empty"):
        validate_question("   ", 10)
    with pytest.raises(InvalidRequestError, match="limit"):
        validate_question("x" * 11, 10)
