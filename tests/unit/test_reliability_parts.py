"""The pure parts of the reliability machinery: admission counting, the stall watchdog, the fail-fast Remote
and its HealthMonitor, and the request caps."""

from __future__ import annotations

import asyncio
import time

import pytest

from cluster.config.schema import AppArgs, ReasoningParams, RequestLimits
from cluster.engine import check_limits
from cluster.errors import BackendError, BackendUnavailableError, InvalidRequestError, OverloadedError
from deployments.admission import Admission
from deployments.handles import HealthMonitor, Remote
from deployments.watchdog import CallWatchdog


def test_admission_refuses_beyond_the_limit_and_frees_slots():
    admission = Admission(limit=2, retry_after_s=3)
    with admission.slot(), admission.slot():
        with pytest.raises(OverloadedError) as e:
            admission.acquire()
        assert e.value.retry_after_s == 3
    with admission.slot():
        pass
    assert admission.to_dict() == {"in_flight": 0, "limit": 2, "admitted": 3, "refused": 1}


def test_watchdog_flags_a_call_running_past_the_stall_timeout():
    dog = CallWatchdog(stall_timeout_s=0.05)
    dog.check()
    with dog.track():
        dog.check()
        time.sleep(0.08)
        with pytest.raises(BackendError, match="wedged"):
            dog.check()
    dog.check()


class _Method:
    def __init__(self, calls: list[asyncio.Future]) -> None:
        self.calls = calls

    def remote(self, *args):
        future = asyncio.get_running_loop().create_future()
        self.calls.append(future)  # never answered: a replica that died with the call in flight
        return future


class _Handle:
    """A DeploymentHandle whose calls hang."""

    def __init__(self) -> None:
        self.calls: list[asyncio.Future] = []

    def __getattr__(self, name: str) -> _Method:
        return _Method(self.calls)


async def test_a_tripped_remote_fails_calls_in_flight_and_new_ones_until_reset():
    handle = _Handle()
    remote = Remote(handle, "verifier", "Verifier", timeout_s=30)
    in_flight = asyncio.ensure_future(remote("target_steps", []))
    await asyncio.sleep(0)
    remote.trip("replica gone")
    with pytest.raises(BackendUnavailableError, match="verifier unavailable: replica gone"):
        await in_flight
    assert handle.calls[0].cancelled()  # the hanging remote call is cancelled too
    with pytest.raises(BackendUnavailableError):
        await remote("target_steps", [])
    remote.reset()
    assert not remote.down


async def test_health_monitor_trips_a_failed_deployment_and_resets_when_it_runs_again():
    failed = {"Drafter"}

    async def states() -> set[str]:
        return set(failed)

    remote = Remote(_Handle(), "drafter", "Drafter", timeout_s=30)
    monitor = HealthMonitor([remote], states, interval_s=0.01, failures=2)
    await monitor.check()
    assert not remote.down  # one answer is not enough
    await monitor.check()
    assert remote.down
    failed.clear()
    await monitor.check()
    assert not remote.down


@pytest.mark.parametrize(("knobs", "field"), [
    ({"max_total_tokens": 101}, "max_total_tokens"),
    ({"max_steps": 11}, "max_steps"),
    ({"method": "best_of_n", "temperature": 0.7, "best_of_n": {"n_max": 4, "peek": 1}}, "best_of_n.n_max"),
    ({"method": "ssr", "ssr": {"k": 4}}, "ssr.k"),
])
def test_check_limits_names_the_knob_over_its_cap(knobs, field):
    limits = RequestLimits(total_tokens=100, steps=10, candidates=3)
    with pytest.raises(InvalidRequestError) as e:
        check_limits(ReasoningParams().with_overrides({"max_total_tokens": 100, "max_steps": 10, **knobs}), limits)
    assert e.value.field == field and "server.limits" in str(e.value)
    check_limits(ReasoningParams().with_overrides({"max_total_tokens": 100, "max_steps": 10}), limits)


def test_the_ingress_must_take_more_requests_than_it_admits():
    base = {"draft": {"path": "d"}, "target": {"path": "t"}}
    with pytest.raises(ValueError, match="max_inflight_requests"):
        AppArgs.model_validate({**base, "server": {"max_inflight_requests": 300}})
    AppArgs.model_validate({**base, "server": {"max_inflight_requests": 255}})
