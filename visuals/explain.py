"""`python -m visuals.explain`: attribution maps of a saved model as PNG.

Classifier (saliency + Grad-CAM++ for the true label):
  python -m visuals.explain --model=runs/x/model.keras --dataset=mnist5k --out=runs/x/visuals
Segmenter (per-class Grad-CAM):
  python -m visuals.explain --task=segmentation --model=seg.keras --dataset=cityscapes \
      --data_dir=/data/cityscapes --split=val --classes=road,car,person --out=runs/seg/visuals
A MADAN run's segmenter (built from the run's config.json, on its target's evaluation split):
  python -m visuals.explain --workdir=runs/madan_cpu --stage=madan --out=runs/madan_cpu/visuals

The model is a Keras 3 `.keras` file of a functional model (the project's packages are imported
first so their custom layers deserialize).
"""

from absl import app, flags

from visuals import explain_lib


def define_flags(flag_values=flags.FLAGS):
    """Registers this binary's flags (called under `__main__`, or by tests on a private FlagValues)."""
    flags.DEFINE_enum(
        "task",
        "classification",
        ["classification", "segmentation"],
        "Model kind.",
        flag_values=flag_values,
    )
    flags.DEFINE_string("model", None, "Path of a .keras model file.", flag_values=flag_values)
    flags.DEFINE_string(
        "workdir",
        None,
        "A MADAN run folder: explain the segmenter of --stage, built from its config.json "
        "(instead of --model; implies --task=segmentation and the run's target data).",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "stage", "madan", "With --workdir: the segmenter stage.", flag_values=flag_values
    )
    flags.DEFINE_string(
        "dataset",
        "mnist5k",
        "Dataset name (classification or driving).",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "data_dir", None, "Folder of the original dataset files.", flag_values=flag_values
    )
    flags.DEFINE_string("split", "test", "Split to take images from.", flag_values=flag_values)
    flags.DEFINE_string(
        "normalize",
        "unit",
        "Classification normalisation the model was trained with.",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "num_images",
        6,
        "Number of images to explain.",
        lower_bound=1,
        flag_values=flag_values,
    )
    flags.DEFINE_list(
        "classes",
        ["road", "car", "person"],
        "Segmentation classes (train-id names).",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "out", "visuals_out", "Output folder for the PNGs.", flag_values=flag_values
    )


def main(argv, flag_values=flags.FLAGS):
    del argv
    v = flag_values
    if bool(v.model) == bool(v.workdir):
        raise app.UsageError("Pass exactly one of --model and --workdir.")
    if v.workdir:
        model, dataset, data_dir, split = explain_lib.load_madan_segmenter(v.workdir, v.stage)
        path = explain_lib.explain_segmenter(
            model,
            dataset,
            data_dir=data_dir,
            split=split,
            class_names=v.classes,
            num_images=v.num_images,
            out=v.out,
        )
        print(path)
        return
    model = explain_lib.load_model(v.model)
    if v.task == "classification":
        path = explain_lib.explain_classifier(
            model,
            v.dataset,
            data_dir=v.data_dir,
            split=v.split,
            normalize=v.normalize,
            num_images=v.num_images,
            out=v.out,
        )
    else:
        path = explain_lib.explain_segmenter(
            model,
            v.dataset,
            data_dir=v.data_dir,
            split=v.split,
            class_names=v.classes,
            num_images=v.num_images,
            out=v.out,
        )
    print(path)


if __name__ == "__main__":
    define_flags()
    app.run(main)
