"""FCN-score: translation quality measured by a segmenter trained on the target.

Reference: Isola et al. 2017 (pix2pix) and Zhu et al. 2017 (CycleGAN) §5.1.1, Hoffman et
al. 2018 (CyCADA) Table 1: an "oracle" segmenter F_T trained on labelled target-style
images segments the translated source images G_{S->T}(x_s); its mIoU against the SOURCE
labels measures how target-like and how content-preserving the translation is. A good
translation scores above the untranslated images (`generator=None`).

The images take exactly the path of the adapted-image stages: the source reader's
[-1, 1] images (`data.source_dataset`, `normalization="generator"`), the generator,
`normalization.generator_to_uint8` (what `data.write_adapted_images` stores as PNG), then
/255 and ImageNet mean/std (what `data.adapted_dataset` feeds F). Raw images are read
with the segmenter normalisation directly, as every segmenter stage reads them.

The oracle itself is a normal segmenter stage (`tf_madan.stages`) run on labelled target train
images: `labelled_target_fn` is its dataset function.
"""

import tensorflow as tf

from input_pipelines import driving
from tf_madan import data, evaluation
from tf_madan.normalization import IMAGENET_MEAN, IMAGENET_STD, generator_to_uint8


def labelled_target_fn(config, batch_size, crop_size):
    """dataset_fn(input_context) of labelled target train batches for the oracle F_T.

    Yields `{"sources": ((image, label),), "target": (image, label)}` (segmenter-normalised,
    `config.data.seg_resize_shorter`, random `crop_size` crops): the target's labelled
    `config.data.target_split` plays the one source, as `SegmenterTrainer` expects.
    """
    return data.multi_domain_fn(
        config,
        normalization="segmenter",
        batch_size=batch_size,
        crop_size=crop_size,
        resize_shorter=config.data.seg_resize_shorter,
        sources=[config.data.target],
    )


def adapted_to_segmenter(images):
    """Generator output [-1, 1] -> the segmenter input an adapted PNG would give.

    Quantises to uint8 like `write_adapted_images`, then normalises like the adapted reader.
    """
    unit = tf.cast(generator_to_uint8(images), tf.float32) / 255.0
    return (unit - tf.constant(IMAGENET_MEAN)) / tf.constant(IMAGENET_STD)


def _take(dataset, max_images, batch_size):
    if max_images is None:
        return dataset
    if max_images < 1:
        raise ValueError(f"max_images must be >= 1 or None. Received: max_images={max_images}")
    return dataset.unbatch().take(max_images).batch(batch_size)


def fcn_score(
    config, oracle_segmenter, source_name, generator=None, *, max_images=None, batch_size=8
):
    """FCN-score of `generator`'s translations of `source_name` (raw images when None).

    Args:
      config: the MADAN config (`data.root`, `data.translate_resize_shorter`, num_classes).
      oracle_segmenter: F_T, segmenter-normalised images -> logits [B, H, W, C].
      source_name: source dataset name (e.g. "gta5"); its labels are the ground truth.
      generator: G_{S->T}, [-1, 1] images -> [-1, 1] images of the same size; None
        scores the untranslated images.
      max_images: score only the first images of the source (None = all).
      batch_size: images per batch.

    Returns:
      `evaluation.metric_results` dict (percent: "miou_16", "miou_19",
      "miou_16_gt_present", "gt_present_classes", "per_class_iou", ...) plus
      "num_images", "source" and "generator" (its name, or None).

    Raises:
      ValueError: when the generator changes the image size (names both sizes), or the
        source yields no image.
    """
    metric = driving.MeanIoU(num_classes=config.num_classes, ignore_label=config.ignore_label)
    if generator is None:
        dataset = data.source_dataset(
            config, source_name, batch_size=batch_size, normalization="segmenter"
        )

        @tf.function
        def predict(images):
            return oracle_segmenter(images, training=False)

    else:
        dataset = data.source_dataset(
            config, source_name, batch_size=batch_size, normalization="generator"
        )

        @tf.function
        def predict(images):
            adapted = generator(images, training=False)
            return adapted, oracle_segmenter(adapted_to_segmenter(adapted), training=False)

    num_images = 0
    for images, labels in _take(dataset, max_images, batch_size):
        if generator is None:
            logits = predict(images)
        else:
            adapted, logits = predict(images)
            if adapted.shape[1:3] != images.shape[1:3]:
                raise ValueError(
                    f"Generator {getattr(generator, 'name', generator)} returned images of size "
                    f"{tuple(adapted.shape[1:3])} for {source_name} inputs of size "
                    f"{tuple(images.shape[1:3])}; the FCN-score needs the labels' size."
                )
        metric.update_state(labels, logits)
        num_images += int(labels.shape[0])
    if num_images == 0:
        raise ValueError(
            f"No {source_name} images to score in {data.domain_dir(config, source_name)}."
        )
    return {
        **evaluation.metric_results(metric),
        "num_images": num_images,
        "source": source_name,
        "generator": None if generator is None else getattr(generator, "name", str(generator)),
    }
