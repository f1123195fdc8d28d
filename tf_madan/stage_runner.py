"""One runner for every MADAN stage (`tf_madan.stages`), each inside `tf_runtime.open_run`.

`run_stage` gives a stage only the config sections its kind reads (`stage_records.SECTIONS`),
records the fields it reads with the stage's options and its upstream stages' digests as the
stage folder's `config.json` (`stage_records.stage_record`), and runs the kind's function once;
a finished stage is reused only while that record and the digests of its artefacts still match,
otherwise its folder is rewritten (a truncated weights file, a changed config section or a
re-trained upstream stage all re-run it). With `reuse_from`, a stage not finished here is
copied from another run folder that finished it under an agreeing record (`stage_records`).
"""

import os
import shutil
import time
import zlib

import keras
import ml_collections

import tf_runtime
from tf_madan import (
    builders,
    color_transfer,
    data,
    evaluation,
    export_lib,
    layout,
    pretrained,
    stage_records,
    stages,
)
from tf_madan.stage_records import SECTIONS, UNRECORDED
from tf_runtime import files as rt_files

TARGET = "<target>"  # `domains` entry meaning the labelled target train split


def stage_seed(seed, name):
    """Seed of stage `name`'s weight init: a function of (config.seed, name) only.

    Seeding each stage from its name makes a stage started in a fresh process (after a
    kill between stages) initialise exactly like one started after its predecessors.
    """
    return zlib.crc32(f"{int(seed)}/{name}".encode()) & 0x7FFFFFFF


def section_config(config, names):
    """A ConfigDict holding only `names` of `config` (a missing read fails loudly)."""
    return ml_collections.ConfigDict(
        {n: config[n] for n in names if n in config}
    ).copy_and_resolve_references()


class StageEnv:
    """What a kind function receives: its config sections, folders, strategy, upstream outputs."""

    def __init__(self, config, workdir, stage, strategy, inputs):
        self.config = config
        self.workdir = workdir
        self.dir = layout.stage_dir(workdir, stage.name)
        self.strategy = strategy
        self.inputs = inputs
        self.seed = stage_seed(config.seed, stage.name)

    def run_kwargs(self):
        t = self.config.train
        return dict(
            checkpoint_every=t.checkpoint_every,
            summary_every=t.summary_every,
            log_every=t.log_every,
            profile_steps=tuple(t.get("profile_steps", ())) or None,
        )


def _steps(config, budget):
    section, field = stages.BUDGETS[budget]
    value = config[section][field]
    return value * config.gan.steps_per_epoch if section == "gan" else value


def _new_segmenter(config, name="segmenter", weights=None):
    segmenter = builders.build_segmenter(config, name=name)
    path = weights or config.segmenter.init_checkpoint
    if path:
        tf_runtime.load_weights(segmenter, path)
    else:
        # `segmenter.init="imagenet"`: ImageNet VGG16 converted into FCN8s (no-op for "random").
        pretrained.initialize_segmenter(segmenter, config)
    return segmenter


def _image_dirs(env, stage):
    return env.inputs[stage.images]["dirs"]


def _segmenter_dataset(env, stage):
    c = env.config
    if stage.options.get("domains"):
        names = [c.data.target if n == TARGET else n for n in stage.options["domains"]]
        return data.multi_domain_fn(
            c,
            normalization="segmenter",
            batch_size=c.seg.batch_size,
            crop_size=c.data.seg_crop_size,
            resize_shorter=c.data.seg_resize_shorter,
            sources=names,
        )
    return data.adapted_multi_domain_fn(
        c, _image_dirs(env, stage), batch_size=c.seg.batch_size, crop_size=c.data.seg_crop_size
    )


def _no_suitable_discriminator(logs):
    return logs.get("no_suitable_discriminator", 0.0) >= 1.0


def train_segmenter(stage, env):
    """Segmenter / FLA stage: trains F, exports it, evaluates it on the target split."""
    c, fla = env.config, stage.kind == "fla"
    num_steps = _steps(c, "fla" if fla else stage.options["budget"])
    init = env.inputs[stage.options["init_from"]]["weights"] if fla else None
    keras.utils.set_random_seed(env.seed)
    with env.strategy.scope():
        segmenter = _new_segmenter(c, weights=init)
        trainer = builders.build_segmenter_trainer(c, segmenter, fla=fla)
    logs = tf_runtime.run_training(
        trainer,
        _segmenter_dataset(env, stage),
        strategy=env.strategy,
        workdir=env.dir,
        num_steps=num_steps,
        seed=env.seed,
        hparams={"stage": stage.name, **tf_runtime.config_to_dict(c)},
        # ADDA's "No suitable discriminator found": FLA stops once F went `fla.patience` steps
        # without an update (the trainer's log turns 1.0; patience 0 never stops).
        stop_when=_no_suitable_discriminator if fla else None,
        **env.run_kwargs(),
    )
    result = evaluation.evaluate_on_target(c, segmenter)
    if tf_runtime.is_chief(env.strategy):
        evaluation.write_summaries(
            env.dir, num_steps, segmenter, result, data.eval_dataset(c, batch_size=4)
        )
    export_lib.export_segmenter(segmenter, os.path.join(env.dir, "saved_model"))
    weights = tf_runtime.save_weights_atomic(segmenter, os.path.join(env.dir, layout.WEIGHTS))
    print(f"[{stage.name}] {num_steps} steps: {_short(logs)}", flush=True)
    return {"weights": weights, "steps": num_steps, "evaluation": result}


def _short(logs):
    return ", ".join(
        f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in logs.items()
    )


def train_pixel(stage, env):
    """Pixel stage: the CycleGANs of `stage.options` (see tf_madan.stages), networks + COMPLETE."""
    c, o = env.config, stage.options
    sources = list(o.get("sources") or c.data.sources)
    merged = bool(o.get("merged", False))
    num_generators = 1 if merged else len(sources)
    use_dsc = bool(o.get("use_dsc", False))
    mode = o.get("dsc_mode") or c.dsc.mode
    num_steps = _steps(c, o["budget"])
    keras.utils.set_random_seed(env.seed)
    with env.strategy.scope():
        source_segs = adapted_seg = None
        if o["variant"] == "ada" and use_dsc:
            weights = [env.inputs[n]["weights"] for n in o.get("source_networks", ())]
            if len(weights) != num_generators:
                raise ValueError(
                    f"Stage {stage.name}: DSC needs {num_generators} source segmenter stages. "
                    f"Received: {o.get('source_networks')}"
                )
            source_segs = [_new_segmenter(c, f"dsc_source_{i}", w) for i, w in enumerate(weights)]
            if mode == "dsc" and c.dsc.networks == "paper":
                adapted_seg = _new_segmenter(
                    c, "dsc_adapted", env.inputs[o["adapted_network"]]["weights"]
                )
        model = builders.build_madan_gan(
            c,
            num_sources=num_generators,
            variant=o["variant"],
            use_dsc=use_dsc,
            use_sad=bool(o.get("use_sad", False)),
            use_ccd=bool(o.get("use_ccd", False)),
            source_segmenters=source_segs,
            adapted_segmenter=adapted_seg,
            dsc_mode=mode,
        )
        if o.get("init_from"):
            init_dir = layout.network_dir(env.inputs[o["init_from"]]["dir"])
            for net_name, net in model.networks().items():
                path = os.path.join(init_dir, f"{net_name}.weights.h5")
                if os.path.exists(path):  # networks the earlier stage did not have start fresh
                    tf_runtime.load_weights(net, path)
    dataset_fn = data.pixel_stage_fn(c, sources=sources, merged=merged)
    logs = tf_runtime.run_training(
        model,
        dataset_fn,
        strategy=env.strategy,
        workdir=env.dir,
        num_steps=num_steps,
        seed=env.seed,
        hparams={"stage": stage.name, **tf_runtime.config_to_dict(c)},
        **env.run_kwargs(),
    )
    if tf_runtime.is_chief(env.strategy):
        evaluation.write_translation_grid(model, dataset_fn, env.dir, num_steps)
    with rt_files.atomic_directory(os.path.join(env.dir, "saved_model")) as tmp:
        for i, generator in enumerate(model.generators_s2t):
            export_lib.export_generator(generator, os.path.join(tmp, f"generator_s2t_{i}"))
    # The networks folder, COMPLETE marker inside, appears in one rename.
    with rt_files.atomic_directory(layout.network_dir(env.dir)) as tmp:
        for net_name, net in model.networks().items():
            net.save_weights(os.path.join(tmp, f"{net_name}.weights.h5"))
        rt_files.write_marker(
            os.path.join(tmp, layout.COMPLETE),
            {"steps": num_steps, "sources": sources, "merged": merged, "producer": stage.name},
        )
    print(f"[{stage.name}] {num_steps} steps: {_short(logs)}", flush=True)
    return {"dir": env.dir, "sources": sources, "merged": merged, "steps": num_steps}


def translate(stage, env):
    """Every source image through its own G_{S_i->T} (paired by source name) into <stage>/<src>/."""
    pixel_dir = env.inputs[stage.options["pixel"]]["dir"]
    generators = layout.load_generators(env.config, pixel_dir)
    sources, merged = layout.stage_sources(pixel_dir)
    dirs = []
    for i, name in enumerate(sources):
        weights = os.path.join(
            layout.network_dir(pixel_dir), f"generator_s2t_{0 if merged else i}.weights.h5"
        )
        producer = {"stage": stage.options["pixel"], "weights": layout.file_digest(weights)}
        out = os.path.join(env.dir, name)
        data.write_adapted_images(
            generators[name],
            data.source_dataset(env.config, name, batch_size=8),
            out,
            producer=producer,
        )
        dirs.append(out)
    return {"dirs": dirs}


def color_transfer_images(stage, env):
    """Colour transfer of every source to the target's statistics (madan-core's
    `color_transfer`, Reinhard per image in L*a*b*) into <stage>/<src>/."""
    c = env.config
    dirs = [os.path.join(env.dir, name) for name in c.data.sources]
    producer = {"stage": stage.name, "config": layout.digest(c.data)}
    stats = color_transfer.target_statistics(c)
    for name, out in zip(c.data.sources, dirs):
        color_transfer.write_color_transferred_images(
            c, name, out, target_stats=stats, producer=producer
        )
    return {"dirs": dirs}


KIND_FUNCTIONS = {
    "segmenter": train_segmenter,
    "fla": train_segmenter,
    "pixel": train_pixel,
    "translate": translate,
    "color_transfer": color_transfer_images,
}


def _artefacts(outputs):
    """{path: digest} of the files / folders a stage's outputs name."""
    paths = []
    if "weights" in outputs:
        paths.append(outputs["weights"])
    if "dir" in outputs:
        paths.append(layout.network_dir(outputs["dir"]))
    paths += outputs.get("dirs", [])
    return {
        p: (layout.folder_digest(p) if os.path.isdir(p) else layout.file_digest(p)) for p in paths
    }


def _paths(outputs, convert):
    """`outputs` with its paths ("weights", "dir", "dirs", "artefacts") passed through
    `convert` (stored relative to the run folder, so that a moved run folder stays valid)."""
    out = dict(outputs)
    for key in ("weights", "dir"):
        if key in out:
            out[key] = convert(out[key])
    if "dirs" in out:
        out["dirs"] = [convert(p) for p in out["dirs"]]
    if "artefacts" in out:
        out["artefacts"] = {convert(p): d for p, d in out["artefacts"].items()}
    return out


def run_stage(stage, config, workdir, strategy, outputs, reuse_from=None):
    """Runs (or reuses) `stage`; returns its outputs and records them in `outputs`.

    The returned outputs hold `reused`: True when the stage's function did not run (finished
    here before, or copied from `reuse_from`).

    Args:
      stage: a `stages.Stage`.
      config: the run's config (only SECTIONS[stage.kind] reach the kind function).
      workdir: the run folder (one seed's).
      strategy: the distribution strategy.
      outputs: {stage name: outputs} of the stages that ran before (its upstream among them).
      reuse_from: optional run folder of the same seed whose finished stage is copied when it
        agrees with this stage's record (module docstring).
    """
    sub = section_config(config, SECTIONS[stage.kind] + UNRECORDED.get(stage.kind, ()))
    record = stage_records.stage_record(stage, sub, outputs)
    path = layout.stage_dir(workdir, stage.name)
    chief = tf_runtime.is_chief(strategy)
    reason = stage_records.stale(path, record)
    if reason and chief:
        print(f"[{stage.name}] rewriting {path}: {reason}", flush=True)
        shutil.rmtree(path)
    if layout.stage_results(workdir, stage.name) is None:
        other = stage_records.finished_elsewhere(stage, record, reuse_from)
        if other and chief:
            print(f"[{stage.name}] copying the finished stage {other}", flush=True)
            stage_records.copy_stage(other, path)
    # A stored record may hold more fields than the stage records; it stays while it agrees.
    stored = stage_records.stored_record(path)
    with tf_runtime.open_run(
        path, stored or record, strategy=strategy, results_name=layout.STAGE_RESULTS
    ) as run:
        reused = run.done
        if reused:
            result = run.results
        else:
            env = StageEnv(sub, workdir, stage, strategy, {u: outputs[u] for u in stage.upstream})
            start = time.time()
            result = KIND_FUNCTIONS[stage.kind](stage, env)
            seconds = time.time() - start
            rt_files.atomic_write_json(
                os.path.join(path, layout.TIMING), {"seconds": round(seconds, 2)}
            )
            result = _paths(
                {**result, "artefacts": _artefacts(result)}, lambda p: os.path.relpath(p, workdir)
            )
            result["seconds"] = round(seconds, 2)
            result["digest"] = layout.digest({"record": record, "artefacts": result["artefacts"]})
            result = run.finish(result)
    result = dict(_paths(result, lambda p: os.path.join(workdir, p)), reused=reused)
    outputs[stage.name] = result
    return result


def stale_stages(config, workdir):
    """[(stage, reason)] of the finished stages of `config.stage` whose artefacts no longer match
    what they recorded (missing, truncated or replaced files), or that have not finished."""
    table = stages.table_for(config)
    stale = []
    for stage in stages.select(table, config.stage, config.pipeline):
        path = layout.stage_dir(workdir, stage.name)
        if layout.stage_results(workdir, stage.name) is None:
            stale.append((stage.name, "not finished"))
            continue
        reason = stage_records.changed_artefacts(path)
        if reason:
            stale.append((stage.name, reason))
    return stale


def run_schedule(config, workdir, strategy, reuse_from=None):
    """Runs `config.stage` with its upstream stages (tf_madan.stages); returns {stage: outputs}.

    `reuse_from`: optional run folder of the same seed to copy agreeing finished stages from.
    """
    selected = stages.select(stages.table_for(config), config.stage, config.pipeline)
    progress = tf_runtime.TaskProgress(len(selected), "madan")
    outputs = {}
    for stage in selected:
        progress.start(stage.name)
        result = run_stage(stage, config, workdir, strategy, outputs, reuse_from)
        detail = (
            f"mIoU-16 {result['evaluation']['miou_16']:.1f} %" if "evaluation" in result else ""
        )
        progress.finish(stage.name, detail, reused=result["reused"])
    return outputs
