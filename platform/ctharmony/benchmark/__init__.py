"""``make benchmark``: where the GAN is worth training, measured on scanner-physics simulations.

Train the segmenter and the harmonizer on simulated multi-site archives once per training seed, then
convert and evaluate three test cohorts through the same pipeline, with the baselines alongside
(:mod:`.design` names them): synthetic test patients, real anatomy, and a site no training saw. Writes
``benchmark.json`` (cohort x protocol x method x metric as mean and 95 % CI over exams and seeds, paired
GAN-vs-baseline differences, targets with three-way verdicts), ``benchmark.md`` and one MLflow run.
``BenchmarkPlan(real_training=True)`` (``--real-training``) adds the real-anatomy training recipe, one real
patient left out per fold, reported beside the phantom-only recipe (:mod:`.recipe`).

Example::

    plan = BenchmarkPlan(real_cases=((Path("ct"), Path("ct-liver.nii.gz")),), seeds=(0, 1, 2))
    outcome = run_benchmark(Path("benchmark-out"), plan)
    print(outcome.json_path)
"""

from ctharmony.lazy import lazy_exports

__all__ = ["BenchmarkOutcome", "BenchmarkPlan", "Subset", "run_benchmark"]

__getattr__ = lazy_exports(__name__, {
    "BenchmarkOutcome": "workflow", "BenchmarkPlan": "design", "Subset": "design", "run_benchmark": "workflow",
})
