"""Experiment configs: `default` (paper recipe, CIFAR-10) and `compare` (CPU comparison run).

Each `get_config(variant)` accepts `"smoke"` (tests, seconds); select a variant with
`--config=tf_ode/configs/default.py:smoke`.
"""
