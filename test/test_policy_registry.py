"""
One backend registry for the node and every command, open to other packages' backends.

The worked example in docs/examples/rt2_hold_still_backend (the one docs/ros_integration.md
walks through) is installed with pip into a directory of its own and then found by name - by the
registry, the controller's parameter check, `rt2 bag eval` in a fresh process, and the node's
and the demo's choice of policy - without any change to rt2_ros.
"""
import json
import os
from pathlib import Path
import subprocess
import sys

from cli_helpers import run_rt2
import pytest
from rt2_ros.bags.synthetic import SessionSpec, write_session
from rt2_ros.controller import params as P
from rt2_ros.policy import factory
from rt2_ros.policy.base import PolicyConfig

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / 'docs' / 'examples' / 'rt2_hold_still_backend'


@pytest.fixture(scope='module')
def installed_example(tmp_path_factory):
    """Pip-install the example package into its own directory; return that directory."""
    target = tmp_path_factory.mktemp('plugin_site')
    subprocess.run([sys.executable, '-m', 'pip', 'install', '--quiet', '--no-deps',
                    '--no-build-isolation', '--no-index', '--disable-pip-version-check',
                    '--target', str(target), str(EXAMPLE)], check=True, timeout=300,
                   cwd=tmp_path_factory.mktemp('build'))
    assert list(target.glob('rt2_hold_still_backend-*.dist-info'))
    return target


@pytest.fixture
def on_path(installed_example, monkeypatch):
    monkeypatch.syspath_prepend(str(installed_example))
    return installed_example


def test_builtins_and_module_class_paths_resolve():
    assert set(factory.BUILTIN_BACKENDS) <= set(factory.registered_backends())
    assert factory.backend_error('openvla_http') is None
    assert factory.backend_error('support.sim_expert_policy:SimExpertPolicy') is None
    assert 'choose one of openvla_http, openai, openpi, local' in factory.backend_error('nope')
    with pytest.raises(factory.UnknownBackendError, match='not a subclass'):
        factory.backend_class('json:JSONDecoder')


def test_the_example_is_not_known_until_installed():
    assert 'hold_still' not in factory.registered_backends()
    assert P.check_value(P.BY_NAME['policy.backend'], 'hold_still') is not None


def test_an_installed_plugin_is_found_by_name_everywhere(on_path):
    assert factory.registered_backends()['hold_still'] == 'hold_still_backend:HoldStillPolicy'
    assert P.check_value(P.BY_NAME['policy.backend'], 'hold_still') is None  # the node accepts it
    policy = factory.make_policy(PolicyConfig(backend='hold_still', action_space='rt2'))
    assert type(policy).__name__ == 'HoldStillPolicy'
    from rt2_ros.demo.policy_choice import choose_policy
    choice = choose_policy(backend='hold_still')
    assert choice.parameters['policy.backend'] == 'hold_still'


def test_rt2_bag_eval_runs_an_installed_plugin(installed_example, tmp_path):
    write_session(tmp_path / 'session', SessionSpec(), storage='mcap')
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [str(installed_example),
                                                      env.get('PYTHONPATH', '')]))
    out = tmp_path / 'report'
    result = run_rt2(['bag', 'eval', str(tmp_path / 'session'), '--policy', 'hold_still',
                      '--out', str(out), '--no-progress'], env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads((out / 'report.json').read_text())
    assert report['steps']['answered'] == report['steps']['total'] > 0
    assert report['dimensions']['dx']['max_abs'] > 0  # the expert moved; this policy did not


def test_rt2_serve_takes_its_backend_from_the_registry(on_path, tmp_path, capsys):
    from rt2_ros.cli.main import main
    model = tmp_path / 'model'
    model.mkdir()
    assert main(['serve', '--model', str(model), '--port', '0', '--backend', 'nope']) == 2
    assert 'unknown policy backend' in capsys.readouterr().err
    assert main(['serve', '--model', str(model), '--port', '0', '--backend', 'hold_still']) == 2
    assert 'cannot be served: it has no infer_batch or generate_text' in capsys.readouterr().err
