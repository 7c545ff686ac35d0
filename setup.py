"""
Build script for rt2_ros (ament_python).

Data files are laid out the way ROS 2 tools look for them: the ament index marker, package.xml,
launch/, config/ and the bundled models under share/rt2_ros, executables under lib/rt2_ros.
"""
from glob import glob
import os

from setuptools import find_packages, setup

PACKAGE = 'rt2_ros'

# pip extras, for installs without a ROS workspace (versions: requirements/lock.txt). In a
# workspace rosdep installs what package.xml names; these are the parts it has no keys for.
CORE = ['numpy', 'opencv-python-headless', 'requests', 'PyYAML']
LOCAL = ['torch', 'transformers', 'tokenizers', 'safetensors', 'pillow']
EXTRAS = {
    'ros': CORE + ['ros-rclpy', 'ros-rmw-fastrtps-cpp', 'ros-sensor-msgs', 'ros-geometry-msgs',
                   'ros-std-msgs', 'ros-std-srvs', 'ros-visualization-msgs',
                   'ros-diagnostic-msgs', 'ros-nav-msgs', 'ros-ament-index-python'],
    'local': CORE + LOCAL,
    'serve': CORE + LOCAL + ['fastapi', 'uvicorn', 'websockets', 'msgpack', 'json-numpy'],
    'bags': CORE + ['rosbags', 'matplotlib'],
}


def tree(source_dir: str) -> list:
    """Map every file below source_dir to share/rt2_ros/<same relative dir>."""
    entries = {}
    for path in sorted(glob(os.path.join(source_dir, '**', '*'), recursive=True)):
        if os.path.isfile(path) and '__pycache__' not in path:
            target = os.path.join('share', PACKAGE, os.path.dirname(path))
            entries.setdefault(target, []).append(path)
    return sorted(entries.items())


setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*', 'bench', 'bench.*', 'experiments',
                                    'experiments.*']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        ('share/' + PACKAGE, ['package.xml']),
    ] + tree('launch') + tree('config') + tree('models'),
    install_requires=['setuptools'],
    extras_require=EXTRAS,
    zip_safe=True,
    maintainer='rt2_ros maintainers',
    maintainer_email='maintainers@rt2-ros.invalid',
    description='RT-2 style vision-language-action robot control for ROS 2',
    license='Apache-2.0',
    tests_require=['pytest'],
    entry_points={
        'console_scripts': [
            'rt2 = rt2_ros.cli.main:main',
            'rt2_controller = rt2_ros.controller.node:main',
            'rt2_sim = rt2_ros.sim.node:main',
            'rt2_sim_expert = rt2_ros.sim.expert_node:main',
        ],
    },
)
