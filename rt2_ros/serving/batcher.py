"""
Server-side micro-batching: concurrent requests share one batched model call.

A VLA step on a GPU costs nearly the same for 1 or 8 images (the decoder is memory-bound), so a
server that answers 8 robots one at a time wastes most of the accelerator. Requests arriving while
the model is busy or within a short window after the first one are collected (up to max_batch) and
run through one `run_batch` call on a single worker thread - the model is never called from two
threads at once. The window is short (a few ms) against a model call of tens of ms; with one
client it only adds that window to each request.

A plain window lets concurrent clients settle into half-full batches: if 8 clients first arrive
as 4 + 4, each half returns while the other runs, and the split persists. So the batcher also
expects back the clients it just answered: the next batch waits - at most max_wait_s and a
quarter of the last model call - until as many requests as were in the system when the last call
ended (its batch plus those queued) have arrived. A client that does not come back costs that
bounded wait once; the expectation then shrinks.

run_batch(items) must return one entry per item: a result, or an exception instance for that item
alone. An exception raised by run_batch itself fails every item of the batch.
"""
import asyncio
from concurrent.futures import Executor
from typing import Any, Callable, List, Optional, Sequence, Tuple


class ServerBusy(RuntimeError):
    """Too many requests are already waiting; the caller should answer 503."""


class MicroBatcher:
    """Collect submitted items into batches and run them on an executor."""

    def __init__(self, run_batch: Callable[[Sequence[Any]], List[Any]], executor: Executor,
                 max_batch: int = 8, window_s: float = 0.005, max_pending: int = 256,
                 name: str = 'batcher', max_wait_s: float = 0.025) -> None:
        if max_batch < 1:
            raise ValueError('max_batch must be at least 1')
        self.run_batch = run_batch
        self.executor = executor
        self.max_batch = max_batch
        self.window_s = max(0.0, window_s)
        self.max_pending = max_pending
        self.max_wait_s = max(self.window_s, max_wait_s)
        self.name = name
        self._expected = 1
        self._last_call_s = 0.0
        self._queue: Optional[asyncio.Queue] = None
        self._task: Optional[asyncio.Task] = None
        self.batch_sizes: List[int] = []

    def start(self) -> None:
        """Start the collecting task on the running event loop."""
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self._queue is not None:
            while not self._queue.empty():
                _, future = self._queue.get_nowait()
                if not future.done():
                    future.set_exception(ServerBusy('server is shutting down'))

    @property
    def pending(self) -> int:
        return 0 if self._queue is None else self._queue.qsize()

    async def submit(self, item: Any) -> Any:
        """Queue item, wait for its batch, return its result or raise its exception."""
        if self._queue is None:
            raise RuntimeError('batcher not started')
        if self._queue.qsize() >= self.max_pending:
            raise ServerBusy(f'{self._queue.qsize()} requests already waiting')
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((item, future))
        result = await future
        if isinstance(result, BaseException):
            raise result
        return result

    async def _collect(self) -> List[Tuple[Any, asyncio.Future]]:
        assert self._queue is not None
        batch = [await self._queue.get()]
        loop = asyncio.get_running_loop()
        now = loop.time()
        window_end = now + self.window_s
        expected_end = now + max(self.window_s, min(self.max_wait_s, 0.25 * self._last_call_s))
        target = min(self.max_batch, self._expected)
        while len(batch) < self.max_batch:
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            remaining = (expected_end if len(batch) < target else window_end) - loop.time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except asyncio.TimeoutError:
                break
        return batch

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            live = [(item, future) for item, future in batch if not future.cancelled()]
            if not live:
                continue
            items = [item for item, _ in live]
            self.batch_sizes.append(len(items))
            del self.batch_sizes[:-1000]
            started = loop.time()
            try:
                results = await loop.run_in_executor(self.executor, self.run_batch, items)
                if len(results) != len(items):
                    raise RuntimeError(f'run_batch returned {len(results)} results for '
                                       f'{len(items)} items')
            except asyncio.CancelledError:
                for _, future in live:
                    if not future.done():
                        future.set_exception(ServerBusy('server is shutting down'))
                raise
            except Exception as exc:  # noqa: B902 - one failure must reach every waiter
                results = [exc] * len(items)
            self._last_call_s = loop.time() - started
            self._expected = max(1, len(items) + self._queue.qsize())
            for (_, future), result in zip(live, results):
                if not future.done():
                    future.set_result(result)
