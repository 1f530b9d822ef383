"""`specserve up`'s wait for the app: replicas waiting for resources fail after the scheduling deadline; replicas
loading their models are waited for until the start deadline."""

from __future__ import annotations

import pytest
from ray.serve.schema import (
    ApplicationStatus,
    ApplicationStatusOverview,
    DeploymentStatus,
    DeploymentStatusOverview,
    DeploymentStatusTrigger,
    ServeStatus,
)

from deployments import launcher
from deployments.launcher import LaunchError, unplaced, wait_until_running

# Serve 2.60's own messages for a replica slow to be placed and for one slow to initialize.
UNPLACED = ("Deployment 'Verifier' in application 'specserve' has 1 replicas that have taken more than 30s to be "
            "scheduled. This may be due to waiting for the cluster to auto-scale or for a runtime environment to be "
            "installed. Resources required for each replica: {'CPU': 4}, total resources available: {'CPU': 2}.")
LOADING = ("Deployment 'Verifier' in application 'specserve' has 1 replicas that have taken more than 30s to "
           "initialize.\nThis may be caused by a slow __init__ or reconfigure method.")


def deploying(verifier_message: str) -> ApplicationStatusOverview:
    def deployment(status: DeploymentStatus, message: str) -> DeploymentStatusOverview:
        return DeploymentStatusOverview(status=status, status_trigger=DeploymentStatusTrigger.CONFIG_UPDATE_STARTED,
                                        replica_states={}, message=message)
    return ApplicationStatusOverview(
        status=ApplicationStatus.DEPLOYING, message="", last_deployed_time_s=0.0,
        deployments={"Drafter": deployment(DeploymentStatus.HEALTHY, ""),
                     "Verifier": deployment(DeploymentStatus.UPDATING, verifier_message)})


@pytest.fixture
def clock(monkeypatch):
    """Serve reports the app as `clock.app`, RUNNING from `clock.running_at` on; each poll advances the clock 10 s."""
    class Clock:
        now = 0.0
        app = deploying("")
        running_at = float("inf")

    def status() -> ServeStatus:
        app = c.app if c.now < c.running_at else ApplicationStatusOverview(
            status=ApplicationStatus.RUNNING, message="", last_deployed_time_s=0.0, deployments={})
        return ServeStatus(applications={"specserve": app})
    c = Clock()
    monkeypatch.setattr(launcher.time, "monotonic", lambda: c.now)
    monkeypatch.setattr(launcher.time, "sleep", lambda s: setattr(c, "now", c.now + 10.0))
    monkeypatch.setattr(launcher.serve, "status", status)
    return c


def test_unplaced_names_only_deployments_waiting_for_resources():
    assert unplaced(deploying(UNPLACED)) == ["Verifier"]
    assert unplaced(deploying(LOADING)) == []


def test_replicas_waiting_for_resources_fail_at_the_scheduling_deadline(clock):
    clock.app = deploying(UNPLACED)
    with pytest.raises(LaunchError, match=r"Verifier not placed after 120s \(server.schedule_timeout_s\)"):
        wait_until_running("specserve", 900, 120)
    assert 120 < clock.now < 900


def test_replicas_loading_models_are_waited_for_until_the_start_deadline(clock):
    clock.app = deploying(LOADING)
    with pytest.raises(LaunchError, match=r"not running after 900s \(server.start_timeout_s\).*initialize"):
        wait_until_running("specserve", 900, 120)
    assert clock.now > 900


def test_an_app_that_comes_up_while_loading_is_returned(clock):
    clock.app, clock.running_at = deploying(LOADING), 300.0
    wait_until_running("specserve", 900, 120)
    assert clock.now == 300.0
