"""PNG grids of attribution maps over their input images."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _display(image):
    image = np.asarray(image, np.float32)
    low, high = image.min(), image.max()
    image = (image - low) / (high - low) if high > low else np.zeros_like(image)
    return image[..., 0] if image.shape[-1] == 1 else image


def save_classification_grid(path, images, maps, labels, predictions=None):
    """One row per image: the input, then each map in `maps` ({name: [N, H, W]}) overlaid on it."""
    images = np.asarray(images)
    names = list(maps)
    rows, columns = images.shape[0], 1 + len(names)
    figure, axes = plt.subplots(rows, columns, figsize=(1.8 * columns, 1.8 * rows), squeeze=False)
    for n in range(rows):
        base = _display(images[n])
        title = f"label {int(labels[n])}"
        if predictions is not None:
            title += f" / pred {int(predictions[n])}"
        axes[n, 0].imshow(base, cmap="gray" if base.ndim == 2 else None)
        axes[n, 0].set_title(title, fontsize=7)
        for c, name in enumerate(names, start=1):
            axes[n, c].imshow(base, cmap="gray" if base.ndim == 2 else None)
            axes[n, c].imshow(maps[name][n], cmap="jet", alpha=0.5, vmin=0, vmax=1)
            axes[n, c].set_title(name, fontsize=7)
    for axis in axes.flat:
        axis.axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def save_segmentation_grid(path, images, class_maps, class_names):
    """One row per image: the input, then one Grad-CAM per class ([N, K, H, W])."""
    images = np.asarray(images)
    rows, columns = images.shape[0], 1 + len(class_names)
    figure, axes = plt.subplots(rows, columns, figsize=(2.2 * columns, 1.6 * rows), squeeze=False)
    for n in range(rows):
        base = _display(images[n])
        axes[n, 0].imshow(base)
        axes[n, 0].set_title("image", fontsize=7)
        for k, name in enumerate(class_names, start=1):
            axes[n, k].imshow(base)
            axes[n, k].imshow(class_maps[n, k - 1], cmap="jet", alpha=0.5, vmin=0, vmax=1)
            axes[n, k].set_title(f"Grad-CAM: {name}", fontsize=7)
    for axis in axes.flat:
        axis.axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
