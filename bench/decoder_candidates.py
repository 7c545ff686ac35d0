"""
The structured-generation libraries the local backend could constrain decoding with, measured.

For each candidate that is installed (outlines-core, llguidance, xgrammar, lm-format-enforcer)
and each action language (RT-2 integers, RT-2 with a required plan, RT-1 mobile's 11 integers)
on the bundled model's tokenizer: the one-time cost (tokenizer adaptation + compiling the
action regex; median of 3 builds, after one in a child process that may take --build-timeout)
and the constraint's cost per decision (a mask before every token of one valid answer plus the
end token, and advancing the state), without any model. Only llguidance is a
project dependency; the others are measured after `.venv/bin/pip install outlines-core
lm-format-enforcer` and `.venv/bin/pip install --no-deps xgrammar apache-tvm-ffi` (xgrammar
declares triton, a 286 MB wheel, which a CPU robot does not need).

Run: .venv/bin/python -m bench.decoder_candidates [--repeats 200] [--json]
"""
import argparse
import importlib
import json
import re
import statistics
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from bench import common

CANDIDATES = ('llguidance', 'outlines_core', 'xgrammar', 'lmformatenforcer')
# (label, action space, plan mode, an answer the language accepts)
LANGUAGES = (
    ('rt2', 'rt2', 'none', ' 1 128 91 241 5 101 127 217'),
    ('rt2 plan', 'rt2', 'required', ' Plan: 120 45 130 60. Action: 1 128 91 241 5 101 127 217'),
    ('rt1_mobile', 'rt1_mobile', 'none', ' 1 128 91 241 5 101 127 217 3 9 200'),
)
# A mask-and-advance step: (allowed mask or ids, then consume token) -> None
Stepper = Callable[[List[int]], None]


def _tokenizer():
    from rt2_ros.resources import find_data
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(str(find_data('models', 'rt2_demo_vla')))


def _token_bytes(tokenizer) -> Dict[bytes, List[int]]:
    """Token id -> the bytes it writes (SentencePiece '▁' and <0xNN> pieces), for outlines."""
    out: Dict[bytes, List[int]] = {}
    special = set(tokenizer.all_special_ids)
    for token_id, piece in enumerate(tokenizer.convert_ids_to_tokens(range(len(tokenizer)))):
        if token_id in special or piece is None:
            continue
        match = re.fullmatch(r'<0x([0-9A-F]{2})>', piece)
        data = bytes([int(match.group(1), 16)]) if match else piece.replace('▁', ' ').encode()
        out.setdefault(data, []).append(token_id)
    return out


def _build(name: str, tokenizer, regex: str, eos: int) -> Tuple[float, Callable[[], Stepper]]:
    """Return (build seconds, factory of a fresh stepper) for one candidate and regex."""
    width = len(tokenizer)
    start = time.perf_counter()
    if name == 'llguidance':
        import llguidance
        import llguidance.hf
        import llguidance.torch
        lltok = llguidance.hf.from_tokenizer(tokenizer, n_vocab=width)
        grammar = llguidance.LLMatcher.grammar_from_regex(regex)
        llguidance.LLMatcher(lltok, grammar)  # compiles the grammar
        mask = llguidance.torch.allocate_token_bitmask(1, width)

        def make() -> Stepper:
            matcher = llguidance.LLMatcher(lltok, grammar)

            def step(tokens: List[int]) -> None:
                for token in tokens:
                    llguidance.torch.fill_next_token_bitmask(matcher, mask)
                    matcher.consume_token(token)
            return step
    elif name == 'outlines_core':
        import outlines_core
        import torch
        vocabulary = outlines_core.Vocabulary(eos, _token_bytes(tokenizer))
        index = outlines_core.Index(regex, vocabulary)

        def make() -> Stepper:
            masks: Dict[int, Any] = {}  # a mask per index state, as an integration would keep

            def step(tokens: List[int]) -> None:
                state = index.get_initial_state()
                for token in tokens:
                    if state not in masks:
                        allowed = torch.zeros(width, dtype=torch.bool)
                        allowed[index.get_allowed_tokens(state)] = True
                        masks[state] = allowed
                    if token != eos:
                        state = index.get_next_state(state, token)
            return step
    elif name == 'xgrammar':
        import xgrammar
        info = xgrammar.TokenizerInfo.from_huggingface(tokenizer, vocab_size=width,
                                                       stop_token_ids=[eos])
        compiled = xgrammar.GrammarCompiler(info).compile_regex(regex)
        mask = xgrammar.allocate_token_bitmask(1, width)

        def make() -> Stepper:
            matcher = xgrammar.GrammarMatcher(compiled)

            def step(tokens: List[int]) -> None:
                for token in tokens:
                    matcher.fill_next_token_bitmask(mask)
                    matcher.accept_token(token)
            return step
    else:
        # Its transformers integration does not import with transformers 5 (it imports
        # transformers.tokenization_utils), so its tokenizer data is built here the same way.
        from lmformatenforcer import RegexParser, TokenEnforcer
        from lmformatenforcer.tokenenforcer import TokenEnforcerTokenizerData
        regular = [(i, piece.decode('utf-8', 'replace'), piece.startswith(b' '))
                   for piece, ids in _token_bytes(tokenizer).items() for i in ids]
        data = TokenEnforcerTokenizerData(regular, tokenizer.decode, eos, False, width)
        TokenEnforcer(data, RegexParser(regex)).get_allowed_tokens([])

        def make() -> Stepper:
            enforcer = TokenEnforcer(data, RegexParser(regex))

            def step(tokens: List[int]) -> None:
                for position in range(len(tokens)):
                    enforcer.get_allowed_tokens(tokens[:position])
            return step
    return time.perf_counter() - start, make


def _build_in_child(name: str, tokenizer, regex: str, eos: int, timeout: float) -> str:
    """
    Build once in a forked child; return '' or why it failed (error, or still building).

    outlines-core determinizes the whole regex up front: a bounded plan (`[ -~]{1,200}` before
    `. Action:`) made it run for about ten minutes here and then fail, so a build gets a limit.
    """
    import multiprocessing

    def child(conn) -> None:
        try:
            _build(name, tokenizer, regex, eos)
            conn.send('')
        except Exception as exc:  # noqa: B902 - reported as the candidate's failure
            conn.send(f'{type(exc).__name__}: {exc}'[:160])

    context = multiprocessing.get_context('fork')
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=child, args=(sender,))
    started = time.perf_counter()
    process.start()
    ready = receiver.poll(timeout)
    message = receiver.recv() if ready else \
        f'no index after {timeout:.0f} s (stopped)'
    if process.is_alive():
        process.kill()
    process.join()
    if message:
        message += f' [{time.perf_counter() - started:.1f} s]'
    return message


def run(repeats: int = 200, build_timeout: float = 60.0) -> Dict[str, Any]:
    """Measure every installed candidate on every language."""
    import torch
    from rt2_ros.actions import load_action_space, make_codec

    torch.set_num_threads(1)
    tokenizer = _tokenizer()
    eos = int(tokenizer.eos_token_id)
    rows = []
    for name in CANDIDATES:
        try:
            importlib.import_module(name)
        except ImportError:
            rows.append({'library': name, 'installed': False})
            continue
        except Exception as exc:  # noqa: B902 - a candidate that does not import is a finding
            rows.append({'library': name, 'installed': True, 'failure': str(exc)[:160]})
            continue
        version = _version(name)
        for label, space, plan, answer in LANGUAGES:
            regex = make_codec(load_action_space(space)).action_regex(plan)
            tokens = tokenizer.encode(answer, add_special_tokens=False) + [eos]
            failure = _build_in_child(name, tokenizer, regex, eos, build_timeout)
            if failure:
                rows.append({'library': name, 'version': version, 'installed': True,
                             'language': label, 'failure': failure})
                continue
            builds = [_build(name, tokenizer, regex, eos) for _ in range(3)]
            build_s = statistics.median(seconds for seconds, _ in builds)
            make = builds[-1][1]
            samples = []
            for _ in range(repeats):
                step = make()
                begin = time.perf_counter()
                step(tokens)
                samples.append(time.perf_counter() - begin)
            rows.append({'library': name, 'version': version, 'installed': True,
                         'language': label, 'tokens': len(tokens),
                         'build_ms': round(1000 * build_s, 2),
                         'decision_us': round(1e6 * statistics.median(samples), 1)})
    return {'machine': common.machine(), 'vocab': len(tokenizer), 'rows': rows}


def _version(module: str) -> Optional[str]:
    from importlib import metadata
    names = {'outlines_core': 'outlines-core', 'lmformatenforcer': 'lm-format-enforcer'}
    try:
        return metadata.version(names.get(module, module))
    except metadata.PackageNotFoundError:
        return None


def print_results(results: Dict[str, Any]) -> None:
    rows = [[r['library'], r.get('version', '-'), r.get('language', 'not installed'),
             r.get('tokens', '-'), r.get('build_ms', r.get('failure', '-')),
             r.get('decision_us', '-')] for r in results['rows']]
    common.print_table(f'constraint libraries, vocabulary {results["vocab"]}, 1 thread',
                       ['library', 'version', 'language', 'tokens', 'build ms',
                        'decision us (median)'], rows)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0].strip())
    parser.add_argument('--repeats', type=int, default=200)
    parser.add_argument('--build-timeout', type=float, default=60.0,
                        help='seconds one candidate may take to build one index')
    parser.add_argument('--json', action='store_true')
    args = parser.parse_args(argv)
    results = run(args.repeats, args.build_timeout)
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        print_results(results)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
