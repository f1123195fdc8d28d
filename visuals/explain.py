"""`python -m visuals.explain`: attribution maps of a saved model as PNG.

Classifier (saliency + Grad-CAM++ for the true label):
  python -m visuals.explain --model=runs/x/model.keras --dataset=mnist5k --out=runs/x/visuals
Segmenter (per-class Grad-CAM):
  python -m visuals.explain --task=segmentation --model=seg.keras --dataset=cityscapes \
      --data_dir=/data/cityscapes --split=val --classes=road,car,person --out=runs/seg/visuals

The model is a Keras 3 `.keras` file of a functional model (the project's packages are imported
first so their custom layers deserialize).
"""

import importlib
import os

from absl import app, flags

_TASK = flags.DEFINE_enum(
    "task", "classification", ["classification", "segmentation"], "Model kind."
)
_MODEL = flags.DEFINE_string("model", None, "Path of a .keras model file.", required=True)
_DATASET = flags.DEFINE_string("dataset", "mnist5k", "Dataset name (classification or driving).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Folder of the original dataset files.")
_SPLIT = flags.DEFINE_string("split", "test", "Split to take images from.")
_NORMALIZE = flags.DEFINE_string(
    "normalize", "unit", "Classification normalisation the model was trained with."
)
_NUM_IMAGES = flags.DEFINE_integer("num_images", 6, "Number of images to explain.", lower_bound=1)
_CLASSES = flags.DEFINE_list(
    "classes", ["road", "car", "person"], "Segmentation classes (train-id names)."
)
_OUT = flags.DEFINE_string("out", "visuals_out", "Output folder for the PNGs.")


def _load_model(path):
    import keras

    if not os.path.isfile(path) or not path.endswith(".keras"):
        raise ValueError(f"--model must be an existing .keras file. Received: {path!r}")
    for package in ("tf_hessian", "tf_ode", "tf_madan"):
        importlib.import_module(package)  # registers the packages' serializable layers
    return keras.saving.load_model(path, compile=False)


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


def main(argv):
    del argv
    model = _load_model(_MODEL.value)
    if _TASK.value == "classification":
        path = explain_classifier(
            model,
            _DATASET.value,
            data_dir=_DATA_DIR.value,
            split=_SPLIT.value,
            normalize=_NORMALIZE.value,
            num_images=_NUM_IMAGES.value,
            out=_OUT.value,
        )
    else:
        path = explain_segmenter(
            model,
            _DATASET.value,
            data_dir=_DATA_DIR.value,
            split=_SPLIT.value,
            class_names=_CLASSES.value,
            num_images=_NUM_IMAGES.value,
            out=_OUT.value,
        )
    print(path)


if __name__ == "__main__":
    app.run(main)
