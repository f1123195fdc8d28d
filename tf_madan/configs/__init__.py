"""Experiment configs: `default` (paper), `cpu_benchmark` (30-minute CPU run), `smoke` (tests)."""
