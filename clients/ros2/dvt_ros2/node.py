"""The `dvt_ros2` node: sensor_msgs/Image in, vision_msgs/Classification and
dvt_msgs/CascadeResult out, dvtd's budget as a parameter, /diagnostics once a second.

Only rclpy API that exists from Humble on is used (declare_parameter with a descriptor,
add_on_set_parameters_callback, qos_profile_sensor_data, create_timer), so the same file runs on
a robot's Humble or Jazzy install and on the PyPI Kilted wheels the tests use.
"""

import os
import time

import rclpy
import rclpy.executors
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from dvt_msgs.msg import CascadeResult
from rcl_interfaces.msg import ParameterDescriptor, ParameterType, SetParametersResult
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from vision_msgs.msg import Classification, ObjectHypothesis

from . import budget as budget_mod
from .image import BadImage, UnsupportedEncoding, to_frame
from .link import DaemonLink
from .stats import DROP_REASONS, FrameStats

MAX_IN_FLIGHT_LIMIT = 64  # dvtd's default queue; more in flight only turns into `busy` replies


def default_socket():
    """Where dvtd listens by default: the systemd units' socket if present, else the daemon's
    own fallback ($XDG_RUNTIME_DIR/dvtd.sock, /tmp/dvtd-<uid>.sock)."""
    if os.path.exists("/run/dvtd/dvtd.sock"):
        return "/run/dvtd/dvtd.sock"
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    return os.path.join(xdg, "dvtd.sock") if xdg else f"/tmp/dvtd-{os.getuid()}.sock"


def _descriptor(description, ptype, read_only=False):
    return ParameterDescriptor(description=description, type=ptype, read_only=read_only)


class DvtNode(Node):
    def __init__(self, **kwargs):
        super().__init__("dvt_ros2", **kwargs)
        self.declare_parameter("socket", default_socket(), _descriptor(
            "dvtd's Unix socket", ParameterType.PARAMETER_STRING, read_only=True))
        self.declare_parameter("budget", "", _descriptor(
            "dvtd budget as `dvt ctl set-budget` takes it: 0.004gflops, 30ips, 5ms, 3w, auto; "
            "empty: leave the daemon's budget alone", ParameterType.PARAMETER_STRING))
        self.declare_parameter("max_in_flight", 2, _descriptor(
            f"frames sent to dvtd and not yet answered (1..{MAX_IN_FLIGHT_LIMIT}); a newer frame "
            "is dropped and counted", ParameterType.PARAMETER_INTEGER))
        self.declare_parameter("qos_reliable", False, _descriptor(
            "subscribe `image` reliable instead of the sensor-data QoS (best effort)",
            ParameterType.PARAMETER_BOOL, read_only=True))

        # Initial values are checked here: a bad launch file stops the node with one clear line.
        budget_text = self.get_parameter("budget").value
        budget_fields = budget_mod.parse_budget(budget_text)
        max_in_flight = self.get_parameter("max_in_flight").value
        _check_max_in_flight(max_in_flight)
        self.socket_path = self.get_parameter("socket").value
        self.budget_text = budget_text

        self.stats = FrameStats()
        self._warned_encodings = set()
        self._drops_at_last_diag = 0  # WARN when frames were dropped since the last report
        self.pub_class = self.create_publisher(Classification, "classification", 10)
        self.pub_result = self.create_publisher(CascadeResult, "cascade_result", 10)
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.link = DaemonLink(self.socket_path, max_in_flight, self._publish, self._dropped,
                               self._log)
        self.link.set_budget(budget_fields)
        self.add_on_set_parameters_callback(self._on_parameters)

        if self.get_parameter("qos_reliable").value:
            qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5,
                             reliability=ReliabilityPolicy.RELIABLE)
        else:
            qos = qos_profile_sensor_data  # best effort, keep last 5
        self.sub = self.create_subscription(Image, "image", self._on_image, qos)
        self.diag_timer = self.create_timer(1.0, self._publish_diagnostics)
        self.link.start()

    def destroy_node(self):
        self.link.close()
        return super().destroy_node()

    # --- parameters -----------------------------------------------------------------------------

    def _on_parameters(self, params):
        """Validates every change first (all or nothing), then applies: a budget goes to the
        link, which sends set-budget from its own thread (the executor never waits on dvtd)."""
        changes = {}
        for p in params:
            if p.name == "budget":
                try:
                    changes["budget"] = (p.value, budget_mod.parse_budget(p.value))
                except budget_mod.BudgetError as e:
                    return SetParametersResult(successful=False, reason=str(e))
            elif p.name == "max_in_flight":
                try:
                    _check_max_in_flight(p.value)
                except ValueError as e:
                    return SetParametersResult(successful=False, reason=str(e))
                changes["max_in_flight"] = p.value
        if "budget" in changes:
            self.budget_text, fields = changes["budget"]
            self.link.set_budget(fields)
        if "max_in_flight" in changes:
            self.link.max_in_flight = changes["max_in_flight"]
        return SetParametersResult(successful=True)

    # --- frames ---------------------------------------------------------------------------------

    def _on_image(self, msg):
        t_in = time.monotonic_ns()
        self.stats.received()
        try:
            pixels, channels = to_frame(msg.encoding, msg.height, msg.width, msg.step, msg.data)
        except UnsupportedEncoding as e:
            self.stats.drop("encoding")
            if e.encoding not in self._warned_encodings:  # once per encoding, not per frame
                self._warned_encodings.add(e.encoding)
                self.get_logger().warning(str(e))
            return
        except BadImage as e:
            self.stats.drop("bad_image")
            self.get_logger().warning(f"bad image dropped: {e}", throttle_duration_sec=5.0)
            return
        why = self.link.submit(pixels, msg.height, msg.width, channels, msg.header, t_in)
        if why is not None:
            self.stats.drop(why)

    def _publish(self, reply, header, t_in_ns):
        """Runs on the link's reply thread (rclpy publishers are thread-safe)."""
        cls = Classification(header=header, results=[
            ObjectHypothesis(class_id=reply.label, score=float(reply.confidence))])
        res = CascadeResult(header=header, class_id=reply.class_id, label=reply.label,
                            confidence=reply.confidence, exit_stage=reply.exit_stage,
                            gflops=reply.gflops, latency_us=reply.latency_us,
                            compute_us=reply.compute_us)
        self.pub_class.publish(cls)
        self.pub_result.publish(res)
        self.stats.published((time.monotonic_ns() - t_in_ns) / 1e6)

    def _dropped(self, reason, detail):
        self.stats.drop(reason)
        if reason == "error":
            self.get_logger().warning(f"dvtd refused a frame: {detail}", throttle_duration_sec=5.0)

    def _log(self, level, text):
        # One call per severity, on separate lines: rclpy keys a log call's settings by its
        # call site and raises if one site logs at two severities.
        if level == "error":
            self.get_logger().error(text)
        else:
            self.get_logger().info(text)

    # --- diagnostics ----------------------------------------------------------------------------

    def _publish_diagnostics(self):
        self.pub_diag.publish(DiagnosticArray(
            header=Header(stamp=self.get_clock().now().to_msg()),
            status=[self.diagnostic_status()]))

    def diagnostic_status(self):
        link = self.link.snapshot()
        st = self.stats.snapshot()
        status = link["status"] or {}
        new_drops = st["frames_dropped"] - self._drops_at_last_diag
        self._drops_at_last_diag = st["frames_dropped"]
        if not link["connected"]:
            level, message = DiagnosticStatus.ERROR, f"dvtd unreachable: {link['last_error']}"
        elif link["budget_error"]:
            level, message = DiagnosticStatus.WARN, f"dvtd refused the budget: {link['budget_error']}"
        elif status.get("degraded"):
            level, message = DiagnosticStatus.WARN, f"dvtd degraded: {status['degraded']}"
        elif new_drops:
            level, message = DiagnosticStatus.WARN, f"{new_drops} frames dropped in the last second"
        else:
            level, message = DiagnosticStatus.OK, "dvtd reachable"

        def ms(v):
            return "" if v is None else f"{v:.3f}"

        values = {
            "dvtd_reachable": str(link["connected"]).lower(),
            "socket": self.socket_path,
            "backend": str(status.get("backend", "")),
            "model": str(status.get("model", "")),
            "budget": budget_mod.describe(status.get("budget")) if status else "",
            "budget_source": str(status.get("budget_source", "")),
            "budget_param": self.budget_text,
            "frames_in": str(st["frames_in"]),
            "frames_out": str(st["frames_out"]),
            "frames_dropped": str(st["frames_dropped"]),
            **{f"dropped_{r}": str(st["dropped"][r]) for r in DROP_REASONS},
            "in_flight": str(link["in_flight"]),
            "max_in_flight": str(self.link.max_in_flight),
            "latency_p50_ms": ms(st["latency_p50_ms"]),
            "latency_p99_ms": ms(st["latency_p99_ms"]),
            "reconnects": str(link["reconnects"]),
            "last_error": link["last_error"] or "",
        }
        # `level` is a byte in the message: the constants are bytes in rclpy.
        return DiagnosticStatus(level=level, name=f"{self.get_name()}: dvtd", message=message,
                                hardware_id=self.socket_path,
                                values=[KeyValue(key=k, value=v) for k, v in values.items()])


def _check_max_in_flight(v):
    if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= MAX_IN_FLIGHT_LIMIT:
        raise ValueError(f"max_in_flight must be an integer in 1..{MAX_IN_FLIGHT_LIMIT}, got {v!r}")


def spin(args=None):
    """Runs the node until Ctrl-C / SIGTERM; returns the exit status."""
    rclpy.init(args=args)
    node = None
    try:
        node = DvtNode()
        rclpy.spin(node)
    except (budget_mod.BudgetError, ValueError) as e:
        # A bad initial parameter: one line, not a traceback.
        print(f"dvt_ros2: {e}", flush=True)
        return 2
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
