"""File listing, image/label pairing and up-front validation of the driving datasets.

Layouts (MADAN spec §4.3), relative to `data_dir`:

  gta5        images/NNNNN.png (RGB)           labels/NNNNN.png (8-bit palette PNG whose
                                               indices are Cityscapes label ids)
              splits: "all", or "train"/"val"/"test" from `split.mat`
  synthia     RGB/NNNNNNN.png (RGB)            GT/LABELS/NNNNNNN.png (16-bit multi-channel
                                               PNG, class id in the first channel)
              splits: "all" (SYNTHIA has no official split)
  cityscapes  leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png
              gtFine/<split>/<city>/<stem>_gtFine_labelIds.png (8-bit grey, label ids)
              splits: "train", "val", "test"
  bdd100k     images/10k/<split>/<stem>.jpg    labels/sem_seg/masks/<split>/<stem>.png
                                               (8-bit grey, already train ids)
              or the MADAN repo's layout images/<split>/<stem>.jpg,
              labels/<split>/<stem>_train_id.png; splits: "train", "val"

Images and labels are paired by id (file stem), never by sorted order.
"""

import dataclasses
import os

import numpy as np
import tensorflow as tf
from absl import logging

from input_pipelines.driving import image_header
from input_pipelines.driving import labels as labels_lib

DATASET_NAMES = ("gta5", "synthia", "cityscapes", "bdd100k")
VALIDATION_MODES = ("none", "header", "full")
_MAX_LISTED = 5


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """Format of one dataset.

    Attributes:
      name: dataset name.
      splits: accepted split names.
      label_format: "png8_grey" (decoded by TF), "png8_index" (palette or grey PNG whose
        indices are read, never the colours) or "png16_first_channel".
    """

    name: str
    splits: tuple
    label_format: str


SPECS = {
    "gta5": DatasetSpec("gta5", ("all", "train", "val", "test"), "png8_index"),
    "synthia": DatasetSpec("synthia", ("all",), "png16_first_channel"),
    "cityscapes": DatasetSpec("cityscapes", ("train", "val", "test"), "png8_grey"),
    "bdd100k": DatasetSpec("bdd100k", ("train", "val"), "png8_grey"),
}


@dataclasses.dataclass(frozen=True)
class ExampleList:
    """Paired files of one dataset split, sorted by key.

    Attributes:
      name: dataset name.
      split: split name.
      keys: example ids (e.g. "00001" or "aachen/aachen_000000_000019").
      image_paths: image file per key.
      label_paths: label file per key.
    """

    name: str
    split: str
    keys: tuple
    image_paths: tuple
    label_paths: tuple

    def __len__(self):
        return len(self.keys)


def get_spec(name):
    """Returns the `DatasetSpec` of `name` or raises ValueError naming the valid names."""
    if name not in SPECS:
        raise ValueError(f"Unknown driving dataset {name!r}; expected one of {DATASET_NAMES}.")
    return SPECS[name]


def _require_dir(path, what):
    if not tf.io.gfile.isdir(path):
        raise FileNotFoundError(f"{what} directory not found: {path}")


def _files_by_key(directory, suffix, recursive=False):
    """Maps key -> path for files in `directory` ending with `suffix`."""
    found = {}
    if recursive:
        for sub in sorted(tf.io.gfile.listdir(directory)):
            sub = sub.rstrip("/")
            sub_dir = os.path.join(directory, sub)
            if tf.io.gfile.isdir(sub_dir):
                for key, path in _files_by_key(sub_dir, suffix).items():
                    found[f"{sub}/{key}"] = path
        return found
    for entry in tf.io.gfile.listdir(directory):
        if entry.endswith(suffix) and not tf.io.gfile.isdir(os.path.join(directory, entry)):
            found[entry[: -len(suffix)]] = os.path.join(directory, entry)
    return found


def _list_preview(paths):
    paths = sorted(paths)
    text = ", ".join(paths[:_MAX_LISTED])
    return text + (f", ... ({len(paths)} in all)" if len(paths) > _MAX_LISTED else "")


def _pair(name, split, images, labels, image_dir, label_dir):
    missing_labels = sorted(set(images) - set(labels))
    missing_images = sorted(set(labels) - set(images))
    if missing_labels:
        raise FileNotFoundError(
            f"{name} {split}: {len(missing_labels)} image(s) without a label file in {label_dir}: "
            + _list_preview([images[k] for k in missing_labels])
        )
    if missing_images:
        raise FileNotFoundError(
            f"{name} {split}: {len(missing_images)} label file(s) without an image in {image_dir}: "
            + _list_preview([labels[k] for k in missing_images])
        )
    if not images:
        raise FileNotFoundError(f"{name} {split}: no images found in {image_dir}")
    keys = tuple(sorted(images))
    return ExampleList(
        name, split, keys, tuple(images[k] for k in keys), tuple(labels[k] for k in keys)
    )


def _gta5_split_keys(data_dir, split, keys):
    path = os.path.join(data_dir, "split.mat")
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(
            f"gta5 split {split!r} needs {path} (keys trainIds/valIds/testIds); "
            "use split='all' for every image."
        )
    import scipy.io  # Local import: only GTA5 splits need it.

    with tf.io.gfile.GFile(path, "rb") as handle:
        mat = scipy.io.loadmat(handle)
    field = f"{split}Ids"
    if field not in mat:
        raise ValueError(f"{path} has no {field!r} entry; found {sorted(mat)}")
    wanted = {int(i) for i in np.asarray(mat[field]).ravel()}
    return {k for k in keys if k.isdigit() and int(k) in wanted}


def list_examples(name, split, data_dir):
    """Lists and pairs the image and label files of one dataset split.

    Args:
      name: one of `DATASET_NAMES`.
      split: a split of that dataset (see module docstring).
      data_dir: dataset root.

    Returns:
      `ExampleList` sorted by key.

    Raises:
      ValueError: unknown dataset or split.
      FileNotFoundError: a missing directory, or an image without its label (or the
        reverse), naming the files.
    """
    spec = get_spec(name)
    if split not in spec.splits:
        raise ValueError(f"{name} has splits {spec.splits}. Received: split={split!r}")
    data_dir = str(data_dir)
    _require_dir(data_dir, f"{name} data_dir")
    if name == "gta5":
        image_dir, label_dir = os.path.join(data_dir, "images"), os.path.join(data_dir, "labels")
        images, labels, recursive = ".png", ".png", False
    elif name == "synthia":
        image_dir = os.path.join(data_dir, "RGB")
        label_dir = os.path.join(data_dir, "GT", "LABELS")
        images, labels, recursive = ".png", ".png", False
    elif name == "cityscapes":
        image_dir = os.path.join(data_dir, "leftImg8bit", split)
        label_dir = os.path.join(data_dir, "gtFine", split)
        images, labels, recursive = "_leftImg8bit.png", "_gtFine_labelIds.png", True
    else:
        image_dir = os.path.join(data_dir, "images", "10k", split)
        label_dir = os.path.join(data_dir, "labels", "sem_seg", "masks", split)
        images, labels, recursive = ".jpg", ".png", False
        legacy_images = os.path.join(data_dir, "images", split)
        if not tf.io.gfile.isdir(image_dir) and tf.io.gfile.isdir(legacy_images):
            # The official MADAN repo's "bdds" layout: labels/<split>/<stem>_train_id.png.
            image_dir, label_dir = legacy_images, os.path.join(data_dir, "labels", split)
            labels = "_train_id.png"
    _require_dir(image_dir, f"{name} image")
    _require_dir(label_dir, f"{name} label")
    images = _files_by_key(image_dir, images, recursive)
    labels = _files_by_key(label_dir, labels, recursive)
    if name == "gta5" and split != "all":
        chosen = _gta5_split_keys(data_dir, split, set(images) | set(labels))
        images = {k: v for k, v in images.items() if k in chosen}
        labels = {k: v for k, v in labels.items() if k in chosen}
    return _pair(name, split, images, labels, image_dir, label_dir)


def _label_format_problem(spec, header):
    """Returns a description of what is wrong with a label header, or None."""
    if header.kind != "png":
        return "label is not a PNG"
    if spec.label_format == "png16_first_channel":
        if header.bit_depth != 16 or header.png_color_type not in (2, 6):
            return (
                f"expected a 16-bit multi-channel PNG, found {header.bit_depth}-bit "
                f"colour type {header.png_color_type}"
            )
        return None
    if header.bit_depth != 8:
        return f"expected an 8-bit label PNG, found {header.bit_depth}-bit"
    allowed = (0, 3) if spec.label_format == "png8_index" else (0,)
    if header.png_color_type not in allowed:
        kind = "palette or greyscale" if len(allowed) == 2 else "greyscale"
        return f"expected a {kind} label PNG, found colour type {header.png_color_type}"
    return None


def validate_headers(examples, *, drop_mismatched=False):
    """Checks every pair's headers: readable files, label format, image size == label size.

    Args:
      examples: an `ExampleList`.
      drop_mismatched: instead of raising on image/label size mismatches, drop those
        pairs and log a warning naming them (some public GTA5 copies contain a few).

    Returns:
      The `ExampleList`, without the mismatched pairs when `drop_mismatched`.

    Raises:
      ValueError: naming the offending file(s).
    """
    spec = get_spec(examples.name)
    mismatched, bad_format, keep = [], [], []
    for index, (image_path, label_path) in enumerate(
        zip(examples.image_paths, examples.label_paths)
    ):
        image = image_header.read_image_header(image_path)
        label = image_header.read_image_header(label_path)
        if image.channels not in (1, 3, 4) or image.bit_depth != 8:
            bad_format.append(f"{image_path} ({image.bit_depth}-bit, {image.channels} channels)")
        problem = _label_format_problem(spec, label)
        if problem:
            bad_format.append(f"{label_path} ({problem})")
        if (image.height, image.width) != (label.height, label.width):
            mismatched.append(
                f"{image_path} is {image.height}x{image.width} but {label_path} is "
                f"{label.height}x{label.width}"
            )
        else:
            keep.append(index)
    if bad_format:
        raise ValueError(f"{examples.name}: unexpected file format: " + _list_preview(bad_format))
    if mismatched and not drop_mismatched:
        raise ValueError(
            f"{examples.name}: image/label size mismatch: " + _list_preview(mismatched)
        )
    if not mismatched:
        return examples
    logging.warning(
        "%s: dropping %d pair(s) with image/label size mismatch: %s",
        examples.name,
        len(mismatched),
        _list_preview(mismatched),
    )
    if not keep:
        raise ValueError(f"{examples.name} {examples.split}: every pair has a size mismatch")
    return ExampleList(
        examples.name,
        examples.split,
        tuple(examples.keys[i] for i in keep),
        tuple(examples.image_paths[i] for i in keep),
        tuple(examples.label_paths[i] for i in keep),
    )


def read_raw_label(path, label_format):
    """Reads the raw label ids of one file with numpy/PIL (no remapping).

    Returns:
      integer numpy array [H, W].
    """
    if label_format == "png16_first_channel":
        data = tf.io.read_file(path)
        return tf.io.decode_png(data, channels=0, dtype=tf.uint16).numpy()[..., 0]
    from PIL import Image  # Local import: only the eager readers need PIL.

    with tf.io.gfile.GFile(path, "rb") as handle, Image.open(handle) as image:
        if image.mode not in ("P", "L"):
            raise ValueError(
                f"{path}: expected a palette or greyscale label, found mode {image.mode}"
            )
        return np.asarray(image)


def validate_full(examples, *, drop_mismatched=False):
    """Decodes every image and label; checks sizes and that ids are in the dataset's table.

    Slow (reads every pixel); used by `build_dataset(validate="full")`.

    Returns:
      The (possibly filtered, see `validate_headers`) `ExampleList`.

    Raises:
      ValueError: naming the offending file(s).
    """
    examples = validate_headers(examples, drop_mismatched=drop_mismatched)
    from PIL import Image

    spec = get_spec(examples.name)
    table = labels_lib.lookup_table(examples.name, size=65536)
    problems = []
    for image_path, label_path in zip(examples.image_paths, examples.label_paths):
        try:
            with tf.io.gfile.GFile(image_path, "rb") as handle, Image.open(handle) as image:
                image.load()
        except Exception as error:  # noqa: BLE001 - PIL raises many types for bad data.
            raise ValueError(f"Unreadable image file {image_path}: {error}") from error
        try:
            raw = read_raw_label(label_path, spec.label_format)
        except (tf.errors.OpError, OSError, SyntaxError) as error:
            raise ValueError(f"Unreadable label file {label_path}: {error}") from error
        bad = np.unique(raw[table[raw.astype(np.int64)] < 0])
        if bad.size:
            problems.append(f"{label_path} has ids {bad.tolist()}")
    if problems:
        raise ValueError(
            f"{examples.name}: label ids outside the {examples.name} table: "
            + _list_preview(problems)
        )
    return examples
