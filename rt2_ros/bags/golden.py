"""
Compare a controller's recorded outputs with a golden bag: by content and order, not by time.

What a regression test must pin is what the controller decided and commanded, in which order -
not on which millisecond, which depends on the policy's latency and the phase of the control
timer. So each output topic becomes a sequence of values (every numeric and text field of the
message except time stamps), consecutive repeats are collapsed into one entry with a count (a
twist held for 16 or 17 ticks is the same command), and the sequences are compared entry by
entry with an absolute tolerance. The diff names the topic, the entry, the fields and both
values, like a unified diff.
"""
from dataclasses import dataclass, field
import math
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from rt2_ros.bags.reader import BagReader

NOT_COMPARED = ('/rosout', '/parameter_events', '/clock', '/diagnostics', 'annotated_image',
                'markers', '/tf', '/tf_static')
SKIPPED_FIELDS = ('stamp',)
MAX_DIFF_LINES = 40


@dataclass
class Entry:
    """A run of equal consecutive messages: field names, values and how many there were."""

    names: Tuple[str, ...]
    values: Tuple[Any, ...]
    count: int = 1


@dataclass
class Stream:
    topic: str
    msgtype: str
    messages: int = 0
    entries: List[Entry] = field(default_factory=list)


def flatten(message: Any, prefix: str = '') -> List[Tuple[str, Any]]:
    """(dotted field name, value) leaves of a rosbags message, arrays expanded, stamps skipped."""
    if isinstance(message, np.ndarray):
        if message.dtype.kind in 'fiub':
            return [(f'{prefix}[{i}]', float(v)) for i, v in enumerate(message.reshape(-1))]
        return [(prefix, bytes(message.tobytes()))]
    fields = getattr(message, '__dataclass_fields__', None)
    if fields is not None:
        leaves: List[Tuple[str, Any]] = []
        for name in fields:
            if name == '__msgtype__' or name in SKIPPED_FIELDS:
                continue
            leaves.extend(flatten(getattr(message, name), f'{prefix}.{name}' if prefix else name))
        return leaves
    if isinstance(message, (list, tuple)):
        leaves = []
        for i, item in enumerate(message):
            leaves.extend(flatten(item, f'{prefix}[{i}]'))
        return leaves
    if isinstance(message, bool):
        return [(prefix, float(message))]
    if isinstance(message, (int, float)):
        return [(prefix, float(message))]
    return [(prefix, message)]


def _same(a: Entry, names: Tuple[str, ...], values: Tuple[Any, ...], tolerance: float) -> bool:
    return a.names == names and all(_close(x, y, tolerance) for x, y in zip(a.values, values))


def _close(x: Any, y: Any, tolerance: float) -> bool:
    if isinstance(x, float) and isinstance(y, float):
        if math.isnan(x) or math.isnan(y):
            return math.isnan(x) and math.isnan(y)
        return abs(x - y) <= tolerance
    return x == y


def compared_topics(bag: BagReader) -> List[str]:
    """Return the bag's topics that a comparison looks at (all but NOT_COMPARED)."""
    return [t for t in bag.topics if not any(t.endswith(n) or t == n for n in NOT_COMPARED)]


def read_streams(bag: BagReader, topics: Optional[Iterable[str]] = None,
                 tolerance: float = 1e-6) -> Dict[str, Stream]:
    """Collapse each compared topic of a bag into its sequence of distinct consecutive values."""
    names = list(topics) if topics is not None else compared_topics(bag)
    streams = {t: Stream(t, bag.topics[t].msgtype) for t in names if t in bag.topics}
    if not streams:
        return streams
    for message in bag.messages(list(streams)):
        stream = streams[message.topic]
        leaves = flatten(bag.deserialize(message))
        keys = tuple(n for n, _ in leaves)
        values = tuple(v for _, v in leaves)
        stream.messages += 1
        if stream.entries and _same(stream.entries[-1], keys, values, tolerance):
            stream.entries[-1].count += 1
        else:
            stream.entries.append(Entry(keys, values))
    return streams


@dataclass
class Comparison:
    """Result of a golden comparison: passed, and the human-readable report lines."""

    passed: bool
    lines: List[str]

    @property
    def text(self) -> str:
        return '\n'.join(self.lines)


def _show(entry: Entry, against: Optional[Entry], tolerance: float) -> str:
    parts = []
    for index, (name, value) in enumerate(zip(entry.names, entry.values)):
        other = against.values[index] if against is not None and index < len(against.values) \
            else None
        if against is not None and other is not None and _close(value, other, tolerance):
            continue
        shown = f'{value:.6g}' if isinstance(value, float) else repr(value)[:60]
        parts.append(f'{name}={shown}')
    return ', '.join(parts) if parts else '(same values)'


def compare(golden: Dict[str, Stream], actual: Dict[str, Stream],
            tolerance: float = 1e-6) -> Comparison:
    """Compare stream by stream; every topic in the golden bag must match."""
    lines: List[str] = []
    failed = False
    for topic in sorted(set(golden) | set(actual)):
        want, got = golden.get(topic), actual.get(topic)
        if want is None:
            lines.append(f'+ {topic}: published {got.messages} messages, not in the golden bag')
            failed = True
            continue
        if got is None:
            lines.append(f'- {topic}: {len(want.entries)} distinct values in the golden bag, '
                         'nothing published')
            failed = True
            continue
        problems = _compare_stream(want, got, tolerance)
        if problems:
            failed = True
            lines.append(f'DIFF {topic} ({want.msgtype}): golden {len(want.entries)} distinct '
                         f'values / {want.messages} messages, got {len(got.entries)} / '
                         f'{got.messages}')
            lines.extend('  ' + p for p in problems)
        else:
            lines.append(f'ok   {topic}: {len(want.entries)} distinct values in order '
                         f'({got.messages} messages, golden {want.messages})')
    if len(lines) > MAX_DIFF_LINES:
        lines = lines[:MAX_DIFF_LINES] + [f'... {len(lines) - MAX_DIFF_LINES} more lines']
    lines.append(('PASS' if not failed else 'FAIL') + f' (tolerance {tolerance:g})')
    return Comparison(not failed, lines)


def _compare_stream(want: Stream, got: Stream, tolerance: float) -> List[str]:
    problems: List[str] = []
    for index in range(max(len(want.entries), len(got.entries))):
        a = want.entries[index] if index < len(want.entries) else None
        b = got.entries[index] if index < len(got.entries) else None
        if a is not None and b is not None and _same(a, b.names, b.values, tolerance):
            continue
        if a is not None and b is not None and a.names != b.names:
            problems.append(f'#{index}: fields differ: golden {len(a.names)}, got {len(b.names)}')
        if a is not None:
            problems.append(f'- #{index} (x{a.count}): {_show(a, b, tolerance)}')
        if b is not None:
            problems.append(f'+ #{index} (x{b.count}): {_show(b, a, tolerance)}')
        if len(problems) >= 12:
            problems.append('... (further differences not shown)')
            break
    return problems


def compare_bags(golden: BagReader, actual: BagReader, tolerance: float = 1e-6,
                 topics: Optional[Sequence[str]] = None) -> Comparison:
    """Compare two bags' output streams (topics: all but NOT_COMPARED, or these)."""
    return compare(read_streams(golden, topics, tolerance),
                   read_streams(actual, topics, tolerance), tolerance)
