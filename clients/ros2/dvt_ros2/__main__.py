"""`python -m dvt_ros2` / `dvt-ros2 [--ros-args ...]`."""

import sys

USAGE = """usage: dvt-ros2 [--ros-args -p socket:=PATH -p budget:=B -p max_in_flight:=N
                 -p qos_reliable:=true -r image:=/camera/image_raw ...]

Subscribes `image` (sensor_msgs/Image: mono8, rgb8, bgr8, rgba8, bgra8), classifies each frame
with dvtd over its Unix socket, publishes `classification` (vision_msgs/Classification),
`cascade_result` (dvt_msgs/CascadeResult) and /diagnostics (once a second).
Parameters: socket (default /run/dvtd/dvtd.sock if present, else dvtd's own default),
budget ('' = leave dvtd's, or 0.004gflops, 30ips, 5ms, 3w, auto), max_in_flight (default 2),
qos_reliable (default false: sensor-data QoS)."""


def main(argv=None):
    argv = sys.argv if argv is None else argv
    # Only --ros-args belong to us; anything before them is a usage error or --help.
    plain = argv[1:argv.index("--ros-args")] if "--ros-args" in argv else argv[1:]
    if plain:
        print(USAGE)
        return 0 if plain in (["-h"], ["--help"]) else 2
    from .node import spin  # rclpy only now: --help works without a ROS environment
    return spin(argv)


if __name__ == "__main__":
    sys.exit(main())
