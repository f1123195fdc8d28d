"""Library of `python -m visuals.explain`: load a .keras model, write attribution PNGs."""

import importlib
import os


def load_model(path):
    import keras

    if not os.path.isfile(path) or not path.endswith(".keras"):
        raise ValueError(f"--model must be an existing .keras file. Received: {path!r}")
    for package in ("tf_hessian", "tf_ode", "tf_madan"):
        importlib.import_module(package)  # registers the packages' serializable layers
    return keras.saving.load_model(path, compile=False)


def load_madan_segmenter(workdir, stage="madan"):
    """The segmenter of a MADAN run's `stage`, built from the run's own config.json.

    Returns:
      (model, target dataset name, its data folder, its evaluation split).

    Raises:
      FileNotFoundError / ValueError: naming the run's config.json or the stage's weights.
    """
    from tf_madan import data, layout

    config = layout.run_config(workdir)
    model = layout.load_segmenter(config, layout.segmenter_weights(workdir, stage))
    target = config.data.target
    return model, target, data.domain_dir(config, target), config.data.eval_split


def explain_classifier(model, dataset, *, data_dir, split, normalize, num_images, out):
    """Writes `<out>/attribution_<dataset>.png`; returns its path."""
    import numpy as np

    from input_pipelines import classification
    from visuals import attribution, plots

    images, labels = next(
        iter(
            classification.build_dataset(
                dataset,
                split,
                batch_size=num_images,
                data_dir=data_dir,
                normalize=normalize,
                shuffle=False,
            )
        )
    )
    images, labels = images.numpy(), labels.numpy()
    predictions = np.argmax(model(images, training=False), axis=-1)
    maps = attribution.classification_maps(model, images, labels)
    os.makedirs(out, exist_ok=True)
    return plots.save_classification_grid(
        os.path.join(out, f"attribution_{dataset}.png"), images, maps, labels, predictions
    )


def explain_segmenter(model, dataset, *, data_dir, split, class_names, num_images, out):
    """Writes `<out>/gradcam_<dataset>.png`; returns its path."""
    from input_pipelines import driving
    from visuals import attribution, plots

    names = list(driving.TRAIN_ID_NAMES)
    unknown = [c for c in class_names if c not in names]
    if unknown:
        raise ValueError(f"--classes {unknown} are not Cityscapes train-id names {names}")
    images, _ = next(
        iter(
            driving.build_dataset(
                dataset, split, data_dir=data_dir, batch_size=num_images, normalization="segmenter"
            )
        )
    )
    maps = attribution.segmentation_class_gradcam(
        model, images.numpy(), [names.index(c) for c in class_names]
    )
    os.makedirs(out, exist_ok=True)
    return plots.save_segmentation_grid(
        os.path.join(out, f"gradcam_{dataset}.png"), images.numpy(), maps, class_names
    )
