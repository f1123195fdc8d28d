r"""Benchmark "madan_v4": `madan_v3` with the three changes its design criteria called for.

`madan_v3` (`synthetic_madan_bench_v3`, whose docstring describes the scenes) missed two of
its four design criteria (docs/driving.md, "Benchmark madan_v3"), measured with perfect
translations and target labels only:

  * raw sky winner flipped with the training seed: 56% of SYNTHIA-style frames look down from
    elevated viewpoints and show no sky, so the SYNTHIA-style segmenter rarely learned sky
    (IoU 4-27), while the GTA5-style one sometimes learned "top of the frame" (0-47).
    SYNTHIA-RAND-CITYSCAPES frames, elevated or not, mostly show sky: the horizon of the
    SYNTHIA-style camera is drawn from 0.10-0.45 of the height (v3: -0.15-0.45).
  * raw bicycle was 0.0 vs 0.1-0.7, not a win: bicycles at up to 40 m from a camera up to
    12 m high are a few pixels at 64x128. SYNTHIA-style bicycles are nearer (up to 20 m) and
    more frequent (4.0 per image, v3: 2.5); the target has 1.0 per image (Cityscapes: ~1.2
    bicycles per fine-annotated image; v3: 0.5), its two-wheelers up to 30 m away (v3: 40),
    so its bicycle IoU rests on more pixels.
  * a stage-sized PatchGAN separated perfect GTA5-style translations from target images with
    accuracy 0.607 (data seed 0; 0.565 on seed 7), over the 0.6 limit. v3's design found the
    road width to be what it keys on (GTA5-style half widths 5-9 m: 0.67; 3.5-7 m: 0.58; the
    target's 3-6 m: 0.51, whatever the camera): the GTA5-style roads now have the target's
    width, and its chase camera moves toward the target's rig (height 1.3-2.0 m, v3 1.5-2.6;
    horizon 0.38-0.47, v3 0.34-0.48; focal 0.90-1.05 x W, v3 0.80-1.00), still above and
    wider than it; its buildings, facade gaps, setbacks and content stay its own.
Two drafts were measured on data seed 0 (training seeds 0 / 1 / 2) before the freeze:
  draft 1 (SYNTHIA bicycles 3.0 up to 25 m, target two-wheelers up to 40 m, GTA5-style camera
  1.3-2.2 m / 0.36-0.47 / 0.85-1.05, v3's GTA5-style roads): every criterion met, two at the
  limit (raw bicycle 1.02 vs 0.0; artefact accuracy 0.5996);
  draft 2 (the bicycle and camera values above, v3's GTA5-style roads): headroom 6.1, raw
  bicycle 1.38 vs 0.0, sky 48.0 vs 3.0, artefact accuracy 0.602 +- 0.024 (missed by 0.002;
  the camera did not move it), hence the road width.
The frozen generator (this file) was committed before its own measurement; docs/driving.md
gives that measurement on the design data seed and on a held-out one.

Everything else is v3's (the rest of the streets and content, renderer, styles, file formats,
per-image streams so that `render_perfect` re-renders any source scene in the target's style).
These values were set from the v3 measurements above and the real datasets, before any
adaptation method ran on v4; its criteria are in docs/driving.md, "Benchmark madan_v4".
"""

from input_pipelines.driving import synthetic_madan_bench_v3 as v3
from input_pipelines.driving.synthetic_madan_bench_v3 import (  # noqa: F401 (re-exported)
    BICYCLE,
    CAR,
    DOMAINS,
    FENCE,
    PERSON,
    POLE,
    RIDER,
    ROAD,
    SIDEWALK,
    SKY,
    SYNTHIA_MISSING,
    TARGET,
    VEGETATION,
    WALL,
    horizon_row,
    render,
    render_perfect,
)

CAMERAS = {
    "cityscapes": v3.CAMERAS["cityscapes"],
    "gta5": dict(
        height=(1.3, 2.0), log_height=False, horizon=(0.38, 0.47), focal=(0.90, 1.05), yaw=0.06
    ),
    "synthia": dict(v3.CAMERAS["synthia"], horizon=(0.10, 0.45)),
}
# GTA5-style roads as wide as the target's (v3: 3.5-7 m half width); buildings, facade gaps
# and setbacks stay GTA5-style.
STREETS = {
    **v3.STREETS,
    "gta5": dict(v3.STREETS["gta5"], road_half=v3.STREETS["cityscapes"]["road_half"]),
}
CONTENT = {
    "cityscapes": dict(v3.CONTENT["cityscapes"], bicycles=1.0, two_wheeler_far=30.0),
    "gta5": dict(v3.CONTENT["gta5"]),
    "synthia": dict(v3.CONTENT["synthia"], bicycles=4.0, two_wheeler_far=20.0),
}


def sample_layout(rng, height, width, domain):
    """One scene of `domain` with v4's cameras, streets and content (v3's scene builder)."""
    return v3.sample_layout(
        rng, height, width, domain, cameras=CAMERAS, streets=STREETS, content=CONTENT
    )


def scene(image_seed, height, width, domain, *, perfect=False):
    """One scene from its integer seed, as `synthetic_madan_bench_v3.scene`."""
    return v3.scene(image_seed, height, width, domain, perfect=perfect, layout_fn=sample_layout)


def scenes(rng, count, height, width, domain, *, perfect=False):
    """Yields `count` (layout, image) pairs of `domain`; image seeds are drawn from `rng`."""
    yield from v3.scenes(rng, count, height, width, domain, perfect=perfect,
                         layout_fn=sample_layout)  # fmt: skip
