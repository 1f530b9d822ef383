"""The controller's policy state: arms from config, rewards from results, prior updates and the checkpoint."""

from __future__ import annotations

import pytest

from cluster.config.schema import AppArgs, ControllerConfig
from cluster.policies.state import PolicyState
from cluster.policies.truncnorm import TruncNormal
from cluster.reasoning.types import Author, ReasoningResult, ReasoningStats, StepOutcome, StepRecord, StopReason

ARMS = [{"name": "fast", "knobs": {"method": "specreason", "threshold": 3}},
        {"name": "slow", "knobs": {"method": "target"}}]


def result(tokens: int, seconds: float) -> ReasoningResult:
    steps = (StepRecord(0, "x", Author.TARGET, StepOutcome.TARGET, num_tokens=tokens),)
    return ReasoningResult("target", None, "x", steps, StopReason.ANSWER, ReasoningStats(wall_time_s=seconds))


def config(tmp_path, **bandit) -> ControllerConfig:
    return ControllerConfig(bandit={"arms": ARMS, **bandit}, checkpoint_path=str(tmp_path / "s.json"),
                            checkpoint_interval_s=0)


@pytest.mark.parametrize("bandit", [{"algorithm": "ucb"}, {"algorithm": "exp3"}, {"algorithm": "thompson"},
                                    {"algorithm": "thompson", "variance": "pooled"}],
                         ids=lambda b: "-".join(b.values()))
def test_checkpoint_restores_pulls_rewards_and_prior(tmp_path, bandit):
    state = PolicyState(config(tmp_path, **bandit))
    assert not state.restored and getattr(state.bandit, "variance", "arm") == bandit.get("variance", "arm")
    expected = {"ucb": {"radius": "paper", "delta": 0.05, "exploration": 2.0, "warmup_rounds": 1},
                "exp3": {"seed": 0},
                "thompson": {"variance": bandit.get("variance", "arm"), "seed": 0,
                             "warmup_rounds": 1 if bandit.get("variance") == "pooled" else 2}}
    assert state.to_dict()["bandit"]["settings"] == expected[bandit["algorithm"]]  # what /v1/stats shows
    for _ in range(4):
        arm = state.choose()
        assert state.observe(arm.name, result(100 if arm.name == "fast" else 10, 1.0)) is not None
    state.observe_fit(TruncNormal(0.5, 0.3))
    assert state.maybe_save()
    again = PolicyState(config(tmp_path, **bandit))
    assert again.restored and again.to_dict() == state.to_dict()
    assert sum(s.pulls for s in again.arm_stats().values()) == 4


def test_a_growing_auto_scale_rescales_earlier_rewards(tmp_path):
    """The first pull sets the auto scale; a 3× faster arm later must not leave it scored 1 as well."""
    state = PolicyState(config(tmp_path))
    assert state.observe("slow", result(20, 10.0)) == 1.0  # 2 tokens/s: the whole scale so far
    assert state.observe("fast", result(60, 10.0)) == 1.0  # 6 tokens/s: the new scale
    stats = state.arm_stats()
    assert stats["slow"].mean_reward == pytest.approx(1 / 3) and stats["fast"].mean_reward == 1.0
    assert state.bandit.leader().name == "fast"


def test_without_a_bandit_nothing_is_chosen_and_no_prior_without_online(tmp_path):
    state = PolicyState(ControllerConfig(optscale={"prior": "none"}))
    assert state.choose() is None and state.score_prior() is None and not state.maybe_save(force=True)


def test_a_checkpoint_of_another_algorithm_is_ignored(tmp_path):
    ucb = PolicyState(config(tmp_path))
    ucb.observe("fast", result(10, 1.0))
    ucb.maybe_save()
    exp3 = PolicyState(config(tmp_path, algorithm="exp3"))
    assert sum(s.pulls for s in exp3.arm_stats().values()) == 0


@pytest.mark.parametrize("arms, match", [
    ([{"name": "a", "knobs": {"threshold": 12}}], r"controller.bandit.arms.0.knobs \(a\): threshold"),
    ([{"name": "a", "knobs": {"bogus": 1}}], "bogus"),
    ([{"name": "a"}, {"name": "a"}], "duplicate"),
    ([{"name": "a", "knobs": {"bandit_granularity": "step"}}], "cannot set `bandit_granularity`"),
], ids=["bad-value", "unknown-knob", "duplicate", "granularity"])
def test_arms_are_validated_against_reasoning_params(arms, match):
    with pytest.raises(ValueError, match=match):
        AppArgs.model_validate({"draft": {"path": "d"}, "target": {"path": "t"},
                                "controller": {"bandit": {"arms": arms}}})


SPECULATION_ARMS = [{"name": "plain", "knobs": {"method": "target", "token_speculation": False}},
                    {"name": "token-level", "knobs": {"method": "target", "token_speculation": True}}]


@pytest.mark.parametrize("target, ok", [
    ({"path": "t", "speculative": {"model": "d"}}, True),
    ({"path": "t"}, False),
    ({"path": "t", "backend": "vllm", "speculative": {"model": "d"}}, False),
], ids=["transformers", "no-speculation", "vllm-engine-wide"])
def test_arms_differing_in_token_speculation_need_it_per_request(target, ok):
    def load() -> AppArgs:
        return AppArgs.model_validate({"draft": {"path": "d"}, "target": target,
                                       "controller": {"bandit": {"arms": SPECULATION_ARMS}}})
    if ok:
        assert [a.name for a in load().controller.bandit.arms] == ["plain", "token-level"]
    else:
        with pytest.raises(ValueError, match="controller.bandit.arms: arms that differ in token_speculation"):
            load()


@pytest.mark.parametrize("extra, key", [
    ({"reasoning": {"token_speculation": False}}, "reasoning.token_speculation"),
    ({"controller": {"bandit": {"arms": [{"name": "plain", "knobs": {"token_speculation": False}}]}}},
     "controller.bandit.arms"),
], ids=["default", "arm"])
def test_token_speculation_off_is_refused_on_an_engine_wide_speculating_target(extra, key):
    target = {"path": "t", "backend": "vllm", "speculative": {"model": "d"}}
    with pytest.raises(ValueError, match=f"{key}.*every request"):
        AppArgs.model_validate({"draft": {"path": "d"}, "target": target, **extra})


def test_a_step_granular_default_needs_arms():
    with pytest.raises(ValueError, match="reasoning.bandit_granularity"):
        AppArgs.model_validate({"draft": {"path": "d"}, "target": {"path": "t"},
                                "reasoning": {"bandit_granularity": "step"}})
