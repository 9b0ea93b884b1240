"""sensor_msgs/Image -> the pixels of a dvtd frame (u8, HWC, 1/3/4 channels).

Standard library only (bytes slicing runs in C): no numpy, so the node needs nothing that a
ROS install does not already have. The daemon itself converts channels (RGB/RGBA -> grey by
luma, alpha dropped) and resizes to the model's input, so the node only removes row padding and
puts blue-first encodings into the RGB order the protocol defines.
"""

import array

# encoding -> (channels, whether R and B must be swapped). 8-bit encodings only: the protocol's
# u8 frames; anything else (mono16, 32FC1, bayer_*, yuv422, ...) is refused by name.
ENCODINGS = {
    "mono8": (1, False),
    "rgb8": (3, False),
    "bgr8": (3, True),
    "rgba8": (4, False),
    "bgra8": (4, True),
}

MAX_SIDE = 65535  # height and width are u16 in the frame header


class UnsupportedEncoding(ValueError):
    """An encoding the node does not convert (reported once per encoding by the node)."""

    def __init__(self, encoding):
        super().__init__(f"unsupported image encoding '{encoding}' "
                         f"(supported: {', '.join(ENCODINGS)}); frames dropped")
        self.encoding = encoding


class BadImage(ValueError):
    """A message whose fields do not describe its own data."""


def to_frame(encoding, height, width, step, data):
    """Returns (pixels: bytes, channels) for the frame protocol, or raises UnsupportedEncoding /
    BadImage. `data` is what rclpy gives for `uint8[]` (array.array('B'), bytes or a list)."""
    spec = ENCODINGS.get(encoding)
    if spec is None:
        raise UnsupportedEncoding(encoding)
    channels, swap_rb = spec
    if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE):
        raise BadImage(f"{width}x{height} image: each side must be 1..{MAX_SIDE}")
    row = width * channels
    if step < row:
        raise BadImage(f"step {step} is less than width x channels = {row}")
    if not isinstance(data, (bytes, bytearray, memoryview, array.array)):
        data = bytes(data)
    buf = memoryview(data)
    if buf.ndim != 1 or buf.itemsize != 1:
        buf = buf.cast("B")
    need = step * (height - 1) + row  # the last row's padding may be left out
    if len(buf) < need:
        raise BadImage(f"{len(buf)} data bytes for {height} rows of step {step} ({need} needed)")
    if step == row:
        pixels = buf[: row * height].tobytes()
    else:
        # Row padding (`step` > width x channels): keep the first `row` bytes of every row.
        pixels = b"".join(buf[i * step: i * step + row] for i in range(height))
    if swap_rb:
        pixels = _swap_red_blue(pixels, channels)
    return pixels, channels


def _swap_red_blue(pixels, channels):
    """BGR(A) -> RGB(A): exchange every pixel's first and third byte."""
    out = bytearray(pixels)
    out[0::channels] = pixels[2::channels]
    out[2::channels] = pixels[0::channels]
    return bytes(out)
