"""Test set-up for the ROS 2 node.

The pure modules (image, budget, stats) are tested with any Python. The ROS tests need the ROS
venv (tools/setup.sh: .venv-ros2), the built `dvtd` and `dvt`, and the Fashion-MNIST files;
they skip when one is missing on a developer machine, but under CI=true or DVT_REQUIRE_ROS2=1
(tools/test.sh sets it) a missing piece fails them instead: CI must never pass by skipping.
"""

import os
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # dvt_ros2 without installing it
sys.path.insert(0, str(HERE))         # harness

# DDS must stay on this host even when pytest is run by hand outside tools/isolated.sh; these
# must be set before rclpy initialises.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.pop("ROS_LOCALHOST_ONLY", None)
os.environ.pop("ROS_STATIC_PEERS", None)
os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(1, 100)))

import pytest  # noqa: E402

import harness as H  # noqa: E402


@pytest.fixture(scope="session")
def ros_node():
    """rclpy initialised once, and the probe's node spinning on a background thread."""
    H.import_ros()
    import rclpy
    rclpy.init()
    node = rclpy.create_node("dvt_ros2_test_probe")
    executor, thread = H.spin_in_background(rclpy, node)
    yield node
    executor.shutdown()
    thread.join(5)
    node.destroy_node()
    rclpy.try_shutdown()


@pytest.fixture(scope="module")
def dvtd(tmp_path_factory, ros_node):
    d = H.Dvtd(tmp_path_factory.mktemp("dvtd")).start()
    yield d
    d.stop()


@pytest.fixture
def start_node(ros_node, dvtd, tmp_path):
    """start_node(name, **params) -> (NodeProcess, Probe), both torn down after the test; the
    node's output is printed when the test fails (pytest shows captured stdout)."""
    started = []

    def start(name, console_script=False, probe_reliable=True, **params):
        params.setdefault("socket", dvtd.socket)
        node = H.NodeProcess(tmp_path, name, params, console_script=console_script)
        probe = H.Probe(ros_node, name, reliable=probe_reliable)
        started.append((node, probe))
        probe.wait_connected()
        probe.sync()
        return node, probe

    yield start
    for node, probe in started:
        rc = node.stop()
        print(f"--- {node.name} (exit {rc}) ---\n{node.output()[-4000:]}")
        probe.close()
