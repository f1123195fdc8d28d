import os

import numpy as np
import pytest
import tensorflow as tf
from absl import app, flags

from input_pipelines import synthetic_driving
from input_pipelines.driving import decode, readers
from tf_madan import compare_readings, data, translation_stats
from tf_madan.configs import smoke
from tf_runtime import config as rt_config
from tf_runtime import files as rt_files
from tf_runtime import run as run_lib

NAMES = ["road", "vegetation", "sky"]
ROAD, VEGETATION = (0.5, 0.5, 0.5), (0.2, 0.6, 0.2)


def _scene(road=ROAD):
    """Two 6x8 images: road on the bottom 4 rows, vegetation on the top 2 (labels 0 and 1)."""
    labels = np.zeros((2, 6, 8), np.int64)
    labels[:, :2] = 1
    images = np.where(labels[..., None] == 0, np.array(road), np.array(VEGETATION))
    return images, labels


def _acc(images, labels):
    acc = translation_stats.Accumulator(3)
    acc.add(images, labels)
    return acc


def test_an_identical_translation_has_no_gap_and_the_target_texture():
    target = _acc(*_scene())
    result = translation_stats.compare(_acc(*_scene()), target, NAMES)
    assert result["colour_gap"] == {"road": 0.0, "vegetation": 0.0}  # sky: no pixels, left out
    assert result["pixel_colour_gap"] == 0.0 and result["high_frequency_ratio"] == 1.0


def test_a_repainted_class_and_a_checkerboard_are_measured():
    target = _acc(*_scene())
    images, labels = _scene(road=VEGETATION)  # the road painted with vegetation's colour
    result = translation_stats.compare(_acc(images, labels), target, NAMES)
    gap = np.linalg.norm(np.subtract(VEGETATION, ROAD))
    assert result["colour_gap"]["road"] == pytest.approx(gap)
    assert result["colour_gap"]["vegetation"] == 0.0
    assert result["largest_gap_class"] == "road"
    assert result["mean_colour_gap"] == pytest.approx(gap / 2)
    assert result["pixel_colour_gap"] == pytest.approx(gap * 4 / 6)  # 4 of 6 rows are road

    # A +-0.1 checkerboard on a flat image: |Laplacian| = 8 * 0.1 at every interior pixel.
    flat = np.full((1, 6, 8, 3), 0.5)
    checker = flat + 0.1 * ((np.indices((6, 8)).sum(0) % 2) * 2 - 1)[None, ..., None]
    label = np.zeros((1, 6, 8), np.int64)
    edge = _scene()[0][:1].copy()  # the target scene: one horizontal edge of known height
    reference = _acc(edge, label)
    noisy = translation_stats.compare(_acc(checker, label), reference, NAMES)
    edge_laplacian = reference.high_frequency()
    assert noisy["high_frequency_ratio"] == pytest.approx(0.8 / edge_laplacian)
    assert noisy["high_frequency_ratio"] > 5


def test_ignored_labels_and_bad_shapes():
    images, labels = _scene()
    labels[0, 0, 0] = 255
    acc = _acc(images, labels)
    assert acc.count.sum() == labels.size - 1
    with pytest.raises(ValueError, match=r"RGB \[N, H, W, 3\]"):
        acc.add(np.zeros((1, 4, 4, 1)), np.zeros((1, 4, 4)))
    with pytest.raises(ValueError, match="No class has pixels in both"):
        translation_stats.compare(translation_stats.Accumulator(3), acc, NAMES)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A data root and a one-seed run folder whose `adapted_daig/gta5` holds copies of the raw
    GTA5 images (labels as train ids), and whose `adapted_ada/gta5` holds them with the road
    painted green."""
    root = tmp_path_factory.mktemp("translation_stats")
    data_root = str(root / "data")
    synthetic_driving.generate(data_root, seed=0, num_per_domain=4, num_val=2, height=24, width=32)
    config = smoke.get_config()
    config.data.root = data_root
    seed_dir = str(root / "run" / "seed_0")
    os.makedirs(seed_dir)
    rt_config.write_config(config, seed_dir)
    examples = readers.list_examples("gta5", "all", os.path.join(data_root, "gta5"))
    for folder, repaint in (("adapted_daig", False), ("adapted_ada", True)):
        out = os.path.join(seed_dir, folder, "gta5")
        os.makedirs(os.path.join(out, "images"))
        os.makedirs(os.path.join(out, "labels"))
        for i, (image_path, label_path) in enumerate(
            zip(examples.image_paths, examples.label_paths)
        ):
            image, label = next(
                iter(
                    tf.data.Dataset.from_tensors((image_path, label_path)).map(
                        lambda a, b: decode.decode_example(a, b, dataset="gta5")
                    )
                )
            )
            if repaint:
                image = tf.where(
                    (label == 0)[..., None], tf.constant([40, 160, 40], tf.uint8), image
                )
            for sub, array in (("images", image), ("labels", tf.cast(label, tf.uint8)[..., None])):
                tf.io.write_file(os.path.join(out, sub, f"{i:05d}.png"), tf.io.encode_png(array))
        rt_files.write_marker(os.path.join(out, data.COMPLETE), {"count": len(examples)})
    rt_files.write_marker(os.path.join(seed_dir, run_lib.DONE_NAME))
    return config, str(root / "run"), seed_dir


def test_run_statistics_reads_translated_folders_and_the_raw_sources(tiny_run):
    config, _, seed_dir = tiny_run
    stats = translation_stats.run_statistics(config, seed_dir)
    raw, copied, repainted = (
        stats["raw (gta5)"]["gta5"],
        stats["adapted_daig"]["gta5"],
        stats["adapted_ada"]["gta5"],
    )
    # A translation that copies the source measures exactly as the raw source.
    assert copied["colour_gap"] == pytest.approx(raw["colour_gap"], abs=1e-12)
    assert copied["high_frequency_ratio"] == pytest.approx(raw["high_frequency_ratio"])
    # The road painted one green: its gap is that green's distance from the target's road.
    target = translation_stats.dataset_statistics(config, config.data.target, "train")
    green = np.array([40, 160, 40]) / 255
    expected = np.linalg.norm(green - target.mean_colours()[0])
    assert repainted["colour_gap"]["road"] == pytest.approx(expected)
    assert abs(expected - raw["colour_gap"]["road"]) > 0.05
    assert repainted["colour_gap"]["sky"] == pytest.approx(raw["colour_gap"]["sky"])
    assert "adapted_ada_plain" not in stats  # no finished images there


def test_compare_readings_summarises_translations_per_seed(tiny_run):
    _, run_dir, _ = tiny_run
    summary = compare_readings.translation_summary(run_dir, [0])
    cell = summary["adapted_ada"]["gta5"]
    assert set(cell) == {"pixel_colour_gap", "largest_gap", "high_frequency_ratio"}
    assert list(cell["pixel_colour_gap"]["values"]) == ["0"] and cell["pixel_colour_gap"]["sd"] == 0
    text = compare_readings.translation_markdown({"paper": summary, "code": summary})
    gap = cell["pixel_colour_gap"]["mean"]
    assert f"| adapted_ada | gta5 | {gap:.3f} ({gap:.3f}) | {gap:.3f} ({gap:.3f}) |" in text


def test_translations_of_a_run_whose_data_root_is_gone_name_the_folder(tiny_run, tmp_path):
    config, _, _ = tiny_run
    moved = config.copy_and_resolve_references()
    moved.data.root = str(tmp_path / "moved_data")
    runs = {}
    for name in ("paper", "code"):
        seed_dir = tmp_path / name / "seed_0"
        seed_dir.mkdir(parents=True)
        rt_config.write_config(moved, str(seed_dir))
        rt_files.atomic_write_json(str(seed_dir / "results.json"), {})
        rt_files.write_marker(str(seed_dir / run_lib.DONE_NAME))
        runs[name] = str(tmp_path / name)
    flag_values = flags.FlagValues()
    compare_readings.define_flags(flag_values)
    flag_values(["prog", f"--paper={runs['paper']}", f"--code={runs['code']}", "--translations"])
    with pytest.raises(app.UsageError, match="moved_data"):
        compare_readings.main([], flag_values)
