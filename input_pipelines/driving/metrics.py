"""Streaming confusion-matrix mIoU for semantic segmentation (MADAN spec §4.2).

Protocol (the official `scripts/eval_fcn.py` of Luodian/MADAN and CyCADA): argmax over
all 19 logits; one 19x19 confusion matrix accumulated over the whole split (no cut-off,
unlike the official code's 528-image loop); IoU_c = tp_c / (gt_c + pred_c - tp_c + 1e-8),
so a class absent from both ground truth and prediction has IoU 0 and still counts.

  miou_16   (sum of the IoUs of the 16 SYNTHIA-shared classes) / 16
  miou_19   (sum of the 19 IoUs) / 19 (the code's `np.nanmean(iu)`: with the 1e-8 no IoU
            is NaN, so it is the plain mean over all 19 classes)
  miou_over(classes)  mean over a FIXED class set, e.g. `gt_present_classes()` of the
            split: a benchmark lacking classes reports this as a second column
            (`miou_16_gt_present` in `summary()`), never a set that varies per method.
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
        # The official 1e-8: an empty class scores 0 and is averaged like any other.
        return true_positive / (union + 1e-8)

    def result(self):
        """mIoU over all C classes (absent classes count as 0), float32."""
        return tf.cast(tf.reduce_mean(self._iou()), tf.float32)

    def reset_state(self):
        self.confusion.assign(tf.zeros_like(self.confusion))

    def confusion_matrix(self):
        """Returns the float64 numpy [C, C] matrix (rows = ground truth, cols = prediction)."""
        return np.asarray(tf.convert_to_tensor(self.confusion))

    def per_class_iou(self):
        """Returns float64 numpy [C] IoUs (0 for classes absent from truth and prediction)."""
        return np.asarray(self._iou())

    def present_classes(self):
        """Class ids with a non-zero union (in the ground truth or the prediction)."""
        confusion = self.confusion_matrix()
        union = confusion.sum(0) + confusion.sum(1) - np.diag(confusion)
        return tuple(int(c) for c in np.flatnonzero(union > 0))

    def gt_present_classes(self, classes=None):
        """Class ids with ground-truth pixels in the split, optionally within `classes`.

        This depends on the split only (not on the predictions), so it is a fixed class set
        for every method evaluated on the split.
        """
        support = self.confusion_matrix().sum(1)
        keep = range(self.num_classes) if classes is None else classes
        return tuple(int(c) for c in keep if support[int(c)] > 0)

    def miou_over(self, classes):
        """(Sum of the IoUs of `classes`) / len(classes), a fraction.

        Args:
          classes: non-empty sequence of distinct class ids in [0, C).

        Raises:
          ValueError: for an empty, repeated or out-of-range class set.
        """
        classes = [int(c) for c in classes]
        if not classes:
            raise ValueError("miou_over needs a non-empty class set. Received: classes=()")
        if (
            len(set(classes)) != len(classes)
            or min(classes) < 0
            or max(classes) >= self.num_classes
        ):
            raise ValueError(
                f"miou_over needs distinct class ids in [0, {self.num_classes}). "
                f"Received: classes={tuple(classes)}"
            )
        return float(self.per_class_iou()[classes].sum() / len(classes))

    def miou_16(self):
        """(Sum of the IoUs of the 16 SYNTHIA-shared classes) / 16 (needs num_classes=19)."""
        self._check_19("miou_16")
        return self.miou_over(labels_lib.CLASSES_16)

    def miou_16_gt_present(self):
        """Mean IoU over the 16-class-protocol classes present in the split's ground truth.

        NaN when the split has no ground truth among the 16 classes.
        """
        self._check_19("miou_16_gt_present")
        classes = self.gt_present_classes(labels_lib.CLASSES_16)
        return self.miou_over(classes) if classes else float("nan")

    def _check_19(self, name):
        if self.num_classes != labels_lib.NUM_CLASSES:
            raise ValueError(
                f"{name} needs num_classes=19. Received: num_classes={self.num_classes}"
            )

    def pixel_accuracy(self):
        """Fraction of valid pixels predicted correctly."""
        confusion = self.confusion_matrix()
        total = confusion.sum()
        return float(np.trace(confusion) / total) if total else float("nan")

    def mean_class_accuracy(self):
        """Mean over all C classes of per-class recall tp / (gt + 1e-8) (absent = 0), as the code."""
        confusion = self.confusion_matrix()
        return float(np.mean(np.diag(confusion) / (confusion.sum(1) + 1e-8)))

    def frequency_weighted_iou(self):
        """Ground-truth-frequency-weighted IoU."""
        confusion = self.confusion_matrix()
        frequency = confusion.sum(1) / max(confusion.sum(), 1.0)
        return float((frequency * self.per_class_iou()).sum())

    def summary(self):
        """Returns a dict of all scores in PERCENT (per-class keyed by name).

        The results files, tables and `tf_madan.evaluation` use this unit; the scalar methods
        above (`result`, `miou_16`, `pixel_accuracy`, ...) are fractions, as every Keras metric.

        Keys: "miou_19", "miou_16", "miou_16_gt_present" (fixed set: the 16-protocol
        classes with ground truth in the split), "gt_present_classes" (that set, by name),
        "pixel_accuracy", "mean_class_accuracy", "fw_iou", "per_class_iou" ({name: IoU %, None
        when the class is absent from truth and prediction}); None / NaN where undefined.
        """
        names = self._names()
        is_19 = self.num_classes == labels_lib.NUM_CLASSES
        present = set(self.present_classes())

        def percent(value):
            return None if value is None else 100.0 * float(value)

        return {
            "miou_19": percent(self.result()),
            "miou_16": percent(self.miou_16()) if is_19 else None,
            "miou_16_gt_present": percent(self.miou_16_gt_present()) if is_19 else None,
            "gt_present_classes": [
                names[c] for c in self.gt_present_classes(labels_lib.CLASSES_16 if is_19 else None)
            ],
            "pixel_accuracy": percent(self.pixel_accuracy()),
            "mean_class_accuracy": percent(self.mean_class_accuracy()),
            "fw_iou": percent(self.frequency_weighted_iou()),
            "per_class_iou": {
                n: (percent(v) if i in present else None)
                for i, (n, v) in enumerate(zip(names, self.per_class_iou()))
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
        present = set(self.present_classes())
        lines = [f"{'id':>3} {'class':<14} {'IoU %':>7} {'16':>3} {'gt pixels':>12}"]
        for index, name in enumerate(self._names()):
            value = f"{100 * iou[index]:7.2f}" if index in present else "    n/a"
            in_16 = "x" if index in labels_lib.CLASSES_16 else ""
            lines.append(f"{index:>3} {name:<14} {value} {in_16:>3} {int(support[index]):>12d}")
        lines.append(f"mIoU (19 classes): {100 * float(self.result()):.2f}")
        if self.num_classes == labels_lib.NUM_CLASSES:
            lines.append(f"mIoU (16 classes): {100 * self.miou_16():.2f}")
            count = len(self.gt_present_classes(labels_lib.CLASSES_16))
            lines.append(
                f"mIoU (16-protocol classes in GT, n={count}): {100 * self.miou_16_gt_present():.2f}"
            )
        lines.append(f"pixel accuracy:    {100 * self.pixel_accuracy():.2f}")
        return "\n".join(lines)

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "ignore_label": self.ignore_label,
        }
