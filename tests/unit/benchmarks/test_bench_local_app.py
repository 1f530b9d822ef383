"""free_port: the ports the tests and benchmarks serve on stay clear of those the OS and Ray hand out themselves."""

from __future__ import annotations

import socket

from benchmarks import local_app


def test_free_port_is_bindable_distinct_and_outside_ephemeral_and_ray_worker_ranges():
    first_ephemeral = int(local_app._EPHEMERAL_RANGE.read_text().split()[0])
    ports = [local_app.free_port() for _ in range(20)]
    assert len(set(ports)) == len(ports)
    assert all(20000 <= p < first_ephemeral for p in ports)  # Ray's worker ports end at 19999
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports[-1]))


def test_free_port_skips_a_port_in_use(monkeypatch):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        monkeypatch.setattr(local_app, "_FIRST_PORT", taken)
        monkeypatch.setattr(local_app, "_EPHEMERAL_RANGE", local_app.Path("/nonexistent"))
        monkeypatch.setattr(local_app.random, "sample", lambda seq, k: sorted(seq)[:k])
        assert local_app.free_port() != taken
