"""
Which torch device a `--device` / `policy.device` string means.

Serving (the `local` backend) and training (`rt2 train`) accept the same spellings, and a typo
must fail the same clear way in both, before any model or data is loaded.
"""

DEVICE_CHOICES = 'auto, cpu or cuda[:N]'
PRECISIONS = ('auto', 'fp32', 'bf16')  # of `rt2 train`'s forward pass


def resolve_device_name(requested: str, cuda_available: bool) -> str:
    """
    Return 'cpu', 'cuda' or 'cuda:N' for a requested device.

    'auto' (or empty) takes CUDA when there is a GPU, else the CPU. Asking for CUDA on a machine
    without it is an error, not a silent fall-back: a run planned for a GPU would otherwise take
    hours on the CPU before anybody noticed.
    """
    choice = (requested or 'auto').strip().lower()
    index = choice[len('cuda:'):] if choice.startswith('cuda:') else None
    if choice not in ('auto', 'cpu', 'cuda') and not (index is not None and index.isdigit()):
        raise ValueError(f'device must be {DEVICE_CHOICES}, not {requested!r}')
    if choice == 'auto':
        return 'cuda' if cuda_available else 'cpu'
    if choice.startswith('cuda') and not cuda_available:
        raise ValueError(f'device {requested!r} requested but CUDA is not available')
    return choice
