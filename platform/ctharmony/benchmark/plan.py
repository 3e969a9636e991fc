"""What the benchmark simulates, trains and tests: sizes, sites and the three test cohorts.

Example:
    >>> plan = BenchmarkPlan()
    >>> [s.name for s in plan.subsets()]
    ['synthetic', 'unseen-site']
    >>> [s.name for s in BenchmarkPlan(real_series=Path("ct"), real_mask=Path("m.nii.gz")).subsets()]
    ['synthetic', 'real-anatomy', 'unseen-site']
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ctharmony.archive.protocols import PAPER_PROTOCOLS

SYNTHETIC, REAL, UNSEEN = "synthetic", "real-anatomy", "unseen-site"


@dataclasses.dataclass(frozen=True)
class Subset:
    """One test cohort: simulated ``patients`` of ``anatomy`` (phantom or real) at ``sites``."""

    name: str
    anatomy: str
    sites: tuple[str, ...]
    patients: int
    seed: int
    description: str
    augment: bool | None = None  # vary each patient (dose, ...); None: the simulator's default for the anatomy


@dataclasses.dataclass
class BenchmarkPlan:
    """Sizes of the benchmark; the defaults fit ``make benchmark`` on 2 cores in under 30 minutes."""

    train_patients: int = 16
    train_augment: bool = True  # training patients scanned at drawn doses (real archives vary in dose)
    test_patients: int = 4
    real_patients: int = 3
    unseen_patients: int = 3
    slices: int = 16
    size: int = 128
    train_sites: tuple[str, ...] = ("siemens-force", "ge-revolution")
    unseen_site: str = "canon-aquilion"
    train_series: tuple[str, ...] = PAPER_PROTOCOLS
    test_series: tuple[str, ...] = (*PAPER_PROTOCOLS, "FBP_sharp")  # a bone kernel: the catalog's `unknown`
    real_series: Path | None = None  # a real CT series folder (DICOM) and its liver mask (NIfTI)
    real_mask: Path | None = None
    seed: int = 11
    workers: int = 2
    harmonizer_spec: str = "cpu-texture"  # cpu-small + the noise-texture loss (models/cpu-texture.md)
    segmenter_spec: str = "liver-unet"
    harmonizer_overrides: tuple[str, ...] = ()
    segmenter_overrides: tuple[str, ...] = ()
    experiment: str = "ctharmony-benchmark"

    def training(self) -> Subset:
        """The training archive: phantom patients at the training sites."""
        return Subset("train", "phantom", self.train_sites, self.train_patients, self.seed, "training",
                      augment=self.train_augment)

    def subsets(self) -> list[Subset]:
        """The test cohorts; real anatomy only when a real series and its mask are given."""
        out = [Subset(SYNTHETIC, "phantom", self.train_sites, self.test_patients, self.seed + 1000,
                      "new phantom patients at the training sites")]
        if self.real_series is not None and self.real_mask is not None:
            out.append(Subset(REAL, "real", self.train_sites, self.real_patients, self.seed + 2000,
                              "a real abdomen (augmented) re-simulated at the training sites"))
        out.append(Subset(UNSEEN, "phantom", (self.unseen_site,), self.unseen_patients, self.seed + 3000,
                          f"phantom patients at {self.unseen_site}, a kernel / dose / IR combination absent "
                          "from training"))
        return out
