"""Test-wide set-up: isolate this run's DDS traffic from any other run on the machine."""
import os
import random

# Several suites (developers' worktrees, CI) may run on one machine at once; a per-run domain id
# keeps their nodes from discovering each other. Child processes inherit these variables.
os.environ.setdefault('ROS_DOMAIN_ID', str(random.SystemRandom().randint(1, 100)))
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
