"""``make benchmark``: where the GAN is worth training, measured on scanner-physics simulations.

Train the segmenter and the harmonizer on simulated multi-site archives, then convert and evaluate
three test cohorts through the same pipeline, with the baselines alongside (:mod:`.plan` names them):
synthetic test patients, real anatomy, and a site no training saw. Writes ``benchmark.json``
(subset x protocol x method x metric), ``benchmark.md`` and one MLflow run.

Example::

    outcome = run_benchmark(Path("benchmark-out"), BenchmarkPlan(real_series=Path("ct"), real_mask=Path("m.nii.gz")))
    print(outcome.json_path)
"""

from ctharmony.lazy import lazy_exports

__all__ = ["BenchmarkOutcome", "BenchmarkPlan", "Subset", "run_benchmark"]

__getattr__ = lazy_exports(__name__, {
    "BenchmarkOutcome": "run", "BenchmarkPlan": "plan", "Subset": "plan", "run_benchmark": "run",
})
