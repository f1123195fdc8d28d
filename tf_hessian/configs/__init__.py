"""Experiment configs: `default` (C1 / CIFAR-10 training), `m1_mnist`, `analyze`, `study`.

Each `get_config(variant)` accepts `"smoke"` (tests, seconds) where useful;
select a variant with `--config=tf_hessian/configs/study.py:smoke`.
"""
