"""Reads image sizes and formats from PNG/JPEG headers without decoding the pixels.

Used while building a file list, so that a mismatched or unreadable file is reported
before the first training step instead of mid-epoch.
"""

import dataclasses
import struct

import tensorflow as tf

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# PNG colour types: 0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA.
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_JPEG_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


@dataclasses.dataclass(frozen=True)
class ImageHeader:
    """Format facts of one image file.

    Attributes:
      height: rows.
      width: columns.
      channels: stored channels (a palette PNG has 1).
      bit_depth: bits per sample (8 or 16).
      kind: "png" or "jpeg".
      png_color_type: PNG colour type (0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA);
        None for JPEG.
    """

    height: int
    width: int
    channels: int
    bit_depth: int
    kind: str
    png_color_type: int | None = None


def _read_jpeg_header(handle, path):
    handle.seek(2)
    while True:
        byte = handle.read(1)
        if not byte:
            raise ValueError(f"Unreadable image file {path}: JPEG without a frame header")
        if byte != b"\xff":
            continue
        marker = handle.read(1)
        while marker == b"\xff":
            marker = handle.read(1)
        if not marker:
            raise ValueError(f"Unreadable image file {path}: truncated JPEG header")
        code = marker[0]
        if code in (0xD8, 0x01) or 0xD0 <= code <= 0xD7:
            continue  # markers without a length field
        length_bytes = handle.read(2)
        if len(length_bytes) < 2:
            raise ValueError(f"Unreadable image file {path}: truncated JPEG header")
        (length,) = struct.unpack(">H", length_bytes)
        if code in _JPEG_SOF_MARKERS:
            data = handle.read(6)
            if len(data) < 6:
                raise ValueError(f"Unreadable image file {path}: truncated JPEG frame header")
            precision, height, width, channels = struct.unpack(">BHHB", data)
            return ImageHeader(height, width, channels, precision, "jpeg")
        handle.seek(length - 2, 1)


def read_image_header(path):
    """Reads the size and sample format of a PNG or JPEG file.

    Args:
      path: file path (anything `tf.io.gfile` opens).

    Returns:
      `ImageHeader`.

    Raises:
      FileNotFoundError: if the file does not exist.
      ValueError: naming the file, if it is neither a readable PNG nor a JPEG.
    """
    path = str(path)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"Image file not found: {path}")
    with tf.io.gfile.GFile(path, "rb") as handle:
        head = handle.read(33)
        if head.startswith(_PNG_SIGNATURE):
            if len(head) < 33 or head[12:16] != b"IHDR":
                raise ValueError(f"Unreadable image file {path}: truncated PNG header")
            width, height, bit_depth, color_type = struct.unpack(">IIBB", head[16:26])
            if color_type not in _PNG_CHANNELS or width == 0 or height == 0:
                raise ValueError(f"Unreadable image file {path}: invalid PNG header")
            return ImageHeader(
                height, width, _PNG_CHANNELS[color_type], bit_depth, "png", color_type
            )
        if head.startswith(b"\xff\xd8"):
            return _read_jpeg_header(handle, path)
    raise ValueError(f"Unreadable image file {path}: not a PNG or JPEG file")
