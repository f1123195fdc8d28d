"""The MADAN run folder: where each stage writes, what marks it finished, who produced it.

    <workdir>/config.json                  the run's config (tf_runtime.open_run)
    <workdir>/<stage>/config.json          the stage's producer record: its kind, options, the
                                           config sections it reads and its upstream digests
    <workdir>/<stage>/stage.json + DONE    the stage's outputs (weights, folders, evaluation),
                                           the digest of every artefact, then the done marker
    <workdir>/<stage>/segmenter.weights.h5 segmenter stages
    <workdir>/<stage>/networks/            pixel stages: <network>.weights.h5 + COMPLETE
    <workdir>/<stage>/<source>/            translate / colour-transfer stages: images/, labels/,
                                           COMPLETE (count and producer)
    <workdir>/results.{json,md}, fcn_score.json, timing.json    the report (tf_madan.report)
    <workdir>/seed_<s>/ + SEED_DONE        one seed of a multi-seed run

Every marker says who wrote the folder (stage name and a digest of the config or weights that
produced it); a folder written by another producer is rewritten, never reused.
"""

import hashlib
import json
import os

import tf_runtime
from tf_madan import builders
from tf_runtime import files as rt_files
from tf_runtime.run import RUN_SETTING_KEYS

WEIGHTS = "segmenter.weights.h5"
NETWORKS = "networks"
COMPLETE = "COMPLETE"
TIMING = "timing.json"
SEED_DONE = "SEED_DONE"
STAGE_RESULTS = "stage.json"
PRODUCER = "config.json"
# Config keys a re-run of the same run folder may change: which stages run, how many seeds.
RESUMABLE_CHANGES = RUN_SETTING_KEYS + ("stage", "seeds", "pipeline")


def stage_dir(workdir, name):
    return os.path.join(os.fspath(workdir), name)


def segmenter_weights(workdir, name):
    """Weights file of segmenter stage `name` (present once the stage trained)."""
    return os.path.join(stage_dir(workdir, name), WEIGHTS)


def network_dir(pixel_stage_dir):
    return os.path.join(pixel_stage_dir, NETWORKS)


def digest(value):
    """Short sha256 of a JSON-able value (sorted keys): the identity of a producer record."""
    text = json.dumps(tf_runtime.config_to_dict(value), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_digest(path):
    """sha256 of a file's bytes (16 hex digits); a truncated file gets another digest."""
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def folder_digest(path):
    """Digest of every file under `path` (names and bytes), in sorted order."""
    h = hashlib.sha256()
    for root, dirs, names in os.walk(path):
        dirs.sort()
        for name in sorted(names):
            full = os.path.join(root, name)
            h.update(os.path.relpath(full, path).encode())
            h.update(file_digest(full).encode())
    return h.hexdigest()[:16]


def stage_results(workdir, name):
    """The outputs a finished stage recorded (its `stage.json`), or None if it has not finished."""
    d = stage_dir(workdir, name)
    path = os.path.join(d, STAGE_RESULTS)
    if not (rt_files.has_marker(os.path.join(d, "DONE")) and os.path.exists(path)):
        return None
    return rt_files.read_json(path)


def pixel_stage_info(pixel_stage_dir):
    """The COMPLETE marker of a pixel stage's networks ({"steps", "sources", "merged",
    "producer"}), or None when the networks were not written."""
    path = os.path.join(network_dir(pixel_stage_dir), COMPLETE)
    if not rt_files.has_marker(path):
        return None
    return rt_files.read_json(path)


def stage_sources(pixel_stage_dir):
    """(source names in the stage's generator order, merged) of a finished pixel stage."""
    info = pixel_stage_info(pixel_stage_dir)
    if info is None:
        raise FileNotFoundError(
            f"Pixel stage {pixel_stage_dir} has not finished (no {NETWORKS}/{COMPLETE}); "
            "train it first."
        )
    if "sources" not in info:
        raise ValueError(
            f"{os.path.join(network_dir(pixel_stage_dir), COMPLETE)} names no sources; "
            "the stage was written by an older version: re-run it."
        )
    return list(info["sources"]), bool(info.get("merged", False))


def load_generators(generator_config, pixel_stage_dir, direction="s2t"):
    """{source name: generator} of a finished pixel stage, each source with its own network.

    Args:
      generator_config: a config with the `generator` section the stage was trained with (the
        run's config.json).
      pixel_stage_dir: the stage folder.
      direction: "s2t" (G_{S_i->T}) or "t2s".

    Raises:
      FileNotFoundError / ValueError: naming the weights file that is missing or unreadable.
    """
    sources, merged = stage_sources(pixel_stage_dir)
    generators = {}
    for i, name in enumerate(sources):
        index = 0 if merged else i
        path = os.path.join(
            network_dir(pixel_stage_dir), f"generator_{direction}_{index}.weights.h5"
        )
        generator = builders.build_generator(generator_config, f"generator_{direction}_{index}")
        generators[name] = tf_runtime.load_weights(generator, path)
    return generators


def load_segmenter(config, weights, name="segmenter"):
    """F built from `config.segmenter` with `weights` loaded (errors name the file)."""
    return tf_runtime.load_weights(builders.build_segmenter(config, name=name), weights)


def wall_time(workdir):
    """Seconds spent in the finished stages of `workdir` (sum of their timing.json)."""
    total = 0.0
    for name in sorted(os.listdir(workdir)) if os.path.isdir(workdir) else ():
        path = os.path.join(workdir, name, TIMING)
        if os.path.exists(path):
            total += rt_files.read_json(path)["seconds"]
    return total


def given_config(flag_values):
    """The `--config` of a binary when the user passed it or a `--config.<field>`, else None."""
    names = [k for k in flag_values if k == "config" or k.startswith("config.")]
    if any(flag_values[k].present for k in names):
        return flag_values["config"].value
    return None


def run_config(workdir, given=None, *, allow_config_change=False):
    """The config a MADAN run recorded in `workdir/config.json` (its networks are built from it).

    Args:
      workdir: a run folder (or one seed's `seed_<s>/`).
      given: a config the user passed (`given_config`); it must equal the recorded one, except
        for RESUMABLE_CHANGES keys.
      allow_config_change: use `given` even where it differs.

    Raises:
      FileNotFoundError: naming the folder when it has no config.json.
      tf_runtime.ConfigMismatchError: naming the differing keys.
    """
    stored = tf_runtime.read_config(workdir)
    if given is None:
        return stored
    diffs = tf_runtime.config_differences(stored, given, ignore=RESUMABLE_CHANGES)
    if diffs and not allow_config_change:
        raise tf_runtime.ConfigMismatchError(
            f"--config differs from the config of the run in {workdir} "
            f"({os.path.join(workdir, 'config.json')}) in {len(diffs)} key(s): "
            f"{', '.join(diffs[:20])}. Drop --config (the run's own config is used), or pass "
            "--allow_config_change."
        )
    return given if diffs else stored
