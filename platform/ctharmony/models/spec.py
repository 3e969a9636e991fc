"""Model specs: the dataclasses behind ``models/*.yaml`` (harmonizer or segmenter, training settings).

A spec travels with every saved and logged model (``spec.yaml``), so the HU window a model was trained
with is the one inference uses. :mod:`ctharmony.config` re-exports these classes for its users.

Example:
    >>> spec = ModelSpec(kind="segmenter", intensity=IntensitySpec(-160.0, 240.0))
    >>> spec.intensity.hu_max - spec.intensity.hu_min
    400.0
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class IntensitySpec:
    """HU window and min-max normalisation to [0, 1]; travels with every logged model."""

    hu_min: float = -1024.0
    hu_max: float = 2048.0

    def __post_init__(self) -> None:
        if not self.hu_max > self.hu_min:
            raise ValueError(f"intensity.hu_max ({self.hu_max}) must exceed hu_min ({self.hu_min})")


@dataclasses.dataclass
class GeneratorSpec:
    """Pixel-unshuffle -> hierarchical feature-synthesis trunk -> pixel-shuffle, global residual."""

    channels: int = 64
    modules: int = 4  # hierarchical feature-synthesis modules in the trunk
    res_blocks: int = 4  # residual blocks per module, aggregated and fused
    unshuffle: int = 2  # pixel-unshuffle factor (2: a quarter of the pixels, none lost)


@dataclasses.dataclass
class DiscriminatorSpec:
    """Real-ESRGAN's U-Net discriminator with spectral normalisation."""

    channels: int = 64
    skip_connection: bool = True


@dataclasses.dataclass
class UNetSpec:
    """2D U-Net (the reference liver segmenter)."""

    channels: int = 32
    depth: int = 4
    norm: str = "batch"  # "batch", "group" (per-image: invariant to global intensity shifts) or "none"


@dataclasses.dataclass
class LossSpec:
    """Stage-2 loss weights λ1 (L1), λ2 (perceptual), λ3 (GAN), λ4 (noise texture) and the perceptual extractor."""

    l1: float = 10.0
    perceptual: float = 1.0
    gan: float = 1.0
    texture: float = 0.0  # log radial noise-power match to the reference (0: the paper's recipe)
    perceptual_net: str = "segmenter"  # "segmenter" (no download) or "vgg19" (needs vgg19_weights)
    vgg19_weights: str | None = None  # torchvision-format VGG19 state dict (local file)


@dataclasses.dataclass
class OptimSpec:
    """Adam with a step decay after half the epochs of each stage."""

    lr: float = 1e-4
    lr_stage2: float | None = None  # stage 2's starting lr (None: the same as lr, as in the paper)
    betas: tuple[float, float] = (0.9, 0.99)
    lr_decay: float = 0.95
    decay_after: float = 0.5  # fraction of a stage's epochs after which the lr decays per epoch


@dataclasses.dataclass
class TrainSpec:
    """What one training run does: stages, patches, EMA, validation split, segmenter."""

    epochs_stage1: int = 100
    epochs_stage2: int = 100
    patch_size: int = 256
    batch_size: int = 16
    patches_per_epoch: int = 1024  # per worker
    ema_decay: float = 0.999
    val_fraction: float = 0.2  # of patients (by patient_key), at least one
    val_slices: int = 8  # slices per validation series (evenly spaced)
    seed: int = 0
    # the protocol registry's REFERENCE_PROTOCOL and PAPER_PROTOCOLS (ctharmony.archive.protocols), written out
    # because models import nothing of archive; tests/models/test_spec.py checks that they agree
    target_protocol: str = "M80"
    protocols: tuple[str, ...] = ("FBP", "IR", "M40", "M60", "M80", "OPT")
    segmenter: str | None = None  # model URI of the reference segmenter (Dice, perceptual features)
    threads_per_worker: int = 1
    # segmenter: the epoch whose weights it keeps, "best" (highest validation Dice, the earlier on ties) or "last";
    # without validation patients it keeps the last
    keep: str = "best"

    def __post_init__(self) -> None:
        if self.keep not in ("best", "last"):
            raise ValueError(f"train.keep must be 'best' or 'last', got {self.keep!r}")


@dataclasses.dataclass
class ModelSpec:
    """A model spec (models/*.yaml): a harmonizer (generator + GAN training) or a segmenter."""

    name: str = "cpu-small"
    kind: str = "harmonizer"  # "harmonizer" or "segmenter"
    intensity: IntensitySpec = dataclasses.field(default_factory=IntensitySpec)
    generator: GeneratorSpec = dataclasses.field(default_factory=GeneratorSpec)
    discriminator: DiscriminatorSpec = dataclasses.field(default_factory=DiscriminatorSpec)
    unet: UNetSpec = dataclasses.field(default_factory=UNetSpec)
    loss: LossSpec = dataclasses.field(default_factory=LossSpec)
    optim: OptimSpec = dataclasses.field(default_factory=OptimSpec)
    train: TrainSpec = dataclasses.field(default_factory=TrainSpec)

    def __post_init__(self) -> None:
        if self.kind not in ("harmonizer", "segmenter"):
            raise ValueError(f"kind must be 'harmonizer' or 'segmenter', got {self.kind!r}")


@dataclasses.dataclass
class ExternalSpec:
    """How to run a user's network that ctharmony did not build (a TorchScript or ONNX file's sidecar YAML).

    ``<file>.yaml`` beside the model file (e.g. ``liver.onnx.yaml``)::

        kind: segmenter          # or harmonizer (its output: images normalised by the same window)
        intensity: {hu_min: -160, hu_max: 240}
        dims: 2                  # 2: (N, 1, H, W) slices; 3: the whole volume as (1, 1, Z, H, W)
        output: logits           # segmenter: logits (sigmoid applied) or probability
        size_multiple: 8         # spatial sizes the network needs (inputs are replicate-padded, then cropped)
        name: my-liver-net       # optional (default: the file's name); version: optional (default: a hash)
    """

    kind: str = "segmenter"
    intensity: IntensitySpec = dataclasses.field(default_factory=IntensitySpec)
    dims: int = 2
    output: str = "logits"
    size_multiple: int = 1
    name: str = ""
    version: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("harmonizer", "segmenter"):
            raise ValueError(f"kind must be 'harmonizer' or 'segmenter', got {self.kind!r}")
        if self.dims not in (2, 3):
            raise ValueError(f"dims must be 2 (slices) or 3 (whole volume), got {self.dims!r}")
        outputs = ("logits", "probability") if self.kind == "segmenter" else ("normalized",)
        if self.kind == "harmonizer" and self.output == "logits":
            self.output = "normalized"  # the default, read for a harmonizer
        if self.output not in outputs:
            raise ValueError(f"output of a {self.kind} must be one of {', '.join(outputs)}, got {self.output!r}")
        if self.size_multiple < 1:
            raise ValueError(f"size_multiple must be >= 1, got {self.size_multiple}")
