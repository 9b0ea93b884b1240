"""What the ROS tests run against: a real dvtd, the real node as its own process, Fashion-MNIST
test images, and a probe node in the test process that publishes images and collects results.
"""

import gzip
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
BUNDLE = REPO / "engines" / "fmnist-dvt"
FMNIST = Path(os.environ.get("DVT_FMNIST_DIR", "/usr/share/datasets/fashion-mnist"))
REQUIRED = os.environ.get("CI") == "true" or os.environ.get("DVT_REQUIRE_ROS2") == "1"

sys.path.insert(0, str(REPO / "clients" / "python"))
from dvtd_client import Client, DvtdError  # noqa: E402


def missing(what):
    """Skip, or fail where the ROS tests are required (CI)."""
    msg = f"{what} (tools/setup.sh provides it)"
    if REQUIRED:
        pytest.fail(f"required ROS 2 test cannot run: {msg}", pytrace=False)
    pytest.skip(msg)


def import_ros():
    try:
        import rclpy  # noqa: F401
        import dvt_msgs.msg  # noqa: F401
        import vision_msgs.msg  # noqa: F401
        import sensor_msgs.msg  # noqa: F401
        import diagnostic_msgs.msg  # noqa: F401
    except ImportError as e:
        missing(f"no ROS 2 here ({e}); run with .venv-ros2/bin/python")
    if REQUIRED and os.geteuid() == 0:
        # As root the tests must run in their own network namespace (tools/isolated.sh), so
        # that DDS cannot reach anything but loopback.
        ifaces = sorted(name for _, name in socket.if_nameindex())
        if ifaces != ["lo"]:
            pytest.fail(f"network interfaces {ifaces}: run the ROS tests through "
                        "clients/ros2/tools/isolated.sh (only `lo` allowed)", pytrace=False)


def binary(env, name):
    path = os.environ.get(env)
    if not path:
        target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
        path = str(target / "debug" / name)
    if not os.access(path, os.X_OK):
        missing(f"{name} binary not found at {path} (cargo build --bin {name}, or set {env})")
    return path


# --- Fashion-MNIST ---------------------------------------------------------------------------

def fmnist_images(n):
    """The first n test images: (784 bytes, label) each."""
    path = FMNIST / "t10k-images-idx3-ubyte.gz"
    if not path.exists():
        missing(f"Fashion-MNIST not found at {FMNIST}")
    with gzip.open(path) as f:
        magic, count, rows, cols = struct.unpack(">IIII", f.read(16))
        assert magic == 0x803 and (rows, cols) == (28, 28) and n <= count
        data = f.read(n * 784)
    with gzip.open(FMNIST / "t10k-labels-idx1-ubyte.gz") as f:
        f.read(8)
        labels = f.read(n)
    return [(data[i * 784:(i + 1) * 784], labels[i]) for i in range(n)]


def upscale_rgb(gray, side=224):
    """28x28 grey -> side x side RGB, nearest neighbour (the daemon resizes it back)."""
    f = side // 28
    rows = []
    for y in range(28):
        row = bytearray()
        for x in range(28):
            row += bytes([gray[y * 28 + x]]) * (3 * f)
        rows.append(bytes(row) * f)
    return b"".join(rows)


def colourise(gray):
    """A 28x28 RGB image whose channels differ (R = image, G = half, B = inverse), so that a
    node sending BGR as RGB would change the daemon's grey (luma) input and its answer."""
    out = bytearray(784 * 3)
    out[0::3] = gray
    out[1::3] = bytes(v // 2 for v in gray)
    out[2::3] = bytes(255 - v for v in gray)
    return bytes(out)


# --- processes -------------------------------------------------------------------------------

class Dvtd:
    """A real dvtd on a temporary Unix socket with the bundled model."""

    def __init__(self, tmp, name="dvtd"):
        self.bin = binary("DVTD_BIN", "dvtd")
        self.socket = str(tmp / f"{name}.sock")
        self.log = tmp / f"{name}.log"
        self.proc = None

    def start(self, timeout=90.0):
        env = dict(os.environ)
        ort = REPO / ".venv" / "lib" / "libonnxruntime.so"
        if "ORT_DYLIB_PATH" not in env and ort.exists():
            env["ORT_DYLIB_PATH"] = str(ort)  # what .cargo/config.toml gives `cargo run`
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [self.bin, "--socket", self.socket, "--bundle", str(BUNDLE)],
                cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dvtd exited {self.proc.returncode}:\n{self.log_tail()}")
            try:
                self.status()
                return self
            except (OSError, DvtdError):
                time.sleep(0.1)
        raise RuntimeError(f"dvtd did not answer within {timeout} s:\n{self.log_tail()}")

    def status(self):
        with Client(self.socket) as c:
            c.sock.settimeout(5.0)
            return c.command("status")

    def answers(self, frames):
        """The daemon's own reply to each (pixels, height, width, channels), one by one."""
        with Client(self.socket) as c:
            c.sock.settimeout(10.0)
            return [c.classify(px, h, w, ch) for px, h, w, ch in frames]

    def kill(self):
        self.proc.kill()
        self.proc.wait(10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, n=3000):
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""


def ctl_status(socket_path):
    """`dvt ctl --socket S status`, parsed: what an operator would see."""
    out = subprocess.run([binary("DVT_BIN", "dvt"), "ctl", "--socket", socket_path, "status"],
                         capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


class NodeProcess:
    """The node as a robot runs it: `python -m dvt_ros2 --ros-args ...`, own process, own
    name and namespace (topics /NAME/image, /NAME/classification, /NAME/cascade_result)."""

    def __init__(self, tmp, name, params, console_script=False):
        self.name = name
        self.log = tmp / f"{name}.log"
        exe = ([str(Path(sys.executable).with_name("dvt-ros2"))] if console_script
               else [sys.executable, "-m", "dvt_ros2"])
        self.cmd = exe + ["--ros-args", "-r", f"__node:={name}", "-r", f"__ns:=/{name}"]
        for k, v in params.items():
            self.cmd += ["-p", f"{k}:={v}"]
        env = dict(os.environ, PYTHONUNBUFFERED="1", RCUTILS_LOGGING_BUFFERED_STREAM="0")
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(self.cmd, cwd=REPO, stdout=log,
                                         stderr=subprocess.STDOUT, env=env)

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.alive():
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def output(self):
        return self.log.read_text(errors="replace")


def wait_for(cond, timeout, what, step=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# --- the probe: the test's own ROS node ------------------------------------------------------

class Probe:
    """Publishes Images to one node under test and collects its outputs, spun on a thread."""

    def __init__(self, rclpy_node, ns, reliable=True):
        from diagnostic_msgs.msg import DiagnosticArray
        from dvt_msgs.msg import CascadeResult
        from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
        from sensor_msgs.msg import Image
        from vision_msgs.msg import Classification

        self.node, self.ns = rclpy_node, ns
        self.lock = threading.Condition()
        self.classifications = {}  # frame_id -> Classification
        self.results = {}          # frame_id -> CascadeResult
        self.received_ns = {}      # frame_id -> monotonic ns when its Classification arrived
        self.diagnostics = []      # (monotonic s, DiagnosticStatus) of the node under test
        self.baseline = {}
        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE) if reliable \
            else qos_profile_sensor_data
        self.pub = rclpy_node.create_publisher(Image, f"/{ns}/image", qos)
        self.subs = [
            rclpy_node.create_subscription(Classification, f"/{ns}/classification",
                                           self._on_class, 100),
            rclpy_node.create_subscription(CascadeResult, f"/{ns}/cascade_result",
                                           self._on_result, 100),
            rclpy_node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 50),
        ]

    def close(self):
        for s in self.subs:
            self.node.destroy_subscription(s)
        self.node.destroy_publisher(self.pub)

    def _on_class(self, m):
        with self.lock:
            self.classifications[m.header.frame_id] = m
            self.received_ns[m.header.frame_id] = time.monotonic_ns()
            self.lock.notify_all()

    def _on_result(self, m):
        with self.lock:
            self.results[m.header.frame_id] = m
            self.lock.notify_all()

    def _on_diag(self, m):
        for s in m.status:
            if s.name == f"{self.ns}: dvtd":
                with self.lock:
                    self.diagnostics.append((time.monotonic(), s))
                    self.lock.notify_all()

    def wait_connected(self, timeout=30.0):
        """Until the node's subscription and both its publishers are matched with ours."""
        wait_for(lambda: self.pub.get_subscription_count() > 0
                 and all(s.get_publisher_count() > 0 for s in self.subs[:2]),
                 timeout, f"discovery of /{self.ns}")

    def sync(self, timeout=20.0):
        """Discovery can match one side before the other, and a best-effort sample sent in that
        window is lost: send a probe frame until one comes back, so the tests that follow
        start on a fully matched path. Then record the node's counters as the baseline that
        `counters` subtracts."""
        px = bytes(784)
        deadline = time.monotonic() + timeout
        k = 0
        while True:
            fid = f"sync-{k}"
            self.publish(self.image(fid, px, 28, 28, "mono8"))
            if self.wait_results([fid], 0.5):
                break
            k += 1
            assert time.monotonic() < deadline, f"/{self.ns}: no result for any sync frame"
        t = time.monotonic()
        base = self.wait_diag(lambda s: diag_values(s)["in_flight"] == "0", 5,
                              "diagnostics after the sync frame", since=t)
        self.baseline = {k: int(diag_values(base)[k]) for k in COUNTERS}

    def counters(self, status):
        """The node's counters in a diagnostics status, minus the baseline from `sync`."""
        v = diag_values(status)
        return {k: int(v[k]) - self.baseline.get(k, 0) for k in COUNTERS}

    def image(self, frame_id, pixels, height, width, encoding, step=None, stamp_ns=0):
        from sensor_msgs.msg import Image
        m = Image(height=height, width=width, encoding=encoding, is_bigendian=0,
                  step=step if step is not None else len(pixels) // height)
        m.header.frame_id = frame_id
        m.header.stamp.sec, m.header.stamp.nanosec = divmod(stamp_ns, 10**9)
        m.data = pixels
        return m

    def publish(self, msg):
        self.pub.publish(msg)

    def wait_results(self, frame_ids, timeout):
        """Until every frame id has both outputs; returns how many arrived."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                have = sum(1 for f in frame_ids if f in self.results and f in self.classifications)
                left = deadline - time.monotonic()
                if have == len(frame_ids) or left <= 0:
                    return have
                self.lock.wait(left)

    def latest_diag(self):
        with self.lock:
            return self.diagnostics[-1][1] if self.diagnostics else None

    def wait_diag(self, pred, timeout, what, since=None):
        """The first diagnostics status received after `since` (default: now) that satisfies
        pred."""
        start = time.monotonic() if since is None else since

        def found():
            with self.lock:
                for t, s in self.diagnostics:
                    if t >= start and pred(s):
                        return s
            return None
        return wait_for(found, timeout, what)


OK, WARN, ERROR = b"\x00", b"\x01", b"\x02"  # DiagnosticStatus levels (bytes in rclpy)
COUNTERS = ("frames_in", "frames_out", "frames_dropped", "dropped_in_flight", "dropped_busy",
            "dropped_disconnected", "dropped_encoding", "dropped_bad_image", "dropped_error")


def diag_values(status):
    return {kv.key: kv.value for kv in status.values}


class ParamClient:
    """set/get parameters of the node under test through its standard parameter services."""

    def __init__(self, rclpy_node, fqn):
        from rcl_interfaces.srv import GetParameters, SetParameters
        self.set_cli = rclpy_node.create_client(SetParameters, f"{fqn}/set_parameters")
        self.get_cli = rclpy_node.create_client(GetParameters, f"{fqn}/get_parameters")
        assert self.set_cli.wait_for_service(timeout_sec=20), f"{fqn}/set_parameters"

    def set(self, name, value, timeout=5.0):
        from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
        from rcl_interfaces.srv import SetParameters
        if isinstance(value, bool):
            pv = ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=value)
        elif isinstance(value, int):
            pv = ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=value)
        else:
            pv = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)
        fut = self.set_cli.call_async(SetParameters.Request(
            parameters=[Parameter(name=name, value=pv)]))
        return _result(fut, timeout, f"set {name}").results[0]

    def get(self, name, timeout=5.0):
        from rcl_interfaces.srv import GetParameters
        fut = self.get_cli.call_async(GetParameters.Request(names=[name]))
        return _result(fut, timeout, f"get {name}").values[0]


def _result(fut, timeout, what):
    wait_for(fut.done, timeout, f"the node to answer '{what}'")
    return fut.result()


def spin_in_background(rclpy, node):
    from rclpy.executors import SingleThreadedExecutor
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    t = threading.Thread(target=ex.spin, daemon=True)
    t.start()
    return ex, t
