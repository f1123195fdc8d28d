"""`python -m visuals.explain`: attribution maps of a saved model as PNG.

Classifier (saliency + Grad-CAM++ for the true label):
  python -m visuals.explain --model=runs/x/model.keras --dataset=mnist5k --out=runs/x/visuals
Segmenter (per-class Grad-CAM):
  python -m visuals.explain --task=segmentation --model=seg.keras --dataset=cityscapes \
      --data_dir=/data/cityscapes --split=val --classes=road,car,person --out=runs/seg/visuals

The model is a Keras 3 `.keras` file of a functional model (the project's packages are imported
first so their custom layers deserialize).
"""

from absl import app, flags

from visuals import explain_lib

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


def main(argv):
    del argv
    model = explain_lib.load_model(_MODEL.value)
    if _TASK.value == "classification":
        path = explain_lib.explain_classifier(
            model,
            _DATASET.value,
            data_dir=_DATA_DIR.value,
            split=_SPLIT.value,
            normalize=_NORMALIZE.value,
            num_images=_NUM_IMAGES.value,
            out=_OUT.value,
        )
    else:
        path = explain_lib.explain_segmenter(
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
