r"""Writes an offline multi-domain driving benchmark in the real datasets' file formats.

Usage:
  python -m input_pipelines.synthetic_driving --out /tmp/driving --seed 0 \
      [--benchmark v1|madan_v2|madan_v3|madan_v4 --num_per_domain 60 --num_val 20 --height 128 \
       --width 256 --perfect_translation --overwrite]

  MADAN CPU benchmark data (each madan_v* frozen with its design criteria, docs/driving.md):
  python -m input_pipelines.synthetic_driving --benchmark=madan_v4 --out DIR --seed 0 \
      --num_per_domain 120 --num_val 40 --height 64 --width 128

  The previous MADAN benchmark (kept, byte-identical):
  python -m input_pipelines.synthetic_driving --benchmark=madan_v2 --out DIR --seed 0 \
      --num_per_domain 120 --num_val 40 --height 64 --width 128

Writes, deterministically for a seed:
  OUT/gta5/        GTA5 format: images/NNNNN.png, labels/NNNNN.png (8-bit palette PNG,
                   indices = Cityscapes label ids), split.mat (80/10/10 train/val/test)
  OUT/synthia/     SYNTHIA-RAND-CITYSCAPES format: RGB/NNNNNNN.png,
                   GT/LABELS/NNNNNNN.png (16-bit RGB PNG: class id, instance id, 0)
  OUT/cityscapes/  Cityscapes format, train and val splits:
                   leftImg8bit/<split>/<city>/<city>_NNNNNN_000019_leftImg8bit.png,
                   gtFine/<split>/<city>/..._gtFine_labelIds.png (+ _labelTrainIds.png)
Benchmarks (`--benchmark`):
  v1        (default) one layout generator and 12 classes for every domain, three
            rendering styles (`input_pipelines.driving.synthetic_scenes`).
  madan_v2  a miniature of GTA5 + SYNTHIA -> Cityscapes: 19 classes in the target and
            GTA5-style source, no terrain/truck/train in the SYNTHIA-style source, a
            higher and more varied SYNTHIA camera, per-domain colour grading, texture,
            lighting and noise, each source close to the target on different classes
            (`input_pipelines.driving.synthetic_madan_bench`, which documents every
            parameter).
  madan_v3  neither source uses the target's
            street generator or camera, the sources are complementary in content and
            appearance, the target has no hood; `--perfect_translation` writes the sources'
            scenes rendered in the target's style (same layouts and labels)
            (`input_pipelines.driving.synthetic_madan_bench_v3`).
  madan_v4  madan_v3 with more SYNTHIA-style sky, nearer and more bicycles, a GTA5-style
            camera nearer the target's (`input_pipelines.driving.synthetic_madan_bench_v4`).
`--out` must be empty or absent; `--overwrite` clears a previous benchmark folder first.
Takes about a second per 100 images at 128x256 on one core (v1); madan_v2 about
0.4 s per 100 images at 64x128.
"""

import io
import json
import os
import shutil
import struct
import zlib

import numpy as np
from absl import app, flags
from PIL import Image

from input_pipelines.driving import labels as labels_lib
from input_pipelines.driving import (
    synthetic_madan_bench,
    synthetic_madan_bench_v3,
    synthetic_madan_bench_v4,
    synthetic_scenes,
)

DOMAINS = ("gta5", "synthia", "cityscapes")
BENCHMARKS = ("v1", "madan_v2", "madan_v3", "madan_v4")
# Benchmarks whose generator can render a perfect translation of the sources.
PERFECT_TRANSLATION = {
    "madan_v3": synthetic_madan_bench_v3,
    "madan_v4": synthetic_madan_bench_v4,
}
MANIFEST = "synthetic_driving.json"
_GTA5_STATIC_ID = 4  # Cityscapes "static"
_CITYSCAPES_EGO_ID = 1  # Cityscapes "ego vehicle"
_SYNTHIA_VOID, _SYNTHIA_LANEMARKING = 0, 22


def write_png16(path, array):
    """Writes a uint16 [H, W, 3] array as a 16-bit RGB PNG (the SYNTHIA label format)."""
    array = np.asarray(array, np.uint16)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"write_png16 needs [H, W, 3]. Received shape {array.shape}")
    height, width, _ = array.shape
    rows = array.astype(">u2").view(np.uint8).reshape(height, width * 6)
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1).tobytes()

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    with open(path, "wb") as handle:
        handle.write(
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 6))
            + chunk(b"IEND", b"")
        )


def write_png(path, array, palette=None):
    """Writes uint8 [H, W, 3] RGB or [H, W] grey / palette-index (if `palette`) PNG."""
    image = Image.fromarray(np.asarray(array, np.uint8))
    if palette is not None:
        if image.mode != "L":
            raise ValueError(f"palette PNGs need a [H, W] index array. Received mode {image.mode}")
        image.putpalette(np.asarray(palette, np.uint8).ravel().tolist())
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    with open(path, "wb") as handle:
        handle.write(buffer.getvalue())


def _cityscapes_ids(layout, ego_id=None, static_id=_GTA5_STATIC_ID):
    table = np.zeros(256, np.uint8)
    for train_id, label_id in labels_lib.TRAIN_ID_TO_CITYSCAPES_ID.items():
        table[train_id] = label_id
    ids = table[layout["train_ids"]]  # lane markings stay road, as in Cityscapes/GTA5
    ids[layout["static"]] = static_id
    if ego_id is not None:
        ids[layout["ego"]] = ego_id
    return ids


def _synthia_ids(layout):
    table = np.zeros(256, np.uint16)
    for train_id, synthia_id in labels_lib.TRAIN_ID_TO_SYNTHIA_ID.items():
        table[train_id] = synthia_id
    ids = table[layout["train_ids"]]
    ids[layout["lane"]] = _SYNTHIA_LANEMARKING
    ids[layout["static"]] = _SYNTHIA_VOID
    return np.stack([ids, layout["instances"].astype(np.uint16), np.zeros_like(ids)], axis=-1)


def _check_benchmark(benchmark):
    if benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r}; expected one of {BENCHMARKS}")


def _scenes(rng, count, height, width, style, benchmark="v1", perfect=False):
    _check_benchmark(benchmark)
    if benchmark in PERFECT_TRANSLATION:
        module = PERFECT_TRANSLATION[benchmark]
        yield from module.scenes(rng, count, height, width, style, perfect=perfect)
        return
    module = synthetic_scenes if benchmark == "v1" else synthetic_madan_bench
    for _ in range(count):
        layout = module.sample_layout(rng, height, width, style)
        yield layout, module.render(layout, style, rng)


def write_gta5(out_dir, rng, count, height, width, benchmark="v1", perfect=False):
    """Writes `count` GTA5-format examples and split.mat into `out_dir`."""
    import scipy.io

    os.makedirs(os.path.join(out_dir, "images"), exist_ok=True)
    os.makedirs(os.path.join(out_dir, "labels"), exist_ok=True)
    palette = labels_lib.cityscapes_id_palette()
    for index, (layout, image) in enumerate(
        _scenes(rng, count, height, width, "gta5", benchmark, perfect), start=1
    ):
        write_png(os.path.join(out_dir, "images", f"{index:05d}.png"), image)
        write_png(
            os.path.join(out_dir, "labels", f"{index:05d}.png"),
            _cityscapes_ids(layout),
            palette=palette,
        )
    ids = np.arange(1, count + 1)
    num_train = max(1, int(round(0.8 * count)))
    num_val = max(0, (count - num_train) // 2 if count > 2 else 0)
    scipy.io.savemat(
        os.path.join(out_dir, "split.mat"),
        {
            "trainIds": ids[:num_train, None].astype(np.float64),
            "valIds": ids[num_train : num_train + num_val, None].astype(np.float64),
            "testIds": ids[num_train + num_val :, None].astype(np.float64),
        },
    )


def write_synthia(out_dir, rng, count, height, width, benchmark="v1", perfect=False):
    """Writes `count` SYNTHIA-RAND-CITYSCAPES-format examples into `out_dir`."""
    os.makedirs(os.path.join(out_dir, "RGB"), exist_ok=True)
    os.makedirs(os.path.join(out_dir, "GT", "LABELS"), exist_ok=True)
    for index, (layout, image) in enumerate(
        _scenes(rng, count, height, width, "synthia", benchmark, perfect)
    ):
        write_png(os.path.join(out_dir, "RGB", f"{index:07d}.png"), image)
        write_png16(os.path.join(out_dir, "GT", "LABELS", f"{index:07d}.png"), _synthia_ids(layout))


def write_cityscapes(out_dir, rng, split, count, height, width, city, benchmark="v1"):
    """Writes `count` Cityscapes-format examples of `split` (city `city`) into `out_dir`."""
    image_dir = os.path.join(out_dir, "leftImg8bit", split, city)
    label_dir = os.path.join(out_dir, "gtFine", split, city)
    os.makedirs(image_dir, exist_ok=True)
    os.makedirs(label_dir, exist_ok=True)
    for index, (layout, image) in enumerate(
        _scenes(rng, count, height, width, "cityscapes", benchmark)
    ):
        stem = f"{city}_{index:06d}_000019"
        label_ids = _cityscapes_ids(layout, ego_id=_CITYSCAPES_EGO_ID)
        write_png(os.path.join(image_dir, f"{stem}_leftImg8bit.png"), image)
        write_png(os.path.join(label_dir, f"{stem}_gtFine_labelIds.png"), label_ids)
        train_ids = labels_lib.map_to_train_ids(label_ids, "cityscapes").astype(np.uint8)
        write_png(os.path.join(label_dir, f"{stem}_gtFine_labelTrainIds.png"), train_ids)


def generate(
    out_dir,
    *,
    seed=0,
    num_per_domain=60,
    num_val=None,
    height=128,
    width=256,
    domains=DOMAINS,
    benchmark="v1",
    perfect_translation=False,
):
    """Generates the benchmark; deterministic for a given seed and sizes.

    Args:
      out_dir: output root (created).
      seed: random seed; each domain (and the Cityscapes val split) has its own stream.
      num_per_domain: examples per source domain and in the Cityscapes train split.
      num_val: examples in the Cityscapes val split (default max(1, num_per_domain // 3)).
      height, width: image size of every domain.
      domains: subset of ("gta5", "synthia", "cityscapes").
      benchmark: "v1" (default, the original generator) or "madan_v2" (the GTA5 +
        SYNTHIA -> Cityscapes miniature, `synthetic_madan_bench`) or "madan_v3"
        (`synthetic_madan_bench_v3`, complementary sources, no hood) or "madan_v4"
        (`synthetic_madan_bench_v4`: v3 with the changes its design criteria called for).
      perfect_translation: madan_v3 / madan_v4 only: render the sources' scenes in the
        target's style (the same layouts, labels and files as without it): a perfect translation.

    Returns:
      dict domain -> data_dir.
    """
    if num_per_domain < 1 or height < 16 or width < 16:
        raise ValueError(
            f"need num_per_domain >= 1 and height, width >= 16. Received: "
            f"num_per_domain={num_per_domain}, height={height}, width={width}"
        )
    _check_benchmark(benchmark)
    if num_val is not None and num_val < 1:
        raise ValueError(f"need num_val >= 1 (the target val split). Received: num_val={num_val}")
    if perfect_translation and benchmark not in PERFECT_TRANSLATION:
        raise ValueError(
            f"perfect_translation needs benchmark in {sorted(PERFECT_TRANSLATION)}. "
            f"Received: benchmark={benchmark!r}"
        )
    unknown = set(domains) - set(DOMAINS)
    if unknown:
        raise ValueError(f"unknown domains {sorted(unknown)}; expected a subset of {DOMAINS}")
    num_val = max(1, num_per_domain // 3) if num_val is None else int(num_val)
    paths = {}
    for index, domain in enumerate(DOMAINS):
        if domain not in domains:
            continue
        rng = np.random.default_rng([seed, index])
        path = os.path.join(out_dir, domain)
        if domain == "gta5":
            write_gta5(path, rng, num_per_domain, height, width, benchmark, perfect_translation)
        elif domain == "synthia":
            write_synthia(path, rng, num_per_domain, height, width, benchmark, perfect_translation)
        else:
            write_cityscapes(
                path, rng, "train", num_per_domain, height, width, "synthtown", benchmark
            )
            val_rng = np.random.default_rng([seed, index, 1])
            write_cityscapes(path, val_rng, "val", num_val, height, width, "synthvale", benchmark)
        paths[domain] = path
    manifest = {
        "benchmark": benchmark,
        "seed": seed,
        "num_per_domain": num_per_domain,
        "num_val": num_val,
        "height": height,
        "width": width,
        "domains": sorted(paths),
    }
    if perfect_translation:
        manifest["perfect_translation"] = True
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, MANIFEST), "w") as handle:
        json.dump(manifest, handle, indent=2)
    return paths


def prepare_output_dir(out_dir, *, overwrite):
    """Makes sure `out_dir` starts empty, so old files never mix with a new benchmark.

    A non-empty folder is an error unless `overwrite`; then it is cleared, but only when it
    holds nothing except a benchmark's entries (the domain folders and the manifest), so a
    mistyped `--out` never deletes unrelated files.
    """
    if not os.path.isdir(out_dir) or not os.listdir(out_dir):
        return
    entries = sorted(os.listdir(out_dir))
    if not overwrite:
        raise ValueError(
            f"--out={out_dir} is not empty ({len(entries)} entries: {entries[:5]}); a new "
            "benchmark would mix with the old files. Pass --overwrite to clear it, or an "
            "empty --out."
        )
    foreign = [e for e in entries if e not in (*DOMAINS, MANIFEST)]
    if foreign:
        raise ValueError(
            f"--overwrite refuses to clear --out={out_dir}: it holds entries that no benchmark "
            f"writes: {foreign[:5]}"
        )
    for entry in entries:
        path = os.path.join(out_dir, entry)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)


def define_flags(flag_values=flags.FLAGS):
    """Defines the command-line flags on `flag_values` (called only when run as a program, so
    importing `generate` from this module never registers flags)."""
    fv = dict(flag_values=flag_values)
    flags.DEFINE_string("out", None, "Output directory (empty or absent).", required=True, **fv)
    flags.DEFINE_integer("seed", 0, "Random seed.", **fv)
    flags.DEFINE_integer("num_per_domain", 60, "Examples per domain (Cityscapes: train).", **fv)
    flags.DEFINE_integer("num_val", None, "Cityscapes val examples.", **fv)
    flags.DEFINE_integer("height", 128, "Image height.", **fv)
    flags.DEFINE_integer("width", 256, "Image width.", **fv)
    flags.DEFINE_enum(
        "benchmark",
        "v1",
        list(BENCHMARKS),
        "v1: original generator; madan_v2: GTA5 + SYNTHIA -> Cityscapes miniature; madan_v3: "
        "complementary sources, no hood; madan_v4: v3 with more SYNTHIA sky, nearer bicycles and "
        "a GTA5 camera nearer the target's (docs/driving.md).",
        **fv,
    )
    flags.DEFINE_bool(
        "perfect_translation",
        False,
        "madan_v3 / madan_v4: write the sources' scenes rendered in the target's style "
        "(same labels).",
        **fv,
    )
    flags.DEFINE_bool(
        "overwrite", False, "Clear a non-empty --out (a previous benchmark) first.", **fv
    )
    # Counts < 1 would write an empty split that a later run trains or evaluates on.
    flags.register_validator(
        "num_per_domain", lambda v: v >= 1, message="--num_per_domain must be >= 1", **fv
    )
    flags.register_validator(
        "num_val", lambda v: v is None or v >= 1, message="--num_val must be >= 1", **fv
    )


def run(values):
    """Clears or checks `--out`, then generates; returns {domain: data_dir}."""
    try:
        prepare_output_dir(values.out, overwrite=values.overwrite)
    except ValueError as error:
        raise app.UsageError(str(error)) from error
    return generate(
        values.out,
        seed=values.seed,
        num_per_domain=values.num_per_domain,
        num_val=values.num_val,
        height=values.height,
        width=values.width,
        benchmark=values.benchmark,
        perfect_translation=values.perfect_translation,
    )


def main(argv):
    del argv
    print(json.dumps(run(flags.FLAGS), indent=2))


if __name__ == "__main__":
    define_flags()
    app.run(main)
