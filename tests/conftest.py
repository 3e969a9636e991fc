"""Shared fixtures: an isolated ctharmony home + MLflow store, a local Ray, a 2-node Ray cluster."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Logical CPUs of the test Ray cluster: more than the 2 physical cores so that trial drivers, Train
# workers and Data tasks can be scheduled together without deadlock (they are mostly idle waiting).
TEST_RAY_CPUS = 4


@pytest.fixture(scope="session", autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every test session gets its own ``CTHARMONY_HOME`` and SQLite MLflow store."""
    home = tmp_path_factory.mktemp("ctharmony-home")
    os.environ["CTHARMONY_HOME"] = str(home)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ.pop("RAY_ADDRESS", None)
    os.environ.setdefault("RAY_DISABLE_USAGE_STATS", "1")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    return home


@pytest.fixture
def real_data() -> Path:
    """The real cases of ``data/real`` (the Siemens series and its liver mask among them); fails when absent."""
    from testkit.real_cases import require_real_data

    return require_real_data()


@pytest.fixture
def ray_local():
    """An embedded local Ray cluster, started once and shared by the tests that ask for it."""
    import ray

    from ctharmony import cluster

    if not ray.is_initialized():
        cluster.connect(num_cpus=TEST_RAY_CPUS, quiet=True)
    yield ray


@pytest.fixture(scope="module")
def ray_two_nodes():
    """A 2-node Ray cluster on this machine (head holds no CPUs); nodes carry resources node_a/node_b."""
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    try:
        cluster.add_node(num_cpus=2, resources={"node_a": 1})
        cluster.add_node(num_cpus=2, resources={"node_b": 1})
        cluster.wait_for_nodes()
        ray.init(address=cluster.address)
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()



_SESSION: dict[str, int] = {}


def pytest_sessionfinish(session, exitstatus):
    _SESSION["exitstatus"] = int(exitstatus)


def pytest_unconfigure(config):
    """Leave without interpreter teardown once every result is reported.

    Tests start and stop whole Ray clusters (and a local head) in this process; at interpreter teardown a
    native thread left by them (Ray's core worker / gRPC) has crashed the process with SIGSEGV after
    "N passed" was printed, which would turn a green run red. Results and the summary are already out.
    """
    if "exitstatus" not in _SESSION:
        return
    try:
        import ray

        if ray.is_initialized():
            ray.shutdown()
    except Exception:  # noqa: BLE001 - best effort before leaving
        pass
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_SESSION["exitstatus"])
