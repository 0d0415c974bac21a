"""Benchmarks: scripts that print tables. Run each from the repository root as ``python -m benchmarks.NAME``
(research scripts: ``python -m benchmarks.research.NAME``)."""
