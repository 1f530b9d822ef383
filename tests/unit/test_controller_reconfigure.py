"""The Controller deployment's `reconfigure` (its `user_config`), on the replica class without Ray."""

from __future__ import annotations

import pytest

from cluster.config.schema import ControllerConfig, ModelSpec, ReasoningParams
from cluster.errors import ConfigError
from deployments.controller import ControllerDeployment


def controller(target: ModelSpec) -> ControllerDeployment:
    return ControllerDeployment.func_or_class(ReasoningParams(), controller=ControllerConfig(), target=target)


def test_reconfigure_applies_overrides_and_refuses_bad_ones_keeping_the_defaults_in_force():
    c = controller(ModelSpec(path="t"))
    c.reconfigure({"method": "target", "threshold": 8})
    assert (c.get_defaults().method, c.get_defaults().threshold) == ("target", 8)
    with pytest.raises(ConfigError, match="threshold"):
        c.reconfigure({"threshold": 12})
    assert c.get_defaults().threshold == 8


@pytest.mark.parametrize("target, refused", [
    (ModelSpec(path="t", backend="vllm", speculative={"model": "d"}), True),
    (ModelSpec(path="t", speculative={"model": "d"}), False),
], ids=["vllm-engine-wide", "transformers-per-request"])
def test_token_speculation_off_is_refused_where_the_target_speculates_on_every_request(target, refused):
    c = controller(target)
    if refused:
        with pytest.raises(ConfigError, match="token_speculation: false cannot be honoured"):
            c.reconfigure({"token_speculation": False})
        assert c.get_defaults().token_speculation is True
    else:
        c.reconfigure({"token_speculation": False})
        assert c.get_defaults().token_speculation is False
