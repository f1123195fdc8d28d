"""Demo section: saliency / Grad-CAM++ of the trained classifiers and per-class Grad-CAM of the
MADAN segmenter, reusing the models the earlier sections trained."""

import json
import os

import numpy as np

from input_pipelines import classification
from visuals import attribution, plots


def _classifier_grid(network, dataset, normalize, out_path, num_images=6):
    images, labels = classification.load_arrays(dataset, "test")
    # The first test image of each of `num_images` classes (some splits are sorted by class).
    first = np.sort(np.unique(labels, return_index=True)[1])[:num_images]
    images, labels = images[first], labels[first]
    info = classification.dataset_info(dataset)
    inputs = classification.normalize_image(images, info, normalize).numpy()
    predictions = np.argmax(network(inputs, training=False), axis=-1)
    maps = attribution.classification_maps(network, inputs, labels)
    return plots.save_classification_grid(out_path, inputs, maps, labels, predictions)


def hessian_classifiers(hessian_workdir, out_dir):
    """Saliency + Grad-CAM++ of the smallest- and largest-batch models of the Hessian demo."""
    from tf_hessian import train_lib

    runs = sorted(
        (int(name[1:]), os.path.join(hessian_workdir, name))
        for name in os.listdir(hessian_workdir)
        if name.startswith("b") and name[1:].isdigit()
    )
    paths = {}
    for batch_size, run_dir in (runs[0], runs[-1]):
        network, config, _ = train_lib.restore_network(run_dir)
        paths[f"hessian_b{batch_size}"] = _classifier_grid(
            network,
            config.data.name,
            config.data.normalize,
            os.path.join(out_dir, f"saliency_hessian_b{batch_size}.png"),
        )
    return paths


def ode_classifiers(ode_workdir, out_dir):
    """Saliency + Grad-CAM++ of each variant trained by the ODE comparison."""
    import ml_collections
    import tensorflow as tf

    from tf_ode import train_lib

    comparison = os.path.join(ode_workdir, "comparison")
    paths = {}
    for variant in sorted(os.listdir(comparison)):
        run_dir = os.path.join(comparison, variant)
        if not os.path.isfile(os.path.join(run_dir, "config.json")):
            continue
        with open(os.path.join(run_dir, "config.json")) as f:
            config = ml_collections.ConfigDict(json.load(f))
        info = classification.dataset_info(config.dataset)
        model = train_lib.build_model(config, info.num_classes, info.image_shape)
        latest = tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints"))
        tf.train.Checkpoint(model=model).restore(latest).expect_partial()
        paths[f"ode_{variant}"] = _classifier_grid(
            model,
            config.dataset,
            "standard",  # tf_ode trains on mean/std-normalised images
            os.path.join(out_dir, f"saliency_ode_{variant}.png"),
        )
    return paths


def madan_segmenter(madan_workdir, out_dir, class_names=("road", "car", "person", "vegetation")):
    """Per-class Grad-CAM of the MADAN segmenter on synthetic target images."""
    from input_pipelines import driving
    from tf_madan import builders, data, layout
    from tf_madan.configs import demo as demo_config

    config = demo_config.get_config()
    config.data.root = os.path.join(madan_workdir, "data")
    segmenter = builders.build_segmenter(config)
    segmenter.load_weights(layout.segmenter_weights(os.path.join(madan_workdir, "run"), "madan"))
    images, _ = next(iter(data.eval_dataset(config, batch_size=3)))
    names = list(driving.TRAIN_ID_NAMES)
    maps = attribution.segmentation_class_gradcam(
        segmenter, images.numpy(), [names.index(c) for c in class_names]
    )
    path = os.path.join(out_dir, "gradcam_madan_segmenter.png")
    return {
        "madan_segmenter": plots.save_segmentation_grid(
            path, images.numpy(), maps, list(class_names)
        )
    }


def run(workdir, context):
    """Writes the attribution PNGs of every model the demo trained; returns markdown + paths."""
    os.makedirs(workdir, exist_ok=True)
    images = {}
    root = os.path.dirname(workdir)
    builders = (
        ("hessian_section", hessian_classifiers),
        ("ode_section", ode_classifiers),
        ("madan_section", madan_segmenter),
    )
    for section, build in builders:
        if section in context:
            images.update(build(os.path.join(root, section), workdir))
    lines = [
        "Each row: input, vanilla saliency (|d logit / d pixel|) and Grad-CAM++ for the true label "
        "(tf-keras-vis on the trained Keras 3 models); for the segmenter, Grad-CAM of each class's "
        "mean logit over the pixels predicted as that class.",
        "",
    ]
    lines += [
        f"![{name}]({os.path.relpath(path, workdir)})" for name, path in sorted(images.items())
    ]
    return {"markdown": "\n".join(lines) + "\n", "images": list(images.values())}
