"""Example launch file: dvt_ros2 on a camera topic, in the `perception` namespace.

    ros2 launch clients/ros2/launch/dvt_ros2.launch.py image:=/camera/color/image_raw budget:=0.004gflops

Needs `dvt-ros2` on PATH (pip install --no-deps -e clients/ros2) and dvt_msgs built and sourced
(README.md, "ROS 2"). Outputs: /perception/classification, /perception/cascade_result, /diagnostics.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue


def generate_launch_description():
    image = LaunchConfiguration("image")
    return LaunchDescription([
        DeclareLaunchArgument("image", default_value="/camera/image_raw",
                              description="sensor_msgs/Image topic to classify"),
        DeclareLaunchArgument("socket", default_value="/run/dvtd/dvtd.sock",
                              description="dvtd's Unix socket"),
        DeclareLaunchArgument("budget", default_value="",
                              description="e.g. 0.004gflops, 30ips, 5ms, 3w, auto; empty: dvtd's own"),
        Node(
            executable="dvt-ros2",  # no package: found on PATH
            name="dvt_ros2",
            namespace="perception",
            output="screen",
            remappings=[("image", image)],
            parameters=[{
                "socket": LaunchConfiguration("socket"),
                # as a string even when it looks like a number or is empty
                "budget": ParameterValue(LaunchConfiguration("budget"), value_type=str),
                "max_in_flight": 2,
                "qos_reliable": False,
            }],
        ),
    ])
