"""What the benchmark simulates, trains and tests: sizes, sites, seeds and the three test cohorts.

Every random choice has its seed here (and so in ``benchmark.json``): the simulation (``seed``), each
training run (``seeds``: one segmenter and one harmonizer per seed, as the specs' ``train.seed``), the
bootstrap (``bootstrap_seed``); the pseudonym ``salt`` of the synthetic archives is pinned, so patient
keys, hence the train / validation split by patient, are the same in every data home.

The real-anatomy cohort is one archive per real case (a real patient), each re-simulated ``real_patients``
times (the case as it is, then augmented copies); its exams are grouped by case in the statistics.

Training recipes (:meth:`BenchmarkPlan.trainings`): the phantom-only recipe (one segmenter and one harmonizer
per seed, on the phantom training archive) converts every test archive. With ``real_training`` the
real-anatomy recipe is added: a second training archive re-simulates every real case (``archive-train-real``,
its own simulation seed), and per seed one pair trains on the phantom archive plus the real cases *but one*
for each real case (its fold: it converts only that case's test archive, so no real test patient is ever in
its own model's training), and one pair on all real cases (what a user would ship: it converts the synthetic
and unseen-site archives, which hold no real patient). Its exams are reported under the cohorts
``"<cohort> · real-anatomy training"`` (:func:`recipe_cohort`).

Example:
    >>> plan = BenchmarkPlan()
    >>> [s.name for s in plan.subsets()], plan.seeds
    (['synthetic', 'unseen-site'], (0, 1, 2))
    >>> plan = BenchmarkPlan(real_cases=((Path("ct"), Path("ct-liver.nii.gz")), (Path("b"), Path("b.nii.gz"))))
    >>> [(s.name, s.cohort) for s in plan.subsets()][1:3]
    [('real-ct', 'real-anatomy'), ('real-b', 'real-anatomy')]
    >>> [t.label for t in plan.trainings()]
    ['']
    >>> plan.real_training = True
    >>> [(t.label, t.archives) for t in plan.trainings()][1:]  # doctest: +NORMALIZE_WHITESPACE
    [('real anatomy, all cases', ('synthetic', 'unseen-site')),
     ('real anatomy without ct', ('real-ct',)), ('real anatomy without b', ('real-b',))]
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ctharmony.archive.protocols import PAPER_PROTOCOLS

SYNTHETIC, REAL, UNSEEN = "synthetic", "real-anatomy", "unseen-site"
REAL_RECIPE = "real-anatomy training"  # the recipe that trains on re-simulated real anatomy too


def recipe_cohort(cohort: str, recipe: str = REAL_RECIPE) -> str:
    """The cohort name the exams of ``cohort`` converted by ``recipe``'s models are reported under."""
    return f"{cohort} · {recipe}" if recipe else cohort


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
    recipe: str = ""  # the training recipe whose models converted it ("": phantom-only)

    @property
    def cohort_name(self) -> str:
        """The cohort of this archive's exams (under a recipe: ``"<cohort> · <recipe>"``)."""
        return recipe_cohort(self.cohort or self.name, self.recipe)

    @property
    def report_name(self) -> str:
        """Its cohort report's folder under ``reports/``."""
        return f"{self.name}-{self.recipe.replace(' ', '-')}" if self.recipe else self.name

    @property
    def clustered(self) -> bool:
        """Whether its exams are one patient (copies of one real case) in the statistics."""
        return self.real_case is not None


@dataclasses.dataclass(frozen=True)
class Training:
    """One training recipe's models, trained once per seed: a segmenter and a harmonizer on the phantom
    training archive plus the re-simulated real cases ``cases`` (and their original images), converting the
    test archives ``archives`` (None: all of them, through the joined test catalog)."""

    label: str  # in stage names: "segmenter (<label>, seed k)"; "" for the phantom-only recipe
    recipe: str = ""  # the cohort suffix of the exams it converts ("": phantom-only)
    cases: tuple[str, ...] = ()  # real cases (by name) whose anatomy it trains on
    archives: tuple[str, ...] | None = None  # test archives it converts (None: every one)
    folder: str = ""  # under seed-k/ ("": the seed's own folder)

    def stage(self, what: str, seed: int, *detail: str) -> str:
        """A stage's name, e.g. ``segmenter (real anatomy without ct, seed 0)``, ``convert (linear, seed 1)``."""
        return f"{what} ({', '.join([*detail, *([self.label] if self.label else []), f'seed {seed}'])})"

    def converts(self, subset: Subset) -> bool:
        return self.archives is None or subset.name in self.archives


PHANTOM_ONLY = Training("")


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
    real_training: bool = False  # also the real-anatomy recipe (leave one real patient out; needs >= 2 cases)

    def check(self) -> BenchmarkPlan:
        """The plan, checked; ValueError saying what is wrong otherwise."""
        if not self.seeds:
            raise ValueError("the benchmark needs at least one training seed")
        if self.real_training and len(self.real_cases) < 2:
            raise ValueError(f"real_training (--real-training) needs at least 2 real cases to leave one out, got "
                             f"{len(self.real_cases)}: give --real-series and --real-mask for each")
        return self

    def case_names(self) -> list[str]:
        """The real cases' names (their series folders' names)."""
        from ctharmony.simulate.real_cases import case_name

        return [case_name(series) for series, _ in self.real_cases]

    def real_training_seed(self) -> int:
        """The simulation seed of the real-anatomy training archive (the test archives': seed + 2000 + 100 i)."""
        return self.seed + 4000

    def trainings(self) -> list[Training]:
        """The models trained per seed: the phantom-only pair, then (``real_training``) the real-anatomy pair
        on every real case and one per real case held out (converting that case's test archive only)."""
        out = [PHANTOM_ONLY]
        if not self.real_training:
            return out
        cases = self.case_names()
        subsets = self.subsets()
        plain = tuple(s.name for s in subsets if s.real_case is None)
        out.append(Training("real anatomy, all cases", REAL_RECIPE, tuple(cases), plain, "real-all"))
        for case, subset in zip(cases, [s for s in subsets if s.real_case is not None], strict=True):
            out.append(Training(f"real anatomy without {case}", REAL_RECIPE, tuple(c for c in cases if c != case),
                                (subset.name,), f"real-without-{case}"))
        return out

    def reported(self) -> list[Subset]:
        """The test archives as reported: each under the phantom-only recipe, then (``real_training``) each
        under the real-anatomy recipe."""
        subsets = self.subsets()
        recipes = dict.fromkeys(t.recipe for t in self.trainings())
        return [dataclasses.replace(s, recipe=r) for r in recipes for s in subsets]

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
