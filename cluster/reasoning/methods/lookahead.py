"""Lookahead Reasoning: the draft writes γ steps ahead, the target writes its own step after every draft
prefix, and a step verifier keeps the longest run of drafts equivalent to the target's steps."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from cluster.errors import BackendError
from cluster.reasoning.run import ReasoningRun, StepCallback
from cluster.reasoning.steps import has_answer
from cluster.reasoning.types import (
    Author,
    FinishReason,
    ReasoningResult,
    StepContext,
    StepOutcome,
    StepOutput,
    StepParams,
    StopReason,
)
from cluster.reasoning.verifiers import StepPair, StepVerifier, Verdict, build_step_verifier

if TYPE_CHECKING:
    from cluster.config.schema import ReasoningParams
    from cluster.reasoning.interfaces import Drafter, Verifier
    from cluster.reasoning.verifiers import Embedder

logger = logging.getLogger(__name__)

_ALT_SEED_STRIDE = 100_003  # seed offset between the W draft alternatives of one position


class _DrafterFailed(Exception):
    """The drafter raised BackendError (the request degrades to target-only; target errors propagate)."""


@dataclass(eq=False, slots=True)
class _Node:
    """A point of the lookahead tree: the reasoning `steps` so far, reached from its parent by `draft`.

    `target` is the target's step after `steps` once written; the tasks exist in the async form only.
    """

    steps: tuple[str, ...]
    draft: StepOutput | None = None
    children: list[_Node] = field(default_factory=list)
    target: StepOutput | None = None
    target_task: asyncio.Task[None] | None = None
    expand_task: asyncio.Task[None] | None = None

    @property
    def terminal(self) -> bool:
        """The draft that leads here would end the reasoning if kept, so nothing follows it."""
        return self.draft is not None and (has_answer(self.draft.text) or self.draft.finish_reason is FinishReason.EOS)

    def walk(self) -> Iterator[_Node]:
        yield self
        for child in self.children:
            yield from child.walk()


def _params(run: ReasoningRun, position: int, alt: int = 0) -> StepParams:
    """The run's next-step params with the seed of step `position` (and draft alternative `alt`)."""
    p = run.step_params()
    return p if run.params.seed is None else replace(p, seed=run.params.seed + position + alt * _ALT_SEED_STRIDE)


async def _draft(run: ReasoningRun, drafter: Drafter, nodes: Sequence[_Node]) -> None:
    """Give each node W children: draft alternatives of its next step (one batched call per alternative)."""
    position, width = len(nodes[0].steps), run.params.lookahead_width
    ctxs = [StepContext(run.question, n.steps) for n in nodes]
    calls = [drafter.draft_steps(ctxs, _params(run, position, k)) for k in range(width)]
    try:
        with run.timed("draft"):  # W = 1 awaits in this task: a cancellation then never strands a finished draft
            alts = [await calls[0]] if width == 1 else await asyncio.gather(*calls)
    except BackendError as e:
        raise _DrafterFailed(str(e)) from e
    for i, node in enumerate(nodes):
        node.children = [_Node((*node.steps, out[i].text), out[i]) for out in alts]


async def _verify(run: ReasoningRun, verifier: StepVerifier, parents: Sequence[_Node]) -> dict[_Node, Verdict]:
    """Verdicts on every child draft of `parents` against its parent's target step, in one batch.

    A target step cut off by the token cap validates no draft (Lookahead Reasoning's rule).
    """
    verdicts = {c: Verdict(False) for p in parents for c in p.children}
    judged = [(p, c) for p in parents if p.target.finish_reason is not FinishReason.LENGTH for c in p.children]
    if judged:
        pairs = [StepPair(StepContext(run.question, p.steps), c.draft.text, p.target.text) for p, c in judged]
        with run.timed("judge"):
            out = await verifier.verify(pairs)
        verdicts.update(zip((c for _, c in judged), out, strict=True))
        run.stats.judge_calls += sum(v.score is not None for v in out)
    return verdicts


def _discard(run: ReasoningRun, node: _Node, *, with_draft: bool) -> None:
    """Count the finished but unkept steps under `node` as spent tokens (its own draft when `with_draft`)."""
    for n in node.walk():
        if n.target is not None:
            run.stats.target_tokens += n.target.num_tokens
        if n.draft is not None and (with_draft or n is not node):
            run.stats.draft_tokens += n.draft.num_tokens


def _first_accepted(verdicts: Sequence[Verdict]) -> int | None:
    return next((i for i, v in enumerate(verdicts) if v.accepted), None)


async def _decide(run: ReasoningRun, node: _Node,
                  verdicts: Sequence[Verdict]) -> tuple[StopReason | None, _Node | None]:
    """Keep the first child draft judged equivalent to the target's step (and return that child), or else the
    target's own step (and return None). Unkept children's tasks must be finished or cancelled first."""
    target, first = node.target, node.children[0]
    index = _first_accepted(verdicts)
    kept = None if index is None else node.children[index]
    for child in node.children:
        if child is not kept:
            _discard(run, child, with_draft=True)
    node.target, node.children = None, [] if kept is None else [kept]
    run.stats.steps_drafted += 1
    if kept is None:
        run.stats.steps_rewritten += 1
        reason = await run.add(target, Author.TARGET, StepOutcome.REWRITTEN, score=verdicts[0].score,
                               draft_text=first.draft.text)
        return reason, None
    run.stats.steps_accepted += 1
    run.stats.target_tokens += target.num_tokens  # written, then superseded by the equivalent draft
    return await run.add(kept.draft, Author.DRAFT, StepOutcome.ACCEPTED, score=verdicts[index].score), kept


async def _sync_cycle(run: ReasoningRun, drafter: Drafter, verifier: Verifier,
                      step_verifier: StepVerifier) -> StopReason | None:
    """One synchronous cycle: draft γ levels, write the target's step after every prefix in ONE batched call,
    judge every draft in one batch, keep the longest equivalent run plus the target's step where it ends."""
    root = _Node(run.context.steps)
    level = [root]
    try:
        for _ in range(run.params.lookahead_depth):
            level = [n for n in level if not n.terminal]
            if not level:
                break
            await _draft(run, drafter, level)
            level = [c for n in level for c in n.children]
    except _DrafterFailed:
        _discard(run, root, with_draft=False)  # the drafts written before the failure still cost tokens
        raise
    writers = [n for n in root.walk() if not n.terminal]
    with run.timed("target"):
        outs = await verifier.target_steps([StepContext(run.question, n.steps) for n in writers],
                                           _params(run, len(root.steps)))
    for node, out in zip(writers, outs, strict=True):
        node.target = out
    verdicts = await _verify(run, step_verifier, [n for n in writers if n.children])
    node = root
    while node.children:
        reason, kept = await _decide(run, node, [verdicts[c] for c in node.children])
        if kept is None:
            break
        node = kept
        if reason is not None:
            break
    else:  # all γ drafts kept: the target's step after the last one comes with the same batch
        reason = await run.add(node.target, Author.TARGET, StepOutcome.TARGET)
        node.target = None
    _discard(run, node, with_draft=False)
    return reason


class _AsyncTree:
    """The pipelined form: a node starts its target step and the drafting of its children as soon as it exists;
    the root rolls forward over kept drafts, keeping γ drafted levels ahead; a rejection cancels the subtrees
    it makes useless (their target and draft tasks), and the run's end cancels whatever is still running."""

    def __init__(self, run: ReasoningRun, drafter: Drafter, verifier: Verifier, step_verifier: StepVerifier) -> None:
        self.run, self.drafter, self.verifier, self.step_verifier = run, drafter, verifier, step_verifier
        self.root = _Node(run.context.steps)

    async def reason(self) -> StopReason:
        """Roll the tree until the run stops; the drafter's failure surfaces as _DrafterFailed."""
        self._spawn(self.root)
        try:
            while True:
                root = self.root
                await root.target_task
                await root.expand_task
                verdicts = await _verify(self.run, self.step_verifier, [root])
                ordered = [verdicts[c] for c in root.children]
                index = _first_accepted(ordered)
                await self._cancel([c for i, c in enumerate(root.children) if i != index])
                reason, kept = await _decide(self.run, root, ordered)
                self.root = kept if kept is not None else _Node(self.run.context.steps)
                if reason is not None:
                    return reason
                if kept is None:
                    self._spawn(self.root)
                for node in self.root.walk():
                    self._grow(node)
        finally:
            await self._cancel([self.root])
            _discard(self.run, self.root, with_draft=False)

    def _spawn(self, node: _Node) -> None:
        if not node.terminal:
            node.target_task = asyncio.create_task(self._write_target(node))
            self._grow(node)

    def _grow(self, node: _Node) -> None:
        ahead = len(node.steps) - len(self.root.steps)
        if node.expand_task is None and not node.terminal and ahead < self.run.params.lookahead_depth:
            node.expand_task = asyncio.create_task(self._expand(node))

    async def _write_target(self, node: _Node) -> None:
        with self.run.timed("target"):
            node.target = await self.verifier.target_step(StepContext(self.run.question, node.steps),
                                                          _params(self.run, len(node.steps)))

    async def _expand(self, node: _Node) -> None:
        await _draft(self.run, self.drafter, [node])
        for child in node.children:
            self._spawn(child)

    async def _cancel(self, nodes: Sequence[_Node]) -> None:
        """Cancel the unfinished tasks under `nodes` and wait until they are gone."""
        tasks = [t for n in nodes for m in n.walk() for t in (m.target_task, m.expand_task) if t is not None]
        pending = [t for t in tasks if not t.done()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)  # also collects failures of discarded work
        if pending:
            logger.debug("cancelled %d speculative tasks", len(pending))


async def lookahead_round(run: ReasoningRun, drafter: Drafter, verifier: Verifier, step_verifier: StepVerifier, *,
                          pipelined: bool) -> StopReason | None:
    """One round under `run.params`: the target's own step (first `first_n_target_steps`, or the run is
    degraded), else a synchronous cycle, or, `pipelined`, the asynchronous tree (which rolls on until the run
    stops). A drafter failure degrades the run (the next round is the target's); returns why the run stops, or
    None."""
    if run.target_writes_next:
        with run.timed("target"):
            out = await verifier.target_step(run.context, run.step_params())
        return await run.add(out, Author.TARGET, StepOutcome.TARGET)
    try:
        if pipelined:
            return await _AsyncTree(run, drafter, verifier, step_verifier).reason()
        return await _sync_cycle(run, drafter, verifier, step_verifier)
    except _DrafterFailed as e:
        run.degrade(e)
        return None


async def run_lookahead(question: str, drafter: Drafter, verifier: Verifier, params: ReasoningParams,
                        on_step: StepCallback | None = None, *, embedder: Embedder | None = None) -> ReasoningResult:
    """Lookahead Reasoning (ALGORITHMS.md §3.1), sync or async per `lookahead_mode`.

    The draft writes `lookahead_depth` (γ) steps ahead, `lookahead_width` (W) alternatives per position; the
    target writes its own step after every draft prefix; `step_verifier` judges each draft against the target's
    step at its position. Kept: the longest run of equivalent drafts, then the target's step at the first
    divergence (REWRITTEN, the draft in `draft_text`), or, in a sync cycle whose γ drafts were all kept, the
    target's step after them (TARGET). The first `first_n_target_steps` are the target's; a drafter failure
    degrades the rest of the request to target-only; target failures propagate.

    Stats: steps_drafted counts positions where drafts met the target's step (α = steps_accepted /
    steps_drafted, as for specreason); judge_calls counts model verdicts (exact matches need none);
    draft_tokens and target_tokens count every step a model finished, kept or not (cancelled steps are not
    counted); in the async form the phase times overlap.

    Raises:
        InvalidRequestError: `step_verifier` "embedding" without an `embedder`.
    """
    run = ReasoningRun(question, params, on_step)
    step_verifier = build_step_verifier(params, verifier, embedder)
    pipelined = params.lookahead_mode == "async"
    while (reason := await lookahead_round(run, drafter, verifier, step_verifier, pipelined=pipelined)) is None:
        pass
    return run.finish("lookahead", reason)
