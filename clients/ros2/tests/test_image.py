"""Image -> frame conversion (no ROS needed): padding, channel order, refusals."""

import array

import pytest

from dvt_ros2.image import BadImage, UnsupportedEncoding, to_frame


def test_mono8_without_padding_is_passed_through():
    data = bytes(range(12))
    assert to_frame("mono8", 3, 4, 4, data) == (data, 1)


def test_step_padding_is_removed_row_by_row():
    rows = [bytes([10 * r + c for c in range(6)]) for r in range(2)]  # 2x2 rgb8 = 6 bytes/row
    padded = b"".join(r + b"\xee" * 5 for r in rows)                # step 11
    assert to_frame("rgb8", 2, 2, 11, padded) == (rows[0] + rows[1], 3)
    # The last row's padding may be missing (some drivers cut it).
    assert to_frame("rgb8", 2, 2, 11, padded[:-5]) == (rows[0] + rows[1], 3)


def test_bgr_and_bgra_become_rgb_order():
    bgr = bytes([1, 2, 3, 4, 5, 6])
    assert to_frame("bgr8", 1, 2, 6, bgr) == (bytes([3, 2, 1, 6, 5, 4]), 3)
    bgra = bytes([1, 2, 3, 9, 4, 5, 6, 8])
    assert to_frame("bgra8", 1, 2, 8, bgra) == (bytes([3, 2, 1, 9, 6, 5, 4, 8]), 4)
    rgba = bytes([1, 2, 3, 9])
    assert to_frame("rgba8", 1, 1, 4, rgba) == (rgba, 4)


def test_rclpy_data_types_are_accepted():
    px = [0, 50, 100, 150]
    for data in (array.array("B", px), bytes(px), bytearray(px), px):
        assert to_frame("mono8", 2, 2, 2, data) == (bytes(px), 1)


@pytest.mark.parametrize("enc", ["mono16", "16UC1", "32FC1", "yuv422", "bayer_rggb8", "", "RGB8"])
def test_other_encodings_are_refused_by_name(enc):
    with pytest.raises(UnsupportedEncoding) as e:
        to_frame(enc, 2, 2, 4, bytes(8))
    assert e.value.encoding == enc and "mono8" in str(e.value)


@pytest.mark.parametrize("h, w, step, n, what", [
    (2, 2, 3, 12, "step 3 is less than"),       # rgb8 rows need 6 bytes
    (2, 2, 6, 11, "11 data bytes"),             # one byte short
    (0, 2, 6, 0, "each side"),
    (2, 70000, 210000, 420000, "each side"),    # u16 in the frame header
])
def test_inconsistent_fields_are_refused(h, w, step, n, what):
    with pytest.raises(BadImage, match=what):
        to_frame("rgb8", h, w, step, bytes(n))
