"""Demo section: MADAN on a small synthetic multi-domain benchmark (tf_madan.demo)."""

import os

from tf_madan import demo


def run(workdir, context=None):
    """Runs `tf_madan.demo.run_demo`; returns the mIoU table, translation grid and overlay."""
    result = demo.run_demo(workdir)
    grid = os.path.relpath(result["translation_grid"], workdir)
    overlay = os.path.relpath(result["segmentation_overlay"], workdir)
    markdown = "\n".join(
        [
            "Target mIoU (synthetic GTA5-style + SYNTHIA-style sources -> Cityscapes-style target):",
            "",
            result["table"],
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
