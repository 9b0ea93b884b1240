"""The real node against a real dvtd over real DDS (loopback): every result it publishes must be
the daemon's own answer for that image, whatever the encoding, size or row padding."""

import re
import time

import pytest

import harness as H

# Upstream vision_msgs' type hashes (from its rosidl-generated classification__description.c):
# equal hashes mean a robot's own vision_msgs subscribers match our publisher.
UPSTREAM_HASH = {
    "vision_msgs/msg/Classification":
        "RIHS01_f74db28d0eaef3afb78f48bf2161cd709a1383a0309d3454383b25be11345143",
    "vision_msgs/msg/ObjectHypothesis":
        "RIHS01_51da43cec11c01957a64d1e05a24acd18aae7745ec30b74348ad5f6d634f7f90",
}
STAMP0 = 1_700_000_000 * 10**9


def send_one_by_one(probe, msgs, timeout=10.0):
    """Publishes each message after the previous one's result: no drops expected."""
    for m in msgs:
        probe.publish(m)
        got = probe.wait_results([m.header.frame_id], timeout)
        assert got == 1, f"no result for {m.header.frame_id} within {timeout} s"


def assert_results_equal(probe, frame_ids, expected, stamps=None):
    for i, (fid, want) in enumerate(zip(frame_ids, expected)):
        assert want.ok, want
        res, cls = probe.results[fid], probe.classifications[fid]
        got = (res.class_id, res.label, res.exit_stage)
        assert got == (want.class_id, want.label, want.exit_stage), (fid, got, want)
        # Two runs of the same frame; batching may move the last float bits, nothing more.
        assert res.confidence == pytest.approx(want.confidence, abs=1e-5), fid
        assert res.gflops == pytest.approx(want.gflops, rel=1e-6), fid
        assert res.latency_us > 0 and 0 < res.compute_us <= res.latency_us + 1
        assert [(h.class_id, h.score) for h in cls.results] == \
            [(want.label, pytest.approx(want.confidence, abs=1e-5))]
        if stamps is not None:
            for hdr in (res.header, cls.header):
                assert (hdr.frame_id, hdr.stamp.sec * 10**9 + hdr.stamp.nanosec) == \
                    (fid, stamps[i])


def test_mono8_28x28_results_are_the_daemons_answers(start_node, dvtd):
    images = H.fmnist_images(100)
    node, probe = start_node("mono")  # default QoS: sensor data (best effort)
    ids = [f"mono-{i}" for i in range(len(images))]
    stamps = [STAMP0 + 1000 * i for i in range(len(images))]
    send_one_by_one(probe, [probe.image(fid, px, 28, 28, "mono8", stamp_ns=t)
                            for fid, (px, _), t in zip(ids, images, stamps)])
    expected = dvtd.answers([(px, 28, 28, 1) for px, _ in images])
    assert_results_equal(probe, ids, expected, stamps)
    # Not a constant answer: the model really looked at the images.
    assert len({r.label for r in expected}) >= 5
    # Type hashes on the wire equal upstream vision_msgs'.
    info = probe.node.get_publishers_info_by_topic("/mono/classification")
    assert info and str(info[0].topic_type_hash) == UPSTREAM_HASH["vision_msgs/msg/Classification"]
    status = probe.wait_diag(lambda s: s.level == H.OK, 5, "OK diagnostics")
    n = probe.counters(status)
    assert (n["frames_in"], n["frames_out"], n["frames_dropped"]) == (100, 100, 0)
    diag = H.diag_values(status)
    assert diag["dvtd_reachable"] == "true" and diag["backend"].startswith("cpu")
    assert float(diag["latency_p50_ms"]) <= float(diag["latency_p99_ms"])


def test_rgb8_224x224_with_row_padding_is_resized_by_dvtd(start_node, dvtd):
    images = H.fmnist_images(20)
    rgb = [H.upscale_rgb(px) for px, _ in images]
    row, step = 224 * 3, 224 * 3 + 32
    node, probe = start_node("rgb", qos_reliable="true")
    ids = [f"rgb-{i}" for i in range(len(rgb))]
    msgs = []
    for fid, px in zip(ids, rgb):
        padded = b"".join(px[y * row:(y + 1) * row] + b"\xab" * 32 for y in range(224))
        msgs.append(probe.image(fid, padded, 224, 224, "rgb8", step=step))
    send_one_by_one(probe, msgs)
    expected = dvtd.answers([(px, 224, 224, 3) for px in rgb])
    assert_results_equal(probe, ids, expected)


def test_blue_first_and_alpha_encodings_reach_dvtd_as_rgb(start_node, dvtd):
    images = H.fmnist_images(12)
    rgb = [H.colourise(px) for px, _ in images]
    expected = dvtd.answers([(px, 28, 28, 3) for px in rgb])
    bgr = [bytes(b for i in range(0, len(px), 3) for b in px[i:i + 3][::-1]) for px in rgb]
    # The test can fail: the same bytes read as RGB give the daemon other answers.
    swapped = dvtd.answers([(px, 28, 28, 3) for px in bgr])
    assert any(abs(a.confidence - b.confidence) > 1e-4 for a, b in zip(expected, swapped))

    node, probe = start_node("colour")
    for enc in ("bgr8", "rgba8", "bgra8"):
        msgs, ids = [], []
        for i, (px_rgb, px_bgr) in enumerate(zip(rgb, bgr)):
            src = px_bgr if enc.startswith("bgr") else px_rgb
            if enc.endswith("a8"):  # an alpha byte after every pixel (dvtd drops it)
                src = b"".join(src[j:j + 3] + b"\x7f" for j in range(0, len(src), 3))
            ids.append(f"{enc}-{i}")
            msgs.append(probe.image(ids[-1], src, 28, 28, enc))
        send_one_by_one(probe, msgs)
        assert_results_equal(probe, ids, expected)


def test_other_encodings_are_dropped_with_one_warning_each(start_node):
    # Reliable and paced: every frame must reach the node for the counts to be exact.
    node, probe = start_node("enc", qos_reliable="true")
    px = bytes(28 * 28 * 2)
    for i in range(3):
        probe.publish(probe.image(f"m16-{i}", px, 28, 28, "mono16"))
        time.sleep(0.02)
        probe.publish(probe.image(f"yuv-{i}", px, 28, 28, "yuv422"))
        time.sleep(0.02)
    good = H.fmnist_images(1)[0][0]
    send_one_by_one(probe, [probe.image("after", good, 28, 28, "mono8")])
    n = probe.counters(probe.wait_diag(
        lambda s: probe.counters(s)["dropped_encoding"] == 6, 5, "6 encoding drops"))
    assert (n["frames_in"], n["frames_out"], n["frames_dropped"]) == (7, 1, 6)
    assert not any(f.startswith(("m16", "yuv")) for f in probe.results)
    out = node.output()
    for enc in ("mono16", "yuv422"):
        assert len(re.findall(f"unsupported image encoding '{enc}'", out)) == 1, out


def test_in_flight_frames_are_bounded_and_the_newest_dropped(start_node, dvtd):
    images = H.fmnist_images(60)
    rgb = [H.upscale_rgb(px) for px, _ in images]
    node, probe = start_node("burst", max_in_flight=1, qos_reliable="true")
    ids = [f"burst-{i}" for i in range(len(rgb))]
    for fid, px in zip(ids, rgb):  # as fast as Python publishes: far faster than dvtd answers
        probe.publish(probe.image(fid, px, 224, 224, "rgb8"))

    def settled(s):
        n = probe.counters(s)
        return H.diag_values(s)["in_flight"] == "0" and n["frames_in"] > 0 and \
            n["frames_out"] + n["frames_dropped"] == n["frames_in"]
    probe.wait_diag(settled, 20, "the burst to be answered or dropped")
    n = probe.counters(probe.wait_diag(settled, 3, "a second settled diagnostics message"))
    n_out = n["frames_out"]
    assert n["dropped_in_flight"] > 0, n   # bounded: no queue grew behind dvtd
    assert n_out > 0 and n["frames_in"] <= 60
    assert n["frames_dropped"] == n["dropped_in_flight"] + n["dropped_busy"], n
    # Every published result arrives (reliable), a moment after the counter moved.
    H.wait_for(lambda: sum(f in probe.results and f in probe.classifications for f in ids) == n_out,
               5, f"{n_out} results")
    got = [i for i, fid in enumerate(ids) if fid in probe.results]
    expected = dvtd.answers([(rgb[i], 224, 224, 3) for i in got])
    assert_results_equal(probe, [ids[i] for i in got], expected)
