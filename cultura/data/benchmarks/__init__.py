"""Cultural benchmarks in one item schema (:mod:`.schema`), one loader module per benchmark reading its
published files, and a registry of names (:mod:`.registry`); :mod:`.get` writes a benchmark's
``items.parquet`` with its dataset card."""
