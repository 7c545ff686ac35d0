"""The controller state machine on its own."""
import pytest
from rt2_ros.controller.state import State, StateMachine


def _running():
    machine = StateMachine()
    machine.activate()
    assert machine.on_instruction('pick up the block')
    return machine


def test_instruction_starts_an_episode_only_when_active():
    machine = StateMachine()
    assert not machine.on_instruction('pick')
    assert machine.state == State.HALTED and machine.cause == 'deactivated'
    machine.activate()
    assert machine.state == State.RUNNING and machine.episode == 1


def test_new_instruction_mid_episode_starts_a_new_one():
    machine = _running()
    assert machine.on_instruction('place it')
    assert machine.episode == 2 and machine.instruction == 'place it'
    machine.on_instruction('   ')
    assert machine.state == State.IDLE


def test_halt_then_halted_then_auto_resume():
    machine = _running()
    assert machine.halt('stale_image', 'old')
    assert not machine.halt('stale_image', 'still old')  # reported once
    assert machine.state == State.HALTING
    machine.halting_done()
    assert machine.state == State.HALTED and machine.can_resume()
    assert machine.resume() and machine.running


def test_no_auto_resume_needs_reset():
    machine = _running()
    machine.auto_resume = False
    machine.halt('policy_error')
    assert not machine.resume()
    ok, _ = machine.reset()
    assert ok and machine.running and machine.episode == 2


def test_estop_latches_until_released_and_reset():
    machine = _running()
    assert machine.estop(True)
    assert machine.state == State.ESTOPPED
    assert not machine.halt('policy_error')  # e-stop is not overridden by a fault
    ok, message = machine.reset()
    assert not ok and 'still engaged' in message
    machine.estop(False)
    assert machine.state == State.ESTOPPED  # release alone does not resume
    assert not machine.on_instruction('new task')  # kept for after the reset
    ok, _ = machine.reset()
    assert ok and machine.running and machine.instruction == 'new task'


def test_terminate_waits_for_a_new_instruction():
    machine = _running()
    assert machine.terminate()
    assert machine.state == State.TERMINATED
    assert not machine.halt('stale_image')
    assert machine.on_instruction('again') and machine.running


def test_deactivate_and_activate():
    machine = _running()
    machine.deactivate()
    assert machine.state == State.HALTING and machine.cause == 'deactivated'
    assert not machine.halt('stale_image')  # deactivation stays the reason
    assert not machine.can_resume()
    machine.activate()
    assert machine.running


def test_transitions_are_reported():
    seen = []
    machine = StateMachine(listener=seen.append)
    machine.activate()
    machine.on_instruction('go')
    machine.halt('invalid_action', 'NaN')
    assert [(t.state.value, t.cause) for t in seen] == [
        ('running', ''), ('halting', 'invalid_action')]
    with pytest.raises(ValueError):
        machine.halt('bored')
