"""Streaming confusion-matrix mIoU for semantic segmentation (MADAN spec §4.2).

Protocol: argmax over all 19 logits; one 19x19 confusion matrix accumulated over the
whole split (no cut-off, unlike the official code's 528-image loop);
IoU_c = tp_c / (gt_c + pred_c - tp_c). Classes absent from both ground truth and
prediction have no IoU (NaN) and are left out of the means. The 16-class mIoU averages
the 16 classes shared with SYNTHIA (`labels.CLASSES_16`).
"""

import keras
import numpy as np
import tensorflow as tf

from input_pipelines.driving import labels as labels_lib


class MeanIoU(keras.metrics.Metric):
    """Mean intersection-over-union from a streaming confusion matrix.

    The confusion matrix is a sum-aggregated, on-read-synchronised variable, so under
    `tf.distribute` strategies each replica accumulates its own counts and `result()`
    reads their sum: two replicas give the same value as one device.

    Args:
      num_classes: number of classes C.
      ignore_label: label value excluded from the counts.
      name: metric name.
    """

    def __init__(
        self,
        num_classes=labels_lib.NUM_CLASSES,
        ignore_label=labels_lib.IGNORE_LABEL,
        name="mean_iou",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        if int(num_classes) < 2:
            raise ValueError(f"num_classes must be >= 2. Received: num_classes={num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_label = int(ignore_label)
        # float64 counts are exact up to 2**53 pixels.
        self.confusion = self.add_variable(
            shape=(self.num_classes, self.num_classes),
            initializer="zeros",
            dtype="float64",
            name="confusion_matrix",
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Accumulates a batch.

        Args:
          y_true: int [B, H, W] (or [B, H, W, 1]) train ids, `ignore_label` ignored.
          y_pred: logits [B, h, w, C] (bilinearly resized to H x W if smaller) or int
            class ids [B, H, W].
          sample_weight: optional per-pixel weights broadcastable to [B, H, W].
        """
        y_true = tf.convert_to_tensor(y_true)
        if y_true.shape.rank == 4:
            y_true = y_true[..., 0]
        y_true = tf.cast(y_true, tf.int32)
        y_pred = tf.convert_to_tensor(y_pred)
        if y_pred.shape.rank == 4:
            if y_pred.shape[-1] != self.num_classes:
                raise ValueError(
                    f"y_pred has {y_pred.shape[-1]} channels but num_classes={self.num_classes}"
                )
            label_size = tf.shape(y_true)[1:3]
            y_pred = tf.cond(
                tf.reduce_all(tf.equal(tf.shape(y_pred)[1:3], label_size)),
                lambda: y_pred,
                lambda: tf.cast(
                    tf.image.resize(y_pred, label_size, method="bilinear"), y_pred.dtype
                ),
            )
            y_pred = tf.argmax(y_pred, axis=-1, output_type=tf.int32)
        y_pred = tf.cast(y_pred, tf.int32)
        valid = tf.logical_and(tf.not_equal(y_true, self.ignore_label), y_true >= 0)
        valid = tf.logical_and(valid, y_true < self.num_classes)
        weights = tf.ones_like(y_true, tf.float64)
        if sample_weight is not None:
            weights = tf.broadcast_to(tf.cast(sample_weight, tf.float64), tf.shape(y_true))
        index = tf.boolean_mask(y_true * self.num_classes + y_pred, valid)
        counts = tf.math.unsorted_segment_sum(
            tf.boolean_mask(weights, valid), index, self.num_classes * self.num_classes
        )
        self.confusion.assign_add(tf.reshape(counts, [self.num_classes, self.num_classes]))

    def _iou(self):
        confusion = tf.convert_to_tensor(self.confusion)
        true_positive = tf.linalg.diag_part(confusion)
        union = tf.reduce_sum(confusion, 0) + tf.reduce_sum(confusion, 1) - true_positive
        return tf.where(union > 0, true_positive / tf.maximum(union, 1.0), np.nan)

    def result(self):
        """19-class mIoU (mean over classes present in truth or prediction), float32."""
        iou = self._iou()
        present = tf.logical_not(tf.math.is_nan(iou))
        return tf.cast(tf.reduce_mean(tf.boolean_mask(iou, present)), tf.float32)

    def reset_state(self):
        self.confusion.assign(tf.zeros_like(self.confusion))

    def confusion_matrix(self):
        """Returns the float64 numpy [C, C] matrix (rows = ground truth, cols = prediction)."""
        return np.asarray(tf.convert_to_tensor(self.confusion))

    def per_class_iou(self):
        """Returns float64 numpy [C] IoUs, NaN for classes absent from truth and prediction."""
        return np.asarray(self._iou())

    def miou_16(self):
        """Mean IoU over the 16 SYNTHIA-shared classes present (needs num_classes=19)."""
        if self.num_classes != labels_lib.NUM_CLASSES:
            raise ValueError(
                f"miou_16 needs num_classes=19. Received: num_classes={self.num_classes}"
            )
        iou = self.per_class_iou()[list(labels_lib.CLASSES_16)]
        return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")

    def pixel_accuracy(self):
        """Fraction of valid pixels predicted correctly."""
        confusion = self.confusion_matrix()
        total = confusion.sum()
        return float(np.trace(confusion) / total) if total else float("nan")

    def mean_class_accuracy(self):
        """Mean over classes present in the ground truth of per-class recall."""
        confusion = self.confusion_matrix()
        support = confusion.sum(1)
        return float(np.mean(np.diag(confusion)[support > 0] / support[support > 0]))

    def frequency_weighted_iou(self):
        """Ground-truth-frequency-weighted IoU."""
        confusion = self.confusion_matrix()
        frequency = confusion.sum(1) / max(confusion.sum(), 1.0)
        iou = np.nan_to_num(self.per_class_iou())
        return float((frequency * iou).sum())

    def summary(self):
        """Returns a dict of all scores (IoUs as fractions; per-class keyed by name)."""
        names = self._names()
        return {
            "miou_19": float(self.result()),
            "miou_16": self.miou_16() if self.num_classes == labels_lib.NUM_CLASSES else None,
            "pixel_accuracy": self.pixel_accuracy(),
            "mean_class_accuracy": self.mean_class_accuracy(),
            "fw_iou": self.frequency_weighted_iou(),
            "per_class_iou": {
                n: (None if np.isnan(v) else float(v)) for n, v in zip(names, self.per_class_iou())
            },
        }

    def _names(self):
        if self.num_classes == labels_lib.NUM_CLASSES:
            return labels_lib.TRAIN_ID_NAMES
        return tuple(f"class_{i}" for i in range(self.num_classes))

    def table(self):
        """Returns a printable per-class IoU table (percent) with the summary rows."""
        iou = self.per_class_iou()
        support = self.confusion_matrix().sum(1)
        lines = [f"{'id':>3} {'class':<14} {'IoU %':>7} {'16':>3} {'gt pixels':>12}"]
        for index, name in enumerate(self._names()):
            value = "    n/a" if np.isnan(iou[index]) else f"{100 * iou[index]:7.2f}"
            in_16 = "x" if index in labels_lib.CLASSES_16 else ""
            lines.append(f"{index:>3} {name:<14} {value} {in_16:>3} {int(support[index]):>12d}")
        lines.append(f"mIoU (19 classes): {100 * float(self.result()):.2f}")
        if self.num_classes == labels_lib.NUM_CLASSES:
            lines.append(f"mIoU (16 classes): {100 * self.miou_16():.2f}")
        lines.append(f"pixel accuracy:    {100 * self.pixel_accuracy():.2f}")
        return "\n".join(lines)

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "ignore_label": self.ignore_label,
        }
