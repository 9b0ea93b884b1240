from dvt_ros2.stats import FrameStats, percentile


def test_nearest_rank_percentiles():
    v = list(range(1, 101))
    assert percentile(v, 50) == 50 and percentile(v, 99) == 99 and percentile(v, 100) == 100
    assert percentile([7.0], 99) == 7.0 and percentile([], 50) is None


def test_every_frame_is_counted_once():
    s = FrameStats(window=3)
    for ms in (1.0, 2.0, 3.0, 4.0):
        s.received()
        s.published(ms)
    s.received()
    s.drop("busy")
    snap = s.snapshot()
    assert (snap["frames_in"], snap["frames_out"], snap["frames_dropped"]) == (5, 4, 1)
    assert snap["dropped"]["busy"] == 1
    assert snap["latency_p50_ms"] == 3.0  # window of the last 3: 2, 3, 4
