"""The Ray Train worker loop of the harmonizer: setup, (resume), two stages, validate, checkpoint.

Every epoch every rank calls ``ray.train.report(metrics, checkpoint=...)``; rank 0 attaches the
checkpoint (``state.pt``: net_g, net_d, net_g_ema, optimisers, epoch, metric history). A rerun with
the same storage path and name resumes from ``ray.train.get_checkpoint()``.

``config`` (built by :func:`ctharmony.train.launch.build_trainer`): ``spec`` (the resolved spec as a
dict), ``segmenter`` (``{"spec": dict, "state": state dict}`` or None) and, for fault-injection tests
only, ``crash_after_epoch`` (the last rank's process exits after reporting that epoch).
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ctharmony.config import ModelSpec, from_dict
from ctharmony.models.hu_model import HUModel, normalize
from ctharmony.models.interface import HUModule
from ctharmony.models.registry import build_discriminator, build_network

log = logging.getLogger(__name__)
STATE_FILE = "state.pt"


def segmenter_from_payload(payload: dict[str, Any] | None) -> HUModel | None:
    """Rebuild the frozen reference segmenter sent in the loop config."""
    if not payload:
        return None
    spec = from_dict(ModelSpec, payload["spec"], "segmenter spec")
    net = build_network(spec)
    net.load_state_dict(payload["state"])
    model = HUModel(net, spec).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def build_perceptual(spec: ModelSpec, segmenter: HUModule | None) -> torch.nn.Module | None:
    """The stage-2 perceptual loss named by ``loss.perceptual_net`` (None when λ2 = 0).

    ``segmenter``: any model of :mod:`ctharmony.models.interface` that exposes ``features(x)`` (on its own
    normalised input; the generator's images are re-windowed to its HU window first), else VGG19 conv5_4
    from the local weights file ``loss.vgg19_weights``.
    """
    from ctharmony.models.perceptual import SegmenterEncoder, load_vgg19_conv54
    from ctharmony.train.losses import PerceptualLoss, Rewindow

    if not spec.loss.perceptual:
        return None
    if spec.loss.perceptual_net == "vgg19":
        return PerceptualLoss(load_vgg19_conv54(spec.loss.vgg19_weights))
    if spec.loss.perceptual_net == "segmenter":
        if segmenter is None:
            raise ValueError("loss.perceptual_net=segmenter needs a reference segmenter: set train.segmenter "
                             "(--segmenter MODEL) or use loss.perceptual_net=vgg19 with loss.vgg19_weights")
        # any segmenter of the model interface exposing features(x) (ctharmony's U-Net: its deepest encoder map)
        return PerceptualLoss(SegmenterEncoder(segmenter), Rewindow(spec.intensity, segmenter.intensity))
    raise ValueError(f"loss.perceptual_net must be 'segmenter' or 'vgg19', got {spec.loss.perceptual_net!r}")


def epoch_lr(spec: ModelSpec, epoch: int) -> float:
    """Learning rate of a (0-based, global) epoch: constant, then ×lr_decay per epoch after the
    ``decay_after`` fraction of the current stage."""
    e1 = spec.train.epochs_stage1
    stage_epochs, within = (e1, epoch) if epoch < e1 else (spec.train.epochs_stage2, epoch - e1)
    base = spec.optim.lr if epoch < e1 or spec.optim.lr_stage2 is None else spec.optim.lr_stage2
    start = math.floor(spec.optim.decay_after * stage_epochs)
    return base * spec.optim.lr_decay ** max(0, within - start + 1)


def _adam(params: Any, spec: ModelSpec) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=spec.optim.lr, betas=tuple(spec.optim.betas))


def _load_rows(shard_name: str) -> list[dict[str, Any]]:
    import ray.train

    shard = ray.train.get_dataset_shard(shard_name)
    rows = list(shard.iter_rows()) if shard is not None else []
    return sorted(rows, key=lambda r: str(r["study_uid"]))  # the same order however the shard's blocks arrived


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Ray Train entry point (runs on every worker)."""
    import ray.train
    import ray.train.torch
    import torch.distributed as dist

    from ctharmony.train.data import PairedPatchSampler, load_study
    from ctharmony.train.ema import ModelEMA
    from ctharmony.train.gan import stage1_step, stage2_step, unwrap
    from ctharmony.train.validate import metrics_from_sums, validation_sums

    spec = from_dict(ModelSpec, config["spec"], "train loop config")
    t = spec.train
    torch.set_num_threads(max(1, t.threads_per_worker))
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    rng = np.random.default_rng([t.seed, rank])

    train_studies = [load_study(r, t.target_protocol) for r in _load_rows("train")]
    val_studies = [load_study(r, t.target_protocol) for r in _load_rows("val")]
    sampler = PairedPatchSampler(train_studies, t.patch_size, t.target_protocol, rng)
    segmenter = segmenter_from_payload(config.get("segmenter"))

    # Same seed on every rank while building: the networks AND the EMA copy start identical everywhere
    # (DDP would broadcast rank 0's weights, but not into the EMA); then per-rank randomness for training.
    torch.manual_seed(t.seed)
    net_g, net_d = build_network(spec), build_discriminator(spec)
    ema = ModelEMA(net_g, t.ema_decay)
    torch.manual_seed(t.seed + rank)
    opt_g, opt_d = _adam(net_g.parameters(), spec), _adam(net_d.parameters(), spec)
    start_epoch, history = 0, []
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            state = torch.load(Path(folder) / STATE_FILE, map_location="cpu", weights_only=True)
        net_g.load_state_dict(state["net_g"])
        net_d.load_state_dict(state["net_d"])
        ema.module.load_state_dict(state["net_g_ema"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        start_epoch, history = int(state["epoch"]) + 1, list(state["history"])
        log.info("rank %d resumed after epoch %d", rank, start_epoch - 1)

    net_g = ray.train.torch.prepare_model(net_g)
    net_d = ray.train.torch.prepare_model(net_d)
    device = ray.train.torch.get_device()
    ema.module.to(device)
    perceptual = build_perceptual(spec, segmenter) if t.epochs_stage2 else None
    if perceptual is not None:
        perceptual.to(device)
    harmonizer_view = HUModel(ema.module, spec)
    segmenter_view = segmenter.to(device) if segmenter is not None else None
    window = spec.intensity.hu_max - spec.intensity.hu_min
    steps = max(1, t.patches_per_epoch // t.batch_size)

    for epoch in range(start_epoch, t.epochs_stage1 + t.epochs_stage2):
        stage = 1 if epoch < t.epochs_stage1 else 2
        if stage == 2 and epoch == t.epochs_stage1:  # stage 2 starts from stage 1's weights, fresh Adam
            opt_g = _adam(net_g.parameters(), spec)
        for opt in (opt_g, opt_d):
            for group in opt.param_groups:
                group["lr"] = epoch_lr(spec, epoch)
        net_g.train()
        net_d.train()
        running: dict[str, float] = {}
        for _ in range(steps):
            x_hu, y_hu, _names = sampler.sample(t.batch_size)
            x = torch.from_numpy(x_hu).to(device)
            y = torch.from_numpy(y_hu).to(device)
            x, y = normalize(x, spec.intensity), normalize(y, spec.intensity)  # the models' one normalisation
            if stage == 1:
                step = stage1_step(net_g, opt_g, x, y)
            else:
                step = stage2_step(net_g, net_d, opt_g, opt_d, x, y, spec.loss, perceptual, spec.intensity)
            ema.update(unwrap(net_g))
            for key, value in step.items():
                running[key] = running.get(key, 0.0) + value / steps

        sums = validation_sums(harmonizer_view, segmenter_view, val_studies, t.protocols, t.target_protocol,
                               t.val_slices, rank, world).to(device)
        if world > 1 and dist.is_initialized():
            dist.all_reduce(sums)
        metrics: dict[str, Any] = {"epoch": epoch + 1, "stage": stage, "lr": epoch_lr(spec, epoch),
                                   "resumed_from_epoch": start_epoch, "workers": world}
        metrics.update({f"train/{k}": v for k, v in running.items()})
        metrics.update(metrics_from_sums(sums.cpu(), t.protocols, window, with_dice=segmenter is not None))
        history.append(dict(metrics))
        if rank == 0:
            with tempfile.TemporaryDirectory(prefix="ctharmony-ckpt-") as folder:
                torch.save(
                    {"net_g": unwrap(net_g).state_dict(), "net_d": unwrap(net_d).state_dict(),
                     "net_g_ema": ema.module.state_dict(), "opt_g": opt_g.state_dict(),
                     "opt_d": opt_d.state_dict(), "epoch": epoch, "history": history},
                    os.path.join(folder, STATE_FILE),
                )
                ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder))
        else:
            ray.train.report(metrics, checkpoint=None)
        if config.get("crash_after_epoch") == epoch + 1 and rank == world - 1:
            time.sleep(2.0)  # let rank 0's checkpoint be registered, then die like a killed process
            os._exit(1)
