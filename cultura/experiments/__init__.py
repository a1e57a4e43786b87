"""Experiments: one YAML file runs a paper's protocol end to end and compares its variants.

:func:`~cultura.experiments.spec.load_experiment` validates the file with the configuration's own
section models, :func:`~cultura.experiments.plan.plan_stages` turns it into stages keyed by their
settings, :func:`~cultura.experiments.run.run_experiment` runs them through the stage verbs and writes
one folder: every stage's output, ``report.md`` (the paper's table layout with intervals),
``results.parquet``, plots and a card.
"""
