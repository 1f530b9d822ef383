from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReasonRequest(_message.Message):
    __slots__ = ("question", "method", "threshold", "score_method", "first_n_target_steps", "max_step_tokens", "max_total_tokens", "max_steps", "temperature", "top_p", "seed", "step_delimiter", "lookahead_depth", "lookahead_width", "lookahead_mode", "step_verifier", "verifier_threshold", "arm", "best_of_n", "ssr", "bandit_granularity", "token_speculation")
    QUESTION_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    SCORE_METHOD_FIELD_NUMBER: _ClassVar[int]
    FIRST_N_TARGET_STEPS_FIELD_NUMBER: _ClassVar[int]
    MAX_STEP_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MAX_TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    STEP_DELIMITER_FIELD_NUMBER: _ClassVar[int]
    LOOKAHEAD_DEPTH_FIELD_NUMBER: _ClassVar[int]
    LOOKAHEAD_WIDTH_FIELD_NUMBER: _ClassVar[int]
    LOOKAHEAD_MODE_FIELD_NUMBER: _ClassVar[int]
    STEP_VERIFIER_FIELD_NUMBER: _ClassVar[int]
    VERIFIER_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    ARM_FIELD_NUMBER: _ClassVar[int]
    BEST_OF_N_FIELD_NUMBER: _ClassVar[int]
    SSR_FIELD_NUMBER: _ClassVar[int]
    BANDIT_GRANULARITY_FIELD_NUMBER: _ClassVar[int]
    TOKEN_SPECULATION_FIELD_NUMBER: _ClassVar[int]
    question: str
    method: str
    threshold: float
    score_method: str
    first_n_target_steps: int
    max_step_tokens: int
    max_total_tokens: int
    max_steps: int
    temperature: float
    top_p: float
    seed: int
    step_delimiter: str
    lookahead_depth: int
    lookahead_width: int
    lookahead_mode: str
    step_verifier: str
    verifier_threshold: float
    arm: str
    best_of_n: BestOfNParams
    ssr: SSRParams
    bandit_granularity: str
    token_speculation: bool
    def __init__(self, question: _Optional[str] = ..., method: _Optional[str] = ..., threshold: _Optional[float] = ..., score_method: _Optional[str] = ..., first_n_target_steps: _Optional[int] = ..., max_step_tokens: _Optional[int] = ..., max_total_tokens: _Optional[int] = ..., max_steps: _Optional[int] = ..., temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., seed: _Optional[int] = ..., step_delimiter: _Optional[str] = ..., lookahead_depth: _Optional[int] = ..., lookahead_width: _Optional[int] = ..., lookahead_mode: _Optional[str] = ..., step_verifier: _Optional[str] = ..., verifier_threshold: _Optional[float] = ..., arm: _Optional[str] = ..., best_of_n: _Optional[_Union[BestOfNParams, _Mapping]] = ..., ssr: _Optional[_Union[SSRParams, _Mapping]] = ..., bandit_granularity: _Optional[str] = ..., token_speculation: _Optional[bool] = ...) -> None: ...

class BestOfNParams(_message.Message):
    __slots__ = ("method", "scorer", "adaptive", "s_target", "alpha", "peek", "n_max", "parallel", "select")
    METHOD_FIELD_NUMBER: _ClassVar[int]
    SCORER_FIELD_NUMBER: _ClassVar[int]
    ADAPTIVE_FIELD_NUMBER: _ClassVar[int]
    S_TARGET_FIELD_NUMBER: _ClassVar[int]
    ALPHA_FIELD_NUMBER: _ClassVar[int]
    PEEK_FIELD_NUMBER: _ClassVar[int]
    N_MAX_FIELD_NUMBER: _ClassVar[int]
    PARALLEL_FIELD_NUMBER: _ClassVar[int]
    SELECT_FIELD_NUMBER: _ClassVar[int]
    method: str
    scorer: str
    adaptive: bool
    s_target: float
    alpha: float
    peek: int
    n_max: int
    parallel: int
    select: str
    def __init__(self, method: _Optional[str] = ..., scorer: _Optional[str] = ..., adaptive: _Optional[bool] = ..., s_target: _Optional[float] = ..., alpha: _Optional[float] = ..., peek: _Optional[int] = ..., n_max: _Optional[int] = ..., parallel: _Optional[int] = ..., select: _Optional[str] = ...) -> None: ...

class SSRParams(_message.Message):
    __slots__ = ("k", "early_stop", "stop_score", "pool", "guided")
    K_FIELD_NUMBER: _ClassVar[int]
    EARLY_STOP_FIELD_NUMBER: _ClassVar[int]
    STOP_SCORE_FIELD_NUMBER: _ClassVar[int]
    POOL_FIELD_NUMBER: _ClassVar[int]
    GUIDED_FIELD_NUMBER: _ClassVar[int]
    k: int
    early_stop: str
    stop_score: float
    pool: _containers.RepeatedScalarFieldContainer[str]
    guided: bool
    def __init__(self, k: _Optional[int] = ..., early_stop: _Optional[str] = ..., stop_score: _Optional[float] = ..., pool: _Optional[_Iterable[str]] = ..., guided: _Optional[bool] = ...) -> None: ...

class Step(_message.Message):
    __slots__ = ("index", "text", "author", "outcome", "score", "draft_text", "num_tokens", "arm", "latency_s")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    DRAFT_TEXT_FIELD_NUMBER: _ClassVar[int]
    NUM_TOKENS_FIELD_NUMBER: _ClassVar[int]
    ARM_FIELD_NUMBER: _ClassVar[int]
    LATENCY_S_FIELD_NUMBER: _ClassVar[int]
    index: int
    text: str
    author: str
    outcome: str
    score: float
    draft_text: str
    num_tokens: int
    arm: str
    latency_s: float
    def __init__(self, index: _Optional[int] = ..., text: _Optional[str] = ..., author: _Optional[str] = ..., outcome: _Optional[str] = ..., score: _Optional[float] = ..., draft_text: _Optional[str] = ..., num_tokens: _Optional[int] = ..., arm: _Optional[str] = ..., latency_s: _Optional[float] = ...) -> None: ...

class Candidate(_message.Message):
    __slots__ = ("answer", "score")
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    answer: str
    score: float
    def __init__(self, answer: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class Stats(_message.Message):
    __slots__ = ("steps_drafted", "steps_accepted", "steps_rewritten", "target_steps", "draft_tokens", "target_tokens", "judge_calls", "draft_time_s", "judge_time_s", "target_time_s", "wall_time_s", "degraded_steps", "degraded_reason", "acceptance_rate", "spec_rounds", "spec_draft_tokens", "spec_accepted_tokens", "token_acceptance_rate", "mean_acceptance_length", "samples", "paths_stopped_early")
    STEPS_DRAFTED_FIELD_NUMBER: _ClassVar[int]
    STEPS_ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    STEPS_REWRITTEN_FIELD_NUMBER: _ClassVar[int]
    TARGET_STEPS_FIELD_NUMBER: _ClassVar[int]
    DRAFT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TARGET_TOKENS_FIELD_NUMBER: _ClassVar[int]
    JUDGE_CALLS_FIELD_NUMBER: _ClassVar[int]
    DRAFT_TIME_S_FIELD_NUMBER: _ClassVar[int]
    JUDGE_TIME_S_FIELD_NUMBER: _ClassVar[int]
    TARGET_TIME_S_FIELD_NUMBER: _ClassVar[int]
    WALL_TIME_S_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_STEPS_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_REASON_FIELD_NUMBER: _ClassVar[int]
    ACCEPTANCE_RATE_FIELD_NUMBER: _ClassVar[int]
    SPEC_ROUNDS_FIELD_NUMBER: _ClassVar[int]
    SPEC_DRAFT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    SPEC_ACCEPTED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_ACCEPTANCE_RATE_FIELD_NUMBER: _ClassVar[int]
    MEAN_ACCEPTANCE_LENGTH_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    PATHS_STOPPED_EARLY_FIELD_NUMBER: _ClassVar[int]
    steps_drafted: int
    steps_accepted: int
    steps_rewritten: int
    target_steps: int
    draft_tokens: int
    target_tokens: int
    judge_calls: int
    draft_time_s: float
    judge_time_s: float
    target_time_s: float
    wall_time_s: float
    degraded_steps: int
    degraded_reason: str
    acceptance_rate: float
    spec_rounds: int
    spec_draft_tokens: int
    spec_accepted_tokens: int
    token_acceptance_rate: float
    mean_acceptance_length: float
    samples: int
    paths_stopped_early: int
    def __init__(self, steps_drafted: _Optional[int] = ..., steps_accepted: _Optional[int] = ..., steps_rewritten: _Optional[int] = ..., target_steps: _Optional[int] = ..., draft_tokens: _Optional[int] = ..., target_tokens: _Optional[int] = ..., judge_calls: _Optional[int] = ..., draft_time_s: _Optional[float] = ..., judge_time_s: _Optional[float] = ..., target_time_s: _Optional[float] = ..., wall_time_s: _Optional[float] = ..., degraded_steps: _Optional[int] = ..., degraded_reason: _Optional[str] = ..., acceptance_rate: _Optional[float] = ..., spec_rounds: _Optional[int] = ..., spec_draft_tokens: _Optional[int] = ..., spec_accepted_tokens: _Optional[int] = ..., token_acceptance_rate: _Optional[float] = ..., mean_acceptance_length: _Optional[float] = ..., samples: _Optional[int] = ..., paths_stopped_early: _Optional[int] = ...) -> None: ...

class ReasonResponse(_message.Message):
    __slots__ = ("id", "model", "created", "method", "answer", "text", "stop_reason", "steps", "stats", "arm", "candidates")
    ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    STOP_REASON_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    ARM_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    id: str
    model: str
    created: int
    method: str
    answer: str
    text: str
    stop_reason: str
    steps: _containers.RepeatedCompositeFieldContainer[Step]
    stats: Stats
    arm: str
    candidates: _containers.RepeatedCompositeFieldContainer[Candidate]
    def __init__(self, id: _Optional[str] = ..., model: _Optional[str] = ..., created: _Optional[int] = ..., method: _Optional[str] = ..., answer: _Optional[str] = ..., text: _Optional[str] = ..., stop_reason: _Optional[str] = ..., steps: _Optional[_Iterable[_Union[Step, _Mapping]]] = ..., stats: _Optional[_Union[Stats, _Mapping]] = ..., arm: _Optional[str] = ..., candidates: _Optional[_Iterable[_Union[Candidate, _Mapping]]] = ...) -> None: ...

class ReasonStreamResponse(_message.Message):
    __slots__ = ("step", "result")
    STEP_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    step: Step
    result: ReasonResponse
    def __init__(self, step: _Optional[_Union[Step, _Mapping]] = ..., result: _Optional[_Union[ReasonResponse, _Mapping]] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Model(_message.Message):
    __slots__ = ("id", "draft", "target")
    ID_FIELD_NUMBER: _ClassVar[int]
    DRAFT_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    id: str
    draft: str
    target: str
    def __init__(self, id: _Optional[str] = ..., draft: _Optional[str] = ..., target: _Optional[str] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[Model]
    def __init__(self, models: _Optional[_Iterable[_Union[Model, _Mapping]]] = ...) -> None: ...
