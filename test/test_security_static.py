"""
Static security checks: no code-executing deserialization in the package, constant-time keys.

The scan walks the syntax tree of every Python file we ship or run (the package, scripts,
benchmarks, launch files) and refuses what can turn received or loaded bytes into code: pickle
and its relatives, marshal, eval/exec, yaml.load without a safe loader, torch.load without
weights_only=True, numpy.load with allow_pickle=True, shell=True, and a literal
trust_remote_code=True (the local backend enables it only when a checkpoint declares its own
code, and docs/backends.md says so). A positive control proves the scan catches each pattern.
"""
import ast
from pathlib import Path

import pytest
from rt2_ros.policy.base import PolicyConfig
from rt2_ros.serving import auth

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ['rt2_ros', 'scripts', 'bench', 'launch', 'setup.py']
BANNED_MODULES = {'pickle', 'cPickle', '_pickle', 'dill', 'cloudpickle', 'marshal', 'shelve',
                  'joblib', 'jsonpickle', 'pickletools', 'copyreg'}
BANNED_CALLS = {'eval', 'exec', 'read_pickle', 'unsafe_load', 'full_load', 'full_load_all',
                'unsafe_load_all', 'system', 'popen'}
SAFE_YAML_LOADERS = {'SafeLoader', 'CSafeLoader', 'BaseLoader', 'CBaseLoader'}


def _keyword(call, name):
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_true(node):
    return isinstance(node, ast.Constant) and node.value is True


def _callee(call):
    func = call.func
    if isinstance(func, ast.Attribute):
        owner = func.value.id if isinstance(func.value, ast.Name) else ''
        return owner, func.attr
    if isinstance(func, ast.Name):
        return '', func.id
    return '', ''


def findings(source, name='<source>'):
    """Return 'file:line: what' for every dangerous construct in source."""
    out = []
    for node in ast.walk(ast.parse(source)):
        where = f'{name}:{getattr(node, "lineno", 0)}'
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split('.')[0] in BANNED_MODULES:
                    out.append(f'{where}: import {alias.name}')
        elif isinstance(node, ast.ImportFrom):
            if (node.module or '').split('.')[0] in BANNED_MODULES:
                out.append(f'{where}: from {node.module} import')
        elif isinstance(node, ast.Call):
            owner, attr = _callee(node)
            if attr in BANNED_CALLS and (owner in ('', 'os', 'yaml', 'pd', 'pandas', 'builtins')):
                out.append(f'{where}: {owner + "." if owner else ""}{attr}()')
            if attr in ('load', 'load_all') and owner == 'yaml':
                loader = _keyword(node, 'Loader')
                if len(node.args) > 1:
                    loader = node.args[1]
                name_of = getattr(loader, 'attr', getattr(loader, 'id', None))
                if name_of not in SAFE_YAML_LOADERS:
                    out.append(f'{where}: yaml.{attr}() without a safe Loader')
            if attr == 'load' and owner == 'torch' and not _is_true(_keyword(node,
                                                                             'weights_only')):
                out.append(f'{where}: torch.load() without weights_only=True')
            if attr == 'load' and owner in ('np', 'numpy') and \
                    _is_true(_keyword(node, 'allow_pickle')):
                out.append(f'{where}: numpy.load(allow_pickle=True)')
            if _is_true(_keyword(node, 'shell')):
                out.append(f'{where}: shell=True')
            if _is_true(_keyword(node, 'trust_remote_code')):
                out.append(f'{where}: trust_remote_code=True')
    return out


def _files():
    for entry in SCANNED:
        path = ROOT / entry
        if path.is_file():
            yield path
        elif path.is_dir():
            yield from sorted(path.rglob('*.py'))


def test_no_code_executing_deserialization_in_what_we_ship():
    problems = []
    scanned = 0
    for path in _files():
        scanned += 1
        problems += findings(path.read_text(encoding='utf-8'), str(path.relative_to(ROOT)))
    assert scanned > 50
    assert not problems, '\n'.join(problems)


@pytest.mark.parametrize('snippet', [
    'import pickle', 'from pickle import loads', 'import cloudpickle as cp', 'import marshal',
    'import shelve', 'eval(text)', 'exec(code)', 'yaml.load(text)',
    'yaml.load(text, Loader=yaml.FullLoader)', 'yaml.unsafe_load(text)', 'yaml.full_load(t)',
    'torch.load(path)', 'torch.load(path, weights_only=False)',
    'np.load(path, allow_pickle=True)', 'subprocess.run(cmd, shell=True)', 'os.system(cmd)',
    'pd.read_pickle(path)', 'Model.from_pretrained(path, trust_remote_code=True)',
])
def test_the_scan_catches_each_pattern(snippet):
    assert findings(snippet), snippet


@pytest.mark.parametrize('snippet', [
    'yaml.safe_load(text)', 'yaml.load(text, Loader=yaml.SafeLoader)',
    'torch.load(path, weights_only=True)', 'np.load(path)', 'json.loads(text)',
    'Model.from_pretrained(path, trust_remote_code=declared)', 'msgpack.unpackb(data)',
])
def test_the_scan_accepts_safe_forms(snippet):
    assert not findings(snippet), snippet


def test_api_keys_are_compared_in_constant_time(monkeypatch):
    compared = []
    real = auth.hmac.compare_digest

    def spy(a, b):
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, 'compare_digest', spy)
    key = b'correct-horse-battery-staple'
    assert auth.key_matches('Bearer correct-horse-battery-staple', key)
    assert auth.key_matches('Api-Key correct-horse-battery-staple', key)
    for guess in ('Bearer c', 'Bearer correct-horse-battery-stapl', 'Bearer ' + 'x' * 300,
                  'Bearer correct-horse-battery-staple!', 'bearer  correct-horse-battery-staplE',
                  'Api-Key \u00e9'):
        assert not auth.key_matches(guess, key)
    assert len(compared) == 8  # every well-formed guess, whatever its length, went through it
    assert not auth.key_matches('Basic correct-horse-battery-staple', key)
    assert not auth.key_matches('', key) and not auth.key_matches(None, key)
    tree = ast.parse(Path(auth.__file__).read_text())
    check = next(n for n in ast.walk(tree)
                 if isinstance(n, ast.FunctionDef) and n.name == 'key_matches')
    for node in ast.walk(check):  # no == / != on anything holding the key or the token
        if isinstance(node, ast.Compare) and any(isinstance(op, (ast.Eq, ast.NotEq))
                                                 for op in node.ops):
            names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | \
                {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}
            assert not names & {'key', 'token'}, ast.unparse(node)


def test_clients_verify_tls_unless_told_otherwise():
    from rt2_ros.controller import params
    assert PolicyConfig().verify_tls is True
    assert params.BY_NAME['policy.verify_tls'].default is True
