"""What the benchmark simulates, trains and tests: sizes, sites, seeds and the three test cohorts.

Every random choice has its seed here (and so in ``benchmark.json``): the simulation (``seed``), each
training run (``seeds``: one segmenter and one harmonizer per seed, as the specs' ``train.seed``), the
bootstrap (``bootstrap_seed``); the pseudonym ``salt`` of the synthetic archives is pinned, so patient
keys, hence the train / validation split by patient, are the same in every data home.

The real-anatomy cohort is one archive per real case (a real patient), each re-simulated ``real_patients``
times (the case as it is, then augmented copies); its exams are grouped by case in the statistics.

Example:
    >>> plan = BenchmarkPlan()
    >>> [s.name for s in plan.subsets()], plan.seeds
    (['synthetic', 'unseen-site'], (0, 1, 2))
    >>> plan = BenchmarkPlan(real_cases=((Path("ct"), Path("ct-liver.nii.gz")), (Path("b"), Path("b.nii.gz"))))
    >>> [(s.name, s.cohort) for s in plan.subsets()][1:3]
    [('real-ct', 'real-anatomy'), ('real-b', 'real-anatomy')]
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
    cohort: str = ""  # the cohort its exams are reported in (default: ``name``)
    real_case: tuple[Path, Path] | None = None  # real anatomy: the (series folder, liver mask) it re-simulates

    @property
    def cohort_name(self) -> str:
        """The cohort of this archive's exams."""
        return self.cohort or self.name

    @property
    def clustered(self) -> bool:
        """Whether its exams are one patient (copies of one real case) in the statistics."""
        return self.real_case is not None


@dataclasses.dataclass
class BenchmarkPlan:
    """Sizes of the benchmark; the defaults (3 seeds) fit ``make benchmark`` on 2 cores in about 45 minutes."""

    train_patients: int = 16
    train_augment: bool = True  # training patients scanned at drawn doses (real archives vary in dose)
    test_patients: int = 6
    real_patients: int = 3  # per real case: the case as it is plus 2 augmented copies
    unseen_patients: int = 6
    slices: int = 16
    size: int = 128
    train_sites: tuple[str, ...] = ("siemens-force", "ge-revolution")
    unseen_site: str = "canon-aquilion"
    train_series: tuple[str, ...] = PAPER_PROTOCOLS
    test_series: tuple[str, ...] = (*PAPER_PROTOCOLS, "FBP_sharp")  # a bone kernel: the catalog's `unknown`
    real_cases: tuple[tuple[Path, Path], ...] = ()  # real CT series folders (DICOM) and their liver masks (NIfTI)
    seed: int = 11  # simulation
    seeds: tuple[int, ...] = (0, 1, 2)  # training: train.seed of the segmenter and the harmonizer, one model each
    salt: str = "ctharmony-benchmark-salt-v1"  # pseudonym salt of the synthetic archives (no real patient in them)
    verdict_protocol: str = "M40"  # where GAN vs the best baseline is decided (fixed here, not chosen on test data)
    bootstrap_replicates: int = 4000
    bootstrap_seed: int = 0
    confidence: float = 0.95
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
        """The test archives; real anatomy (one archive per real case) only when real cases are given."""
        out = [Subset(SYNTHETIC, "phantom", self.train_sites, self.test_patients, self.seed + 1000,
                      "new phantom patients at the training sites")]
        for i, (series, mask) in enumerate(self.real_cases):
            out.append(Subset(f"real-{Path(series).name}", "real", self.train_sites, self.real_patients,
                              self.seed + 2000 + 100 * i, "real abdomens (each as it is and augmented) "
                              "re-simulated at the training sites", cohort=REAL, real_case=(series, mask)))
        out.append(Subset(UNSEEN, "phantom", (self.unseen_site,), self.unseen_patients, self.seed + 3000,
                          f"phantom patients at {self.unseen_site}, a kernel / dose / IR combination absent "
                          "from training"))
        return out
