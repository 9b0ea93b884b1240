"""Latency of the ROS 2 path against the daemon alone, on the same frames in the same run.

For each Fashion-MNIST test image, alternately: publish it as a sensor_msgs/Image and wait for
the node's vision_msgs/Classification (image published -> classification received, in this
process), then send the same pixels straight to dvtd with the Python client and wait for the
reply. Alternating frame by frame keeps both measurements under the same machine load.
One frame at a time, so this is latency, not throughput (no queueing).

Run through tools/isolated.sh with the ROS venv (DDS on loopback):
  clients/ros2/tools/isolated.sh .venv-ros2/bin/python clients/ros2/tools/bench_latency.py \
      --dvtd $CARGO_TARGET_DIR/debug/dvtd
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import harness as H  # noqa: E402
from dvt_ros2.stats import percentile  # noqa: E402


def summary(ms):
    s = sorted(ms)
    return {"n": len(s), "p50_ms": percentile(s, 50), "p99_ms": percentile(s, 99),
            "mean_ms": sum(s) / len(s) if s else None}


def run(probe, dvtd, frames, encoding, h, w, ch, warmup, timeout):
    from dvtd_client import Client
    ros, direct, lost = [], [], 0
    with Client(dvtd.socket) as c:
        for i, px in enumerate(frames):
            fid = f"{encoding}-{h}-{i}"
            msg = probe.image(fid, px, h, w, encoding)
            t0 = time.monotonic_ns()
            probe.publish(msg)
            if probe.wait_results([fid], timeout) != 1:
                lost += 1
                continue
            t_ros = probe.received_ns[fid] - t0
            t1 = time.monotonic_ns()
            r = c.classify(px, h, w, ch)
            t_direct = time.monotonic_ns() - t1
            assert r.ok and r.label == probe.results[fid].label, (r, probe.results[fid])
            if i >= warmup:
                ros.append(t_ros / 1e6)
                direct.append(t_direct / 1e6)
    out = {"ros2": summary(ros), "direct": summary(direct), "lost": lost}
    out["ratio_p50"] = out["ros2"]["p50_ms"] / out["direct"]["p50_ms"]
    out["ratio_p99"] = out["ros2"]["p99_ms"] / out["direct"]["p99_ms"]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dvtd", help="dvtd binary (default: $DVTD_BIN or the cargo target)")
    ap.add_argument("--frames", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=50, help="extra frames first, not counted")
    ap.add_argument("--sizes", default="28,224", help="28: mono8 28x28; 224: rgb8 224x224")
    ap.add_argument("--json", help="write the results here too")
    a = ap.parse_args()
    if a.dvtd:
        import os
        os.environ["DVTD_BIN"] = a.dvtd
    H.REQUIRED = True  # a missing piece is an error here, not a skip
    H.import_ros()
    import rclpy
    rclpy.init()
    node = rclpy.create_node("dvt_ros2_bench")
    executor, thread = H.spin_in_background(rclpy, node)
    tmp = Path(tempfile.mkdtemp(prefix="dvt-ros2-bench-"))
    dvtd = H.Dvtd(tmp).start()
    under_test = H.NodeProcess(tmp, "bench", {"socket": dvtd.socket})
    results = {}
    try:
        # A camera driver's QoS: best effort (sensor data), as the node subscribes by default.
        probe = H.Probe(node, "bench", reliable=False)
        probe.wait_connected()
        probe.sync()  # a best-effort path: first frames can precede full discovery
        images = [px for px, _ in H.fmnist_images(a.frames + a.warmup)]
        for size in a.sizes.split(","):
            if size == "28":
                results["mono8_28x28"] = run(probe, dvtd, images, "mono8", 28, 28, 1,
                                             a.warmup, 5.0)
            elif size == "224":
                rgb = [H.upscale_rgb(px) for px in images]
                results["rgb8_224x224"] = run(probe, dvtd, rgb, "rgb8", 224, 224, 3,
                                              a.warmup, 5.0)
        status = dvtd.status()
        results["dvtd"] = {k: status.get(k) for k in ("backend", "model", "budget")}
    finally:
        under_test.stop()
        dvtd.stop()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    print(json.dumps(results, indent=2))
    for name, r in results.items():
        if name == "dvtd":
            continue
        print(f"{name}: ROS 2 p50 {r['ros2']['p50_ms']:.3f} ms p99 {r['ros2']['p99_ms']:.3f} ms | "
              f"direct p50 {r['direct']['p50_ms']:.3f} ms p99 {r['direct']['p99_ms']:.3f} ms | "
              f"ratio p50 {r['ratio_p50']:.2f}x p99 {r['ratio_p99']:.2f}x | lost {r['lost']}")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
