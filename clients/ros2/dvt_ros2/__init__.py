"""dvt_ros2: a ROS 2 node that classifies sensor_msgs/Image frames with dvtd (the dvt-edge
early-exit cascade daemon). Run it with `python -m dvt_ros2` or `dvt-ros2`.

The pure parts (`image`, `budget`, `stats`) import nothing from ROS, so they can be tested and
reused without a ROS install; `node` needs rclpy and the message packages.
"""

__version__ = "0.1.0"
