"""
Regular expressions that match exactly the valid action strings of a text action space.

Serving engines (vLLM's structured outputs, older guided_regex) constrain generation with a regex;
generating it from the action space keeps the constraint and the parser from drifting apart.
"""
from typing import List


def int_range_regex(low: int, high: int) -> str:
    """Regex matching the decimal integers low..high (no sign, no leading zeros)."""
    if low < 0 or high < low:
        raise ValueError(f'invalid range {low}..{high}')
    parts: List[str] = []
    digits = len(str(low))
    while True:
        start = max(low, 0 if digits == 1 else 10 ** (digits - 1))
        stop = min(high, 10 ** digits - 1)
        if start <= stop:
            parts.extend(_same_length(str(start), str(stop)))
        if stop == high:
            break
        digits += 1
    # Longest alternatives first, so engines without full backtracking still match greedily.
    parts.sort(key=len, reverse=True)
    return '(?:' + '|'.join(parts) + ')'


def _same_length(low: str, high: str) -> List[str]:
    """Alternatives matching every same-length digit string from low to high."""
    if low == high:
        return [low]
    if len(low) == 1:
        return [_digit_class(low, high)]
    if low[0] == high[0]:
        return [low[0] + _group(_same_length(low[1:], high[1:]))]
    rest = len(low) - 1
    out: List[str] = []
    if low[1:] == '0' * rest:
        first_full = low[0]
    else:
        out.append(low[0] + _group(_same_length(low[1:], '9' * rest)))
        first_full = str(int(low[0]) + 1)
    if high[1:] == '9' * rest:
        last_full = high[0]
        tail = []
    else:
        last_full = str(int(high[0]) - 1)
        tail = [high[0] + _group(_same_length('0' * rest, high[1:]))]
    if int(first_full) <= int(last_full):
        repeat = '[0-9]' if rest == 1 else f'[0-9]{{{rest}}}'
        out.append(_digit_class(first_full, last_full) + repeat)
    return out + tail


def _digit_class(low: str, high: str) -> str:
    return low if low == high else f'[{low}-{high}]'


def _group(parts: List[str]) -> str:
    return parts[0] if len(parts) == 1 else '(?:' + '|'.join(parts) + ')'
