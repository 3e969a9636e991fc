"""Validation on held-out patients: MAE (HU), PSNR, noise ratio and liver Dice per input protocol.

For every validation study and input protocol P, whole slices are converted by the generator and
compared with the real reference (M80) slice: MAE in HU (and the raw input's MAE, for comparison),
PSNR over the model's HU window, the fine-noise SD (image minus its σ = 1 px blur) over the
reference's where the reference is uniform (``val/noise_ratio/P``, and ``_raw`` for the input: what the
texture loss aims at 1), and the Dice of the reference segmenter's mask on the converted
image against its mask on the real M80 (the paper's ground truth); an input resampled from another grid
(:class:`ctharmony.train.data.PairedStudy`) counts only where it covers M80. Ranks take interleaved slices and
the sums are all-reduced, so every rank reports the same figures.

Example::

    sums = validation_sums(harmonizer, segmenter, studies, ("M40", "M80"), "M80", 4)
    metrics_from_sums(sums, ("M40", "M80"), window=3072.0)["val/mae_hu/M40"]
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import torch

from ctharmony.evaluate.metrics import dice_from_counts
from ctharmony.models.hu_model import HUModel
from ctharmony.train.losses import flat_regions, gaussian_blur

# columns of the per-protocol sums
MAE, RAW, SSE, COUNT, INTER, PRED, GT, RAW_INTER, RAW_PRED, NOISE, RAW_NOISE, REF_NOISE = range(12)
N_SUMS = 12
NOISE_SIGMA_PX = 1.0  # fine-noise band: the image minus its Gaussian blur of this SD


def slice_indices(depth: int, count: int) -> list[int]:
    """``count`` evenly spaced slice indices of a volume of ``depth`` slices (all when fewer)."""
    if count <= 0 or count >= depth:
        return list(range(depth))
    return sorted({int(round(v)) for v in np.linspace(0, depth - 1, count)})


@torch.no_grad()
def _predict(model: HUModel, hu: np.ndarray, chunk: int = 8) -> torch.Tensor:
    """Model output for (S, H, W) HU slices, on the CPU, whatever device the model is on."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    parts = [model(torch.from_numpy(np.ascontiguousarray(hu[i : i + chunk, None])).to(device)).cpu()
             for i in range(0, len(hu), chunk)]
    return torch.cat(parts)[:, 0]


@torch.no_grad()
def validation_sums(
    harmonizer: HUModel,
    segmenter: HUModel | None,
    studies: Sequence[dict[str, np.ndarray]],
    protocols: Sequence[str],
    target: str,
    slices_per_study: int,
    rank: int = 0,
    world: int = 1,
) -> torch.Tensor:
    """Per-protocol sums (len(protocols), N_SUMS) over this rank's share of the validation slices."""
    was_training = harmonizer.training
    harmonizer.eval()
    sums = torch.zeros(len(protocols), N_SUMS, dtype=torch.float64)
    for study_index, study in enumerate(studies):
        chosen = slice_indices(study[target].shape[0], slices_per_study)
        mine = [k for j, k in enumerate(chosen) if (j + study_index) % world == rank]
        if not mine:
            continue
        reference = torch.from_numpy(study[target][mine])
        truth = _predict(segmenter, study[target][mine]) > 0.5 if segmenter is not None else None
        flat = flat_regions(reference[:, None], hu_per_unit=1.0, hu_min=0.0)[:, 0]  # HU in, HU thresholds
        reference_noise = _fine_noise_power(reference, flat)
        for row, protocol in enumerate(protocols):
            if protocol not in study:
                continue
            cover = getattr(study, "coverage", {}).get(protocol)  # None: the input exists everywhere
            inside = None if cover is None else torch.from_numpy(cover[mine])
            total = functools.partial(_total, inside=inside)
            raw = torch.from_numpy(study[protocol][mine])
            converted = _predict(harmonizer, study[protocol][mine])
            sums[row, MAE] += total((converted - reference).abs()).double()
            sums[row, RAW] += total((raw - reference).abs()).double()
            sums[row, SSE] += total((converted - reference).double() ** 2)
            sums[row, COUNT] += reference.numel() if inside is None else int(inside.sum())
            region = flat if inside is None else flat & _away_from_edge(inside)
            sums[row, NOISE] += _fine_noise_power(converted, region)
            sums[row, RAW_NOISE] += _fine_noise_power(raw, region)
            sums[row, REF_NOISE] += reference_noise if inside is None else _fine_noise_power(reference, region)
            if truth is not None:
                pred = _predict(segmenter, converted.numpy()) > 0.5
                raw_pred = _predict(segmenter, study[protocol][mine]) > 0.5
                sums[row, INTER] += total(pred & truth)
                sums[row, PRED] += total(pred)
                sums[row, GT] += total(truth)
                sums[row, RAW_INTER] += total(raw_pred & truth)
                sums[row, RAW_PRED] += total(raw_pred)
    harmonizer.train(was_training)
    return sums


def _total(values: torch.Tensor, inside: torch.Tensor | None) -> torch.Tensor:
    """Sum of ``values`` (where ``inside``, when given)."""
    return values.sum() if inside is None else values[inside].sum()


def _away_from_edge(inside: torch.Tensor) -> torch.Tensor:
    """Covered pixels at least 3 px from the coverage's edge (the fine-noise blur sees no fill value)."""
    from scipy import ndimage

    return torch.from_numpy(ndimage.binary_erosion(inside.numpy(), np.ones((1, 7, 7), bool)))


def _fine_noise_power(hu: torch.Tensor, flat: torch.Tensor) -> float:
    """Sum over the ``flat`` pixels of the squared fine-noise band of (S, H, W) HU slices."""
    x = hu[:, None].float()
    band = (x - gaussian_blur(x, NOISE_SIGMA_PX))[:, 0]
    return float((band.double() ** 2)[flat].sum())


def metrics_from_sums(
    sums: torch.Tensor, protocols: Sequence[str], window: float, with_dice: bool = True
) -> dict[str, float]:
    """Contract metric keys from all-reduced sums (protocols without validation slices are left out)."""
    out: dict[str, float] = {}
    maes, dices = [], []
    for row, protocol in enumerate(protocols):
        s = sums[row].tolist()
        if s[COUNT] == 0:
            continue
        mae = s[MAE] / s[COUNT]
        mse = s[SSE] / s[COUNT]
        out[f"val/mae_hu/{protocol}"] = mae
        out[f"val/mae_hu_raw/{protocol}"] = s[RAW] / s[COUNT]
        out[f"val/psnr/{protocol}"] = 10.0 * math.log10(window**2 / max(mse, 1e-12))
        if s[REF_NOISE] > 0:  # fine-noise SD over the reference's, where the reference is uniform
            out[f"val/noise_ratio/{protocol}"] = math.sqrt(s[NOISE] / s[REF_NOISE])
            out[f"val/noise_ratio_raw/{protocol}"] = math.sqrt(s[RAW_NOISE] / s[REF_NOISE])
        maes.append(mae)
        if with_dice:
            dice = dice_from_counts(s[INTER], s[PRED], s[GT])
            out[f"val/dice/{protocol}"] = dice
            out[f"val/dice_raw/{protocol}"] = dice_from_counts(s[RAW_INTER], s[RAW_PRED], s[GT])
            dices.append(dice)
    if maes:
        out["val/mae_hu"] = float(np.mean(maes))
    if dices:
        out["val/dice_worst"] = float(min(dices))
    return out
