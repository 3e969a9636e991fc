"""Releasing the workers of sweep trials Tune has stopped.

Each trial is a small Tune driver (a fraction of a CPU) that starts a Ray Train run whose workers
reserve their own placement group (sized by :func:`ctharmony.resource_plan.plan_trials`).
:class:`ReleaseStoppedTrialWorkers` fixes a leak: when
Tune stops a trial (ASHA, or the last epoch), it kills the trial's actor and with it the Train
controller, but the controller's placement group lives as long as the job; Train's own cleaner needs
the Ray dashboard (absent on an embedded cluster), so without this callback the next trials wait
forever for CPUs that nobody uses.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ray.tune import Callback

log = logging.getLogger(__name__)


def release_orphaned_placement_groups() -> int:
    """Remove this job's placement groups whose creating actor is dead (nobody can remove them now).

    Only groups created by an actor of the current job, not detached, and whose creator died are
    touched; returns how many were removed.
    """
    import ray
    from ray._private.state import state as global_state  # no public API exposes the creator's fate
    from ray._raylet import ActorID, PlacementGroupID
    from ray.core.generated import gcs_pb2
    from ray.util.placement_group import PlacementGroup, remove_placement_group

    job_id = ray.get_runtime_context().get_job_id()
    no_actor = ActorID.nil().binary()  # groups created by a driver (e.g. Tune's trial groups) carry this
    removed = 0
    for raw in global_state._connect_and_get_accessor().get_placement_group_table():
        pg = gcs_pb2.PlacementGroupTableData.FromString(raw)
        if (
            pg.creator_job_id.hex() == job_id
            and pg.creator_actor_id not in (b"", no_actor)
            and pg.creator_actor_dead
            and not pg.is_detached
            and pg.state != gcs_pb2.PlacementGroupTableData.REMOVED
        ):
            remove_placement_group(PlacementGroup(PlacementGroupID(pg.placement_group_id)))
            removed += 1
    if removed:
        log.info("released %d placement group(s) of stopped trials' Train workers", removed)
    return removed


class ReleaseStoppedTrialWorkers(Callback):
    """Tune callback: every ``interval_s`` (between Tune steps), release stopped trials' worker groups."""

    def __init__(self, interval_s: float = 2.0) -> None:
        self.interval_s = interval_s
        self._last = 0.0

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        now = time.monotonic()
        if abs(now - self._last) >= self.interval_s:  # abs: a restored sweep runs in a new process
            self._last = now
            try:
                release_orphaned_placement_groups()
            except Exception as err:  # never let housekeeping break a sweep
                log.warning("could not check for orphaned placement groups: %s", err)
