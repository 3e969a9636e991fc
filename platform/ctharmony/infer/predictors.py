"""Ray Data predictors: callable classes that load a model ONCE and map series batches.

Models are anything :mod:`ctharmony.loaders` loads (ctharmony's ``HUModel``, a user's TorchScript or ONNX
network, a baseline), called through the model interface (:mod:`ctharmony.models.interface`): HU slices
``(N, 1, H, W)`` in, or the whole volume ``(1, 1, Z, H, W)`` for a 3-D model (``dims == 3``).

Each batch is a ``dict[str, np.ndarray]`` with one entry per series (the pipeline uses one series per
batch); ``hu`` holds each series' ``(z, y, x)`` HU volume. A row whose ``status`` is not ``"ok"`` is
passed through untouched; an exception on one row marks that row failed (``reason`` names the stage)
and never stops the batch. Both classes work on a plain batch without Ray.

A series already in the reference protocol can pass through (``passthrough_protocol``): its
``hu_harmonized`` is its ``hu``, bit for bit, without touching the model or its device, and the
segmenter reuses its original mask as the harmonized one (``harmonizer_action`` says which happened).

Example::

    harmonize = HarmonizerPredictor("models:/ctharmony-harmonizer@champion")
    batch = {"series_key": np.array(["1.2.3"]), "hu": np.zeros((1, 8, 64, 64), np.float32)}
    harmonize(batch)["hu_harmonized"].shape
    # -> (1, 8, 64, 64)
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ctharmony.archive.orientation import canonical_transform
from ctharmony.infer.cpu_precision import cpu_auto_precision, tuned_network
from ctharmony.infer.model_source import load_source, model_identity
from ctharmony.infer.tiling import precision_name, predict_slices, prepare_model, select_device

Batch = dict[str, np.ndarray]


def as_column(values: list[np.ndarray]) -> np.ndarray:
    """Stack equal-shaped arrays; otherwise an object array of arrays (Ray's variable-shape tensors)."""
    if values and all(v.shape == values[0].shape and v.dtype == values[0].dtype for v in values):
        return np.stack(values)
    column = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        column[i] = value
    return column


def batch_size_of(batch: Batch) -> int:
    return len(next(iter(batch.values()))) if batch else 0


def current_node_id() -> str:
    """The Ray node this code runs on ("" outside Ray)."""
    try:
        import ray

        return ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""
    except Exception:  # noqa: BLE001 - diagnostics only
        return ""


def predict_volume(model: Any, volume: np.ndarray, device: Any) -> np.ndarray:
    """A 3-D model (``dims == 3``) on a whole ``(z, y, x)`` volume, fed as ``(1, 1, z, y, x)``, in fp32."""
    import torch

    with torch.inference_mode():
        x = torch.from_numpy(np.ascontiguousarray(volume, dtype=np.float32)[None, None]).to(device)
        return model(x)[0, 0].float().cpu().numpy()


class _SlicePredictor:
    """Shared set-up: model loaded once, device, mixed precision, slice batches, tiling, threads.

    ``amp`` None/"auto": bf16 (else fp16) on CUDA; on CPU :mod:`ctharmony.infer.cpu_precision` decides
    (bf16 for ctharmony's networks where the CPU has native bf16). ``channels_last`` None: on CUDA, and on
    CPU for ctharmony's networks.
    """

    kind = "model"

    def __init__(
        self,
        model: Any,
        *,
        batch_slices: int | None = None,
        device: str | None = None,
        amp: bool | str | None = None,
        tile: int | None = None,
        overlap: int = 32,
        threads: int | None = None,
        channels_last: bool | None = None,
        compile: bool = False,
    ) -> None:
        import torch

        if threads:
            torch.set_num_threads(int(threads))
        self.device = select_device(device)
        loaded = load_source(model)  # once per actor
        self.name, self.version = model_identity(loaded, fallback=self.kind)
        cpu_tuned = self.device.type == "cpu" and tuned_network(loaded)  # bf16 / channels-last where faster
        if channels_last is None:
            channels_last = self.device.type == "cuda" or cpu_tuned
        self.model = prepare_model(loaded, self.device, channels_last=channels_last, compile=compile)
        auto = amp in (None, True, "auto")
        self.amp = cpu_auto_precision(loaded) if auto and cpu_tuned else precision_name(amp, self.device)
        self.batch_slices = batch_slices  # None: from free GPU memory (8 on CPU)
        self.tile = tile
        self.overlap = overlap
        self.node_id = current_node_id()

    def predict(self, volume: np.ndarray, protocol: str | None = None, direction: Any = None) -> np.ndarray:
        """The model's output for every slice of ``volume`` (z, y, x), float32, in ``volume``'s layout.

        A model that depends on the input protocol (``needs_protocol``, e.g. a per-protocol linear
        recalibration baseline) is bound to the series' ``protocol`` first. The network always sees
        canonical slices (``ctharmony.archive.orientation``: patient's right on the image's left,
        anterior at the top) whatever the in-plane layout the series' ``direction`` (3 x 3, or the 9
        values of a pipeline row) says it was stored in; None takes the stored layout as canonical.
        """
        layout = canonical_transform(direction)
        model = self.model
        if getattr(model, "needs_protocol", False):
            if not protocol:
                raise ValueError(f"{self.name} needs the series' protocol, and the catalog row has none")
            model = model.for_protocol(protocol)
        if getattr(model, "dims", 2) == 3:  # a 3-D model takes the whole (canonical) volume at once
            return layout.invert(predict_volume(model, layout.apply(volume), self.device))
        return layout.invert(predict_slices(  # exact inverse: outputs in the stored layout
            model,
            layout.apply(volume),
            batch_slices=self.batch_slices,
            device=self.device,
            amp=self.amp,
            tile=self.tile,
            overlap=self.overlap,
        ))

    @staticmethod
    def _statuses(batch: Batch) -> tuple[list[str], list[str]]:
        n = batch_size_of(batch)
        status = [str(s) for s in batch.get("status", ["ok"] * n)]
        reason = [str(r) for r in batch.get("reason", [""] * n)]
        return status, reason


HARMONIZED, PASSTHROUGH = "harmonized", "passthrough"  # the results' ``harmonizer_action``


def actions_of(batch: Batch) -> list[str]:
    """Each row's ``harmonizer_action`` ("harmonized" when the column is absent)."""
    actions = batch.get("harmonizer_action")
    return [str(a) for a in actions] if actions is not None else [HARMONIZED] * batch_size_of(batch)


class HarmonizerPredictor(_SlicePredictor):
    """HU volume -> harmonized HU volume (the 80 keV reference look). Adds ``hu_harmonized``,
    ``harmonizer_action``, ``seconds_harmonize``, ``model_name``, ``model_version`` and ``node_id``.

    Args:
        model: the harmonizer (any reference :mod:`ctharmony.loaders` takes, or a loaded model).
        passthrough_protocol: series of this catalog protocol (the reference, e.g. "M80") are not
            harmonized: ``hu_harmonized`` is their ``hu`` unchanged and ``harmonizer_action`` is
            "passthrough" ("harmonized" for the others; "" for a failed row). None harmonizes all.
        **kwargs: as :class:`_SlicePredictor` (batch_slices, device, amp, tile, ...).

    Example::

        harmonize = HarmonizerPredictor("models:/ctharmony-harmonizer@champion", passthrough_protocol="M80")
        harmonize({"hu": hu[None], "protocol": np.array(["M80"])})["harmonizer_action"]
        # -> array(['passthrough'], dtype='<U11')
    """

    kind = "harmonizer"

    def __init__(self, model: Any, *, passthrough_protocol: str | None = None, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self.passthrough_protocol = str(passthrough_protocol).strip() if passthrough_protocol else None

    def passes_through(self, protocol: str | None) -> bool:
        """Whether a series of catalog ``protocol`` is passed through unchanged."""
        return self.passthrough_protocol is not None and (protocol or "").strip() == self.passthrough_protocol

    def __call__(self, batch: Batch) -> Batch:
        status, reason = self._statuses(batch)
        outputs, actions, seconds = [], [], []
        protocols = batch.get("protocol")
        for i in range(len(status)):
            start = time.perf_counter()
            result, action = np.zeros((0, 0, 0), np.float32), ""
            if status[i] == "ok":
                try:
                    protocol = str(protocols[i]) if protocols is not None else None
                    volume = np.asarray(batch["hu"][i], dtype=np.float32)
                    if self.passes_through(protocol):  # never sent to the model or its device
                        result, action = volume, PASSTHROUGH
                    else:
                        direction = batch["direction"][i] if "direction" in batch else None
                        result, action = self.predict(volume, protocol, direction), HARMONIZED
                except Exception as err:  # noqa: BLE001 - one bad series never stops the job
                    status[i], reason[i] = "failed", f"harmonize: {type(err).__name__}: {err}"
                    result, action = np.zeros((0, 0, 0), np.float32), ""
            outputs.append(result)
            actions.append(action)
            seconds.append(time.perf_counter() - start)
        n = len(status)
        return {
            **batch,
            "hu_harmonized": as_column(outputs),
            "harmonizer_action": np.asarray(actions, dtype=str),
            "seconds_harmonize": np.asarray(seconds, dtype=np.float64),
            "model_name": np.asarray([self.name] * n),
            "model_version": np.asarray([self.version] * n),
            "node_id": np.asarray([self.node_id] * n),
            "status": np.asarray(status),
            "reason": np.asarray(reason),
        }


class SegmenterPredictor(_SlicePredictor):
    """Liver masks (uint8) of the original and, when present, the harmonized volume of each row.

    Both volumes of a series go through the network in the same slice batches. A row passed through
    unchanged (``harmonizer_action`` "passthrough") is segmented once: its harmonized mask is a copy of
    its original mask. With ``segment_original=False`` a harmonized row's original is not segmented (half
    the segmenter's work): its ``mask_original`` is empty. Adds ``mask_original``, ``mask_harmonized``,
    ``seconds_segment``, ``segmenter_name``, ``segmenter_version``.
    """

    kind = "segmenter"

    def __init__(self, model: Any, *, threshold: float = 0.5, segment_original: bool = True, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self.threshold = threshold
        self.segment_original = segment_original

    def __call__(self, batch: Batch) -> Batch:
        status, reason = self._statuses(batch)
        originals, harmonized, seconds = [], [], []
        empty = np.zeros((0, 0, 0), np.uint8)
        actions = actions_of(batch)
        for i in range(len(status)):
            start = time.perf_counter()
            mask_o = mask_h = empty
            if status[i] == "ok":
                try:
                    volume = np.asarray(batch["hu"][i], dtype=np.float32)
                    stacked = [volume]
                    passthrough = actions[i] == PASSTHROUGH
                    if "hu_harmonized" in batch and not passthrough:
                        stacked.append(np.asarray(batch["hu_harmonized"][i], dtype=np.float32))
                    skip = not self.segment_original and len(stacked) > 1  # the harmonized mask only
                    stacked = stacked[1:] if skip else stacked
                    direction = batch["direction"][i] if "direction" in batch else None
                    prob = self.predict(np.concatenate(stacked, axis=0), direction=direction)
                    masks = (prob >= self.threshold).astype(np.uint8)
                    mask_o = empty if skip else masks[: volume.shape[0]]
                    mask_h = masks[-volume.shape[0] :] if skip or len(stacked) > 1 else empty
                    if passthrough and "hu_harmonized" in batch:  # the same volume: the same mask
                        mask_h = mask_o.copy()
                except Exception as err:  # noqa: BLE001 - one bad series never stops the job
                    status[i], reason[i] = "failed", f"segment: {type(err).__name__}: {err}"
                    mask_o = mask_h = empty
            originals.append(mask_o)
            harmonized.append(mask_h)
            seconds.append(time.perf_counter() - start)
        n = len(status)
        return {
            **batch,
            "mask_original": as_column(originals),
            "mask_harmonized": as_column(harmonized),
            "seconds_segment": np.asarray(seconds, dtype=np.float64),
            "segmenter_name": np.asarray([self.name] * n),
            "segmenter_version": np.asarray([self.version] * n),
            "status": np.asarray(status),
            "reason": np.asarray(reason),
        }


class HarmonizeAndSegment:
    """Both stages in one actor (the CPU plan): the harmonizer's rows go straight to the segmenter.

    On a CPU both networks share the cores: one actor runs them one after the other on all its threads, as
    the bare forward does, where two actors would split the cores between a segmenter doing most of the
    work and a harmonizer mostly waiting for it; nor do the harmonized volumes cross the object store.
    Adds what both predictors add.
    """

    def __init__(self, harmonizer: Any, segmenter: Any, *, harmonizer_kwargs: dict, segmenter_kwargs: dict,
                 harmonizer_cls: type | None = None, segmenter_cls: type | None = None) -> None:
        self.harmonize = (harmonizer_cls or HarmonizerPredictor)(harmonizer, **harmonizer_kwargs)
        self.segment = (segmenter_cls or SegmenterPredictor)(segmenter, **segmenter_kwargs)

    def __call__(self, batch: Batch) -> Batch:
        return self.segment(self.harmonize(batch))
