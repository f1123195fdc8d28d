"""tf.data input pipelines: classification datasets here, driving-scene datasets in `driving`."""

from input_pipelines.classification import (
    NAMES,
    SPLITS,
    DatasetInfo,
    build_dataset,
    dataset_info,
    load_arrays,
)

__all__ = ["NAMES", "SPLITS", "DatasetInfo", "build_dataset", "dataset_info", "load_arrays"]
