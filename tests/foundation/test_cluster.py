from __future__ import annotations

from ctharmony import cluster


def test_connect_is_idempotent_and_describes(ray_local):
    first = cluster.connect(quiet=True)
    second = cluster.connect(quiet=True)
    assert first == second
    assert first.embedded and first.nodes == 1 and first.cpus == 4
    assert "embedded local Ray cluster: 1 node, 4 CPUs" in first.describe()


def test_address_from_environment(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "10.1.2.3:6379")
    assert cluster.resolve_address() == "10.1.2.3:6379"
    assert cluster.resolve_address("auto") == "auto"
    monkeypatch.delenv("RAY_ADDRESS")
    assert cluster.resolve_address() is None
