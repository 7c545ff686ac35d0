"""Inference workers: never block the caller, one policy per thread, failures typed."""
import threading

import numpy as np
import pytest
from rt2_ros.actions import load_action_space
from rt2_ros.controller.images import ImageConversionError
from rt2_ros.controller.inference import InferencePool, InferenceRequest
from rt2_ros.policy.base import (
    Observation, Policy, PolicyResult, PolicyTimeout, PolicyTiming,
)

RT2 = load_action_space('rt2')


class GatedPolicy(Policy):
    """Answers when the test opens its gate; records resets and the thread it ran on."""

    def __init__(self, failure=None):
        super().__init__(RT2)
        self.gate = threading.Event()
        self.resets = 0
        self.threads = set()
        self.failure = failure
        self.closed = False

    def infer(self, observation):
        self.threads.add(threading.get_ident())
        assert self.gate.wait(10)
        if self.failure is not None:
            raise self.failure
        actions = np.array([[1, 0.01, 0, 0, 0, 0, 0, 1.0]])
        return PolicyResult(actions, RT2.names, 'raw', PolicyTiming(0.0))

    def reset(self):
        self.resets += 1

    def close(self):
        self.closed = True


def _request(ticket, episode=1, build=None):
    observation = Observation(np.zeros((4, 4, 3), np.uint8), 'go', stamp=float(ticket))
    return InferenceRequest(ticket, episode, float(ticket), build or (lambda: observation))


def _collect():
    replies = []
    arrived = threading.Condition()

    def on_reply(reply):
        with arrived:
            replies.append(reply)
            arrived.notify_all()

    def wait(count):
        with arrived:
            assert arrived.wait_for(lambda: len(replies) >= count, 10)
        return replies

    return on_reply, wait


def test_submit_never_blocks_and_busy_workers_refuse():
    policy = GatedPolicy()
    on_reply, wait = _collect()
    pool = InferencePool([policy], on_reply)
    assert pool.submit(_request(1))
    assert not pool.submit(_request(2))  # returns at once: the only worker is busy
    assert pool.busy_count() == 1
    policy.gate.set()
    reply = wait(1)[0]
    assert reply.result is not None and reply.error is None and reply.request.ticket == 1
    assert threading.get_ident() not in policy.threads
    assert pool.close() and policy.closed


def test_policy_reset_once_per_new_episode():
    policy = GatedPolicy()
    policy.gate.set()
    on_reply, wait = _collect()
    pool = InferencePool([policy], on_reply)
    for ticket, episode in enumerate([1, 1, 2, 2, 3], start=1):
        assert pool.submit(_request(ticket, episode))
        wait(ticket)
    assert policy.resets == 3
    pool.close()


@pytest.mark.parametrize('failure, kind', [
    (PolicyTimeout('slow'), PolicyTimeout),
    (KeyError('bug in a backend'), Exception),
])
def test_failures_come_back_typed(failure, kind):
    policy = GatedPolicy(failure)
    policy.gate.set()
    on_reply, wait = _collect()
    pool = InferencePool([policy], on_reply)
    pool.submit(_request(1))
    reply = wait(1)[0]
    assert reply.result is None and isinstance(reply.error, kind)
    if kind is Exception:
        assert reply.error.cause == 'policy_error' and 'KeyError' in str(reply.error)
    pool.close()


def test_bad_image_is_reported_without_calling_the_policy():
    policy = GatedPolicy()
    on_reply, wait = _collect()
    pool = InferencePool([policy], on_reply)

    def broken():
        raise ImageConversionError('unsupported image encoding')

    pool.submit(_request(1, build=broken))
    reply = wait(1)[0]
    assert isinstance(reply.error, ImageConversionError) and not policy.threads
    pool.close()


def test_several_workers_run_concurrently():
    policies = [GatedPolicy(), GatedPolicy()]
    on_reply, wait = _collect()
    pool = InferencePool(policies, on_reply)
    assert pool.submit(_request(1)) and pool.submit(_request(2))
    assert pool.busy_count() == 2
    for p in policies:
        p.gate.set()
    assert sorted(r.request.ticket for r in wait(2)) == [1, 2]
    pool.close()


def test_a_worker_that_went_idle_takes_the_next_request_at_once():
    # The node hands the next request to a worker as soon as it is free (on_idle) instead of at
    # the next control tick; that worker and the control timer may then submit at the same time.
    policy = GatedPolicy()
    policy.gate.set()
    on_reply, wait = _collect()
    chained = []

    def on_idle():
        if len(chained) < 20:
            chained.append(len(chained) + 2)
            assert pool.submit(_request(chained[-1]))  # the worker just became free

    pool = InferencePool([policy], on_reply, on_idle)
    assert pool.submit(_request(1))
    tickets = [reply.request.ticket for reply in wait(21)]
    assert tickets == list(range(1, 22))
    assert pool.close()


def test_concurrent_submits_claim_a_worker_once():
    policy = GatedPolicy()
    on_reply, wait = _collect()
    pool = InferencePool([policy], on_reply)
    start = threading.Barrier(8)
    accepted = []

    def racer(ticket):
        start.wait()
        accepted.append(pool.submit(_request(ticket)))

    threads = [threading.Thread(target=racer, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert accepted.count(True) == 1  # never two requests into one worker's inbox
    policy.gate.set()
    assert len(wait(1)) == 1
    assert pool.close()
