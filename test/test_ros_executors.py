"""The executor choice of rt2_controller: what `auto` resolves to, and clear errors."""
import pytest
import rclpy
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor

from rt2_ros.controller import params as P
from rt2_ros.ros.executors import (
    events_executor_class, EXECUTOR_KINDS, make_executor, resolve_executor_kind,
)


def test_auto_takes_the_events_executor_where_rclpy_has_it_and_single_threaded_otherwise():
    assert resolve_executor_kind('auto', events_available=True) == 'events'
    assert resolve_executor_kind('auto', events_available=False) == 'single_threaded'


@pytest.mark.parametrize('kind', ['single_threaded', 'multi_threaded'])
def test_an_explicit_kind_is_kept_whatever_rclpy_has(kind):
    assert resolve_executor_kind(kind, events_available=True) == kind
    assert resolve_executor_kind(kind, events_available=False) == kind


def test_events_on_an_rclpy_without_it_says_what_to_use_instead():
    with pytest.raises(ValueError, match='Kilted or newer.*use auto or single_threaded'):
        resolve_executor_kind('events', events_available=False)


def test_an_unknown_kind_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="'threads' is not one of auto, events, single_threaded"):
        resolve_executor_kind('threads', events_available=True)


def test_the_node_parameter_offers_exactly_the_kinds_the_module_builds():
    spec = P.BY_NAME['executor']
    assert spec.choices == EXECUTOR_KINDS and spec.default == 'auto'
    assert P.check_value(spec, 'threads') is not None


@pytest.fixture()
def context():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.try_shutdown(context=ctx)


@pytest.mark.parametrize('requested, expected', [
    ('single_threaded', SingleThreadedExecutor),
    ('multi_threaded', MultiThreadedExecutor),
])
def test_make_executor_builds_the_kind_asked_for(context, requested, expected):
    executor, kind = make_executor(requested, context=context)
    try:
        assert kind == requested and type(executor) is expected
    finally:
        executor.shutdown(timeout_sec=1.0)


def test_auto_builds_the_events_executor_on_this_rclpy(context):
    if events_executor_class() is None:  # Humble, Jazzy: the single-threaded executor instead
        expected_kind, expected_type = 'single_threaded', 'SingleThreadedExecutor'
    else:  # Kilted's rclpy.experimental.EventsExecutor is a factory of a C++ class
        expected_kind, expected_type = 'events', 'EventsExecutor'
    executor, kind = make_executor('auto', context=context)
    try:
        assert kind == expected_kind and type(executor).__name__ == expected_type
    finally:
        executor.shutdown(timeout_sec=1.0)
