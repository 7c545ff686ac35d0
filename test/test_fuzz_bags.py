"""
Fuzzing the bag reader: mutated MCAP and sqlite3 files and hostile metadata.yaml.

Bags travel between teams and machines, and `rt2 bag` tools open whatever they are given. For
any file the reader must list topics and yield decodable messages, or raise BagError - quickly,
without hanging or exhausting memory. The regression cases are what fuzzing found (with
scripts/fuzz_atheris.py bag): a metadata.yaml whose aliases expand to 10^9 file names (hung),
MCAP size fields that made rosbags allocate or overflow (MemoryError, OverflowError), corrupt
sqlite pages (apsw.CorruptError) and NULL topic names (TypeError) escaping as tracebacks.
"""
import os
from pathlib import Path
import shutil
import struct
import time

from hypothesis import given, HealthCheck, settings, strategies as st
import pytest
from rt2_ros.bags.errors import BagError
from rt2_ros.bags.reader import BagReader
from rt2_ros.bags.synthetic import SessionSpec, write_session

EXAMPLES = int(os.environ.get('RT2_FUZZ_EXAMPLES', '40'))
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow,
                                       HealthCheck.function_scoped_fixture])


@pytest.fixture(scope='module')
def bags(tmp_path_factory):
    root = tmp_path_factory.mktemp('bags')
    out = {}
    for storage in ('mcap', 'sqlite3'):
        write_session(root / storage, SessionSpec(duration_s=0.5), storage=storage)
        out[storage] = root / storage
    return out


def read_all(path):
    """Open a bag and decode everything in it; return the number of messages decoded."""
    decoded = 0
    with BagReader(path) as reader:
        reader.summary()
        for message in reader.messages():
            try:
                reader.deserialize(message)
            except BagError:
                continue
            decoded += 1
    return decoded


def _outcome(path):
    start = time.perf_counter()
    try:
        read_all(path)
    except BagError as exc:
        assert exc.kind and str(exc)
    assert time.perf_counter() - start < 10.0


def _storage_file(bag):
    return next(p for p in bag.iterdir() if p.suffix in ('.mcap', '.db3'))


@FUZZ
@given(data=st.data())
def test_mutated_storage_files_read_or_raise_bag_errors(bags, tmp_path_factory, data):
    storage = data.draw(st.sampled_from(['mcap', 'sqlite3']))
    original = _storage_file(bags[storage])
    blob = bytearray(original.read_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(['flip', 'cut', 'insert', 'size']))
        position = data.draw(st.integers(0, len(blob) - 1))
        if kind == 'flip':
            blob[position] ^= data.draw(st.integers(1, 255))
        elif kind == 'cut':
            del blob[position:position + data.draw(st.integers(1, 4096))]
        elif kind == 'insert':
            blob[position:position] = data.draw(st.binary(min_size=1, max_size=16))
        elif position + 8 <= len(blob):  # a length or offset field set to something absurd
            value = data.draw(st.sampled_from([2 ** 63 - 1, 2 ** 64 - 1, 2 ** 40, 2 ** 31]))
            blob[position:position + 8] = struct.pack('<Q', value)
    folder = tmp_path_factory.mktemp('mutated')
    as_directory = data.draw(st.booleans())
    if as_directory:
        shutil.copy(bags[storage] / 'metadata.yaml', folder / 'metadata.yaml')
    target = folder / original.name
    target.write_bytes(bytes(blob))
    _outcome(folder if as_directory else target)


def test_mcap_record_lengths_beyond_memory_are_bag_errors(bags, tmp_path):
    blob = bytearray(_storage_file(bags['mcap']).read_bytes())
    for value in (2 ** 64 - 1, 2 ** 63 - 1, 2 ** 40):
        blob[9:17] = struct.pack('<Q', value)  # the Header record's length, after the magic
        target = tmp_path / f'len{value}.mcap'
        target.write_bytes(bytes(blob))
        with pytest.raises(BagError):
            read_all(target)


def test_corrupt_sqlite_pages_are_bag_errors(bags, tmp_path):
    blob = bytearray(_storage_file(bags['sqlite3']).read_bytes())
    page = 4096
    for start in range(page, len(blob) - 64, page):
        blob[start:start + 64] = b'\xa5' * 64
    target = tmp_path / 'corrupt.db3'
    target.write_bytes(bytes(blob))
    with pytest.raises(BagError):
        read_all(target)


def _bag_with_metadata(source, folder, text):
    shutil.copytree(source, folder)
    (folder / 'metadata.yaml').write_text(text)
    return folder


def test_metadata_alias_bomb_is_refused_not_expanded(bags, tmp_path):
    lines = ['a: &a [x, x, x, x, x, x, x, x, x, x]']
    for i in range(8):
        prev, name = chr(97 + i), chr(98 + i)
        lines.append(f'{name}: &{name} [' + ', '.join([f'*{prev}'] * 10) + ']')
    lines += ['rosbag2_bagfile_information:', '  version: 9', '  storage_identifier: mcap',
              '  relative_file_paths: [*i]']
    bag = _bag_with_metadata(bags['mcap'], tmp_path / 'bomb', '\n'.join(lines) + '\n')
    start = time.perf_counter()
    with pytest.raises(BagError, match='aliases'):
        BagReader(bag)
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize('files', ['[1, 2]', '[[a.mcap]]', '{a: b}', 'yes', '[null]'])
def test_metadata_file_lists_of_the_wrong_shape_are_bag_errors(bags, tmp_path, files):
    text = ('rosbag2_bagfile_information:\n  version: 9\n  storage_identifier: mcap\n'
            f'  relative_file_paths: {files}\n')
    with pytest.raises(BagError):
        BagReader(_bag_with_metadata(bags['mcap'], tmp_path / 'shape', text))


def test_oversized_metadata_is_refused_without_reading_it(bags, tmp_path):
    bag = _bag_with_metadata(bags['mcap'], tmp_path / 'big', '')
    with open(bag / 'metadata.yaml', 'wb') as handle:
        handle.truncate(17 << 20)  # sparse: costs no disk
    with pytest.raises(BagError, match='larger than'):
        BagReader(bag)


def test_the_unmutated_bags_read_completely(bags):
    for bag in bags.values():
        assert read_all(bag) > 10
        assert read_all(_storage_file(bag)) > 10
    assert isinstance(Path(bags['mcap']), Path)
