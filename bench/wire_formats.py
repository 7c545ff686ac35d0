"""
Cost of putting one camera frame on the wire: json_numpy vs msgpack-numpy vs JPEG.

Run: .venv/bin/python -m bench.wire_formats [--repeat 200]
Prints, per frame size, the encoded bytes and the median encode and decode time of each format,
plus OpenCV vs PIL for JPEG (the image codec uses whichever is faster here).
"""
import argparse
import io
import statistics
import time
from typing import Callable, Dict, List

import cv2
import numpy as np
from PIL import Image
from rt2_ros.policy.image_codec import decode_data_url, jpeg_data_url
from rt2_ros.policy.wire import (
    json_numpy_dumps, json_numpy_loads, msgpack_numpy_dumps, msgpack_numpy_loads,
)


def camera_like(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Return a frame with smooth structure plus sensor noise (JPEG size depends on content)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // width, y * 255 // height, (x + y) * 127 // (width + height)], -1)
    noisy = base + rng.normal(0, 6, base.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


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


def measure(image: np.ndarray, repeat: int) -> List[Dict[str, object]]:
    message = {'image': image, 'instruction': 'pick up the rock'}
    as_json = json_numpy_dumps(message)
    as_msgpack = msgpack_numpy_dumps(message)
    as_url = jpeg_data_url(image)
    rows = [
        {'format': 'json_numpy', 'bytes': len(as_json),
         'encode_ms': median_ms(lambda: json_numpy_dumps(message), repeat),
         'decode_ms': median_ms(lambda: json_numpy_loads(as_json), repeat)},
        {'format': 'msgpack-numpy', 'bytes': len(as_msgpack),
         'encode_ms': median_ms(lambda: msgpack_numpy_dumps(message), repeat),
         'decode_ms': median_ms(lambda: msgpack_numpy_loads(as_msgpack), repeat)},
        {'format': 'JPEG q90 data URL', 'bytes': len(as_url),
         'encode_ms': median_ms(lambda: jpeg_data_url(image), repeat),
         'decode_ms': median_ms(lambda: decode_data_url(as_url), repeat)},
        {'format': 'JPEG q90 OpenCV (raw)', 'bytes': len(cv2_jpeg(image)),
         'encode_ms': median_ms(lambda: cv2_jpeg(image), repeat), 'decode_ms': float('nan')},
        {'format': 'JPEG q90 PIL (raw)', 'bytes': len(pil_jpeg(image)),
         'encode_ms': median_ms(lambda: pil_jpeg(image), repeat), 'decode_ms': float('nan')},
    ]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--repeat', type=int, default=200)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    print(f'{"frame":>9}  {"format":24} {"bytes":>9} {"encode ms":>10} {"decode ms":>10}')
    for height, width in ((224, 224), (480, 640)):
        for row in measure(camera_like(height, width), args.repeat):
            print(f'{width}x{height:<5}  {row["format"]:24} {row["bytes"]:>9} '
                  f'{row["encode_ms"]:>10.3f} {row["decode_ms"]:>10.3f}')


if __name__ == '__main__':
    main()
