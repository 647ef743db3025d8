"""Model development, apart from the product runtime: the synthetic cohort generator (``synth``),
training (``training``, ``augment``, ``dataset``, ``flops``), the decision-weight calibration
(``calibration``) and the evaluation tooling (``evaluation``: ``gliowatch evaluate``, metrics).

The pipeline runtime (ingest, segmentation, registration, assessment, alerts, store, dashboard)
never imports this package: ``tests/test_architecture.py`` checks it.
"""
