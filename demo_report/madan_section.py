"""Demo section: MADAN on a small synthetic multi-domain benchmark (tf_madan.demo)."""

import os

from tf_madan import demo
from tf_madan.configs import demo as demo_config

# Images per synthetic domain: half of `tf_madan.demo`'s default, since only the data generation
# and the translate stages read every image (training draws random crops). The target validation
# images, which the mIoU table is computed on, stay at `tf_madan.demo`'s default of 20.
NUM_PER_DOMAIN, NUM_VAL = 30, 20


def scale_note(config, num_per_domain=NUM_PER_DOMAIN, num_val=NUM_VAL):
    """One sentence with the run's size, read from `config`: what the table can and cannot show."""
    gan, crop = config.gan, config.data.gan_crop_size
    return (
        f"Demo scale, one seed: {num_per_domain} images per domain ({num_val} target validation "
        f"images), CycleGANs trained {gan.steps_per_epoch * gan.daig_epochs} DAIG + "
        f"{gan.steps_per_epoch * gan.ada_epochs} ADA steps on {crop}x{crop} crops, "
        f"{config.seg.source_only_steps} steps per source-only segmenter, {config.seg.steps} per "
        f"adapted one, {config.fla.steps} FLA steps. At this size the table shows that every "
        "stage runs end to end, not the method's gain (see docs/tf_madan.md for the "
        "`cpu_benchmark` runs)."
    )


def run(workdir, context=None):
    """Runs `tf_madan.demo.run_demo`; returns the mIoU table, translation grid and overlay."""
    result = demo.run_demo(workdir, num_per_domain=NUM_PER_DOMAIN, num_val=NUM_VAL)
    grid = os.path.relpath(result["translation_grid"], workdir)
    overlay = os.path.relpath(result["segmentation_overlay"], workdir)
    markdown = "\n".join(
        [
            "Target mIoU (synthetic GTA5-style + SYNTHIA-style sources -> Cityscapes-style target):",
            "",
            result["table"],
            scale_note(demo_config.get_config()),
            "",
            f"![translation grid: source / adapted / cycled]({grid})",
            "",
            f"![segmentation: image / prediction overlay / ground truth]({overlay})",
            "",
        ]
    )
    return {
        "markdown": markdown,
        "images": [result["translation_grid"], result["segmentation_overlay"]],
        "result": result,
    }
