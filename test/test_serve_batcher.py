"""Micro-batching: concurrent requests share calls, failures stay with their own request."""
import asyncio
from concurrent.futures import ThreadPoolExecutor
import threading

import pytest
from rt2_ros.serving.app import _isolate
from rt2_ros.serving.batcher import MicroBatcher, ServerBusy


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 30))


def test_concurrent_submissions_are_batched_up_to_max_batch():
    calls = []
    release = threading.Event()

    def run_batch(items):
        calls.append(list(items))
        release.wait(5)  # hold the first call so the rest queue up behind it
        return [item * 10 for item in items]

    async def scenario():
        batcher = MicroBatcher(run_batch, ThreadPoolExecutor(1), max_batch=4, window_s=0.05)
        batcher.start()
        first = asyncio.ensure_future(batcher.submit(0))
        while not calls:
            await asyncio.sleep(0.001)
        rest = [asyncio.ensure_future(batcher.submit(i)) for i in range(1, 10)]
        while batcher.pending < 9:
            await asyncio.sleep(0.001)
        release.set()
        results = await asyncio.gather(first, *rest)
        await batcher.stop()
        return results

    assert run(scenario()) == [i * 10 for i in range(10)]
    assert [len(c) for c in calls] == [1, 4, 4, 1]


def test_closed_loop_clients_that_arrive_split_converge_to_full_batches():
    import time

    def run_batch(items):
        time.sleep(0.1)  # a model call
        return list(items)

    async def client(batcher, index, start_delay):
        await asyncio.sleep(start_delay)
        for step in range(8):
            await batcher.submit(index)
            await asyncio.sleep(0.005)  # the robot turns the answer into the next request

    async def scenario(max_wait_s):
        batcher = MicroBatcher(run_batch, ThreadPoolExecutor(1), max_batch=8, window_s=0.002,
                               max_wait_s=max_wait_s)
        batcher.start()
        # Two groups of four, the second arriving while the first batch runs.
        await asyncio.gather(*(client(batcher, i, 0.0 if i < 4 else 0.02) for i in range(8)))
        await batcher.stop()
        return batcher.batch_sizes

    sizes = run(scenario(0.05))
    # The first group starts alone and finishes one round early; all batches between are full.
    assert sizes[0] == 4 and set(sizes[1:-1]) == {8}, sizes
    # A window alone keeps the split: each half returns while the other half runs.
    assert max(run(scenario(0.0))) == 4


def test_per_item_exceptions_reach_only_their_request():
    def run_batch(items):
        return [ValueError(f'bad {i}') if i % 2 else i for i in items]

    async def scenario():
        batcher = MicroBatcher(run_batch, ThreadPoolExecutor(1), max_batch=8, window_s=0.02)
        batcher.start()
        results = await asyncio.gather(*(batcher.submit(i) for i in range(4)),
                                       return_exceptions=True)
        await batcher.stop()
        return results

    results = run(scenario())
    assert results[0] == 0 and results[2] == 2
    assert isinstance(results[1], ValueError) and str(results[3]) == 'bad 3'


def test_queue_limit_answers_busy():
    entered = threading.Event()
    gate = threading.Event()

    def run_batch(items):
        entered.set()
        gate.wait(5)
        return list(items)

    async def scenario():
        batcher = MicroBatcher(run_batch, ThreadPoolExecutor(1), max_batch=1, window_s=0,
                               max_pending=2)
        batcher.start()
        waiting = [asyncio.ensure_future(batcher.submit(0))]
        while not entered.is_set():
            await asyncio.sleep(0.001)
        waiting += [asyncio.ensure_future(batcher.submit(i)) for i in (1, 2)]
        while batcher.pending < 2:
            await asyncio.sleep(0.001)
        with pytest.raises(ServerBusy):
            await batcher.submit(99)
        gate.set()
        done = await asyncio.gather(*waiting)
        await batcher.stop()
        return done

    assert run(scenario()) == [0, 1, 2]


def test_isolate_retries_a_failed_batch_item_by_item():
    def infer(items):
        if 'bad' in items:
            raise ValueError('bad input')
        return [item.upper() for item in items]

    results = _isolate(infer, ['a', 'bad', 'c'])
    assert results[0] == 'A' and results[2] == 'C' and isinstance(results[1], ValueError)
