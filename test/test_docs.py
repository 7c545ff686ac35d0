"""
Keep the docs from rotting: commands run, links resolve, the parameter table is the code's.

Every `rt2 ...` command in a fenced code block of README.md or docs/*.md is checked against the
real CLI: its subcommand exists, every option it uses is one that subcommand accepts, and
`rt2 <subcommand> --help` runs. Commands that need neither a robot, a server, a model download nor
minutes of work also run for real (RUN_FOR_REAL). Every relative link and #anchor in the
project's markdown must point at a file and a heading that exist (GitHub's anchor rules).
"""
import argparse
from functools import lru_cache
from pathlib import Path
import re
import shlex
import subprocess
from typing import Dict, Iterator, List, Tuple

from cli_helpers import rt2_executable
import pytest
from rt2_ros.cli.main import build_parser
from rt2_ros.controller import params as P

ROOT = Path(__file__).resolve().parent.parent
COMMAND_DOCS = [ROOT / 'README.md'] + sorted((ROOT / 'docs').glob('*.md'))
LINKED_DOCS = COMMAND_DOCS + [ROOT / 'CONTRIBUTING.md', ROOT / 'SECURITY.md'] + sorted(
    (ROOT / 'experiments').rglob('*.md'))
# Subcommands fast and self-contained enough to run as written (in a temporary directory).
RUN_FOR_REAL = {('actions', 'decode'), ('actions', 'encode'), ('actions', 'list'),
                ('actions', 'show'), ('params',), ('sim', 'tasks'), ('sim', 'render'),
                ('make-tiny-vla',)}
# Files a documented command reads that the user brings (the command then only gets --help).
USER_FILES = ('dataset_statistics.json',)
# Repository paths named in the docs' text and code blocks; *, ${var} and <name> match anything.
REPO_PATH = re.compile(r'(?<![\w./~$-])((?:config|models|experiments|scripts|bench|launch|rt2_ros|'
                       r'test|docs)/[\w./*${}<>-]*[\w*/}>])')
# Paths the docs name in other projects' checkouts (openpi's scripts/serve_policy.py).
EXTERNAL_PATHS = {'scripts/serve_policy.py'}
FENCE = re.compile(r'^(`{3,}|~{3,})(.*)$')
LINK = re.compile(r'!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+"[^"]*")?\)')


def fenced_blocks(text: str) -> Iterator[Tuple[str, List[str]]]:
    """Yield (info string, lines) of every fenced code block."""
    lines = text.split('\n')
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i].strip())
        if not match:
            i += 1
            continue
        fence, info = match.group(1), match.group(2).strip()
        body = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i])
            i += 1
        i += 1
        yield info, body


def prose(text: str, inline_code: bool = False) -> str:
    """Return the text outside fenced code blocks (and inline code spans unless inline_code)."""
    out, fence = [], None
    for line in text.split('\n'):
        match = FENCE.match(line.strip())
        if match and (fence is None or match.group(1).startswith(fence)):
            fence = None if fence else match.group(1)
            continue
        if fence is None:
            out.append(line.replace('`', '') if inline_code else re.sub(r'`[^`]*`', '', line))
    return '\n'.join(out)


def shell_commands(body: List[str]) -> Iterator[str]:
    """Yield the logical lines of a shell block (continuations joined, comments dropped)."""
    logical = ''
    for line in body:
        logical += line
        if logical.endswith('\\'):
            logical = logical[:-1] + ' '
            continue
        yield re.sub(r'\s+#(?![{]).*$', '', logical).strip()
        logical = ''
    if logical:
        yield logical.strip()


def documented_commands() -> List[Tuple[str, str]]:
    """Return (file, command) for every `rt2` command in a shell block of the command docs."""
    found = []
    for path in COMMAND_DOCS:
        for info, body in fenced_blocks(path.read_text()):
            if info not in ('', 'bash', 'sh', 'shell', 'console'):
                continue
            for line in shell_commands(body):
                for part in re.split(r'\s*(?:&&|;|\|)\s*', line):
                    words = part.split()
                    if words and words[0] in ('rt2', '.venv/bin/rt2'):
                        found.append((path.relative_to(ROOT).as_posix(), part))
    return found


@lru_cache(maxsize=None)
def parser_tree() -> argparse.ArgumentParser:
    return build_parser()


def subcommand(words: List[str]) -> Tuple[Tuple[str, ...], argparse.ArgumentParser, List[str]]:
    """Resolve the subcommand path of `rt2 words...`; return it, its parser and the rest."""
    parser, path = parser_tree(), []
    rest = list(words)
    while rest:
        choices = next((a.choices for a in parser._actions
                        if isinstance(a, argparse._SubParsersAction)), None)
        if not choices or rest[0] not in choices:
            break
        path.append(rest[0])
        parser = choices[rest.pop(0)]
    return tuple(path), parser, rest


def options_of(parser: argparse.ArgumentParser) -> Dict[str, argparse.Action]:
    return {flag: action for action in parser._actions for flag in action.option_strings}


COMMANDS = documented_commands()


def test_the_docs_document_commands():
    paths = {subcommand(shlex.split(c)[1:])[0] for _, c in COMMANDS}
    assert len(COMMANDS) >= 20 and len(paths) >= 10, sorted(paths)


@pytest.mark.parametrize('where,command', COMMANDS, ids=[c[:60] for _, c in COMMANDS])
def test_documented_command_names_a_real_subcommand_and_real_options(where, command):
    words = shlex.split(command.replace('[', ' ').replace(']', ' '))[1:]
    path, parser, rest = subcommand(words)
    assert path, f'{where}: `{command}` names no rt2 subcommand'
    known = options_of(parser)
    for word in rest:
        if word.startswith('--'):
            flag = word.split('=', 1)[0]
            assert flag in known, f'{where}: `{command}`: rt2 {" ".join(path)} has no {flag}'


def test_documented_subcommands_help_runs():
    # One process per subcommand, started together: the CPU time is the same, the wait shorter.
    paths = sorted({subcommand(shlex.split(c)[1:])[0] for _, c in COMMANDS})
    runs = {path: subprocess.Popen([rt2_executable(), *path, '--help'], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True) for path in paths}
    problems = []
    for path, process in runs.items():
        out, err = process.communicate(timeout=120)
        if process.returncode != 0 or 'usage: rt2 ' + ' '.join(path) not in ' '.join(out.split()):
            problems.append(f'rt2 {" ".join(path)} --help: status {process.returncode} {err}')
    assert not problems, problems


REAL = [pytest.param(w, c, id=c[:60], marks=[pytest.mark.slow] if 'make-tiny-vla' in c else [])
        for w, c in COMMANDS
        if subcommand(shlex.split(c)[1:])[0] in RUN_FOR_REAL
        and not any(name in c for name in USER_FILES)]


@pytest.mark.parametrize('where,command', REAL)
def test_fast_documented_commands_run_as_written(where, command, tmp_path):
    words = [w.replace('/tmp/', f'{tmp_path}/') for w in shlex.split(command)[1:]]
    run = subprocess.run([rt2_executable(), *words], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert run.returncode == 0, f'{where}: `{command}`\n{run.stderr}'


def github_anchors(text: str) -> set:
    """Return the anchors GitHub makes for the headings of a markdown text."""
    anchors, seen = set(), {}
    for line in prose(text, inline_code=True).split('\n'):
        match = re.match(r'^#{1,6}\s+(.*?)\s*#*\s*$', line)
        if not match:
            continue
        slug = re.sub(r'[^\w\- ]', '', match.group(1).strip().lower()).replace(' ', '-')
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f'{slug}-{count}')
    return anchors


def test_github_anchor_rules():
    text = ('# The demo: `make demo` / `rt2 demo`\n## Results\n## Results\n'
            '```\n# not a heading\n```')
    assert github_anchors(text) == {'the-demo-make-demo--rt2-demo', 'results', 'results-1'}


@pytest.mark.parametrize('doc', LINKED_DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_and_anchors_resolve(doc):
    problems = []
    for target in LINK.findall(prose(doc.read_text())):
        if re.match(r'^[a-z][a-z0-9+.-]*:', target):
            continue  # http(s), mailto: not checked offline
        file_part, _, anchor = target.partition('#')
        linked = (doc.parent / file_part).resolve() if file_part else doc
        if not linked.exists():
            problems.append(f'{target}: no such file')
        elif anchor and anchor not in github_anchors(linked.read_text()):
            problems.append(f'{target}: no heading with that anchor in {linked.name}')
    assert not problems, f'{doc.relative_to(ROOT)}: ' + '; '.join(problems)


def test_parameter_table_in_the_docs_is_the_code():
    text = (ROOT / 'docs' / 'controller.md').read_text()
    table = re.search(r'<!-- BEGIN rt2 params -->\n(.*?)<!-- END rt2 params -->', text, re.S)
    assert table, 'docs/controller.md lost its generated parameter table markers'
    assert table.group(1).strip() == P.markdown_table().strip(), \
        'regenerate the table in docs/controller.md with `rt2 params`'


@pytest.mark.parametrize('doc', LINKED_DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_repository_paths_the_docs_name_exist(doc):
    missing = []
    for name in REPO_PATH.findall(doc.read_text()):
        name = name.rstrip('.')
        if name in EXTERNAL_PATHS:
            continue
        pattern = re.sub(r'\$\{[^}]*\}|<[^>]*>', '*', name)
        if not (list(ROOT.glob(pattern)) or list(doc.parent.glob(pattern))):
            missing.append(name)
    assert not missing, f'{doc.relative_to(ROOT)} names paths that do not exist: {missing}'


@pytest.mark.parametrize('page', sorted((ROOT / 'docs').glob('*.md')), ids=lambda p: p.name)
def test_each_docs_page_opens_with_a_title_and_a_two_line_summary(page):
    lines = page.read_text().split('\n')
    assert lines[0].startswith('# ') and lines[1] == '', f'{page.name}: a title first'
    assert lines[2] and lines[3] and lines[4] == '', f'{page.name}: then a two-line summary'


def test_readme_is_one_short_page_in_the_order_a_new_user_reads_it():
    text = (ROOT / 'README.md').read_text()
    assert len(text.split('\n')) <= 300
    headings = [line[3:] for line in text.split('\n') if line.startswith('## ')]
    assert headings[:9] == ['Status', 'Safety', 'Tested platforms', 'Try it: two commands',
                            'Install', 'Quick start on a MoveIt Servo robot',
                            'Topics and services', 'Policy backends', 'Documentation']
