"""
Where `rt2 train` runs its steps and in which precision.

The weights and AdamW moments always stay float32 (they are what is saved, resumed and
exported); bf16 is autocast for the forward pass only, so a state written on a GPU resumes on a
CPU and the exported checkpoint is the same format either way.

Defaults, measured with `python -m bench.train_step` (docs/training.md, "Training speed"): on
CUDA bf16 when the GPU has it; on the CPU float32 - autocast to bf16 made the bundled 1.6 M
model's step slower on an AMX Xeon (0.88x: at width 128 casting costs more than the faster
matrix products save) and about 1.45x faster only at width 256.
"""
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, ContextManager, Dict, Optional

from rt2_ros.torch_device import PRECISIONS, resolve_device_name
import torch


class TrainDeviceError(ValueError):
    """The requested device or precision does not exist on this machine."""


@dataclass(frozen=True)
class TrainDevice:
    """A torch device and the dtype its forward pass is autocast to (None: float32)."""

    device: torch.device
    autocast_dtype: Optional[torch.dtype] = None

    @property
    def precision(self) -> str:
        return 'bf16' if self.autocast_dtype == torch.bfloat16 else 'fp32'

    def autocast(self) -> ContextManager[Any]:
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def describe(self) -> Dict[str, str]:
        """Return what training.json records about where the run was trained."""
        name = 'CPU'
        if self.device.type == 'cuda':
            name = torch.cuda.get_device_name(self.device)
        return {'device': str(self.device), 'device_name': name, 'precision': self.precision}


def training_device(requested: str = 'auto', precision: str = 'auto') -> TrainDevice:
    """Resolve `--device` and `--precision` (see the module docstring for the defaults)."""
    if precision not in PRECISIONS:
        raise TrainDeviceError(f'precision must be {", ".join(PRECISIONS)}, not {precision!r}')
    cuda = torch.cuda.is_available()
    try:
        name = resolve_device_name(requested, cuda)
    except ValueError as exc:
        raise TrainDeviceError(str(exc)) from None
    device = torch.device(name)
    if device.type == 'cuda':
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise TrainDeviceError(f'device {requested!r}: this machine has '
                                   f'{torch.cuda.device_count()} CUDA device(s)')
        bf16 = torch.cuda.is_bf16_supported()
        if precision == 'bf16' and not bf16:
            raise TrainDeviceError(f'{torch.cuda.get_device_name(device)} has no bf16; '
                                   'use --precision fp32')
        use_bf16 = precision == 'bf16' or (precision == 'auto' and bf16)
    else:
        use_bf16 = precision == 'bf16'
    return TrainDevice(device, torch.bfloat16 if use_bf16 else None)
