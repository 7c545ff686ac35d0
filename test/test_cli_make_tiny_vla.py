"""`rt2 make-tiny-vla` as a user runs it: a loadable checkpoint, or one clear line and exit 2."""
import json

from cli_helpers import run_rt2
import numpy as np
from rt2_ros.cli.main import main
from rt2_ros.policy.base import Observation, PolicyConfig
from rt2_ros.policy.factory import make_policy


def test_make_tiny_vla_writes_a_checkpoint_the_local_backend_runs(tmp_path, capsys):
    out = tmp_path / 'vla'
    # In process: a subprocess would spend its time importing torch and transformers again.
    assert main(['make-tiny-vla', str(out), '--space', 'openvla', '--seed', '4',
                 '--hidden', '32', '--layers', '1']) == 0
    assert 'wrote' in capsys.readouterr().out
    for name in ('config.json', 'model.safetensors', 'tokenizer.json', 'processor_config.json',
                 'action_space.yaml', 'dataset_statistics.json', 'tiny_vla.json'):
        assert (out / name).is_file(), name
    recipe = json.loads((out / 'tiny_vla.json').read_text())
    assert recipe['seed'] == 4 and recipe['hidden'] == 32 and recipe['space'] == 'openvla'
    policy = make_policy(PolicyConfig(backend='local', model_path=str(out)))
    image = np.zeros((24, 24, 3), dtype=np.uint8)
    assert policy.infer(Observation(image=image, instruction='pick the block')).horizon == 1

    again = run_rt2(['make-tiny-vla', str(out)])
    assert again.returncode == 2
    assert again.stderr.strip().count('\n') == 0 and 'not empty' in again.stderr


def test_make_tiny_vla_rejects_bad_arguments_in_one_line(tmp_path):
    bad_space = run_rt2(['make-tiny-vla', str(tmp_path / 'x'), '--space', 'palm-e'])
    assert bad_space.returncode == 2
    assert bad_space.stderr.strip().startswith('rt2 make-tiny-vla: error: unknown --space')
    assert bad_space.stderr.strip().count('\n') == 0 and 'Traceback' not in bad_space.stderr
    bad_size = run_rt2(['make-tiny-vla', str(tmp_path / 'y'), '--image-size', '30'])
    assert bad_size.returncode == 2 and 'multiple of patch_size' in bad_size.stderr
    assert not (tmp_path / 'x').exists() and not (tmp_path / 'y').exists()
