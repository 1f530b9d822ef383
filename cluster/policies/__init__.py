"""Pure, seeded policies the controller owns: bandits over speculation arms and OptScale stopping."""

from cluster.policies.arms import NO_SPECULATION, Arm
from cluster.policies.bandit import EXP3, UCB, ArmStats, BanditPolicy, Thompson, make_bandit
from cluster.policies.optscale import OnlinePrior, OptScaleSampler, StopDecision, optimal_n
from cluster.policies.reward import ThroughputReward, target_equivalent_tokens
from cluster.policies.truncnorm import ScorePrior, TruncNormal, fit_map, fit_mle

__all__ = [
    "EXP3", "NO_SPECULATION", "UCB", "Arm", "ArmStats", "BanditPolicy", "OnlinePrior", "OptScaleSampler",
    "ScorePrior", "StopDecision", "Thompson", "ThroughputReward", "TruncNormal", "fit_map", "fit_mle", "make_bandit",
    "optimal_n", "target_equivalent_tokens",
]
