"""Aegis model package: pure model logic (no Spark, no Kafka).

Sub-modules are imported explicitly by callers so that light users (metrics,
policy, validation) do not pay for importing LightGBM, SHAP or MLflow:

* :mod:`models.members`    - the ensemble members' protocol and its three tree members
* :mod:`models.ensemble`   - the combiner: members stacked in logit space, exact TreeSHAP
* :mod:`models.policy`     - allow / review / block decision policy
* :mod:`models.metrics`    - AUC, AP, recall at FPR, handbook card precision@k
* :mod:`models.validation` - strict validation of scoring frames
* :mod:`models.scorer`     - :class:`~models.scorer.AegisScorer` (no MLflow)
* :mod:`models.pyfunc`     - MLflow pyfunc wrapper and ``log_model``
* :mod:`models.registry`   - MLflow registry helpers (aliases only)
* :mod:`models.training`   - time splits, label maturity, training and plots
* :mod:`models.synthetic`  - synthetic transactions for tests and benchmarks

Nothing is created at import time; MLflow clients are always passed in.
"""
