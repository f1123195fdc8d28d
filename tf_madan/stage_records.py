"""What a MADAN stage records, and when a stage folder may be reused or copied.

A stage folder's `config.json` (its producer record) holds the stage's name, kind, options,
its upstream stages' digests and the config fields its kind reads (`stage_record`: a pixel
stage's DSC / SAD / CCD settings only when it uses them). A finished stage is reused while its
stored record agrees on every recorded field (a record that holds more fields, such as whole
config sections, is kept) and its artefacts still match their digests (`stale`).

A stage not finished in a run folder is copied from another run folder of the same seed (e.g.
the other reading's) when that run finished it under an agreeing record with its artefacts
intact (`finished_elsewhere`, `copy_stage`): the single-source and merged stages, which the
paper and code readings compute alike, then run once for both.
"""

import os
import shutil

import tf_runtime
from tf_madan import layout
from tf_runtime import files as rt_files

# Config sections each kind reads and records (a change re-runs the stage). "train" holds run
# settings only (checkpoint / summary intervals), which never change what a stage computes.
_COMMON = ("seed", "num_classes", "ignore_label", "data", "train")
SECTIONS = {
    "segmenter": _COMMON + ("eval", "segmenter", "seg"),
    "fla": _COMMON + ("eval", "segmenter", "seg", "fla"),
    "pixel": _COMMON + ("generator", "discriminator", "gan", "dsc", "sad", "ccd", "segmenter"),
    "translate": _COMMON + ("generator",),
    "color_transfer": _COMMON,
}
# Read but not recorded: the supervised trainer's builder takes the FLA settings, which it does
# not use without a feature discriminator.
UNRECORDED = {"segmenter": ("fla",)}


def stage_record(stage, config, outputs):
    """What a stage's folder records: name, kind, options, upstream digests and the config
    fields its kind reads.

    A pixel stage reads the DSC settings (and the segmenter section, for F_i / F_A) only with
    `use_dsc` (with the stage option `dsc_mode="cycada"`, CyCADA's loss, only the weight), SAD
    and CCD only with `use_sad` / `use_ccd` and at least two generators, and D_T's reduction
    over sources (`gan.target_discriminator_loss`) only with at least two generators (with one,
    the sum is the mean). A single-source or merged stage is thus recorded alike under the paper and code
    readings, which compute it alike.
    """
    names = SECTIONS[stage.kind]
    sections = {n: tf_runtime.config_to_dict(config[n]) for n in names if n in config}
    if stage.kind == "pixel":
        o = stage.options
        ada = o["variant"] == "ada"
        generators = 1 if o.get("merged") else len(o.get("sources") or config.data.sources)
        several = generators >= 2
        dsc_mode = o.get("dsc_mode") or config.dsc.mode
        if not (ada and o.get("use_dsc")):
            del sections["dsc"], sections["segmenter"]
        elif dsc_mode == "cycada":  # the mode is the stage's option; it reads the weight only
            sections["dsc"] = {"weight": config.dsc.weight}
        for name in ("sad", "ccd"):
            if not (ada and o.get(f"use_{name}") and several):
                del sections[name]
        if not several:
            sections["gan"].pop("target_discriminator_loss", None)
    return {
        "stage": stage.name,
        "kind": stage.kind,
        "options": dict(stage.options.items()),
        "config": sections,
        "upstream": {u: outputs[u]["digest"] for u in stage.upstream},
    }


def stored_record(stage_path):
    """The record a stage folder holds (None if it holds none)."""
    path = os.path.join(stage_path, layout.PRODUCER)
    return rt_files.read_json(path) if os.path.exists(path) else None


def record_differences(stored, record):
    """Fields of `record` on which `stored` disagrees (fields only `stored` holds are not)."""
    if not isinstance(stored, dict):
        raise ValueError(f"holds a JSON {type(stored).__name__}, not a stage record")
    return tf_runtime.config_differences(stored, record, subset=True)


def changed_producer(stage_path, record):
    """Why the stage folder's recorded producer differs from `record` (None if it agrees on
    every field of `record` or the folder has none)."""
    try:
        stored = stored_record(stage_path)
        diffs = [] if stored is None else record_differences(stored, record)
    except ValueError as error:
        return f"{os.path.join(stage_path, layout.PRODUCER)}: {error}"
    return f"its producer changed ({', '.join(diffs[:5])})" if diffs else None


def changed_artefacts(stage_path):
    """Why a finished stage's artefacts no longer match the digests it recorded (None if they
    match or the stage has not finished)."""
    results = os.path.join(stage_path, layout.STAGE_RESULTS)
    if not (rt_files.has_marker(os.path.join(stage_path, "DONE")) and os.path.exists(results)):
        return None
    workdir = os.path.dirname(stage_path)
    for path, expected in rt_files.read_json(results).get("artefacts", {}).items():
        path = os.path.join(workdir, path)
        if not os.path.exists(path):
            return f"{path} is missing"
        actual = layout.folder_digest(path) if os.path.isdir(path) else layout.file_digest(path)
        if actual != expected:
            return f"{path} differs from what the stage wrote (truncated or replaced)"
    return None


def stale(stage_path, record):
    """Why a stage folder must be rewritten (None when it may be reused or resumed)."""
    return changed_producer(stage_path, record) or changed_artefacts(stage_path)


def finished_elsewhere(stage, record, reuse_from):
    """The folder of `stage` in the run folder `reuse_from` when that run finished it under a
    record agreeing with `record` and its artefacts are intact (else None)."""
    if not reuse_from:
        return None
    other = layout.stage_dir(reuse_from, stage.name)
    if layout.stage_results(reuse_from, stage.name) is None:
        return None
    if stale(other, record):
        return None
    return other


def copy_stage(source, path):
    """Copies a finished stage folder into `path` (through a temporary folder, so that a kill
    leaves either no folder or a whole one; the source's lock is not copied)."""
    partial = path + ".copying"
    if os.path.exists(partial):
        shutil.rmtree(partial)
    shutil.copytree(source, partial, ignore=shutil.ignore_patterns(".lock"))
    if os.path.exists(path):
        shutil.rmtree(path)
    os.rename(partial, path)
