"""Frame counters and a latency window, shared by the executor (image callback, diagnostics
timer) and the link's reply thread, hence the lock."""

import collections
import threading

# Why a frame got no result; every frame the node received ends as exactly one result or one
# of these.
DROP_REASONS = (
    "in_flight",     # max_in_flight frames already waiting for dvtd: the newest is dropped
    "busy",          # dvtd's queue was full (its `busy` reply)
    "disconnected",  # no connection to dvtd, or lost with the connection
    "encoding",      # unsupported sensor_msgs/Image encoding
    "bad_image",     # fields that do not describe the data (step, size)
    "error",         # dvtd refused or failed the frame (bad_request, internal, bad_stream)
)


def percentile(sorted_values, q):
    """Nearest-rank percentile (q in [0, 100]) of an ascending list; None when empty."""
    if not sorted_values:
        return None
    rank = max(1, -(-len(sorted_values) * q // 100))  # ceil(n * q / 100), at least 1
    return sorted_values[int(rank) - 1]


class FrameStats:
    """frames in / out / dropped by reason, and the last `window` image -> result latencies."""

    def __init__(self, window=1000):
        self._lock = threading.Lock()
        self.frames_in = 0
        self.frames_out = 0
        self.dropped = dict.fromkeys(DROP_REASONS, 0)
        self._latency_ms = collections.deque(maxlen=window)

    def received(self):
        with self._lock:
            self.frames_in += 1

    def published(self, latency_ms):
        with self._lock:
            self.frames_out += 1
            self._latency_ms.append(latency_ms)

    def drop(self, reason):
        with self._lock:
            self.dropped[reason] += 1

    def snapshot(self):
        """A consistent copy: counters plus p50/p99 (ms) of the latency window."""
        with self._lock:
            lat = sorted(self._latency_ms)
            return {
                "frames_in": self.frames_in,
                "frames_out": self.frames_out,
                "frames_dropped": sum(self.dropped.values()),
                "dropped": dict(self.dropped),
                "latency_p50_ms": percentile(lat, 50),
                "latency_p99_ms": percentile(lat, 99),
            }
