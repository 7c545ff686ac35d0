"""The executor choice of rt2_controller: what `auto` resolves to, and clear errors."""
import pytest
import rclpy
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor

from rt2_ros.controller import params as P
from rt2_ros.ros.executors import (
    events_executor_class, EXECUTOR_KINDS, make_executor, resolve_executor_kind,
)


def test_auto_is_the_single_threaded_executor_on_every_rclpy():
    assert resolve_executor_kind('auto', events_available=True) == 'single_threaded'
    assert resolve_executor_kind('auto', events_available=False) == 'single_threaded'


@pytest.mark.parametrize('kind', ['single_threaded', 'multi_threaded'])
def test_an_explicit_kind_is_kept_whatever_rclpy_has(kind):  # events: see the next test
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


def test_auto_builds_the_single_threaded_executor(context):
    executor, kind = make_executor('auto', context=context)
    try:
        assert kind == 'single_threaded' and type(executor) is SingleThreadedExecutor
    finally:
        executor.shutdown(timeout_sec=1.0)


def test_events_builds_rclpys_events_executor_where_it_exists(context):
    if events_executor_class() is None:  # Humble, Jazzy
        with pytest.raises(ValueError, match='Kilted or newer'):
            make_executor('events', context=context)
        return
    executor, kind = make_executor('events', context=context)
    try:  # Kilted's rclpy.experimental.EventsExecutor is a factory of a C++ class
        assert kind == 'events' and type(executor).__name__ == 'EventsExecutor'
    finally:
        executor.shutdown(timeout_sec=1.0)


def test_the_demo_spins_in_the_controllers_executor_and_no_code_subclasses_rclpys():
    """`rt2 demo` builds its executor with make_executor, as the node does (test_demo runs it)."""
    import ast
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent / 'rt2_ros'
    demo = ast.parse((root / 'demo' / 'demo_node.py').read_text())
    calls = {node.func.id for node in ast.walk(demo)
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    assert 'make_executor' in calls
    for path in root.rglob('*.py'):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                bases = {getattr(b, 'id', getattr(b, 'attr', '')) for b in node.bases}
                assert not bases & {'MultiThreadedExecutor', 'SingleThreadedExecutor',
                                    'Executor', 'EventsExecutor'}, f'{path}: {node.name}'
            if isinstance(node, ast.Attribute) and node.attr == '_executor':
                raise AssertionError(f'{path}:{node.lineno} touches rclpy private _executor')
