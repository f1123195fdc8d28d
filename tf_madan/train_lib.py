"""MADAN stages, the baselines and the end-to-end schedule (`config.stage`).

Stages, each in its own sub-folder of `workdir` (checkpointed, resumable, written
atomically: a stage counts as done only once its last file is renamed into place):

  source_only_<src>      F_i on one raw source (DSC's F_i, CyCADA's f_s; source-only row)
  source_only            F on all raw sources (source-only combined; f_s of the combined CyCADA)
  oracle                 F on the labelled target train split (oracle row; FCN-score scorer)
  seg_color_transfer     F on colour-transferred sources (no learning; the floor)
  daig                   multi-source CycleGANs, shared D_T, no DSC (paper stage 1)
  seg_daig               F on the DAIG images (F_A, the dynamic DSC network of ADA)
  ada_plain              DAIG continued for as many steps as ADA, nothing added (+ seg_ada_plain:
                         the ablation baseline)
  ada_sad / ada_ccd / ada_sad_ccd (+ seg_*): ablations without DSC
  ada                    CycleGANs continued with DSC + SAD + CCD (paper stage 2; + seg_ada)
  madan                  F trained with FLA on the ADA images, from seg_ada (MADAN)
  cyclegan_<src>_daig    a CycleGAN for one source ALONE (its own D_T), daig steps
  cyclegan_<src>         continued without SC for the ADA steps (+ single_<src>)
  cycada_gan_<src>       continued with CyCADA's semantic consistency (CE against argmax of the
                         fixed f_s = source_only_<src>) (+ seg_cycada_<src>: CycleGAN+SC)
  cycada_<src>           FLA from seg_cycada_<src> on the SAME cycada_gan_<src> images (CyCADA)
  combined_daig / combined_cyclegan / combined_cycada_gan / seg_combined_* / combined_cycada:
                         the same three for all sources merged as ONE domain (one generator pair)

Pixel-level budget: every adapted row except "stage 1" has daig_epochs + ada_epochs epochs of
CycleGAN steps (a shared first part of daig_epochs, then ada_epochs with its own additions).
With the oracle trained, every pixel-level stage's translated images (and the raw sources and
the colour transfer) get an FCN-score: the oracle's mIoU on them against their source labels.

`stage=all` runs them in order; finished stages are skipped and interrupted ones resume
from their last checkpoint. `config.seeds=(0, 1, 2)` runs the whole schedule once per seed
in `workdir/seed_<s>/` and writes mean +- sd over the seeds.
"""

import math
import os
import time
import zlib

import keras
import numpy as np
import tensorflow as tf

import tf_runtime
from tf_madan import (
    builders,
    color_transfer,
    data,
    evaluation,
    export_lib,
    fcn_score,
    pretrained,
)
from tf_runtime import files as rt_files
from tf_runtime.run import RUN_SETTING_KEYS

STAGES = (
    "all",
    "source_only",
    "oracle",
    "color_transfer",
    "daig",
    "single_source",
    "combined",
    "ada",
    "madan",
    "ablation",
    "evaluate",
)
WEIGHTS = "segmenter.weights.h5"
NETWORKS = "networks"
COMPLETE = "COMPLETE"
TIMING = "timing.json"
SEED_DONE = "SEED_DONE"


def validate_config(config):
    """Raises ValueError naming the first bad config field."""
    if config.stage not in STAGES:
        raise ValueError(f"config.stage must be one of {STAGES}. Received: {config.stage!r}")
    if not config.data.root:
        raise ValueError("config.data.root is empty: set it to the folder holding the datasets.")
    if len(config.data.sources) < 1:
        raise ValueError("config.data.sources needs at least one source.")
    if config.segmenter.name not in builders.SEGMENTERS:
        raise ValueError(
            f"config.segmenter.name must be one of {builders.SEGMENTERS}. "
            f"Received: {config.segmenter.name!r}"
        )
    if config.dsc.networks not in ("paper", "shared"):
        raise ValueError(
            f"config.dsc.networks must be 'paper' or 'shared'. Received: {config.dsc.networks!r}"
        )
    for field in (
        "gan.batch_size",
        "seg.batch_size",
        "seg.steps",
        "seg.source_only_steps",
        "seg.oracle_steps",
        "gan.steps_per_epoch",
    ):
        section, key = field.split(".")
        if config[section][key] < 1:
            raise ValueError(f"config.{field} must be >= 1. Received: {config[section][key]}")
    if config.gan.daig_epochs < 1 or config.gan.ada_epochs < 1 or config.fla.steps < 1:
        raise ValueError(
            "config.gan.daig_epochs, config.gan.ada_epochs and config.fla.steps must be >= 1."
        )
    seeds = tuple(config.get("seeds", ()))
    if len(set(seeds)) != len(seeds) or not all(isinstance(s, int) for s in seeds):
        raise ValueError(f"config.seeds must be distinct integers. Received: {seeds}")
    if config.segmenter.init_checkpoint and not os.path.exists(config.segmenter.init_checkpoint):
        raise FileNotFoundError(
            "--init_checkpoint / config.segmenter.init_checkpoint "
            f"{config.segmenter.init_checkpoint} not found."
        )
    if config.segmenter.get("init", "random") == "imagenet":
        # Fails now (offline, no cached VGG16 file) rather than after the first stages.
        pretrained.imagenet_vgg16_path()


def stage_seed(seed, name):
    """Seed of stage `name`'s weight init: a function of (config.seed, name) only.

    Seeding each stage from its name makes a stage started in a fresh process (after a
    kill between stages) initialise exactly like one started after its predecessors.
    """
    return zlib.crc32(f"{int(seed)}/{name}".encode()) & 0x7FFFFFFF


def _run_kwargs(config):
    t = config.train
    return dict(
        checkpoint_every=t.checkpoint_every,
        summary_every=t.summary_every,
        log_every=t.log_every,
        profile_steps=tuple(t.get("profile_steps", ())) or None,
    )


def _new_segmenter(config, name="segmenter", weights=None):
    segmenter = builders.build_segmenter(config, name=name)
    path = weights or config.segmenter.init_checkpoint
    if path:
        segmenter.load_weights(path)
    else:
        # `segmenter.init="imagenet"`: ImageNet VGG16 converted into FCN8s (no-op for "random").
        pretrained.initialize_segmenter(segmenter, config)
    return segmenter


def _write_timing(stage_dir, seconds):
    rt_files.atomic_write_json(os.path.join(stage_dir, TIMING), {"seconds": round(seconds, 2)})


def _no_suitable_discriminator(logs):
    return logs.get("no_suitable_discriminator", 0.0) >= 1.0


# ----------------------------------------------------------------- segmenter
def train_segmenter(
    config,
    workdir,
    strategy,
    *,
    name,
    dataset_fn,
    num_steps,
    fla=False,
    init_from=None,
    source_indices=None,
):
    """Trains F (supervised, or with FLA) in `workdir/name`; returns the weights path.

    Writes checkpoints, TensorBoard scalars, a segmentation overlay image, `saved_model/`
    and, last (the stage's "done" mark), `segmenter.weights.h5`, each atomically.
    """
    stage_dir = os.path.join(workdir, name)
    weights = os.path.join(stage_dir, WEIGHTS)
    if os.path.exists(weights):
        return weights
    keras.utils.set_random_seed(stage_seed(config.seed, name))
    with strategy.scope():
        segmenter = _new_segmenter(config, weights=init_from)
        trainer = builders.build_segmenter_trainer(
            config, segmenter, fla=fla, source_indices=source_indices
        )
    start = time.time()
    logs = tf_runtime.run_training(
        trainer,
        dataset_fn,
        strategy=strategy,
        workdir=stage_dir,
        num_steps=num_steps,
        seed=stage_seed(config.seed, name),
        hparams={"stage": name, **tf_runtime.config_to_dict(config)},
        # ADDA's "No suitable discriminator found": FLA stops once F went `fla.patience` steps
        # without an update (the trainer's log turns 1.0; patience 0 never stops).
        stop_when=_no_suitable_discriminator if fla else None,
        **_run_kwargs(config),
    )
    # Every worker writes its files (workers of a multi-worker run may have their own workdir);
    # images go to TensorBoard from the chief only.
    if tf_runtime.is_chief(strategy):
        _write_overlay(config, segmenter, stage_dir, num_steps)
    export_lib.export_segmenter(segmenter, os.path.join(stage_dir, "saved_model"))
    _write_timing(stage_dir, time.time() - start)
    tf_runtime.save_weights_atomic(segmenter, weights)
    print(f"[{name}] {num_steps} steps in {time.time() - start:.0f}s: {logs}", flush=True)
    return weights


def _write_overlay(config, segmenter, stage_dir, step):
    images, _ = next(iter(data.eval_dataset(config, batch_size=4)))
    logits = segmenter(images, training=False)
    writers = tf_runtime.SummaryWriters(stage_dir)
    writers.images("eval", step, "segmentation_overlay", evaluation.overlay(images, logits))
    writers.close()


# -------------------------------------------------------------- pixel level
def _network_dir(stage_dir):
    return os.path.join(stage_dir, NETWORKS)


def pixel_stage_info(stage_dir):
    """The COMPLETE marker of a finished pixel stage ({"steps", "sources", "merged"}) or None."""
    path = os.path.join(_network_dir(stage_dir), COMPLETE)
    if not rt_files.has_marker(path):
        return None
    return rt_files.read_json(path)


def train_pixel_stage(
    config,
    workdir,
    strategy,
    *,
    name,
    variant,
    num_steps,
    sources=None,
    merged=False,
    init_from=None,
    use_dsc=True,
    use_sad=True,
    use_ccd=True,
    dsc_mode=None,
    source_weights=None,
    adapted_weights=None,
):
    """Trains the CycleGANs of a pixel-level stage in `workdir/name`.

    Args:
      variant: "daig" (CycleGANs only) or "ada" (DSC / SAD / CCD as switched by `use_*`).
      sources: the source names this stage adapts (default: `config.data.sources`); one
        name trains a single-source CycleGAN alone, with its own D_T.
      merged: all `sources` as ONE domain with one generator pair (source-combined rows).
      init_from: stage folder whose networks initialise this one (ADA continues DAIG).
      dsc_mode: override of `config.dsc.mode`; "cycada" = CyCADA's semantic consistency
        (CE against argmax of the FIXED source model, which also scores G(x)).
      source_weights: F_i weight files, one per generator (DSC / SC); adapted_weights: F_A.

    Returns:
      The stage folder (networks/<network>.weights.h5 + COMPLETE, saved_model/<generator>/).
    """
    stage_dir = os.path.join(workdir, name)
    if pixel_stage_info(stage_dir) is not None:
        return stage_dir
    sources = list(sources if sources is not None else config.data.sources)
    num_generators = 1 if merged else len(sources)
    mode = dsc_mode or config.dsc.mode
    keras.utils.set_random_seed(stage_seed(config.seed, name))
    with strategy.scope():
        source_segs = adapted_seg = None
        if variant == "ada" and use_dsc:
            if len(source_weights or ()) != num_generators:
                raise ValueError(
                    f"Stage {name}: DSC needs {num_generators} source segmenter weight files. "
                    f"Received: {source_weights}"
                )
            source_segs = [
                _new_segmenter(config, f"dsc_source_{i}", w) for i, w in enumerate(source_weights)
            ]
            if mode == "dsc" and config.dsc.networks == "paper":
                adapted_seg = _new_segmenter(config, "dsc_adapted", adapted_weights)
        model = builders.build_madan_gan(
            config,
            num_sources=num_generators,
            variant=variant,
            use_dsc=use_dsc,
            use_sad=use_sad,
            use_ccd=use_ccd,
            source_segmenters=source_segs,
            adapted_segmenter=adapted_seg,
            dsc_mode=mode,
        )
        if init_from:
            for net_name, net in model.networks().items():
                path = os.path.join(_network_dir(init_from), f"{net_name}.weights.h5")
                if os.path.exists(path):
                    net.load_weights(path)
    dataset_fn = data.pixel_stage_fn(config, sources=sources, merged=merged)
    start = time.time()
    logs = tf_runtime.run_training(
        model,
        dataset_fn,
        strategy=strategy,
        workdir=stage_dir,
        num_steps=num_steps,
        seed=stage_seed(config.seed, name),
        hparams={"stage": name, **tf_runtime.config_to_dict(config)},
        **_run_kwargs(config),
    )
    if tf_runtime.is_chief(strategy):
        _write_translation_grid(model, dataset_fn, stage_dir, num_steps)
    with rt_files.atomic_directory(os.path.join(stage_dir, "saved_model")) as tmp:
        for i, generator in enumerate(model.generators_s2t):
            export_lib.export_generator(generator, os.path.join(tmp, f"generator_s2t_{i}"))
    _write_timing(stage_dir, time.time() - start)
    # The networks folder, COMPLETE marker inside, appears in one rename: the "done" mark.
    with rt_files.atomic_directory(_network_dir(stage_dir)) as tmp:
        for net_name, net in model.networks().items():
            net.save_weights(os.path.join(tmp, f"{net_name}.weights.h5"))
        rt_files.write_marker(
            os.path.join(tmp, COMPLETE),
            {"steps": num_steps, "sources": sources, "merged": bool(merged)},
        )
    print(f"[{name}] {num_steps} steps in {time.time() - start:.0f}s: {logs}", flush=True)
    return stage_dir


def translation_grid(model, batch):
    """[3 * M * B, H, W, 3] in [0, 1]: rows of source, adapted and cycled images per source."""
    sources = [s[0] for s in batch["sources"]]
    out = model({"sources": sources, "target": batch["target"][0]}, training=False)
    rows = []
    for i, x in enumerate(sources):
        rows += [x, out["adapted"][i], out["cycled"][i]]
    return (tf.concat(rows, axis=0) + 1.0) * 0.5


def _write_translation_grid(model, dataset_fn, stage_dir, step):
    batch = next(iter(dataset_fn(None)))
    writers = tf_runtime.SummaryWriters(stage_dir)
    writers.images("train", step, "source_adapted_cycled", translation_grid(model, batch), 24)
    writers.close()


def _stage_sources(config, stage_dir):
    info = pixel_stage_info(stage_dir)
    if info is None:
        raise FileNotFoundError(
            f"Pixel stage {stage_dir} has not finished (no {NETWORKS}/{COMPLETE}); train it first."
        )
    sources = list(info.get("sources", config.data.sources))
    return sources, bool(info.get("merged", False))


def load_generators(config, stage_dir, direction="s2t"):
    """Rebuilds the generators of a finished pixel stage from its weight files.

    Returns:
      One generator per source of the stage, in the stage's source order (a merged stage's
      one generator pair serves every source).
    """
    sources, merged = _stage_sources(config, stage_dir)
    generators = []
    for i in range(1 if merged else len(sources)):
        path = os.path.join(_network_dir(stage_dir), f"generator_{direction}_{i}.weights.h5")
        if not os.path.exists(path):
            raise FileNotFoundError(f"Generator weights {path} not found; train the stage first.")
        generator = builders.build_generator(config, f"generator_{direction}_{i}")
        generator.load_weights(path)
        generators.append(generator)
    return generators * len(sources) if merged else generators


def translate_stage(config, workdir, stage_dir, out_name):
    """Writes every source image translated by its G_{S_i->T}; returns the folders."""
    sources, _ = _stage_sources(config, stage_dir)
    generators = load_generators(config, stage_dir)
    dirs = []
    for name, generator in zip(sources, generators):
        out = os.path.join(workdir, out_name, name)
        data.write_adapted_images(generator, data.source_dataset(config, name, batch_size=8), out)
        dirs.append(out)
    return dirs


def color_transfer_stage(config, workdir, out_name="adapted_color"):
    """Colour transfer of every source to the target's statistics (no learning; madan-core's
    `color_transfer`, Reinhard per image in L*a*b*); returns the folders, one per source."""
    dirs = [os.path.join(workdir, out_name, name) for name in config.data.sources]
    missing = [d for d in dirs if not os.path.exists(os.path.join(d, data.COMPLETE))]
    stats = color_transfer.target_statistics(config) if missing else None
    for name, out in zip(config.data.sources, dirs):
        color_transfer.write_color_transferred_images(config, name, out, target_stats=stats)
    return dirs


# ------------------------------------------------------------------ schedule
def result_rows(config):
    """[(method label, segmenter stage, adapted-image folder or None)] in table order."""
    sources = list(config.data.sources)
    rows = [(f"source-only ({s})", f"source_only_{s}", None) for s in sources]
    rows.append(("source-only (combined)", "source_only", None))
    rows.append(("colour transfer (combined)", "seg_color_transfer", "adapted_color"))
    for s in sources:
        rows += [
            (f"single-source CycleGAN ({s})", f"single_{s}", f"adapted_cyclegan_{s}"),
            (f"single-source CycleGAN+SC ({s})", f"seg_cycada_{s}", f"adapted_cycada_{s}"),
            (f"single-source CyCADA ({s})", f"cycada_{s}", f"adapted_cycada_{s}"),
        ]
    rows += [
        ("source-combined CycleGAN", "seg_combined_cyclegan", "adapted_combined_cyclegan"),
        ("source-combined CycleGAN+SC", "seg_combined_cycada", "adapted_combined_cycada"),
        ("source-combined CyCADA", "combined_cycada", "adapted_combined_cycada"),
        ("CycleGAN multi-source, stage 1 (F_A)", "seg_daig", "adapted_daig"),
        ("baseline (multi-source CycleGAN)", "seg_ada_plain", "adapted_ada_plain"),
        ("+SAD", "seg_ada_sad", "adapted_ada_sad"),
        ("+CCD", "seg_ada_ccd", "adapted_ada_ccd"),
        ("+SAD+CCD", "seg_ada_sad_ccd", "adapted_ada_sad_ccd"),
        ("+SAD+CCD+DSC", "seg_ada", "adapted_ada"),
        ("MADAN (+SAD+CCD+DSC+Feat)", "madan", "adapted_ada"),
        ("oracle (target labels)", "oracle", None),
    ]
    return rows


def _needs(stage):
    """Stages that `stage` runs (its prerequisites included)."""
    deps = {
        "source_only": {"source_only"},
        "oracle": {"oracle"},
        "color_transfer": {"color_transfer"},
        "daig": {"daig"},
        "single_source": {"source_only", "single_source"},
        "combined": {"source_only", "combined"},
        "ada": {"source_only", "daig", "ada"},
        "madan": {"source_only", "daig", "ada", "madan"},
        "ablation": {"daig", "ada_plain", "ablation"},
        "evaluate": set(),
    }
    if stage == "all":
        return set().union(*deps.values())
    return deps[stage]


def run_schedule(config, workdir, strategy):
    """Runs `config.stage` and its prerequisites; returns {method: weights path}."""
    needs = _needs(config.stage)
    pipeline = config.pipeline
    sources = list(config.data.sources)
    seg_batch, crop = config.seg.batch_size, config.data.seg_crop_size

    def raw_fn(names):
        return data.multi_domain_fn(
            config,
            normalization="segmenter",
            batch_size=seg_batch,
            crop_size=crop,
            resize_shorter=config.data.seg_resize_shorter,
            sources=names,
            batch_field="config.seg.batch_size",
        )

    def adapted_fn(dirs):
        return data.adapted_multi_domain_fn(config, dirs, batch_size=seg_batch, crop_size=crop)

    def seg(name, dataset_fn, **kwargs):
        kwargs.setdefault("num_steps", config.seg.steps)
        return train_segmenter(
            config, workdir, strategy, name=name, dataset_fn=dataset_fn, **kwargs
        )

    def pixel(name, **kwargs):
        return train_pixel_stage(config, workdir, strategy, name=name, **kwargs)

    def wanted(stage, switch):
        return stage in needs and (switch or config.stage == stage)

    daig_steps = config.gan.daig_epochs * config.gan.steps_per_epoch
    ada_steps = config.gan.ada_epochs * config.gan.steps_per_epoch
    plain = dict(variant="ada", num_steps=ada_steps, use_dsc=False, use_sad=False, use_ccd=False)

    def cycada_family(prefix, names, merged, f_s, labels):
        """CycleGAN (first part + plain continuation) and CyCADA (SC continuation + FLA)."""
        first = pixel(
            f"{prefix}_daig", variant="daig", num_steps=daig_steps, sources=names, merged=merged
        )
        gan = pixel(
            f"{prefix}" if merged else f"cyclegan_{names[0]}",
            sources=names,
            merged=merged,
            init_from=first,
            **plain,
        )
        methods[labels[0]] = seg(
            labels[1], adapted_fn(translate_stage(config, workdir, gan, labels[2]))
        )
        if not pipeline.cycada_fla:
            return
        sc_stage = pixel(
            labels[3],
            variant="ada",
            num_steps=ada_steps,
            sources=names,
            merged=merged,
            init_from=first,
            use_sad=False,
            use_ccd=False,
            dsc_mode="cycada",
            source_weights=[f_s],
        )
        dirs = translate_stage(config, workdir, sc_stage, labels[4])
        sc = seg(labels[5], adapted_fn(dirs))
        methods[labels[6]] = sc
        methods[labels[7]] = seg(
            labels[8], adapted_fn(dirs), num_steps=config.fla.steps, fla=True, init_from=sc
        )

    methods = {}
    source_weights = []
    if "source_only" in needs:
        for name in sources:
            source_weights.append(
                seg(f"source_only_{name}", raw_fn([name]), num_steps=config.seg.source_only_steps)
            )
            methods[f"source-only ({name})"] = source_weights[-1]
        combined_f_s = source_weights[0]
        if len(sources) > 1:
            combined_f_s = seg(
                "source_only", raw_fn(sources), num_steps=config.seg.source_only_steps
            )
            methods["source-only (combined)"] = combined_f_s
    if wanted("oracle", pipeline.oracle):
        methods["oracle (target labels)"] = seg(
            "oracle", raw_fn([config.data.target]), num_steps=config.seg.oracle_steps
        )
    if wanted("color_transfer", pipeline.color_transfer):
        methods["colour transfer (combined)"] = seg(
            "seg_color_transfer", adapted_fn(color_transfer_stage(config, workdir))
        )
    if wanted("single_source", pipeline.single_source):
        for i, name in enumerate(sources):
            cycada_family(
                f"cyclegan_{name}",
                [name],
                False,
                source_weights[i],
                (
                    f"single-source CycleGAN ({name})",
                    f"single_{name}",
                    f"adapted_cyclegan_{name}",
                    f"cycada_gan_{name}",
                    f"adapted_cycada_{name}",
                    f"seg_cycada_{name}",
                    f"single-source CycleGAN+SC ({name})",
                    f"single-source CyCADA ({name})",
                    f"cycada_{name}",
                ),
            )
    if wanted("combined", pipeline.combined) and len(sources) > 1:
        cycada_family(
            "combined_cyclegan",
            sources,
            True,
            combined_f_s,
            (
                "source-combined CycleGAN",
                "seg_combined_cyclegan",
                "adapted_combined_cyclegan",
                "combined_cycada_gan",
                "adapted_combined_cycada",
                "seg_combined_cycada",
                "source-combined CycleGAN+SC",
                "source-combined CyCADA",
                "combined_cycada",
            ),
        )
    if "daig" in needs:
        daig = pixel("daig", variant="daig", num_steps=daig_steps)
        adapted_daig = translate_stage(config, workdir, daig, "adapted_daig")
        seg_daig = seg("seg_daig", adapted_fn(adapted_daig))
        methods["CycleGAN multi-source, stage 1 (F_A)"] = seg_daig
    ablation = wanted("ablation", pipeline.ablation) and len(sources) > 1
    if ablation:
        # Baseline with the same number of pixel-level steps as ADA, without DSC/SAD/CCD.
        plain_dir = pixel("ada_plain", init_from=daig, **plain)
        methods["baseline (multi-source CycleGAN)"] = seg(
            "seg_ada_plain",
            adapted_fn(translate_stage(config, workdir, plain_dir, "adapted_ada_plain")),
        )
    if "ada" in needs:
        ada = pixel(
            "ada",
            variant="ada",
            num_steps=ada_steps,
            init_from=daig,
            source_weights=source_weights,
            adapted_weights=seg_daig,
        )
        adapted_ada = translate_stage(config, workdir, ada, "adapted_ada")
        seg_ada = seg("seg_ada", adapted_fn(adapted_ada))
        methods["+SAD+CCD+DSC"] = seg_ada
    if "madan" in needs:
        methods["MADAN (+SAD+CCD+DSC+Feat)"] = seg(
            "madan",
            adapted_fn(adapted_ada),
            num_steps=config.fla.steps,
            fla=True,
            init_from=seg_ada,
        )
    if ablation:
        for label, sad, ccd in (
            ("+SAD", True, False),
            ("+CCD", False, True),
            ("+SAD+CCD", True, True),
        ):
            name = "ada" + ("_sad" if sad else "") + ("_ccd" if ccd else "")
            stage_dir = pixel(
                name,
                variant="ada",
                num_steps=ada_steps,
                init_from=daig,
                use_dsc=False,
                use_sad=sad,
                use_ccd=ccd,
            )
            dirs = translate_stage(config, workdir, stage_dir, f"adapted_{name}")
            methods[label] = seg(f"seg_{name}", adapted_fn(dirs))
    return methods


def evaluate_methods(config, methods):
    """{method: result dict} on the full target evaluation split."""
    results = {}
    for method, weights in methods.items():
        segmenter = _new_segmenter(config, weights=weights)
        results[method] = evaluation.evaluate_on_target(config, segmenter)
    return results


def collect_finished(config, workdir):
    """{method: weights} for every finished segmenter stage found in `workdir`, in table order."""
    return {
        label: os.path.join(workdir, stage, WEIGHTS)
        for label, stage, _ in result_rows(config)
        if os.path.exists(os.path.join(workdir, stage, WEIGHTS))
    }


def _adapted_source_dirs(config, workdir, folder):
    base = os.path.join(workdir, folder)
    return [
        os.path.join(base, s)
        for s in config.data.sources
        if os.path.exists(os.path.join(base, s, data.COMPLETE))
    ]


def fcn_scores(config, workdir):
    """FCN-score of every finished pixel-level stage: {row: {source: result, "all": result}}.

    The oracle F (trained on labelled target train images) segments each stage's translated
    source images, scored against their source labels (CycleGAN / CyCADA papers' FCN-score);
    rows "raw (<src>)" score the untranslated sources. Empty without a finished oracle.
    """
    weights = os.path.join(workdir, "oracle", WEIGHTS)
    if not os.path.exists(weights):
        return {}
    oracle = _new_segmenter(config, "oracle", weights)

    def score(dataset):
        return evaluation.evaluate_segmenter(
            oracle, dataset, num_classes=config.num_classes, ignore_label=config.ignore_label
        )

    scores = {}
    for name in config.data.sources:
        scores[f"raw ({name})"] = {name: fcn_score.fcn_score(config, oracle, name)}
    seen = set()
    for _, _, folder in result_rows(config):
        if folder is None or folder in seen:
            continue
        seen.add(folder)
        dirs = _adapted_source_dirs(config, workdir, folder)
        if not dirs:
            continue
        row = {os.path.basename(d): score(data.adapted_eval_dataset([d])) for d in dirs}
        if len(dirs) > 1:
            row["all"] = score(data.adapted_eval_dataset(dirs))
        scores[folder] = row
    return scores


def _fcn_summary(row):
    """(mIoU-16 over all the row's images, {source: mIoU-16})."""
    overall = row.get("all") or next(iter(row.values()))
    return overall["miou_16"], {k: v["miou_16"] for k, v in row.items() if k != "all"}


def fcn_table(scores, names=None):
    """Markdown table of FCN-scores (protocol mIoU-16 of the oracle on translated images).

    `names` maps an adapted-image folder to the rows trained on it (shown beside the folder).
    """
    names = names or {}
    sources = sorted({k for row in scores.values() for k in row if k != "all"})
    lines = [
        "| FCN-score (oracle mIoU-16 on translated source images) | "
        + " | ".join(sources)
        + " | all |",
        "|---|" + "---|" * (len(sources) + 1),
    ]
    for name, row in scores.items():
        overall, per_source = _fcn_summary(row)
        cells = [_fmt(per_source.get(s)) for s in sources]
        shown = f"{name} ({names[name]})" if name in names else name
        lines.append(f"| {shown} | " + " | ".join(cells) + f" | {_fmt(overall)} |")
    return "\n".join(lines) + "\n"


def _fmt(value, sd=None):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.1f}" if sd is None else f"{value:.1f} ± {sd:.1f}"


def write_results(config, workdir, results, scores, seconds):
    """Writes `results.json` (rows + "fcn_score" per adapted row) and `results.md` atomically."""
    folders = {label: folder for label, _, folder in result_rows(config)}
    for label, result in results.items():
        folder = folders.get(label)
        if folder in scores:
            overall, per_source = _fcn_summary(scores[folder])
            result["fcn_score"] = {"miou_16": overall, "per_source": per_source}
    rt_files.atomic_write_json(os.path.join(workdir, "results.json"), results)
    rt_files.atomic_write_json(os.path.join(workdir, "fcn_score.json"), scores)
    text = evaluation.markdown_table(results)
    if scores:
        names = {}
        for label, _, folder in result_rows(config):
            if folder and label in results:
                names[folder] = f"{names[folder]}; {label}" if folder in names else label
        text += "\n" + fcn_table(scores, names)
    text += "\n" + evaluation.per_class_table(results) if results else ""
    text += f"\nWall time: {seconds:.0f} s (sum of the stages' times and the evaluation).\n"
    rt_files.atomic_write_text(os.path.join(workdir, "results.md"), text)


def wall_time(workdir):
    """Seconds spent in the finished stages of `workdir` (sum of their timing.json)."""
    total = 0.0
    for name in sorted(os.listdir(workdir)) if os.path.isdir(workdir) else ():
        path = os.path.join(workdir, name, TIMING)
        if os.path.exists(path):
            total += rt_files.read_json(path)["seconds"]
    return total


def _train_and_evaluate_one(config, workdir, strategy):
    if config.stage != "evaluate":
        run_schedule(config, workdir, strategy)
    start = time.time()
    results = evaluate_methods(config, collect_finished(config, workdir))
    scores = fcn_scores(config, workdir)
    seconds = wall_time(workdir) + time.time() - start
    write_results(config, workdir, results, scores, seconds)
    rt_files.atomic_write_json(os.path.join(workdir, TIMING), {"seconds": round(seconds, 2)})
    return results


def seed_config(config, seed):
    """A copy of `config` for one seed of a multi-seed run (seeds cleared)."""
    one = config.copy_and_resolve_references()
    with one.unlocked():
        one.seed = int(seed)
        one.seeds = ()
    return one


AGGREGATE_KEYS = ("miou_16", "miou_16_gt_present", "miou_19", "pixel_accuracy")


def aggregate_seeds(per_seed):
    """{method: {key: {"mean", "sd", "values"}}} over seeds ({seed: results}).

    sd is the sample standard deviation (ddof=1; 0 for one seed); "fcn_score" aggregates
    the row's overall FCN-score. A method missing in some seed is aggregated over the
    seeds that have it ("values" shows which).
    """
    methods = []
    for results in per_seed.values():
        methods += [m for m in results if m not in methods]
    rows = {}
    for method in methods:
        row = {}
        for key in AGGREGATE_KEYS + ("fcn_score",):
            values = {}
            for seed, results in per_seed.items():
                value = results.get(method, {}).get(key)
                if key == "fcn_score" and value is not None:
                    value = value["miou_16"]
                if value is not None and not (isinstance(value, float) and math.isnan(value)):
                    values[str(seed)] = float(value)
            if values:
                v = np.array(list(values.values()))
                sd = float(v.std(ddof=1)) if len(v) > 1 else 0.0
                row[key] = {"mean": float(v.mean()), "sd": sd, "values": values}
        rows[method] = row
    return rows


def aggregate_table(rows, seconds):
    """Markdown: mean ± sd per row (mIoU-16, fixed-class mIoU-16, mIoU-19, FCN-score)."""
    lines = [
        "| method | mIoU-16 | mIoU-16, GT classes | mIoU-19 | FCN-score | seeds |",
        "|---|---|---|---|---|---|",
    ]
    for method, row in rows.items():
        cells = [
            _fmt(row[k]["mean"], row[k]["sd"]) if k in row else "-"
            for k in ("miou_16", "miou_16_gt_present", "miou_19", "fcn_score")
        ]
        count = len(row.get("miou_16", {}).get("values", {}))
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {count} |")
    times = ", ".join(f"seed {s}: {t:.0f} s" for s, t in seconds.items())
    return "\n".join(lines) + f"\n\nWall time per seed: {times}.\n"


# Keys a re-run in the same workdir may change: which stages run, how many seeds.
RESUMABLE_CHANGES = RUN_SETTING_KEYS + ("stage", "seeds", "pipeline")


def _check_and_write_config(config, workdir, allow_config_change):
    """Validated config vs the workdir's config.json (error naming differing keys), then write."""
    path = os.path.join(workdir, "config.json")
    if os.path.exists(path):
        stored = rt_files.read_json(path)
        diffs = tf_runtime.config_differences(stored, config, ignore=RESUMABLE_CHANGES)
        if diffs and not allow_config_change:
            raise tf_runtime.ConfigMismatchError(
                f"The config differs from the one the run in {workdir} was started with "
                f"({path}) in: {', '.join(diffs[:20])}. Use a fresh workdir, or pass "
                "allow_config_change=True (--allow_config_change) to continue."
            )
    tf_runtime.write_config(config, workdir)


def train_and_evaluate(config, workdir, strategy, *, allow_config_change=False):
    """Runs `config.stage` (or the whole schedule) and evaluates every trained segmenter.

    The config is validated first, then compared with the workdir's `config.json` (a
    different one is an error unless `allow_config_change`; `stage`, `seeds`, `pipeline`
    and run settings may change), and only then written. The workdir is locked meanwhile.

    With `config.seeds` non-empty, runs everything once per seed in `workdir/seed_<s>/`
    (a seed whose folder holds SEED_DONE is not re-run) and writes the aggregate
    `workdir/results.{json,md}` with mean ± sd per row and each seed's wall time.

    Returns:
      {method: result dict} (with seeds: {method: {key: {"mean", "sd", "values"}}}).
    """
    validate_config(config)
    chief = tf_runtime.is_chief(strategy)
    lock = tf_runtime.WorkdirLock(workdir) if chief else None
    if lock:
        lock.acquire()
    try:
        if chief:
            _check_and_write_config(config, workdir, allow_config_change)
        return _train_and_evaluate_seeds(config, workdir, strategy)
    finally:
        if lock:
            lock.release()


def _train_and_evaluate_seeds(config, workdir, strategy):
    seeds = tuple(config.get("seeds", ()))
    if not seeds:
        return _train_and_evaluate_one(config, workdir, strategy)
    per_seed, seconds = {}, {}
    for seed in seeds:
        seed_dir = os.path.join(workdir, f"seed_{seed}")
        done = os.path.join(seed_dir, SEED_DONE)
        if rt_files.has_marker(done):
            per_seed[seed] = rt_files.read_json(os.path.join(seed_dir, "results.json"))
        else:
            one = seed_config(config, seed)
            per_seed[seed] = _train_and_evaluate_one(one, seed_dir, strategy)
            tf_runtime.write_config(one, seed_dir)
            rt_files.write_marker(done)
        seconds[seed] = rt_files.read_json(os.path.join(seed_dir, TIMING))["seconds"]
    rows = aggregate_seeds(per_seed)
    rt_files.atomic_write_json(
        os.path.join(workdir, "results.json"),
        {"seeds": list(seeds), "rows": rows, "seconds_per_seed": seconds},
    )
    rt_files.atomic_write_text(os.path.join(workdir, "results.md"), aggregate_table(rows, seconds))
    return rows


def summarize(results):
    """Printable lines of {method: mIoU-16, mIoU-19} (or mean ± sd over seeds)."""
    if not results:
        return "no finished stages"
    lines = []
    for k, v in results.items():
        if "miou_16" in v and isinstance(v["miou_16"], dict):
            lines.append(f"{k}: mIoU-16 {_fmt(v['miou_16']['mean'], v['miou_16']['sd'])}")
        else:
            lines.append(f"{k}: mIoU-16 {v['miou_16']:.1f}, mIoU-19 {v['miou_19']:.1f}")
    return "\n".join(lines)
