"""Benchmarks of rt-displayr against the legacy algorithm (see benchmarks/README.md)."""
