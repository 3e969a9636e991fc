"""The λ sweep: Ray Tune over the loss weights, each trial a Ray Train DDP run, the champion judged once.

Modules, in the order a sweep uses them:

- :mod:`~ctharmony.train.sweep.space`: the search space (``space.yaml``, or a user's YAML) for Tune;
- :mod:`~ctharmony.train.sweep.placement`: the placement groups of stopped trials released;
- :mod:`~ctharmony.train.sweep.training`: :func:`sweep_lambdas`, the trainable and the validation score;
- :mod:`~ctharmony.train.sweep.tuning`: :func:`run_sweep`, Tune with ASHA, its state and resumption;
- :mod:`~ctharmony.train.sweep.tracking`: an MLflow parent run with a child run per trial;
- :mod:`~ctharmony.train.sweep.select`: the best trial and whether it beats the current champion.

Ray is imported by the modules that need it, not here.
"""
