"""Which training pairs a catalog gives: used and refused per study and protocol, before any training.

:func:`plan_pairs` reads every study once (:func:`ctharmony.train.data.load_study`), keeps in each record
only the inputs that pair with the target, and drops studies left without one; the report rows name the
study by its pseudonymous patient key and a hash of its UID (:func:`ctharmony.train.data.study_label`).
``ctharmony train`` prints :func:`format_report` and logs :func:`log_to_mlflow` (a table artifact and
counts as params); ``ctharmony train --dry-run`` only prints.

Example::

    plan = plan_pairs(study_records(read_catalog(path).series(), ("FBP", "M40"), "M80"), "M80")
    print(format_report(plan.rows))
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

PAIRS_TABLE = "training_pairs.json"


@dataclasses.dataclass
class PairPlan:
    """The records to train on (refused inputs removed) and one report row per input series."""

    records: list[dict[str, Any]]
    rows: list[dict[str, Any]]

    def restrict(self, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """``records`` (e.g. one side of the patient split) as planned: refused inputs out, unusable studies dropped."""
        planned = {r["study_uid"]: r for r in self.records}
        return [planned[r["study_uid"]] for r in records if r["study_uid"] in planned]

    def counts(self) -> dict[str, Counter]:
        """``{protocol: Counter(used=..., refused=...)}``."""
        out: dict[str, Counter] = {}
        for row in self.rows:
            out.setdefault(row["protocol"], Counter())[row["status"]] += 1
        return out


def plan_pairs(records: Sequence[Mapping[str, Any]], target: str) -> PairPlan:
    """Pair every study's inputs with ``target`` (see the module docstring)."""
    from ctharmony.train.data import load_study, study_files, study_label

    kept, rows = [], []
    for record in records:
        study = load_study(record, target)
        label = {"patient_key": str(record.get("patient_key", "")), "study": study_label(record)}
        rows += [{**label, **outcome.as_row()} for outcome in study.outcomes]
        used = {o.protocol for o in study.outcomes if o.used}
        files = study_files(record)
        names = sorted(p for p in files if p == target or p in used)
        if len(names) >= 2:
            kept.append({**record, "protocols": names, "files": [files[p] for p in names]})
    return PairPlan(kept, rows)


def format_report(plan: PairPlan) -> str:
    """Per protocol: pairs used and refused; then each refused pair with its reason."""
    lines = [f"training pairs: {len(plan.records)} studies usable"]
    for protocol, count in sorted(plan.counts().items()):
        lines.append(f"  {protocol:<4} used {count['used']:4d}  refused {count['refused']:4d}")
    for row in plan.rows:
        if row["status"] == "refused":
            lines.append(f"  refused: patient {row['patient_key']} study {row['study']} {row['protocol']}: "
                         f"{row['reason']}")
    return "\n".join(lines)


def log_to_mlflow(plan: PairPlan) -> None:
    """Into the active MLflow run: the rows as table ``training_pairs.json``, counts as params."""
    import mlflow

    if plan.rows:
        columns = list(plan.rows[0])
        mlflow.log_table({c: [row[c] for row in plan.rows] for c in columns}, PAIRS_TABLE)
    params: dict[str, Any] = {"pairs_studies": len(plan.records)}
    for protocol, count in sorted(plan.counts().items()):
        params[f"pairs_used_{protocol}"] = count["used"]
        params[f"pairs_refused_{protocol}"] = count["refused"]
    params["pairs_used"] = sum(c["used"] for c in plan.counts().values())
    params["pairs_refused"] = sum(c["refused"] for c in plan.counts().values())
    mlflow.log_params(params)
