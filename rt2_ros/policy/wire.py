"""
Array wire formats spoken by VLA servers, decoded without pickle and within hard limits.

Two formats matter in practice:
- json_numpy (OpenVLA's deploy.py): an array is the JSON object
  `{"__numpy__": base64(raw bytes), "dtype": "<f8", "shape": [7]}`.
- msgpack-numpy (openpi): an array is the msgpack map
  `{b"__ndarray__": True, b"data": raw bytes, b"dtype": "|u1", b"shape": [224, 224, 3]}`,
  a numpy scalar `{b"__npgeneric__": True, b"data": value, b"dtype": "<f4"}`.

Both ends of a policy link face untrusted bytes (a robot facing a broken server, a server facing
the network), and the libraries that usually read these formats either fall back to pickle or
trust the declared shape. Here every decoder returns a value or raises WireFormatError (or its
subclass WireLimitError when a size limit is exceeded): dtypes come from a whitelist, shapes and
byte counts must agree, nesting depth, element counts and total bytes are bounded before anything
is allocated. Decoded arrays are read-only views of the received bytes (as with the reference
libraries); copy them before writing.
"""
import base64
import binascii
from dataclasses import dataclass
import json
import math
from typing import Any, Dict, Optional, Tuple

import msgpack
import numpy as np

# Plain numeric and boolean dtypes in every byte-order spelling numpy writes in dtype.str.
_DTYPE_CODES = ('b1', 'u1', 'i1', 'u2', 'i2', 'u4', 'i4', 'u8', 'i8', 'f2', 'f4', 'f8')
ALLOWED_DTYPES = frozenset(
    prefix + code for code in _DTYPE_CODES for prefix in ('<', '>', '|', '='))

JSON_NUMPY_KEY = '__numpy__'
NDARRAY_KEY = '__ndarray__'
NPGENERIC_KEY = '__npgeneric__'


class WireFormatError(ValueError):
    """Received bytes are not a well-formed message of the expected wire format."""


class WireLimitError(WireFormatError):
    """A message, array or nesting level exceeds a configured limit (HTTP 413 on a server)."""


@dataclass(frozen=True)
class WireLimits:
    """
    Upper bounds applied while decoding untrusted messages.

    The defaults admit a 4K RGB image and action chunks of any realistic size, and nothing that
    could exhaust memory: max_message_bytes bounds the whole message, the rest bound what a small
    message could otherwise claim (a 10-byte header declaring a terabyte array).
    """

    max_message_bytes: int = 64 << 20
    max_array_bytes: int = 48 << 20
    max_total_array_bytes: int = 64 << 20
    max_ndim: int = 8
    max_depth: int = 32
    max_items: int = 100_000
    max_str_chars: int = 1 << 20


DEFAULT_LIMITS = WireLimits()


def _check_dtype(dtype: Any) -> np.dtype:
    if isinstance(dtype, bytes):
        try:
            dtype = dtype.decode('ascii')
        except UnicodeDecodeError:
            raise WireFormatError('array dtype is not ASCII') from None
    if not isinstance(dtype, str) or dtype not in ALLOWED_DTYPES:
        shown = repr(dtype)[:40]
        raise WireFormatError(f'array dtype {shown} is not an allowed numeric dtype')
    return np.dtype(dtype)


def _check_shape(shape: Any, limits: WireLimits) -> Tuple[int, ...]:
    if not isinstance(shape, (list, tuple)):
        raise WireFormatError('array shape must be a list of integers')
    if len(shape) > limits.max_ndim:
        raise WireLimitError(f'array has {len(shape)} dimensions, more than {limits.max_ndim}')
    dims = []
    for size in shape:
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise WireFormatError('array shape must be a list of non-negative integers')
        dims.append(size)
    return tuple(dims)


def _array_from_bytes(data: bytes, dtype: Any, shape: Any, limits: WireLimits) -> np.ndarray:
    """Build an array after checking dtype, shape and that the byte count matches exactly."""
    checked_dtype = _check_dtype(dtype)
    checked_shape = _check_shape(shape, limits)
    count = math.prod(checked_shape)
    expected = count * checked_dtype.itemsize
    if expected > limits.max_array_bytes:
        raise WireLimitError(
            f'array of shape {checked_shape} needs {expected} bytes, more than '
            f'{limits.max_array_bytes}')
    if len(data) != expected:
        raise WireFormatError(
            f'array of shape {checked_shape} and dtype {checked_dtype.str} needs {expected} '
            f'bytes, got {len(data)}')
    return np.frombuffer(data, dtype=checked_dtype, count=count).reshape(checked_shape)


def _check_encodable(array: np.ndarray) -> np.ndarray:
    """Refuse dtypes a peer could not decode safely; tobytes() later writes C order."""
    if array.dtype.str not in ALLOWED_DTYPES:
        raise WireFormatError(f'cannot send an array of dtype {array.dtype}; use a numeric dtype')
    return array


class _Budget:
    """Running totals while walking one decoded message."""

    def __init__(self, limits: WireLimits) -> None:
        self.limits = limits
        self.items = 0
        self.array_bytes = 0

    def count(self, n: int = 1) -> None:
        self.items += n
        if self.items > self.limits.max_items:
            raise WireLimitError(f'message has more than {self.limits.max_items} items')

    def add_array(self, array: Any) -> Any:
        self.array_bytes += array.nbytes
        if self.array_bytes > self.limits.max_total_array_bytes:
            raise WireLimitError(
                f'message arrays exceed {self.limits.max_total_array_bytes} bytes in total')
        return array


# ---------------------------------------------------------------- json_numpy (OpenVLA)

def json_numpy_array(array: np.ndarray) -> Dict[str, Any]:
    """Return the json_numpy JSON object for an array (what json_numpy.dumps writes)."""
    array = _check_encodable(np.asarray(array))
    return {
        JSON_NUMPY_KEY: base64.b64encode(array.tobytes()).decode('ascii'),
        'dtype': array.dtype.str,
        'shape': list(array.shape),
    }


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return json_numpy_array(obj)
    if isinstance(obj, np.generic):
        return json_numpy_array(np.asarray(obj))
    raise TypeError(f'{type(obj).__name__} is not JSON serializable')


def json_numpy_dumps(obj: Any) -> str:
    """Serialize obj to JSON text, writing numpy arrays and scalars the json_numpy way."""
    return json.dumps(obj, default=_json_default, allow_nan=False, separators=(',', ':'))


def _decode_json_numpy_object(obj: Dict[str, Any], limits: WireLimits) -> Any:
    if set(obj) != {JSON_NUMPY_KEY, 'dtype', 'shape'}:
        raise WireFormatError('a json_numpy array has exactly the keys __numpy__, dtype, shape')
    payload = obj[JSON_NUMPY_KEY]
    if not isinstance(payload, str):
        raise WireFormatError('json_numpy __numpy__ must be a base64 string')
    # Check the declared size before decoding so a huge claim costs nothing.
    checked_dtype = _check_dtype(obj['dtype'])
    expected = math.prod(_check_shape(obj['shape'], limits)) * checked_dtype.itemsize
    if expected > limits.max_array_bytes:
        raise WireLimitError(f'array needs {expected} bytes, more than {limits.max_array_bytes}')
    if len(payload) != 4 * ((expected + 2) // 3):
        raise WireFormatError(
            f'json_numpy data has {len(payload)} base64 characters, the declared array needs '
            f'{4 * ((expected + 2) // 3)}')
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise WireFormatError('json_numpy __numpy__ is not valid base64') from None
    array = _array_from_bytes(data, obj['dtype'], obj['shape'], limits)
    # json_numpy writes numpy scalars with shape [] and reads them back as scalars.
    return array[()] if array.ndim == 0 else array


def _walk_json(value: Any, limits: WireLimits, budget: _Budget, depth: int) -> Any:
    if depth > limits.max_depth:
        raise WireLimitError(f'message nests deeper than {limits.max_depth} levels')
    budget.count()
    if isinstance(value, dict):
        if JSON_NUMPY_KEY in value:
            return budget.add_array(_decode_json_numpy_object(value, limits))
        return {key: _walk_json(item, limits, budget, depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        return [_walk_json(item, limits, budget, depth + 1) for item in value]
    if isinstance(value, str) and len(value) > limits.max_str_chars:
        raise WireLimitError(f'a string has more than {limits.max_str_chars} characters')
    return value


def json_numpy_loads(text: Any, limits: WireLimits = DEFAULT_LIMITS) -> Any:
    """
    Parse JSON text (str or bytes) and turn json_numpy objects back into arrays.

    Raises WireFormatError for anything that is not valid JSON with valid arrays.
    """
    if isinstance(text, (bytes, bytearray, memoryview)):
        size = len(text)
    elif isinstance(text, str):
        size = len(text)
    else:
        raise WireFormatError(f'expected JSON text, got {type(text).__name__}')
    if size > limits.max_message_bytes:
        raise WireLimitError(f'message has {size} bytes, more than {limits.max_message_bytes}')
    check_json_structure(text, limits)
    try:
        value = json.loads(text)
    except RecursionError:
        raise WireLimitError('JSON nests too deeply') from None
    except (ValueError, TypeError) as exc:
        raise WireFormatError(f'not valid JSON: {str(exc)[:120]}') from None
    return decode_json_numpy(value, limits)


def check_json_structure(text: Any, limits: WireLimits = DEFAULT_LIMITS) -> None:
    """
    Refuse, before parsing, text that could hold far more values than max_items.

    The item budget is otherwise applied after json.loads has built every object: 16 MB of
    `[{},{},...]` becomes 5 million dicts (about 400 MB) and seconds of CPU before it is
    refused. Every value but the root follows a comma or an opening bracket, so their count
    bounds the number of values (strings containing them only make the bound looser; base64
    never does).
    """
    if isinstance(text, str):
        marks = text.count(',') + text.count('[') + text.count('{')
    else:
        data = bytes(text) if isinstance(text, memoryview) else text
        marks = data.count(b',') + data.count(b'[') + data.count(b'{')
    if marks > 2 * limits.max_items:
        raise WireLimitError(
            f'message has {marks} commas and brackets: room for more than {limits.max_items} '
            'items')


def decode_json_numpy(value: Any, limits: WireLimits = DEFAULT_LIMITS) -> Any:
    """Turn json_numpy objects inside already-parsed JSON into arrays (see json_numpy_loads)."""
    try:
        return _walk_json(value, limits, _Budget(limits), 0)
    except RecursionError:
        raise WireLimitError('JSON nests too deeply') from None


# ---------------------------------------------------------------- msgpack-numpy (openpi)

def _msgpack_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        array = _check_encodable(obj)
        return {b'__ndarray__': True, b'data': array.tobytes(), b'dtype': array.dtype.str,
                b'shape': list(array.shape)}
    if isinstance(obj, np.generic):
        _check_encodable(np.asarray(obj))
        return {b'__npgeneric__': True, b'data': obj.item(), b'dtype': obj.dtype.str}
    raise TypeError(f'{type(obj).__name__} cannot be sent as msgpack')


def msgpack_numpy_dumps(obj: Any) -> bytes:
    """Serialize obj to msgpack, writing numpy arrays the way openpi's msgpack_numpy does."""
    return msgpack.packb(obj, default=_msgpack_default, use_bin_type=True)


def _field(obj: Dict[Any, Any], name: str) -> Any:
    if name in obj:
        return obj[name]
    key = name.encode('ascii')
    if key in obj:
        return obj[key]
    raise WireFormatError(f'msgpack array is missing {name!r}')


def _is_marker(obj: Dict[Any, Any], name: str) -> bool:
    return name in obj or name.encode('ascii') in obj


def _decode_msgpack_array(obj: Dict[Any, Any], limits: WireLimits) -> np.ndarray:
    if len(obj) != 4:
        raise WireFormatError('a msgpack array has exactly the keys __ndarray__, data, dtype, '
                              'shape')
    data = _field(obj, 'data')
    if not isinstance(data, bytes):
        raise WireFormatError('msgpack array data must be binary')
    return _array_from_bytes(data, _field(obj, 'dtype'), _field(obj, 'shape'), limits)


def _decode_msgpack_scalar(obj: Dict[Any, Any]) -> np.generic:
    if len(obj) != 3:
        raise WireFormatError('a msgpack numpy scalar has exactly the keys __npgeneric__, data, '
                              'dtype')
    dtype = _check_dtype(_field(obj, 'dtype'))
    value = _field(obj, 'data')
    if isinstance(value, bool) and dtype.kind != 'b' or \
            not isinstance(value, (bool, int, float)):
        raise WireFormatError('msgpack numpy scalar data must be a number')
    try:
        with np.errstate(all='ignore'):
            return dtype.type(value)
    except (OverflowError, ValueError, TypeError):
        raise WireFormatError(f'scalar {value!r} does not fit dtype {dtype.str}') from None


def _walk_msgpack(value: Any, limits: WireLimits, budget: _Budget, depth: int) -> Any:
    if depth > limits.max_depth:
        raise WireLimitError(f'message nests deeper than {limits.max_depth} levels')
    budget.count()
    if isinstance(value, dict):
        if _is_marker(value, NDARRAY_KEY):
            return budget.add_array(_decode_msgpack_array(value, limits))
        if _is_marker(value, NPGENERIC_KEY):
            return _decode_msgpack_scalar(value)
        return {_plain_key(key): _walk_msgpack(item, limits, budget, depth + 1)
                for key, item in value.items()}
    if isinstance(value, list):
        return [_walk_msgpack(item, limits, budget, depth + 1) for item in value]
    return value


def _plain_key(key: Any) -> Any:
    """Map keys are text in practice; accept UTF-8 binary keys (openpi's packer writes some)."""
    if isinstance(key, bytes):
        try:
            return key.decode('utf-8')
        except UnicodeDecodeError:
            raise WireFormatError('a map key is neither text nor UTF-8') from None
    return key


def msgpack_numpy_loads(data: Any, limits: WireLimits = DEFAULT_LIMITS) -> Any:
    """
    Unpack one msgpack message and turn openpi array maps into arrays.

    Raises WireFormatError for anything that is not exactly one valid message.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise WireFormatError(f'expected binary msgpack data, got {type(data).__name__}')
    if len(data) > limits.max_message_bytes:
        raise WireLimitError(
            f'message has {len(data)} bytes, more than {limits.max_message_bytes}')
    size_cap = min(len(data), limits.max_message_bytes)
    # Count containers and their slots as the unpacker builds them: the item budget below
    # only runs on the finished tree, and 16 MB of nested empty arrays is 16 million lists.
    built = [0]

    def count(container: Any) -> Any:
        built[0] += len(container) + 1
        if built[0] > 2 * limits.max_items:
            raise WireLimitError(f'message has more than {limits.max_items} items')
        return container

    try:
        value = msgpack.unpackb(
            data, raw=False, use_list=True, strict_map_key=True,
            max_bin_len=size_cap, max_str_len=min(size_cap, limits.max_str_chars * 4),
            max_array_len=limits.max_items, max_map_len=limits.max_items, max_ext_len=0,
            list_hook=count, object_hook=count)
    except WireFormatError:
        raise
    except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError,
            msgpack.OutOfData) as exc:
        raise WireFormatError(f'not one valid msgpack message ({type(exc).__name__})') from None
    except (ValueError, TypeError, UnicodeDecodeError, OverflowError) as exc:
        if 'exceeds max_' in str(exc):  # the unpacker's own length limits
            raise WireLimitError(f'msgpack message over a limit: {str(exc)[:120]}') from None
        raise WireFormatError(f'not valid msgpack: {str(exc)[:120]}') from None
    try:
        return _walk_msgpack(value, limits, _Budget(limits), 0)
    except RecursionError:
        raise WireLimitError('message nests too deeply') from None


def describe(value: Any, max_chars: int = 200) -> str:
    """Short printable summary of a decoded message for error messages and logs."""
    if isinstance(value, np.ndarray):
        return f'array{tuple(value.shape)} {value.dtype}'
    if isinstance(value, dict):
        inner = ', '.join(f'{k!r}: {describe(v, 40)}' for k, v in list(value.items())[:8])
        text = '{' + inner + (', ...' if len(value) > 8 else '') + '}'
    else:
        text = repr(value)
    return text if len(text) <= max_chars else text[:max_chars] + '...'


def as_optional_float(value: Any) -> Optional[float]:
    """Return value as a finite float, or None when it is not one (server timing fields)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None
