"""`rt2 serve` refuses unsafe or broken set-ups before loading anything."""
from cli_helpers import run_rt2


def test_non_loopback_bind_without_api_key_is_refused(tmp_path):
    result = run_rt2(['serve', '--model', str(tmp_path), '--host', '0.0.0.0', '--port', '0'],
                     timeout=60)
    assert result.returncode == 2
    assert 'refusing to bind 0.0.0.0 without an API key' in result.stderr
    assert 'Traceback' not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_api_key_variable_must_hold_a_key(tmp_path):
    result = run_rt2(['serve', '--model', str(tmp_path), '--api-key-env', 'RT2_EMPTY_KEY'],
                     env={'RT2_EMPTY_KEY': ''}, timeout=60)
    assert result.returncode == 2 and 'RT2_EMPTY_KEY' in result.stderr


def test_tls_options_go_together_and_model_must_exist(tmp_path):
    cert = tmp_path / 'cert.pem'
    cert.write_text('x')
    result = run_rt2(['serve', '--model', str(tmp_path), '--tls-cert', str(cert)], timeout=60)
    assert result.returncode == 2 and '--tls-key' in result.stderr
    result = run_rt2(['serve', '--model', str(tmp_path / 'missing')], timeout=60)
    assert result.returncode == 2 and 'is not a directory' in result.stderr
