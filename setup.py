"""
Build script for rt2_ros (ament_python).

Data files are laid out the way ROS 2 tools look for them: the ament index marker, package.xml,
launch/, config/ and the bundled models under share/rt2_ros, executables under lib/rt2_ros.
"""
from glob import glob
import os

from setuptools import find_packages, setup

PACKAGE = 'rt2_ros'

# What `pip install .` needs outside a ROS workspace; ROS itself (rclpy, message packages) comes
# from the ROS install or, for development, the ros-* wheels in requirements/ - never from here.
# test/test_packaging.py derives the imports from the code and checks these lists against them.
INSTALL_REQUIRES = [
    'msgpack>=1.0', 'numpy>=1.23', 'opencv-python-headless>=4.5', 'pillow>=9', 'PyYAML>=5.4',
    'scipy>=1.8', 'websockets>=11',
]
LOCAL = ['llguidance>=1.0', 'safetensors>=0.4', 'tokenizers>=0.15', 'torch>=2.1',
         'transformers>=4.40']
EXTRAS_REQUIRE = {
    'local': LOCAL,  # the in-process transformers backend
    'serve': LOCAL + ['fastapi>=0.100', 'uvicorn>=0.23'],  # rt2 serve
    'bags': ['matplotlib>=3.6', 'rosbags>=0.10', 'tqdm>=4.60'],  # rt2 bag ...
    'train': LOCAL + ['matplotlib>=3.6', 'tqdm>=4.60'],  # rt2 train, rt2 eval-sim, rt2 demo
}
EXTRAS_REQUIRE['dev'] = sorted({r for reqs in EXTRAS_REQUIRE.values() for r in reqs} | {
    'hypothesis>=6', 'pytest>=7', 'pytest-timeout>=2'})


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
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
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
