from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from benchmarks.coresidence import app_processes, apply, main, summarise, table


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


@pytest.fixture
def family():
    """A process whose command line carries a unique marker, with one child named like a Ray worker:
    (marker, parent pid, child pid)."""
    marker = f"coresidence-{uuid.uuid4().hex}"
    child = "import time; open('/proc/self/comm', 'w').write('ray::Fake'); time.sleep(60)"
    code = f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {child!r}]); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code, marker])
    pids = [proc.pid]
    try:
        for _ in range(200):
            pids = app_processes(marker)
            if len(pids) == 2:
                break
            time.sleep(0.05)
        assert len(pids) == 2, pids
        yield marker, pids[0], pids[1]
    finally:
        apply(pids, "running")
        for pid in reversed(pids):
            os.kill(pid, signal.SIGKILL)
        proc.wait()


def test_finds_the_launcher_and_its_descendants(family):
    marker, parent, child = family
    assert app_processes(marker) == [parent, child]
    with pytest.raises(RuntimeError, match="found none"):
        app_processes(f"no-such-{uuid.uuid4().hex}")


def test_conditions_freeze_renice_and_demote_every_process(family):
    marker, parent, child = family
    pids = [parent, child]
    apply(pids, "frozen")
    assert [_state(p) for p in pids] == ["T", "T"]
    apply(pids, "idle")
    assert "T" not in [_state(p) for p in pids]
    assert all(os.sched_getscheduler(p) == os.SCHED_IDLE for p in pids)
    apply(pids, "nice19")
    assert all(os.sched_getscheduler(p) == os.SCHED_OTHER for p in pids)
    assert all(os.getpriority(os.PRIO_PROCESS, p) == 19 for p in pids)
    if os.geteuid() != 0:
        pytest.skip("raising the priority back needs CAP_SYS_NICE")
    apply(pids, "running")
    assert all(os.getpriority(os.PRIO_PROCESS, p) == 0 for p in pids)
    for _ in range(200):  # the child names itself once its interpreter has started
        if open(f"/proc/{child}/comm").read().strip() == "ray::Fake":
            break
        time.sleep(0.05)
    apply(pids, "mainidle")
    assert [os.sched_getscheduler(p) for p in pids] == [os.SCHED_OTHER, os.SCHED_IDLE]
    assert [os.getpriority(os.PRIO_PROCESS, p) for p in pids] == [0, 0]
    with pytest.raises(ValueError, match="unknown condition"):
        apply(pids, "paused")


def test_ratios_are_paired_by_round():
    ms = {"frozen": [100.0, 200.0], "running": [110.0, 240.0]}
    frozen, running = summarise(ms, {"frozen": [0.0, 0.0], "running": [0.1, 0.2]})
    assert (frozen.geomean, frozen.low, frozen.high) == (1.0, 1.0, 1.0)
    assert running.mean_ms == pytest.approx(175.0)
    assert running.geomean == pytest.approx((1.1 * 1.2) ** 0.5)
    assert (running.low, running.high, running.app_cpu) == (pytest.approx(1.1), pytest.approx(1.2), pytest.approx(0.15))
    assert "| running | 175.0 |" in table([frozen, running])


@pytest.mark.parametrize("argv", [["--conditions", "frozen"], ["--conditions", "frozen,paused"], ["--rounds", "0"]])
def test_bad_arguments_are_refused_before_loading_a_model(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "--conditions" in capsys.readouterr().err
