"""Task-aware model selection for λ sweeps: the objective, the best trial, and the champion alias.

The objective is the worst-protocol validation liver Dice of the reference segmenter on converted
images (``val/dice_worst``, higher is better); the mean validation MAE in HU (``val/mae_hu``, lower is
better) breaks ties. Dice values within :data:`DICE_TIE` of each other count as tied. A new model gets
the ``champion`` alias of ``ctharmony-harmonizer`` only when it beats the current champion on the same
validation set: each registered version carries its objective and the fingerprint of the validation
set it was scored on as tags, and scores on different validation sets are never compared.

Example:
    >>> Score(dice_worst=0.91, mae_hu=12.0).beats(Score(dice_worst=0.90, mae_hu=5.0))
    True
    >>> Score(dice_worst=0.9101, mae_hu=12.0).beats(Score(dice_worst=0.9104, mae_hu=9.0))
    False
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

OBJECTIVE = "val/dice_worst"
TIE_BREAK = "val/mae_hu"
MAE_PREFIX = "val/mae_hu/"
DICE_TIE = 1e-3
CHAMPION_ALIAS = "champion"
TAG_DICE = "ctharmony.objective.dice_worst"
TAG_MAE = "ctharmony.objective.mae_hu"
TAG_FINGERPRINT = "ctharmony.validation_fingerprint"


@dataclasses.dataclass(frozen=True)
class Score:
    """A model's validation score: worst-protocol Dice (higher wins), mean MAE in HU (tie-break)."""

    dice_worst: float
    mae_hu: float

    def rank_key(self) -> tuple[float, float]:
        """Sort key, smallest first = best (Dice on a :data:`DICE_TIE` grid, then MAE)."""
        return (-round(self.dice_worst / DICE_TIE) * DICE_TIE, self.mae_hu)

    def beats(self, other: Score) -> bool:
        """Strictly better than ``other``: more Dice beyond the tie margin, or tied Dice and lower MAE."""
        if self.dice_worst > other.dice_worst + DICE_TIE:
            return True
        return abs(self.dice_worst - other.dice_worst) <= DICE_TIE and self.mae_hu < other.mae_hu

    @classmethod
    def from_metrics(cls, metrics: Mapping[str, Any]) -> Score | None:
        """The score in a metrics dict, or None when either value is missing or not finite."""
        try:
            dice, mae = float(metrics[OBJECTIVE]), float(metrics[TIE_BREAK])
        except (KeyError, TypeError, ValueError):
            return None
        return cls(dice, mae) if math.isfinite(dice) and math.isfinite(mae) else None


@dataclasses.dataclass(frozen=True)
class TrialOutcome:
    """One finished (or stopped) trial: its λ, its best-epoch score and where its checkpoint lives."""

    trial_id: str
    params: dict[str, Any]
    score: Score | None
    metrics: dict[str, Any]
    checkpoint_path: str | None = None
    status: str = "TERMINATED"

    def mae_per_protocol(self) -> dict[str, float]:
        return {k[len(MAE_PREFIX) :]: float(v) for k, v in self.metrics.items() if k.startswith(MAE_PREFIX)}


def best_epoch(history: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The reported epoch with the best score (a trial is judged by its best validated epoch)."""
    scored = [(s, m) for m in history if (s := Score.from_metrics(m)) is not None]
    return min(scored, key=lambda pair: pair[0].rank_key())[1] if scored else None


def select_best(outcomes: Sequence[TrialOutcome]) -> TrialOutcome | None:
    """The best scored trial (ties resolved by MAE, then by trial id for determinism)."""
    scored = [o for o in outcomes if o.score is not None]
    return min(scored, key=lambda o: (o.score.rank_key(), o.trial_id)) if scored else None  # type: ignore[union-attr]


def results_table(outcomes: Sequence[TrialOutcome]):
    """A pandas DataFrame, best first: trial, λ/params, objective, MAE (mean and per protocol), status."""
    import pandas as pd

    rows = []
    for o in outcomes:
        row: dict[str, Any] = {"trial": o.trial_id, **o.params}
        row[OBJECTIVE] = o.score.dice_worst if o.score else float("nan")
        row[TIE_BREAK] = o.score.mae_hu if o.score else float("nan")
        row.update({f"{MAE_PREFIX}{p}": v for p, v in sorted(o.mae_per_protocol().items())})
        row["status"] = o.status
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    order = sorted(range(len(outcomes)), key=lambda i: _sort_key(outcomes[i]))
    return table.iloc[order].reset_index(drop=True)


def _sort_key(outcome: TrialOutcome) -> tuple:
    if outcome.score is None:
        return (1, (0.0, 0.0), outcome.trial_id)
    return (0, outcome.score.rank_key(), outcome.trial_id)


def validation_fingerprint(validation_keys: Iterable[str], **settings: Any) -> str:
    """A short sha256 of the validation series and the settings that shape the score (e.g. segmenter)."""
    payload = json.dumps({"keys": sorted(map(str, validation_keys)), **settings}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class ChampionDecision:
    """What :func:`promote_if_better` did and why."""

    promoted: bool
    version: str
    previous_version: str | None
    reason: str


def promote_if_better(
    client: Any,
    model_name: str,
    version: str,
    score: Score,
    fingerprint: str,
    *,
    evaluate_champion: Callable[[str], Score | None] | None = None,
    alias: str = CHAMPION_ALIAS,
) -> ChampionDecision:
    """Tag ``version`` with its score and move ``alias`` to it only if it beats the current champion.

    Args:
        client: an ``mlflow.MlflowClient``.
        model_name: registered model name (``ctharmony-harmonizer``).
        version: the newly registered version.
        score: its validation score; fingerprint: the fingerprint of that validation set.
        evaluate_champion: optional scorer of a model URI on *this* validation set, used when the
            champion was scored on another one; without it such a champion is kept (never compared).
    """
    version = str(version)
    for key, value in {TAG_DICE: score.dice_worst, TAG_MAE: score.mae_hu, TAG_FINGERPRINT: fingerprint}.items():
        client.set_model_version_tag(model_name, version, key, str(value))
    current = _current_champion(client, model_name, alias)
    if current is not None:
        current_version = str(current.version)
    if current is None:
        client.set_registered_model_alias(model_name, alias, version)
        return ChampionDecision(True, version, None, "no champion yet")
    if current_version == version:
        return ChampionDecision(False, version, version, "already the champion")
    champion_score = _tagged_score(current.tags) if current.tags.get(TAG_FINGERPRINT) == fingerprint else None
    if champion_score is None and evaluate_champion is not None:
        champion_score = evaluate_champion(f"models:/{model_name}/{current_version}")
    if champion_score is None:
        return ChampionDecision(
            False,
            version,
            current_version,
            f"champion v{current_version} was scored on another validation set; kept (not comparable)",
        )
    if score.beats(champion_score):
        client.set_registered_model_alias(model_name, alias, version)
        return ChampionDecision(True, version, current_version, f"{_fmt(score)} beats {_fmt(champion_score)}")
    return ChampionDecision(
        False, version, current_version, f"{_fmt(score)} does not beat {_fmt(champion_score)}"
    )


def _current_champion(client: Any, model_name: str, alias: str) -> Any | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(model_name, alias)
    except MlflowException:
        return None


def _tagged_score(tags: Mapping[str, str]) -> Score | None:
    return Score.from_metrics({OBJECTIVE: tags.get(TAG_DICE), TIE_BREAK: tags.get(TAG_MAE)})


def _fmt(score: Score) -> str:
    return f"dice_worst {score.dice_worst:.4f} / MAE {score.mae_hu:.2f} HU"
