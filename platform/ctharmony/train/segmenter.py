"""Train the reference liver segmenter (2D U-Net) on M80 series only, and register it in MLflow.

It stands in for the paper's commercial segmenter: trained on the reference reconstruction only, so
it works on M80 and fails where intensities shift (M40) — the failure harmonization must repair.
Masks are the phantom's ``<masks>/<StudyInstanceUID>.nii.gz``, sampled (nearest neighbour) on the
series' own slice planes in physical space (``evaluate.metrics.truth_on_grid``). Random patches
(``train.patch_size``; 0: whole slices), Dice + BCE, Adam; validation Dice on held-out patients, and the
epoch with the best validation Dice is the model (``train.keep: best``; ``last`` keeps the last epoch).

Example::

    outcome = train_segmenter(Path("cat.parquet"), Path("ph/masks"), "liver-unet")
    outcome.metrics["val/dice"]
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ctharmony.archive.catalog_table import SeriesRow
from ctharmony.config import ModelSpec
from ctharmony.models.hu_model import HUModel, normalize, pad_to_multiple
from ctharmony.models.registry import build_network, load_spec
from ctharmony.train.data import TrainingDataError, split_by_patient

log = logging.getLogger(__name__)
EXPERIMENT = "ctharmony-segmenter"


def read_mask_on_grid(mask_path: Path, files: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The series' HU volume and its liver mask sampled on the series' own slice planes (both (z, y, x))."""
    from ctharmony.archive import read_series
    from ctharmony.archive.orientation import to_canonical
    from ctharmony.evaluate.metrics import MaskFileError, truth_on_grid

    volume = to_canonical(read_series(files))  # the in-plane layout the networks see at inference
    try:
        mask = truth_on_grid(mask_path, volume.shape, volume.spacing, volume.origin, volume.direction,
                             volume.positions)
    except MaskFileError as err:
        raise TrainingDataError(str(err)) from err
    return volume.hu.astype(np.float32, copy=False), (mask > 0).astype(np.float32)


def m80_records(rows: Sequence[SeriesRow], masks: Path, target: str = "M80") -> list[dict[str, Any]]:
    """ok reference series (of catalog ``rows``, ``read_catalog(path).series()``) whose study has a mask file."""
    records = []
    for row in rows:
        if row.status != "ok" or row.protocol != target:
            continue
        mask = Path(masks) / f"{row.study_uid}.nii.gz"
        if mask.is_file():
            records.append({"patient_key": row.patient_key, "files": list(row.files), "mask": mask})
    if not records:
        raise TrainingDataError(f"no ok {target} series in the catalog has a mask in {masks}")
    return records


def soft_dice_loss(logits: torch.Tensor, mask: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    prob = torch.sigmoid(logits)
    inter = (prob * mask).sum()
    return 1.0 - (2.0 * inter + eps) / (prob.sum() + mask.sum() + eps)


@dataclasses.dataclass
class SegmenterOutcome:
    model: HUModel
    run_id: str
    model_uri: str
    metrics: dict[str, float]


def sample_batches(hu: np.ndarray, masks: np.ndarray, spec: ModelSpec,
                   rng: np.random.Generator) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """One epoch of (image, mask) batches of shape (B, 1, H, W): whole slices, or random square patches.

    With ``train.patch_size`` > 0 each batch holds random crops (``train.patches_per_epoch`` of them per
    epoch, 0: one per slice) from random slices, as nnU-Net trains: the network sees local intensity and
    texture rather than the whole abdomen's shape. Otherwise whole slices in a random order.
    """
    size, batch = spec.train.patch_size, spec.train.batch_size
    if size <= 0:
        order = rng.permutation(len(hu))
        for start in range(0, len(order), batch):
            idx = order[start : start + batch]
            yield hu[idx], masks[idx]
        return
    height, width = hu.shape[-2:]
    if size > min(height, width):
        raise ValueError(f"train.patch_size {size} exceeds the training slices ({height}x{width})")
    count = spec.train.patches_per_epoch or len(hu)
    for start in range(0, count, batch):
        n = min(batch, count - start)
        idx = rng.integers(0, len(hu), n)
        ys = rng.integers(0, height - size + 1, n)
        xs = rng.integers(0, width - size + 1, n)
        crops = [(hu[i, :, y : y + size, x : x + size], masks[i, :, y : y + size, x : x + size])
                 for i, y, x in zip(idx, ys, xs, strict=True)]
        yield np.stack([c for c, _ in crops]), np.stack([m for _, m in crops])


def fit_segmenter(spec: ModelSpec, train: list[tuple[np.ndarray, np.ndarray]],
                  val: list[tuple[np.ndarray, np.ndarray]], on_epoch: Any = None, *,
                  on_keep: Any = None) -> HUModel:
    """Train a U-Net on (HU volume, mask) pairs (slices or patches) and return the epoch ``train.keep`` names.

    ``on_epoch(epoch, metrics)`` is called after each epoch (1-based; ``train/loss``, ``val/dice``).
    ``train.keep: best`` (the default) keeps the weights of the epoch with the highest validation Dice (the
    earlier epoch on ties; ``val`` are held-out training patients, never test data), as nnU-Net and
    Lightning checkpointing do: one bad last epoch does not decide the model. ``last`` keeps the last epoch,
    and so does ``best`` when there is no validation pair. ``on_keep(epoch, metrics)`` is called once, at
    the end, with the kept epoch and its metrics.
    """
    torch.manual_seed(spec.train.seed)
    rng = np.random.default_rng(spec.train.seed)
    model = HUModel(build_network(spec), spec)
    opt = torch.optim.Adam(model.parameters(), lr=spec.optim.lr, betas=tuple(spec.optim.betas))
    hu = np.concatenate([v for v, _ in train])[:, None]
    masks = np.concatenate([m for _, m in train])[:, None]
    epochs = spec.train.epochs_stage1 + spec.train.epochs_stage2
    keep_best = spec.train.keep == "best" and bool(val)
    if spec.train.keep == "best" and not val:
        log.warning("segmenter: no validation pairs, so no best epoch to choose: keeping the last epoch")
    best: tuple[int, dict[str, float], dict[str, torch.Tensor]] | None = None  # epoch, metrics, CPU weights
    kept: tuple[int, dict[str, float]] = (0, {})
    for epoch in range(1, epochs + 1):
        model.train()
        losses = []
        for x_np, y_np in sample_batches(hu, masks, spec, rng):
            x, y = torch.from_numpy(np.ascontiguousarray(x_np)), torch.from_numpy(np.ascontiguousarray(y_np))
            if rng.random() < 0.5:  # left-right flip: the only augmentation (no intensity changes)
                x, y = x.flip(-1), y.flip(-1)
            x_pad, (h, w) = pad_to_multiple(normalize(x, spec.intensity), model.size_multiple)
            logits = model.net(x_pad)[..., :h, :w]
            loss = F.binary_cross_entropy_with_logits(logits, y) + soft_dice_loss(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        metrics = {"train/loss": float(np.mean(losses)), "val/dice": evaluate_dice(model, val)}
        log.info("segmenter epoch %d/%d: %s", epoch, epochs, metrics)
        if on_epoch is not None:
            on_epoch(epoch, metrics)
        kept, dice = (epoch, metrics), metrics["val/dice"]
        if keep_best and np.isfinite(dice) and (best is None or dice > best[1]["val/dice"]):  # ties: the earlier
            state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}  # a deep copy
            best = (epoch, metrics, state)
    if best is not None:
        model.load_state_dict(best[2])
        kept = (best[0], best[1])
        log.info("segmenter: keeping epoch %d of %d (best validation Dice %.4f)", kept[0], epochs,
                 kept[1]["val/dice"])
    elif epochs:
        log.info("segmenter: keeping the last epoch (%d; train.keep=%s, %d validation pairs)", epochs,
                 spec.train.keep, len(val))
    if on_keep is not None:
        on_keep(*kept)
    return model.eval()


@torch.no_grad()
def evaluate_dice(model: HUModel, pairs: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """Pooled Dice of the model's masks (p > 0.5) over whole volumes."""
    from ctharmony.evaluate.metrics import dice_from_counts

    model.eval()
    inter = pred_sum = truth_sum = 0.0
    for hu, mask in pairs:
        pred = model(torch.from_numpy(hu[:, None])).numpy()[:, 0] > 0.5
        inter += float(np.logical_and(pred, mask > 0).sum())
        pred_sum += float(pred.sum())
        truth_sum += float((mask > 0).sum())
    return dice_from_counts(inter, pred_sum, truth_sum)


def train_segmenter(
    catalog: Path,
    masks: Path,
    spec: ModelSpec | str | Path = "liver-unet",
    *,
    overrides: Sequence[str] = (),
    register: bool = True,
    experiment: str = EXPERIMENT,
    data: Any = None,
) -> SegmenterOutcome:
    """Train on the M80 series with their masks; log to MLflow, register ``ctharmony-liver-unet``.

    The model is the epoch ``train.keep`` names (default: the best validation Dice); MLflow gets ``val/dice``
    and ``train/loss`` per epoch, then ``best_epoch`` (the epoch kept) and ``best/val_dice`` (its validation
    Dice); ``metrics`` holds the kept model's ``val/dice`` and ``best_epoch``.

    ``data``: a mix (:class:`~ctharmony.train.segmenter_data.SegmenterData` or its YAML) of more archives,
    re-simulated real ones among them, and original real images with masks; ``catalog`` / ``masks`` join it.
    """
    import mlflow

    from ctharmony import tracking
    from ctharmony.archive import read_catalog
    from ctharmony.tracking.models import REGISTERED, log_model

    spec = load_spec(spec, overrides)
    if spec.kind != "segmenter":
        raise ValueError(f"spec {spec.name!r} is a {spec.kind}, not a segmenter")
    if data is not None:
        from ctharmony.train.segmenter_data import mixed_pairs

        train, val = mixed_pairs(data, spec.train.target_protocol, spec.train.val_fraction, spec.train.seed,
                                 catalog=catalog, masks=masks)
    else:
        records = m80_records(read_catalog(catalog).series(), masks, spec.train.target_protocol)
        train_recs, val_recs = split_by_patient(records, spec.train.val_fraction, spec.train.seed)
        train = [read_mask_on_grid(r["mask"], r["files"]) for r in train_recs]
        val = [read_mask_on_grid(r["mask"], r["files"]) for r in val_recs]
    log.info("segmenter: %d training and %d validation series (M80)", len(train), len(val))
    with tracking.start_run(experiment, run_name=spec.name, config=spec,
                            tags={"ctharmony.kind": "segmenter"}) as run:
        mlflow.log_params({"train_series": len(train), "val_series": len(val)})
        kept: dict[str, float] = {}

        def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
            mlflow.log_metrics(metrics, step=epoch)

        def on_keep(epoch: int, metrics: dict[str, float]) -> None:
            kept.update({"best_epoch": epoch, "best/val_dice": metrics.get("val/dice", float("nan"))})

        model = fit_segmenter(spec, train, val, on_epoch=on_epoch, on_keep=on_keep)
        mlflow.log_metrics(kept)  # the epoch kept (train.keep: best validation Dice, or the last) and its Dice
        final = {"val/dice": kept["best/val_dice"], "best_epoch": kept["best_epoch"]}  # of the kept model
        registered = REGISTERED["segmenter"] if register else None
        info = log_model(model, "segmenter", registered_model_name=registered)
        return SegmenterOutcome(model=model, run_id=run.info.run_id, model_uri=info.model_uri, metrics=final)
