"""MADAN's end-to-end run: validation, the schedule (`tf_madan.stages`), evaluation, seeds.

`train_and_evaluate(config, workdir, strategy)` validates the config, opens the run folder
(`tf_runtime.open_run`: lock, config check, DONE), runs `config.stage` with its upstream stages
through `tf_madan.stage_runner` (each stage in its own sub-folder, checkpointed, resumable,
reused only while its producer record and artefacts match), and writes the report
(`tf_madan.report`: per-row mIoU, FCN-scores, per-class IoU; percent throughout).
`config.seeds=(0, 1, 2)` runs the whole schedule once per seed in `workdir/seed_<s>/` and
writes mean ± sd over the seeds. The stages and their rows are listed in docs/tf_madan.md and
`tf_madan.stages.build_table`.
"""

import os
import time

import tf_runtime
from tf_madan import builders, data, layout, pretrained, report, stage_runner, stages
from tf_runtime import files as rt_files

_POSITIVE = (
    ("gan", "batch_size"),
    ("gan", "steps_per_epoch"),
    ("gan", "daig_epochs"),
    ("gan", "ada_epochs"),
    ("seg", "batch_size"),
    ("seg", "steps"),
    ("seg", "source_only_steps"),
    ("seg", "oracle_steps"),
    ("fla", "steps"),
    ("eval", "batch_size"),
)


def validate_config(config):
    """Raises ValueError naming the first bad config field (before anything is written)."""
    if config.stage not in stages.STAGE_CHOICES:
        raise ValueError(
            f"config.stage must be one of {stages.STAGE_CHOICES}. Received: {config.stage!r}"
        )
    if not config.data.root:
        raise ValueError("config.data.root is empty: set it to the folder holding the datasets.")
    sources = tuple(config.data.sources)
    if len(sources) < 1 or len(set(sources)) != len(sources):
        raise ValueError(f"config.data.sources needs distinct source names. Received: {sources}")
    if config.data.target in sources:
        raise ValueError(f"config.data.target {config.data.target!r} is also a source.")
    if config.segmenter.name not in builders.SEGMENTERS:
        raise ValueError(
            f"config.segmenter.name must be one of {builders.SEGMENTERS}. "
            f"Received: {config.segmenter.name!r}"
        )
    if config.dsc.networks not in ("paper", "shared"):
        raise ValueError(
            f"config.dsc.networks must be 'paper' or 'shared'. Received: {config.dsc.networks!r}"
        )
    choices = (
        ("dsc", "shared_network", ("source_only", "adapted")),
        ("sad", "mode", ("symmetric", "asymmetric")),
        ("gan", "target_discriminator_loss", ("mean", "sum")),
    )
    for section, key, allowed in choices:
        value = config[section].get(key, allowed[0])
        if value not in allowed:
            raise ValueError(
                f"config.{section}.{key} must be one of {allowed}. Received: {value!r}"
            )
    if config.dsc.get("shared_network") == "adapted" and config.dsc.networks != "shared":
        raise ValueError(
            'config.dsc.shared_network="adapted" needs config.dsc.networks="shared". '
            f"Received: config.dsc.networks={config.dsc.networks!r}"
        )
    anchor = config.sad.get("anchor", 0)
    if isinstance(anchor, bool) or not isinstance(anchor, int) or not 0 <= anchor < len(sources):
        raise ValueError(
            f"config.sad.anchor must be a source index in [0, {len(sources)}). Received: {anchor!r}"
        )
    for section, key in _POSITIVE:
        value = config[section][key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"config.{section}.{key} must be an integer >= 1. Received: {value!r}")
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


def validate_data(config):
    """Checks every domain folder and each global batch against its example count, naming
    the config field at fault, before any stage runs."""
    if config.stage == "evaluate":
        return
    domains = [(n, None) for n in config.data.sources]
    domains.append((config.data.target, config.data.target_split))
    for section in ("gan", "seg"):
        batch = config[section].batch_size
        for name, split in domains:
            count = data.example_count(config, name, split)
            if batch > count:
                raise ValueError(
                    f"config.{section}.batch_size={batch} is larger than the {count} examples "
                    f"of {name} in {data.domain_dir(config, name)}: lower config.{section}.batch_size."
                )


def seed_config(config, seed):
    """A copy of `config` for one seed of a multi-seed run (seeds cleared)."""
    one = config.copy_and_resolve_references()
    with one.unlocked():
        one.seed = int(seed)
        one.seeds = ()
    return one


def _run_one(config, workdir, strategy, reuse_from=None):
    """One seed's schedule and report in `workdir` (already open); returns the rows."""
    if config.stage == "evaluate":
        results = report.evaluate_methods(config, report.collect_finished(config, workdir))
    else:
        stage_runner.run_schedule(config, workdir, strategy, reuse_from)
        results = report.collect_results(config, workdir)
    start = time.time()
    scores = report.fcn_scores(config, workdir) if tf_runtime.is_chief(strategy) else {}
    seconds = layout.wall_time(workdir) + time.time() - start
    if tf_runtime.is_chief(strategy):
        report.write_results(config, workdir, results, scores, seconds)
        rt_files.atomic_write_json(
            os.path.join(workdir, layout.TIMING), {"seconds": round(seconds, 2)}
        )
    return results


def _open(workdir, config, strategy, allow_config_change):
    """`tf_runtime.open_run` that lets a re-run change the RESUMABLE_CHANGES keys."""
    stored = os.path.join(workdir, "config.json")
    allowed = allow_config_change
    if os.path.exists(stored) and not allow_config_change:
        diffs = tf_runtime.config_differences(
            rt_files.read_json(stored), config, ignore=layout.RESUMABLE_CHANGES
        )
        if diffs:
            tf_runtime.check_config(workdir, config)  # raises, naming the keys and values
        allowed = True  # only which stages / seeds run changed
    return tf_runtime.open_run(workdir, config, strategy=strategy, allow_config_change=allowed)


def _stale(config, workdir, seeds):
    """Stages of a finished run whose artefacts changed since (printed), for every seed."""
    if config.stage == "evaluate":
        return []
    if seeds:
        return [
            s
            for seed in seeds
            for s in _stale(seed_config(config, seed), os.path.join(workdir, f"seed_{seed}"), ())
        ]
    stale = stage_runner.stale_stages(config, workdir)
    for name, reason in stale:
        print(f"[{name}] finished run re-checked: {reason}; the stage runs again.", flush=True)
    return stale


def check_reuse_from(reuse_from, workdir):
    """Raises ValueError naming `--reuse_from` unless it is an existing run folder other than
    `workdir`."""
    if reuse_from is None:
        return
    if not os.path.isdir(reuse_from):
        raise ValueError(f"--reuse_from={reuse_from!r} is not a folder.")
    if os.path.realpath(reuse_from) == os.path.realpath(workdir):
        raise ValueError(f"--reuse_from={reuse_from!r} is the run's own workdir.")
    if not os.path.exists(os.path.join(reuse_from, "config.json")):
        raise ValueError(
            f"--reuse_from={reuse_from!r} holds no config.json: not a tf_madan.train run folder."
        )


def train_and_evaluate(config, workdir, strategy, *, allow_config_change=False, reuse_from=None):
    """Runs `config.stage` (or the whole schedule) and evaluates every trained segmenter.

    The config and the data are validated first, then the config is compared with the
    workdir's `config.json` (a different one is an error naming the keys unless
    `allow_config_change`; `stage`, `seeds`, `pipeline` and run settings may change), and only
    then written. The workdir is locked meanwhile; a finished run re-run changes nothing.

    With `config.seeds` non-empty, runs everything once per seed in `workdir/seed_<s>/` (a
    finished seed is not re-run) and writes the aggregate `workdir/results.{json,md}` with
    mean ± sd per row and each seed's wall time.

    `reuse_from`: another run folder (e.g. the same benchmark under the other reading); a stage
    not finished here is copied from its seed's folder there when it finished under a record
    agreeing with this stage's (`tf_madan.stage_records`). A copied stage's wall time counts in
    this run's.

    Returns:
      {row label: result dict (percent)} (with seeds: {row: {key: {"mean", "sd", "values"}}}).
    """
    validate_config(config)
    validate_data(config)
    check_reuse_from(reuse_from, workdir)
    seeds = tuple(config.get("seeds", ()))
    with _open(workdir, config, strategy, allow_config_change) as run:
        if run.done and not _stale(config, workdir, seeds):
            return run.results.get("rows", run.results) if seeds else run.results
        if not seeds:
            return run.finish(_run_one(config, workdir, strategy, reuse_from))
        per_seed, seconds = {}, {}
        for seed in seeds:
            seed_dir = os.path.join(workdir, f"seed_{seed}")
            one = seed_config(config, seed)
            with tf_runtime.open_run(seed_dir, one, strategy=strategy) as seed_run:
                if seed_run.done and not _stale(one, seed_dir, ()):
                    per_seed[seed] = seed_run.results
                else:
                    other = reuse_from and os.path.join(reuse_from, f"seed_{seed}")
                    per_seed[seed] = seed_run.finish(_run_one(one, seed_dir, strategy, other))
            seconds[seed] = rt_files.read_json(os.path.join(seed_dir, layout.TIMING))["seconds"]
        rows = report.aggregate_seeds(per_seed)
        aggregate = {
            "seeds": list(seeds),
            "rows": rows,
            "paired": report.paired_differences(rows),
            "seconds_per_seed": seconds,
        }
        if run.chief:
            rt_files.atomic_write_json(run.results_path, aggregate)
            rt_files.atomic_write_text(
                os.path.join(workdir, "results.md"), report.aggregate_table(rows, seconds)
            )
        run.finish({})
        return rows
