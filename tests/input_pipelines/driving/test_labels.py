"""Tests of the label tables against the MADAN spec §4.2 table."""

import numpy as np
import pytest

from input_pipelines.driving import labels

# (train id, name, Cityscapes/GTA5 label id, SYNTHIA id), copied from the spec table.
SPEC_ROWS = [
    (0, "road", 7, 3), (1, "sidewalk", 8, 4), (2, "building", 11, 2), (3, "wall", 12, 21),
    (4, "fence", 13, 5), (5, "pole", 17, 7), (6, "traffic light", 19, 15),
    (7, "traffic sign", 20, 9), (8, "vegetation", 21, 6), (9, "terrain", 22, 16),
    (10, "sky", 23, 1), (11, "person", 24, 10), (12, "rider", 25, 17), (13, "car", 26, 8),
    (14, "truck", 27, 18), (15, "bus", 28, 19), (16, "train", 31, 20),
    (17, "motorcycle", 32, 12), (18, "bicycle", 33, 11),
]  # fmt: skip


@pytest.mark.parametrize("train_id,name,cityscapes_id,synthia_id", SPEC_ROWS)
def test_tables_match_spec(train_id, name, cityscapes_id, synthia_id):
    assert labels.TRAIN_ID_NAMES[train_id] == name
    assert labels.lookup_table("cityscapes")[cityscapes_id] == train_id
    assert labels.lookup_table("gta5")[cityscapes_id] == train_id
    assert labels.lookup_table("synthia")[synthia_id] == train_id
    assert labels.lookup_table("bdd100k")[train_id] == train_id


def test_ignored_and_invalid_ids():
    cityscapes = labels.lookup_table("cityscapes")
    ignored = [0, 1, 2, 3, 4, 5, 6, 9, 10, 14, 15, 16, 18, 29, 30, 255]
    np.testing.assert_array_equal(cityscapes[ignored], 255)
    np.testing.assert_array_equal(cityscapes[34:255], -1)
    synthia = labels.lookup_table("synthia", size=65536)
    np.testing.assert_array_equal(synthia[[0, 13, 14, 22]], 255)
    assert (synthia[23:] == -1).all()
    bdd = labels.lookup_table("bdd100k")
    assert bdd[255] == 255 and (bdd[19:255] == -1).all()


def test_each_train_id_has_exactly_one_source_id():
    for dataset in ("cityscapes", "synthia"):
        table = labels.lookup_table(dataset)
        counts = np.bincount(table[table >= 0][table[table >= 0] < 255], minlength=19)
        np.testing.assert_array_equal(counts, np.ones(19))


def test_classes_16():
    assert len(labels.CLASSES_16) == 16
    assert set(range(19)) - set(labels.CLASSES_16) == {9, 14, 16}
    table = labels.subset_table("16")
    assert table[9] == table[14] == table[16] == 255 and table[13] == 13
    with pytest.raises(ValueError, match="class_subset"):
        labels.subset_table("13")


def test_map_to_train_ids_and_error():
    raw = np.array([[7, 26], [0, 33]], np.uint8)
    np.testing.assert_array_equal(labels.map_to_train_ids(raw, "gta5"), [[0, 13], [255, 18]])
    with pytest.raises(ValueError, match=r"label ids \[40\] are outside the gta5"):
        labels.map_to_train_ids(np.array([7, 40]), "gta5")
    with pytest.raises(ValueError, match="Unknown dataset"):
        labels.lookup_table("kitti")


def test_palette_and_colorize():
    assert labels.CITYSCAPES_PALETTE.shape == (19, 3)
    np.testing.assert_array_equal(labels.CITYSCAPES_PALETTE[13], (0, 0, 142))
    colours = labels.colorize(np.array([[0, 255]]))
    np.testing.assert_array_equal(colours, [[(128, 64, 128), (0, 0, 0)]])
    id_palette = labels.cityscapes_id_palette()
    np.testing.assert_array_equal(id_palette[26], (0, 0, 142))
    np.testing.assert_array_equal(id_palette[6], (81, 0, 81))
