"""MADAN: Multi-source Domain Adaptation for Semantic Segmentation (Keras 3).

Reference: Zhao et al., "Multi-source Domain Adaptation for Semantic
Segmentation", NeurIPS 2019 (arXiv 1910.12181).

Public entry points live in submodules: `tf_madan.models` (networks),
`tf_madan.losses` (pure loss functions), `tf_madan.train_lib` (stages).
"""
