"""MADAN stages and the end-to-end schedule (`config.stage`).

Stages, each in its own sub-folder of `workdir` (checkpointed, resumable):
  source_only_<src>  F_i on one raw source (DSC's F_i; single-source baseline)
  source_only        F on all raw sources (source-only baseline)
  daig               multi-source CycleGANs, shared D_T, no DSC (paper stage 1)
  seg_daig           F on the DAIG-adapted images (F_A, the dynamic DSC network of ADA)
  ada_plain          DAIG continued for as many steps as ADA, nothing added (+ seg_ada_plain:
                     the ablation baseline)
  single_<src>       F on one source's ada_plain images (single-source CycleGAN)
  cycada_<src>       + feature alignment (single-source CyCADA-style, no SC)
  ada                CycleGANs continued with DSC + SAD + CCD (paper stage 2)
  seg_ada            F on the aggregated domain (ablation "+SAD+CCD+DSC")
  madan              F trained with FLA on the aggregated domain (MADAN)
  ada_sad / ada_ccd / ada_sad_ccd (+ seg_*): ablations without DSC
`stage=all` runs them in order; finished stages (weights file present) are
skipped and interrupted ones resume from their last checkpoint.
"""

import json
import os
import time

import keras
import tensorflow as tf

import tf_runtime
from tf_madan import builders, data, evaluation

STAGES = ("all", "source_only", "daig", "single_source", "ada", "madan", "ablation", "evaluate")
WEIGHTS = "segmenter.weights.h5"
NETWORKS = "networks"


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
    for field in ("gan.batch_size", "seg.batch_size", "seg.steps", "gan.steps_per_epoch"):
        section, key = field.split(".")
        if config[section][key] < 1:
            raise ValueError(f"config.{field} must be >= 1. Received: {config[section][key]}")
    if config.gan.daig_epochs < 1 or config.gan.ada_epochs < 1 or config.fla.steps < 1:
        raise ValueError(
            "config.gan.daig_epochs, config.gan.ada_epochs and config.fla.steps must be >= 1."
        )
    if config.segmenter.init_checkpoint and not os.path.exists(config.segmenter.init_checkpoint):
        raise FileNotFoundError(
            "--init_checkpoint / config.segmenter.init_checkpoint "
            f"{config.segmenter.init_checkpoint} not found."
        )


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
    return segmenter


def _export_segmenter(segmenter, path):
    spec = [tf.TensorSpec([None, None, None, 3], tf.float32)]
    return tf_runtime.export_saved_model(segmenter, path, spec)


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

    Writes checkpoints, TensorBoard scalars, an eval scalar set, a segmentation
    overlay image, `segmenter.weights.h5` and `saved_model/`.
    """
    stage_dir = os.path.join(workdir, name)
    weights = os.path.join(stage_dir, WEIGHTS)
    if os.path.exists(weights):
        return weights
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
        seed=config.seed,
        hparams={"stage": name, **tf_runtime.config_to_dict(config)},
        **_run_kwargs(config),
    )
    _write_overlay(config, segmenter, stage_dir, num_steps)
    segmenter.save_weights(weights)
    _export_segmenter(segmenter, os.path.join(stage_dir, "saved_model"))
    print(f"[{name}] {num_steps} steps in {time.time() - start:.0f}s: {logs}", flush=True)
    return weights


def _write_overlay(config, segmenter, stage_dir, step):
    if not tf_runtime.is_chief(tf.distribute.get_strategy()):
        return
    images, _ = next(iter(data.eval_dataset(config, batch_size=4)))
    logits = segmenter(images, training=False)
    writers = tf_runtime.SummaryWriters(stage_dir)
    writers.images("eval", step, "segmentation_overlay", evaluation.overlay(images, logits))
    writers.close()


# -------------------------------------------------------------- pixel level
def _network_dir(stage_dir):
    return os.path.join(stage_dir, NETWORKS)


def train_pixel_stage(
    config,
    workdir,
    strategy,
    *,
    name,
    variant,
    num_steps,
    init_from=None,
    use_dsc=True,
    use_sad=True,
    use_ccd=True,
    source_weights=None,
    adapted_weights=None,
):
    """Trains the multi-source CycleGANs (DAIG or ADA) in `workdir/name`.

    Args:
      init_from: stage folder whose networks initialise this one (ADA continues DAIG).
      source_weights: list of F_i weight files (DSC); adapted_weights: F_A weights.

    Returns:
      The stage folder (networks/<network>.weights.h5, saved_model/<generator>/).
    """
    stage_dir = os.path.join(workdir, name)
    done = os.path.join(_network_dir(stage_dir), "COMPLETE")
    if os.path.exists(done):
        return stage_dir
    num_sources = len(config.data.sources)
    with strategy.scope():
        source_segs = adapted_seg = None
        if variant == "ada" and use_dsc:
            source_segs = [
                _new_segmenter(config, f"dsc_source_{i}", w) for i, w in enumerate(source_weights)
            ]
            if config.dsc.networks == "paper":
                adapted_seg = _new_segmenter(config, "dsc_adapted", adapted_weights)
        model = builders.build_madan_gan(
            config,
            num_sources=num_sources,
            variant=variant,
            use_dsc=use_dsc,
            use_sad=use_sad,
            use_ccd=use_ccd,
            source_segmenters=source_segs,
            adapted_segmenter=adapted_seg,
        )
        if init_from:
            for net_name, net in model.networks().items():
                path = os.path.join(_network_dir(init_from), f"{net_name}.weights.h5")
                if os.path.exists(path):
                    net.load_weights(path)
    dataset_fn = data.multi_domain_fn(
        config,
        normalization="generator",
        batch_size=config.gan.batch_size,
        crop_size=config.data.gan_crop_size,
        resize_shorter=config.data.gan_resize_shorter,
    )
    start = time.time()
    logs = tf_runtime.run_training(
        model,
        dataset_fn,
        strategy=strategy,
        workdir=stage_dir,
        num_steps=num_steps,
        seed=config.seed,
        hparams={"stage": name, **tf_runtime.config_to_dict(config)},
        **_run_kwargs(config),
    )
    _write_translation_grid(model, dataset_fn, stage_dir, num_steps)
    os.makedirs(_network_dir(stage_dir), exist_ok=True)
    for net_name, net in model.networks().items():
        net.save_weights(os.path.join(_network_dir(stage_dir), f"{net_name}.weights.h5"))
    spec = [tf.TensorSpec([None, None, None, 3], tf.float32)]
    for i, generator in enumerate(model.generators_s2t):
        tf_runtime.export_saved_model(
            generator, os.path.join(stage_dir, "saved_model", f"generator_s2t_{i}"), spec
        )
    with open(done, "w") as handle:
        json.dump({"steps": num_steps}, handle)
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
    if not tf_runtime.is_chief(tf.distribute.get_strategy()):
        return
    batch = next(iter(dataset_fn(None)))
    writers = tf_runtime.SummaryWriters(stage_dir)
    writers.images("train", step, "source_adapted_cycled", translation_grid(model, batch), 24)
    writers.close()


def load_generators(config, stage_dir, direction="s2t"):
    """Rebuilds the generators of a finished pixel stage from its weight files."""
    generators = []
    for i in range(len(config.data.sources)):
        path = os.path.join(_network_dir(stage_dir), f"generator_{direction}_{i}.weights.h5")
        if not os.path.exists(path):
            raise FileNotFoundError(f"Generator weights {path} not found; train the stage first.")
        generator = builders.build_generator(config, f"generator_{direction}_{i}")
        generator.load_weights(path)
        generators.append(generator)
    return generators


def translate_stage(config, workdir, stage_dir, out_name):
    """Writes every source image translated by its G_{S_i->T}; returns the folders."""
    generators = load_generators(config, stage_dir)
    dirs = []
    for name, generator in zip(config.data.sources, generators):
        out = os.path.join(workdir, out_name, name)
        data.write_adapted_images(generator, data.source_dataset(config, name, batch_size=8), out)
        dirs.append(out)
    return dirs


# ------------------------------------------------------------------ schedule
def _seg_steps(config, fla=False):
    return config.fla.steps if fla else config.seg.steps


def _needs(stage):
    """Stages that `stage` runs (its prerequisites included)."""
    deps = {
        "source_only": {"source_only"},
        "daig": {"daig"},
        "single_source": {"daig", "ada_plain", "single_source"},
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
    explicit = config.stage != "all"
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
        )

    def adapted_fn(dirs):
        return data.adapted_multi_domain_fn(config, dirs, batch_size=seg_batch, crop_size=crop)

    def seg(name, dataset_fn, **kwargs):
        kwargs.setdefault("num_steps", config.seg.steps)
        return train_segmenter(
            config, workdir, strategy, name=name, dataset_fn=dataset_fn, **kwargs
        )

    gan_epoch = config.gan.steps_per_epoch
    ada_steps = config.gan.ada_epochs * gan_epoch
    methods = {}
    source_weights = []
    if "source_only" in needs:
        for name in sources:
            source_weights.append(
                seg(f"source_only_{name}", raw_fn([name]), num_steps=config.seg.source_only_steps)
            )
            methods[f"source-only ({name})"] = source_weights[-1]
        if len(sources) > 1:
            methods["source-only (combined)"] = seg(
                "source_only", raw_fn(sources), num_steps=config.seg.source_only_steps
            )
    if "daig" in needs:
        daig = train_pixel_stage(
            config,
            workdir,
            strategy,
            name="daig",
            variant="daig",
            num_steps=config.gan.daig_epochs * gan_epoch,
        )
        adapted_daig = translate_stage(config, workdir, daig, "adapted_daig")
        seg_daig = seg("seg_daig", adapted_fn(adapted_daig))
        methods["CycleGAN multi-source, stage 1 (F_A)"] = seg_daig
    if "ada_plain" in needs:
        # Baseline with the same number of pixel-level steps as ADA, without DSC/SAD/CCD.
        plain = train_pixel_stage(
            config,
            workdir,
            strategy,
            name="ada_plain",
            variant="ada",
            num_steps=ada_steps,
            init_from=daig,
            use_dsc=False,
            use_sad=False,
            use_ccd=False,
        )
        adapted_plain = translate_stage(config, workdir, plain, "adapted_ada_plain")
        methods["CycleGAN multi-source (ablation baseline)"] = seg(
            "seg_ada_plain", adapted_fn(adapted_plain)
        )
    if "single_source" in needs and (config.pipeline.single_source or explicit):
        for i, name in enumerate(sources):
            single = seg(f"single_{name}", adapted_fn([adapted_plain[i]]))
            methods[f"single-source CycleGAN ({name})"] = single
            if config.pipeline.cycada_fla:
                methods[f"single-source CyCADA-style ({name})"] = seg(
                    f"cycada_{name}",
                    adapted_fn([adapted_daig[i]]),
                    num_steps=config.fla.steps,
                    fla=True,
                    init_from=single,
                )
    if "ada" in needs:
        ada = train_pixel_stage(
            config,
            workdir,
            strategy,
            name="ada",
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
    if "ablation" in needs and (config.pipeline.ablation or explicit) and len(sources) > 1:
        for label, sad, ccd in (
            ("+SAD", True, False),
            ("+CCD", False, True),
            ("+SAD+CCD", True, True),
        ):
            name = "ada" + ("_sad" if sad else "") + ("_ccd" if ccd else "")
            stage_dir = train_pixel_stage(
                config,
                workdir,
                strategy,
                name=name,
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
    """{method: weights} for every finished segmenter stage found in `workdir`."""
    labels = {
        "source_only": "source-only (combined)",
        "seg_daig": "CycleGAN multi-source, stage 1 (F_A)",
        "seg_ada_plain": "CycleGAN multi-source (ablation baseline)",
        "seg_ada_sad": "+SAD",
        "seg_ada_ccd": "+CCD",
        "seg_ada_sad_ccd": "+SAD+CCD",
        "seg_ada": "+SAD+CCD+DSC",
        "madan": "MADAN (+SAD+CCD+DSC+Feat)",
    }
    for name in config.data.sources:
        labels[f"source_only_{name}"] = f"source-only ({name})"
        labels[f"single_{name}"] = f"single-source CycleGAN ({name})"
        labels[f"cycada_{name}"] = f"single-source CyCADA-style ({name})"
    return {
        label: os.path.join(workdir, stage, WEIGHTS)
        for stage, label in labels.items()
        if os.path.exists(os.path.join(workdir, stage, WEIGHTS))
    }


def train_and_evaluate(config, workdir, strategy):
    """Runs `config.stage` (or the whole schedule) and evaluates every trained segmenter.

    Returns:
      {method: result dict}; also writes `workdir/results.{json,md}`.
    """
    validate_config(config)
    keras.utils.set_random_seed(config.seed)
    start = time.time()
    if config.stage != "evaluate":
        run_schedule(config, workdir, strategy)
    methods = collect_finished(config, workdir)
    results = evaluate_methods(config, methods)
    if tf_runtime.is_chief(strategy):
        evaluation.write_results(results, workdir)
        with open(os.path.join(workdir, "timing.json"), "w") as handle:
            json.dump({"seconds": time.time() - start}, handle)
    return results


def summarize(results):
    """Printable lines of {method: mIoU-16, mIoU-19}."""
    if not results:
        return "no finished stages"
    return "\n".join(
        f"{k}: mIoU-16 {v['miou_16']:.1f}, mIoU-19 {v['miou_19']:.1f}" for k, v in results.items()
    )
