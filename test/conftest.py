"""Test-wide set-up: isolate this run's DDS traffic from any other run on the machine."""
import os
import random
import sys

import pytest

# Several suites (developers' worktrees, CI) may run on one machine at once; a per-run domain id
# keeps their nodes from discovering each other. Child processes inherit these variables.
os.environ.setdefault('ROS_DOMAIN_ID', str(random.SystemRandom().randint(1, 100)))
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the log (and thread stacks) of every node process still around to a failure."""
    outcome = yield
    report = outcome.get_result()
    harness = sys.modules.get('support.ros_harness')
    if not report.failed or call.when == 'teardown' or harness is None:
        return
    for process in list(harness.STARTED):
        report.sections.append((f'node process {process.fqn}', process.post_mortem()))


@pytest.fixture(scope='module')
def one_torch_thread():
    """Tiny models on a shared 2-core machine: a second OpenMP thread only spins and waits."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
