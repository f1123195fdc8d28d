"""Demo section: the embedded datasets the default runs train on, with a sample grid."""

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from input_pipelines import classification  # noqa: E402


def run(workdir, context=None):
    """Counts per split and a PNG of the first images of each embedded dataset.

    Returns:
      dict with `markdown` (table + image link) and `images` (PNG paths).
    """
    os.makedirs(workdir, exist_ok=True)
    rows = [
        "| dataset | train | validation | test | image shape | classes |",
        "|---|---|---|---|---|---|",
    ]
    figure, axes = plt.subplots(2, 10, figsize=(10, 2.4))
    for row, name in enumerate(("digits", "mnist5k")):
        # Each split read once (the embedded loaders parse their package's files on every call);
        # the sample row is the first ten test images.
        splits = {split: classification.load_arrays(name, split) for split in classification.SPLITS}
        sizes = [len(splits[split][1]) for split in classification.SPLITS]
        info = classification.dataset_info(name)
        rows.append(
            f"| {name} | {' | '.join(map(str, sizes))} | {info.image_shape} | {info.num_classes} |"
        )
        images, labels = (array[:10] for array in splits["test"])
        for column in range(10):
            axes[row, column].imshow(np.squeeze(images[column]), cmap="gray")
            axes[row, column].set_title(f"{name}:{labels[column]}", fontsize=6)
            axes[row, column].axis("off")
    path = os.path.join(workdir, "embedded_samples.png")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    markdown = "\n".join(rows) + f"\n\n![embedded samples]({os.path.basename(path)})\n"
    return {"markdown": markdown, "images": [path]}
