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


def test_embedded_cluster_binds_loopback_and_ignores_the_drivers_folder(tmp_path, monkeypatch):
    """Started from a folder holding `dl/` and `yaml/` (as a user's folder might), every Ray port is on
    loopback and every Ray process imports the real python-gdcm / pydicom / yaml."""
    import os

    import ray

    from testkit.listening import listening_sockets

    for name in ("dl", "yaml"):  # `dl` is what python-gdcm tries first; `yaml` what Ray's dashboard reads
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("", encoding="utf-8")
    cluster.shutdown()  # a fresh cluster, started from that folder
    monkeypatch.chdir(tmp_path)
    try:
        cluster.connect(num_cpus=2, quiet=True)

        @ray.remote(num_cpus=0)
        def imports() -> dict:
            import sys

            import gdcm
            import pydicom
            import yaml

            return {"path": list(sys.path), "files": [gdcm.__file__, pydicom.__file__, yaml.__file__],
                    "dump": yaml.safe_dump({"a": 1})}

        seen = ray.get(imports.remote())
        assert str(tmp_path) not in seen["path"]
        assert not any(f.startswith(str(tmp_path)) for f in seen["files"]), seen["files"]
        assert seen["dump"] == "a: 1\n"

        sockets = listening_sockets(os.getpid())
        processes = " ".join(s.process for s in sockets)
        assert "gcs_server" in processes and "raylet" in processes  # the probe does see Ray's servers
        exposed = [s for s in sockets if not s.loopback]
        assert not exposed, exposed
    finally:
        cluster.shutdown()
