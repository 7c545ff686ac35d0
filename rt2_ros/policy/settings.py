"""
Reading backend settings that do not fit PolicyConfig's common fields, and secrets.

Backend-specific options travel in PolicyConfig.extra (from the node's `policy.extra.*`
parameters or a Python dict); these helpers coerce them with one clear error per mistake, so a
typo in a launch file fails at configure time instead of mid-episode.
"""
import os
import re
import threading
from typing import Any, Mapping, Optional, Sequence

_SECRETS_LOCK = threading.Lock()
_SECRETS: set = set()
_URL_USERINFO = re.compile(r'(?<=://)[^/@\s]+@')


class PolicyConfigError(ValueError):
    """A backend's configuration is unusable (bad URL, missing API key variable, ...)."""


def read_api_key(env_name: str) -> Optional[str]:
    """
    Return the secret in environment variable env_name, or None when no variable is named.

    The key is read from the environment, never from a parameter, so it cannot end up in a
    parameter dump, a launch file or a log line.
    """
    if not env_name:
        return None
    value = os.environ.get(env_name, '')
    if not value.strip():
        raise PolicyConfigError(
            f'api_key_env names {env_name}, but that environment variable is empty or unset')
    with _SECRETS_LOCK:
        _SECRETS.add(value.strip())
    return value.strip()


def redact(text: str) -> str:
    """
    Return text with every API key this process has read, and URL passwords, masked as ***.

    Error messages carry what a server sent back and the URL that was called; a hostile or
    careless server can echo the Authorization header, and a URL can hold user:password. Text
    that goes to logs, ~/state details or diagnostics passes through here first.
    """
    with _SECRETS_LOCK:
        secrets = sorted(_SECRETS, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, '***')
    return _URL_USERINFO.sub('***@', text)


def extra_bool(extra: Mapping[str, Any], key: str, default: bool) -> bool:
    value = extra.get(key, default)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ('true', 'false', '1', '0', 'yes', 'no'):
        return value.lower() in ('true', '1', 'yes')
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise PolicyConfigError(f'policy extra {key!r} must be true or false, got {value!r}')


def extra_str(extra: Mapping[str, Any], key: str, default: str,
              choices: Optional[Sequence[str]] = None) -> str:
    value = extra.get(key, default)
    if not isinstance(value, str):
        raise PolicyConfigError(f'policy extra {key!r} must be a string, got {value!r}')
    if choices is not None and value not in choices:
        raise PolicyConfigError(
            f'policy extra {key!r} must be one of {", ".join(choices)}, got {value!r}')
    return value


def extra_int(extra: Mapping[str, Any], key: str, default: int, minimum: int = 0) -> int:
    value = extra.get(key, default)
    if isinstance(value, str) and value.strip().lstrip('-').isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise PolicyConfigError(
            f'policy extra {key!r} must be an integer >= {minimum}, got {value!r}')
    return value
