"""The comparison table: min / max / avg over seeds, and a re-run that trains nothing."""

import json

import pytest

import tf_runtime
from tf_ode import compare_lib, train_lib
from tf_ode.configs import compare as compare_config


def _row(method, architecture, seed, accuracy):
    return {
        "variant": method,
        "architecture": architecture,
        "seed": seed,
        "eval_accuracy": accuracy,
        "best_eval_accuracy": accuracy,
        "eval_loss": 1.0,
        "loss": 1.0,
        "seconds_per_epoch": 2.0,
        "nfe": 4.0,
        "num_params": 10,
    }


def test_table_reports_min_max_avg_over_seeds():
    config = compare_config.get_config("table")
    rows = [
        _row("baseline", "resnet4", 0, 0.5),
        _row("baseline", "resnet4", 1, 0.7),
        _row("baseline", "resnet4", 2, 0.9),
        _row("anode", "resnet4", 0, 0.25),
        _row("anode", "alexnet", 0, 0.125),
    ]
    summary = compare_lib.summarize(rows)
    assert summary["resnet4"]["baseline"]["seeds"] == [0, 1, 2]
    assert summary["resnet4"]["baseline"]["avg"] == pytest.approx(0.7)
    table = compare_lib.markdown_table(rows, config)
    assert "| method | resnet4 min / max | resnet4 avg | alexnet min / max | alexnet avg |" in table
    assert "| baseline | 50.00 / 90.00 | 70.00 |  |  |" in table
    assert "| anode | 25.00 / 25.00 | 25.00 | 12.50 / 12.50 | 12.50 |" in table


def test_presets():
    table = compare_config.get_config("table")
    assert table.variants == ("baseline", "neuralode", "anode", "anodev2")
    assert table.architectures == ("alexnet", "resnet4", "resnet10")
    assert len(table.seeds) >= 3
    cifar = compare_config.get_config("cifar10")
    # Spec section 3: SGD 0.9, lr 0.1 x0.1 after epochs 150 / 250, 350 epochs, batch 256, wd 5e-4.
    assert (cifar.dataset, cifar.num_epochs, cifar.batch_size) == ("cifar10", 350, 256)
    assert (cifar.learning_rate, tuple(cifar.lr_boundaries_epochs), cifar.lr_decay) == (
        0.1,
        (150, 250),
        0.1,
    )
    assert (cifar.momentum, cifar.weight_decay, cifar.method, cifar.num_steps) == (
        0.9,
        5e-4,
        "euler",
        2,
    )
    neuralode = compare_lib.cell_config(cifar, "resnet4", "neuralode", 3)
    assert (neuralode.variant, neuralode.gradient, neuralode.seed) == ("anode", "adjoint", 3)
    with pytest.raises(ValueError, match="Unknown comparison method"):
        compare_lib.cell_config(cifar, "resnet4", "node", 0)


def test_rerun_of_a_finished_comparison_trains_nothing(tmp_path, default_strategy, monkeypatch):
    config = compare_config.get_config("smoke")
    config.variants = ("baseline", "neuralode")
    config.seeds = (0, 1)
    config.train_limit = 16  # one step per cell
    first = compare_lib.run_comparison(config, str(tmp_path), default_strategy)
    assert [(r["variant"], r["seed"], r["reused"]) for r in first["rows"]] == [
        ("baseline", 0, False),
        ("baseline", 1, False),
        ("neuralode", 0, False),
        ("neuralode", 1, False),
    ]
    assert first["rows"][2]["gradient"] == "adjoint"
    assert (tmp_path / "resnet4" / "neuralode" / "seed_1" / "cell.json").exists()

    def fail(*args, **kwargs):
        raise AssertionError("a finished cell was trained again")

    monkeypatch.setattr(train_lib, "train_and_evaluate", fail)
    second = compare_lib.run_comparison(config, str(tmp_path), default_strategy)
    assert all(r["reused"] for r in second["rows"])
    assert second["table"] == first["table"]
    stored = json.loads((tmp_path / "comparison.json").read_text())
    accuracies = [r["eval_accuracy"] for r in stored["rows"]]
    assert accuracies == [r["eval_accuracy"] for r in first["rows"]]
    assert all(0.0 <= a <= 1.0 for a in accuracies) and None not in accuracies
    assert tf_runtime.read_json(tmp_path / "resnet4" / "baseline" / "seed_0" / "cell.json")[
        "eval_accuracy"
    ] == pytest.approx(accuracies[0])


def test_unknown_method_fails_before_training(tmp_path, default_strategy):
    config = compare_config.get_config("smoke")
    config.variants = ("baseline", "ode")
    with pytest.raises(ValueError, match="Unknown config.variants entry"):
        compare_lib.run_comparison(config, str(tmp_path), default_strategy)
    assert not any(tmp_path.iterdir())


def test_cells_of_another_config_are_refused_before_anything_trains(tmp_path, default_strategy):
    config = compare_config.get_config("smoke")
    config.variants = ("baseline",)
    compare_lib.run_comparison(config, str(tmp_path), default_strategy)
    cell_path = tmp_path / "resnet4" / "baseline" / "seed_0" / "cell.json"
    assert tf_runtime.read_json(cell_path)["config"]["learning_rate"] == config.learning_rate
    before = cell_path.read_text()
    # More seeds / methods: the finished cell stays reusable.
    config.variants = ("baseline", "anode")
    config.learning_rate = 0.5  # ... but not under another learning rate
    with pytest.raises(
        tf_runtime.ConfigMismatchError, match=r"baseline/seed_0 \(learning_rate\).*Delete"
    ):
        compare_lib.run_comparison(config, str(tmp_path), default_strategy)
    assert cell_path.read_text() == before
    assert not (tmp_path / "resnet4" / "anode").exists()
    # A cell of an older version (no config in cell.json) is checked against its config.json.
    stored = tf_runtime.read_json(cell_path)
    del stored["config"]
    tf_runtime.atomic_write_json(cell_path, stored)
    with pytest.raises(tf_runtime.ConfigMismatchError, match=r"learning_rate"):
        compare_lib.run_comparison(config, str(tmp_path), default_strategy)


def test_compare_binary_validates_every_cell_before_writing(tmp_path):
    from tf_ode import compare

    workdir = tmp_path / "compare"
    argv = [
        "prog",
        f"--workdir={workdir}",
        f"--config={compare.DEFAULT_CONFIG}:smoke",
        "--config.learning_rate=-0.5",
    ]
    values = tf_runtime.parse_flags(argv, compare.define_flags)
    with pytest.raises(ValueError, match=r"config\.learning_rate=-0\.5.*cell resnet4/"):
        compare.main([], flag_values=values)
    assert not workdir.exists()


def test_compare_binary_refuses_stale_cells_before_recording_the_new_config(
    tmp_path, default_strategy
):
    from tf_ode import compare

    config = compare_config.get_config("smoke")
    config.variants = ("baseline",)
    tf_runtime.write_config(config, tmp_path)  # as the binary records it
    compare_lib.run_comparison(config, str(tmp_path), default_strategy)
    before = (tmp_path / "config.json").read_text()
    argv = [
        "prog",
        f"--workdir={tmp_path}",
        f"--config={compare.DEFAULT_CONFIG}:smoke",
        "--config.variants=('baseline',)",
        "--config.learning_rate=0.5",
        "--allow_config_change",
    ]
    values = tf_runtime.parse_flags(argv, compare.define_flags)
    with pytest.raises(tf_runtime.ConfigMismatchError, match=r"baseline/seed_0 \(learning_rate\)"):
        compare.main([], flag_values=values)
    assert (tmp_path / "config.json").read_text() == before
