"""Label tables of the driving datasets, mapped to the 19 Cityscapes train ids.

Every reader in this package produces Cityscapes train ids (0..18) with 255 = ignore.
The tables follow the MADAN spec (§4.2), not the official code's segmentation-stage
loaders, which import the SYNTHIA table for every dataset (spec §6.1, bug 2).

Raw label ids a dataset may legally contain:
  * Cityscapes and GTA5: Cityscapes label ids 0..33, plus 255 (the license-plate id -1
    stored in a uint8 PNG).
  * SYNTHIA-RAND-CITYSCAPES: SYNTHIA class ids 0..22.
  * BDD100K masks: train ids 0..18 and 255 (already in train-id space, no remap).
Any other value is a corrupt or foreign label file and is reported as an error.
"""

import numpy as np

IGNORE_LABEL = 255
NUM_CLASSES = 19

TRAIN_ID_NAMES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
    "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car",
    "truck", "bus", "train", "motorcycle", "bicycle",
)  # fmt: skip

# The 16 classes shared with SYNTHIA: the 19 minus terrain (9), truck (14), train (16).
CLASSES_16 = (0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 15, 17, 18)

# Colour of each train id (Cityscapes `labels.py`), uint8 [19, 3].
CITYSCAPES_PALETTE = np.array(
    [
        (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
        (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
        (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70),
        (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
    ],
    dtype=np.uint8,
)  # fmt: skip

# Cityscapes label id -> train id for the 19 evaluated classes (GTA5 uses the same ids).
CITYSCAPES_ID_TO_TRAIN_ID = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9,
    23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}  # fmt: skip
CITYSCAPES_VALID_IDS = tuple(range(34)) + (255,)

# SYNTHIA-RAND-CITYSCAPES class id -> train id. 0 void, 13 parking-slot, 14 road-work
# and 22 lanemarking are ignored.
SYNTHIA_ID_TO_TRAIN_ID = {
    3: 0, 4: 1, 2: 2, 21: 3, 5: 4, 7: 5, 15: 6, 9: 7, 6: 8, 16: 9,
    1: 10, 10: 11, 17: 12, 8: 13, 18: 14, 19: 15, 20: 16, 12: 17, 11: 18,
}  # fmt: skip
SYNTHIA_VALID_IDS = tuple(range(23))

BDD100K_ID_TO_TRAIN_ID = {i: i for i in range(NUM_CLASSES)}
BDD100K_VALID_IDS = tuple(range(NUM_CLASSES)) + (255,)

# Inverse tables, used by the synthetic data writer.
TRAIN_ID_TO_CITYSCAPES_ID = {v: k for k, v in CITYSCAPES_ID_TO_TRAIN_ID.items()}
TRAIN_ID_TO_SYNTHIA_ID = {v: k for k, v in SYNTHIA_ID_TO_TRAIN_ID.items()}

# Full 256-entry Cityscapes label-id palette (the GTA5 label PNGs carry this palette).
_CITYSCAPES_ID_COLOURS = {
    5: (111, 74, 0), 6: (81, 0, 81), 9: (250, 170, 160), 10: (230, 150, 140),
    14: (180, 165, 180), 15: (150, 100, 100), 16: (150, 120, 90), 18: (153, 153, 153),
    29: (0, 0, 90), 30: (0, 0, 110), 255: (0, 0, 142),
}  # fmt: skip


def cityscapes_id_palette():
    """Returns the uint8 [256, 3] colour palette indexed by Cityscapes label id."""
    palette = np.zeros((256, 3), np.uint8)
    for label_id, train_id in CITYSCAPES_ID_TO_TRAIN_ID.items():
        palette[label_id] = CITYSCAPES_PALETTE[train_id]
    for label_id, colour in _CITYSCAPES_ID_COLOURS.items():
        palette[label_id] = colour
    return palette


# Per-dataset raw-id tables: (mapping to train ids, raw ids allowed in a label file).
DATASET_TABLES = {
    "cityscapes": (CITYSCAPES_ID_TO_TRAIN_ID, CITYSCAPES_VALID_IDS),
    "gta5": (CITYSCAPES_ID_TO_TRAIN_ID, CITYSCAPES_VALID_IDS),
    "synthia": (SYNTHIA_ID_TO_TRAIN_ID, SYNTHIA_VALID_IDS),
    "bdd100k": (BDD100K_ID_TO_TRAIN_ID, BDD100K_VALID_IDS),
}


def lookup_table(dataset, size=256):
    """Builds the raw-id -> train-id lookup of `dataset` as an int32 [size] array.

    Entries are the train id (0..18), 255 for ids the dataset ignores, and -1 for ids
    outside the dataset's table (an invalid label file).

    Args:
      dataset: one of `DATASET_TABLES`.
      size: table length; 256 for 8-bit labels, larger for 16-bit ones.

    Returns:
      int32 numpy array [size].
    """
    if dataset not in DATASET_TABLES:
        raise ValueError(f"Unknown dataset {dataset!r}; expected one of {sorted(DATASET_TABLES)}.")
    mapping, valid_ids = DATASET_TABLES[dataset]
    table = np.full((size,), -1, np.int32)
    table[list(valid_ids)] = IGNORE_LABEL
    for raw_id, train_id in mapping.items():
        table[raw_id] = train_id
    return table


def map_to_train_ids(raw, dataset):
    """Maps a numpy array of raw label ids to train ids; raises on ids outside the table.

    Args:
      raw: integer array of raw ids (any shape).
      dataset: one of `DATASET_TABLES`.

    Returns:
      int32 array of the same shape with values in 0..18 or 255.

    Raises:
      ValueError: if `raw` holds an id outside the dataset's table.
    """
    raw = np.asarray(raw)
    table = lookup_table(dataset, size=max(256, int(raw.max(initial=0)) + 1))
    mapped = table[raw.astype(np.int64)]
    if (mapped < 0).any():
        bad = np.unique(raw[mapped < 0])
        raise ValueError(f"label ids {bad.tolist()} are outside the {dataset} label table")
    return mapped


def subset_table(class_subset):
    """Returns an int32 [256] train-id -> train-id table restricting to a class subset.

    Args:
      class_subset: None (all 19 classes) or "16" (the 16 classes shared with SYNTHIA;
        terrain, truck and train become 255).
    """
    table = np.full((256,), IGNORE_LABEL, np.int32)
    if class_subset is None:
        keep = range(NUM_CLASSES)
    elif str(class_subset) == "16":
        keep = CLASSES_16
    else:
        raise ValueError(
            f"class_subset must be None or '16'. Received: class_subset={class_subset!r}"
        )
    for train_id in keep:
        table[train_id] = train_id
    return table


def colorize(train_ids):
    """Colours a train-id map with the Cityscapes palette (255 -> black).

    Args:
      train_ids: integer array [..., H, W] of train ids / 255.

    Returns:
      uint8 array [..., H, W, 3].
    """
    palette = np.zeros((256, 3), np.uint8)
    palette[:NUM_CLASSES] = CITYSCAPES_PALETTE
    return palette[np.asarray(train_ids).astype(np.int64) & 255]
