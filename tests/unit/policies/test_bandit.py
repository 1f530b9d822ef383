"""UCB, EXP3 and Thompson sampling on synthetic arms with known means: sub-linear regret, the best arm dominates,
state round-trips."""

from __future__ import annotations

import json
import math
import random

import pytest

from cluster.policies.arms import NO_SPECULATION, Arm, check_arms
from cluster.policies.bandit import EXP3, UCB, BanditPolicy, Thompson, make_bandit

ARMS = (NO_SPECULATION, Arm("spec-tau7", {"method": "specreason", "threshold": 7.0}),
        Arm("spec-tau5", {"method": "specreason", "threshold": 5.0}))
MEANS = {"no-speculation": 0.3, "spec-tau7": 0.7, "spec-tau5": 0.5}  # spec-tau7 is the best arm
BEST = "spec-tau7"
NOISE = 0.15
T = 500
SEEDS = range(4)


def policies(seed: int) -> dict[str, BanditPolicy]:
    return {"ucb-paper": UCB(ARMS), "ucb-heuristic": UCB(ARMS, radius="heuristic", warmup_rounds=2),
            "exp3": EXP3(ARMS, seed=seed), "thompson": Thompson(ARMS, seed=seed),
            "thompson-pooled": Thompson(ARMS, seed=seed, variance="pooled")}


def play(policy: BanditPolicy, rounds: int, seed: int) -> list[float]:
    """Cumulative pseudo-regret Σ_t (μ* − μ_{I_t}) after each round; rewards are N(μ, NOISE²) clipped to [0, 1]."""
    rng = random.Random(1000 + seed)
    regret, total = [], 0.0
    for _ in range(rounds):
        arm = policy.select()
        policy.update(arm, min(1.0, max(0.0, rng.gauss(MEANS[arm.name], NOISE))))
        total += MEANS[BEST] - MEANS[arm.name]
        regret.append(total)
    return regret


@pytest.mark.parametrize("name", ["ucb-paper", "ucb-heuristic", "exp3", "thompson", "thompson-pooled"])
def test_regret_is_sublinear_and_the_best_arm_dominates(name):
    """Regret over 4T rounds is well under 4× the regret over T (linear growth would be 4×, √T growth 2×)."""
    at_t = at_4t = 0.0
    for seed in SEEDS:
        policy = policies(seed)[name]
        regret = play(policy, 4 * T, seed)
        at_t, at_4t = at_t + regret[T - 1], at_4t + regret[-1]
        assert policy.arm_stats()[BEST].pulls > 0.75 * 4 * T
        assert policy.leader().name == BEST
    assert 0 < at_4t < 2.5 * at_t


def test_ucb_pulls_every_arm_first_then_follows_the_radius():
    ucb = UCB(ARMS)
    seen = []
    for reward in (0.1, 0.9, 0.5):
        arm = ucb.select()
        seen.append(arm.name)
        ucb.update(arm, reward)
    assert seen == [a.name for a in ARMS]
    assert ucb.select().name == "spec-tau7"  # equal radii: the highest mean wins


def test_paper_radius_matches_the_formula_and_shrinks():
    """cr = ½·sqrt((1+n)/n² · (1 + 2·ln(K·t²·sqrt(1+n)/δ))) with K=3, δ=0.05."""
    ucb = UCB(ARMS, delta=0.05)
    for _ in range(4):
        ucb.update(ARMS[0], 0.5)
    n, t = 4, 10
    expected = 0.5 * math.sqrt((1 + n) / n**2 * (1 + 2 * math.log(3 * t * t * math.sqrt(1 + n) / 0.05)))
    assert ucb.confidence_radius(0, t) == pytest.approx(expected)
    assert ucb.confidence_radius(1, t) == math.inf
    for _ in range(40):
        ucb.update(ARMS[0], 0.5)
    assert ucb.confidence_radius(0, t) < expected


def test_thompson_pulls_every_arm_twice_then_samples_a_student_t_posterior():
    """The posterior scale is s/√n with s² the unbiased sample variance; a reward rescale scales it alike."""
    ts = Thompson(ARMS, seed=0)
    rewards: dict[str, list[float]] = {a.name: [] for a in ARMS}
    for reward in (0.2, 0.6, 0.4, 0.4, 0.8, 0.6):
        arm = ts.select()
        rewards[arm.name].append(reward)
        ts.update(arm, reward)
    assert all(len(r) == 2 for r in rewards.values())
    for i, arm in enumerate(ARMS):
        r = rewards[arm.name]
        variance = sum((x - sum(r) / 2) ** 2 for x in r) / (2 - 1)
        assert ts.posterior_scales()[i] == pytest.approx(math.sqrt(variance / 2))
    before = ts.posterior_scales()
    ts.rescale_rewards(0.5)
    assert ts.posterior_scales() == pytest.approx([s / 2 for s in before])
    picks = {a.name: 0 for a in ARMS}
    for _ in range(200):
        picks[ts.select().name] += 1
    assert max(picks, key=picks.__getitem__) == ts.leader().name  # draws favour the highest mean


def test_pooled_thompson_shares_one_variance_over_the_arms():
    """s² = Σ squared deviations from each arm's mean ÷ (N − K); arm i's scale s/√n_i, N − K degrees of freedom."""
    ts = Thompson(ARMS, seed=0, variance="pooled")
    rewards = {"no-speculation": [0.2, 0.4], "spec-tau7": [0.6, 0.9], "spec-tau5": [0.5, 0.5, 0.8]}
    for name, rs in rewards.items():
        for r in rs:
            ts.update(name, r)
    deviations = sum((x - sum(rs) / len(rs)) ** 2 for rs in rewards.values() for x in rs)
    dof = 7 - 3
    assert ts.degrees_of_freedom() == [dof] * len(ARMS)
    expected = [math.sqrt(deviations / dof / len(rewards[arm.name])) for arm in ARMS]
    assert ts.posterior_scales() == pytest.approx(expected)
    with pytest.raises(ValueError, match="pooled"):
        Thompson(ARMS, seed=0, variance="shared")  # type: ignore[arg-type]


def test_pooled_thompson_pulls_every_arm_once_then_the_leader_then_samples():
    """One reward per arm measures no spread; one more pull, of the best-looking arm, gives N − K = 1."""
    ts = Thompson(ARMS, seed=0, variance="pooled")
    pulled = []
    for reward in (0.2, 0.8, 0.5):
        pulled.append(ts.select().name)
        ts.update(pulled[-1], reward)
    assert pulled == [a.name for a in ARMS]
    assert ts.degrees_of_freedom() == [0] * len(ARMS)
    assert ts.select().name == "spec-tau7"  # the leader, not a draw
    ts.update("spec-tau7", 0.6)
    assert ts.degrees_of_freedom() == [1] * len(ARMS) and all(s > 0 for s in ts.posterior_scales())


def test_exp3_probabilities_favour_low_loss_and_sum_to_one():
    """On-policy play where arm 1 pays 0.9 and the others 0.1: arm 1 becomes the most likely."""
    exp3 = EXP3(ARMS, seed=0)
    assert exp3.probabilities() == pytest.approx([1 / 3] * 3)
    for _ in range(100):
        arm = exp3.select()
        exp3.update(arm, 0.9 if arm == ARMS[1] else 0.1)
    p = exp3.probabilities()
    assert sum(p) == pytest.approx(1.0) and p[1] == max(p) and p[1] > 0.5


def test_exp3_refuses_a_pull_it_could_not_have_made():
    """Feeding one arm's losses off-policy drives its probability to 0; the next report is refused."""
    exp3 = EXP3(ARMS, seed=0)
    with pytest.raises(ValueError, match="probability 0"):
        for _ in range(200):
            exp3.update(ARMS[0], 0.0)


@pytest.mark.parametrize("algorithm", ["ucb", "exp3", "thompson"])
def test_state_round_trips_through_json_and_continues_identically(algorithm):
    """A restored policy (checkpoint → JSON → new object) makes the same choices as the original."""
    original = make_bandit(algorithm, ARMS, seed=3)
    play(original, 60, seed=0)
    restored = make_bandit(algorithm, ARMS, seed=99)
    restored.load_state_dict(json.loads(json.dumps(original.state_dict())))
    assert restored.arm_stats() == original.arm_stats()
    assert play(restored, 40, seed=1) == play(original, 40, seed=1)


def test_state_of_a_changed_arm_set_keeps_the_common_arms():
    ucb = UCB(ARMS)
    ucb.update(ARMS[1], 0.8)
    grown = UCB([*ARMS, Arm("spec-tau9", {"threshold": 9.0})])
    grown.load_state_dict(ucb.state_dict())
    stats = grown.arm_stats()
    assert stats["spec-tau7"].pulls == 1 and stats["spec-tau7"].mean_reward == 0.8
    assert stats["spec-tau9"].pulls == 0 and stats["spec-tau9"].mean_reward is None
    with pytest.raises(ValueError, match="exp3"):
        EXP3(ARMS, seed=0).load_state_dict(ucb.state_dict())


def test_update_reports_a_change_of_leader():
    ucb = UCB(ARMS)
    assert ucb.update(ARMS[2], 0.6) is True  # leader moves from arm 0 (all means 0) to arm 2
    assert ucb.update(ARMS[2], 0.6) is False
    assert ucb.update(ARMS[1], 0.9) is True


def test_bad_input_fails_fast():
    ucb = UCB(ARMS)
    with pytest.raises(ValueError, match="valid"):
        ucb.update("missing", 0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ucb.update(ARMS[0], 1.5)
    with pytest.raises(ValueError, match="duplicate"):
        check_arms([ARMS[0], ARMS[0]])
    with pytest.raises(ValueError, match="valid"):
        make_bandit("softmax", ARMS)
    with pytest.raises(ValueError, match="radius"):
        UCB(ARMS, radius="wide")  # type: ignore[arg-type]


def test_make_bandit_builds_each_policy_with_its_knobs():
    """UCB gets the UCB knobs; EXP3 and Thompson sampling get the seed and ignore the UCB knobs."""
    ucb = make_bandit("ucb", ARMS, radius="heuristic", delta=0.1, exploration=1.5, warmup_rounds=3)
    assert isinstance(ucb, UCB)
    assert (ucb.radius, ucb.delta, ucb.exploration, ucb.warmup_rounds) == ("heuristic", 0.1, 1.5, 3)
    exp3 = make_bandit("exp3", ARMS, seed=7, radius="heuristic")
    assert isinstance(exp3, EXP3) and exp3.settings() == {"seed": 7}
    a, b = (make_bandit("thompson", ARMS, seed=5, warmup_rounds=3) for _ in range(2))
    assert isinstance(a, Thompson) and a.settings() == {"variance": "arm", "warmup_rounds": 2, "seed": 5}
    assert make_bandit("thompson", ARMS, variance="pooled").variance == "pooled"
    assert play(a, 30, seed=0) == play(b, 30, seed=0)


def test_arm_round_trips_and_hashes_by_name():
    arm = Arm.from_dict({"name": "g4", "knobs": {"threshold": 6.0}})
    assert Arm.from_dict(arm.to_dict()) == arm and hash(arm) == hash(Arm("g4", {"threshold": 7.0}))
    assert NO_SPECULATION.knobs == {"method": "target"}
