"""
Cost of putting one camera frame on the wire: json_numpy vs msgpack-numpy vs JPEG.

Run: .venv/bin/python -m bench.wire_formats [--repeat 200]

Per frame size and format: the bytes of one request, the client's encoding (exactly what the
backend sends: OpenVLAHttpPolicy.build_body, msgpack of OpenPiPolicy.build_observation,
OpenAICompatPolicy.encode_request) and the decoding `rt2 serve` does with it (json_numpy_loads,
msgpack_numpy_loads, json + decode_data_url), median over `repeat` runs on one thread
(cv2.setNumThreads(1)). Also OpenCV vs PIL for the JPEG encoding itself, the reason OpenCV is
the encoder. The ratio is json_numpy's encode+decode over each format's.
"""
import argparse
import io
import json
import statistics
import sys
import time
from typing import Any, Callable, Dict, List, Optional

from bench.common import camera_like, emit, print_table
import cv2
import numpy as np
from PIL import Image
from rt2_ros.policy.base import Observation, PolicyConfig
from rt2_ros.policy.factory import make_policy
from rt2_ros.policy.image_codec import decode_data_url
from rt2_ros.policy.wire import json_numpy_loads, msgpack_numpy_dumps, msgpack_numpy_loads

SIZES = ((224, 224), (640, 480))


def median_ms(call: Callable[[], object], repeat: int) -> float:
    call()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(samples)


def pil_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, 'JPEG', quality=quality)
    return buffer.getvalue()


def cv2_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    return cv2.imencode('.jpg', bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()


def _openai_decode(body: bytes) -> Any:
    request = json.loads(body)
    content = request['messages'][0]['content']
    url = next(p['image_url']['url'] for p in content if p['type'] == 'image_url')
    return decode_data_url(url)


def measure(width: int, height: int, repeat: int) -> List[Dict[str, Any]]:
    observation = Observation(image=camera_like(height, width), instruction='pick up the rock')
    url = 'http://127.0.0.1:1'
    openvla = make_policy(PolicyConfig(backend='openvla_http', url=url))
    openpi = make_policy(PolicyConfig(backend='openpi', url='ws://127.0.0.1:1'))
    openai = make_policy(PolicyConfig(backend='openai', url=url + '/v1', model_name='m'))
    formats = [
        ('json_numpy (openvla_http)', lambda: openvla.build_body(observation), json_numpy_loads),
        ('msgpack-numpy (openpi)',
         lambda: msgpack_numpy_dumps(openpi.build_observation(observation)),
         msgpack_numpy_loads),
        ('JPEG q90 data URL (openai)', lambda: openai.encode_request(observation, 'm'),
         _openai_decode),
    ]
    rows = []
    for name, encode, decode in formats:
        body = encode()
        rows.append({'image': f'{width}x{height}', 'format': name, 'bytes': len(body),
                     'encode_ms': round(median_ms(encode, repeat), 3),
                     'decode_ms': round(median_ms(lambda: decode(body), repeat), 3)})
    for policy in (openvla, openpi, openai):
        policy.close()
    base = rows[0]['encode_ms'] + rows[0]['decode_ms']
    for row in rows:
        row['total_ms'] = round(row['encode_ms'] + row['decode_ms'], 3)
        row['json_numpy_over_this'] = round(base / row['total_ms'], 2)
    image = observation.image
    rows.append({'image': f'{width}x{height}', 'format': 'JPEG encode only: OpenCV',
                 'bytes': len(cv2_jpeg(image)),
                 'encode_ms': round(median_ms(lambda: cv2_jpeg(image), repeat), 3)})
    rows.append({'image': f'{width}x{height}', 'format': 'JPEG encode only: PIL',
                 'bytes': len(pil_jpeg(image)),
                 'encode_ms': round(median_ms(lambda: pil_jpeg(image), repeat), 3)})
    return rows


def run(repeat: int = 200, quick: bool = False) -> Dict[str, Any]:
    cv2.setNumThreads(1)
    if quick:
        repeat = 3
    rows = [row for width, height in SIZES for row in measure(width, height, repeat)]
    return {'rows': rows}


def best_ratio(results: Dict[str, Any]) -> Dict[str, float]:
    """json_numpy cost over the cheapest format's, per image size."""
    out: Dict[str, float] = {}
    for row in results['rows']:
        if 'json_numpy_over_this' in row:
            out[row['image']] = max(out.get(row['image'], 0.0), row['json_numpy_over_this'])
    return out


def print_results(results: Dict[str, Any]) -> None:
    header = ['image', 'format', 'bytes', 'encode ms', 'decode ms', 'enc+dec ms',
              'json_numpy / this']
    rows = [[r['image'], r['format'], r['bytes'], r['encode_ms'], r.get('decode_ms', float('nan')),
             r.get('total_ms', float('nan')), r.get('json_numpy_over_this', float('nan'))]
            for r in results['rows']]
    print_table('Wire formats: one request with one camera frame (median)', header, rows)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0].strip())
    parser.add_argument('--repeat', type=int, default=200)
    parser.add_argument('--json', action='store_true')
    args = parser.parse_args(argv)
    results = run(args.repeat)
    return emit(results, args.json, print_results)


if __name__ == '__main__':
    sys.exit(main())
