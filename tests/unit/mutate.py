#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Relational-operator mutation check for the unit tests (developer tool).

Flips each <, <=, > and >= in the given library files by one (< to <=,
<= to <, > to >=, >= to >), one at a time, rebuilds the given unit test
programs and runs them.  A mutant no test kills is an off-by-one no test
would notice: either a missing boundary test or an equivalent mutant (one
whose behaviour cannot differ); the survivors are listed at the end.

It edits files, so run it on a private copy of the tree, never on a
checkout others work in:

    git worktree add --detach /tmp/mut HEAD
    meson setup -Db_sanitize=address,undefined /tmp/mut/build /tmp/mut
    tests/unit/mutate.py /tmp/mut /tmp/mut/build \\
        lib/vq_split.c,lib/iotlb.c boundary,malformed,vq

Each file is restored when the run ends, also on an error or ^C.
"""
import argparse
import os
import re
import subprocess
import sys

FLIP = {'<': '<=', '<=': '<', '>': '>=', '>=': '>'}
# Comments, string and character literals, preprocessor lines.
NOT_CODE = re.compile(r'/\*.*?\*/|//[^\n]*|"(?:\\.|[^"\\\n])*"'
                      r"|'(?:\\.|[^'\\\n])*'|^[ \t]*#[^\n]*", re.S | re.M)
OPERATOR = re.compile(r'<<=?|>>=?|->|<=|>=|<|>')


def sites(code):
    """Offsets and text of the relational operators in C source."""
    blank = list(code)
    for m in NOT_CODE.finditer(code):
        for i in range(m.start(), m.end()):
            if blank[i] != '\n':
                blank[i] = ' '
    for m in OPERATOR.finditer(''.join(blank)):
        if m.group(0) in FLIP:
            yield m.start(), m.group(0)


def run(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, **kw)


def verdict(build, programs):
    """None if every program passes, else who killed the mutant."""
    env = dict(os.environ,
               ASAN_OPTIONS='detect_leaks=0:abort_on_error=1:'
                            'allocator_may_return_null=1',
               UBSAN_OPTIONS='halt_on_error=1')
    if run(['ninja', '-C', build] + programs).returncode:
        return 'killed (does not build)'
    for prog in programs:
        name = prog.rsplit('-', 1)[-1]
        try:
            r = run([os.path.join(build, prog)], timeout=60, env=env)
        except subprocess.TimeoutExpired:
            return 'killed by %s (timeout)' % name
        if r.returncode:
            failed = sorted(set(re.findall(r'\[  FAILED  \] (test_\w+)',
                                           r.stdout)))
            return 'killed by %s %s' % (name,
                                        ' '.join(failed[:3]) or '(crash)')
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('tree', help='a private copy of the source tree')
    ap.add_argument('build', help='its meson build directory')
    ap.add_argument('files', help='comma-separated, relative to the tree')
    ap.add_argument('tests', help='comma-separated unit test names')
    a = ap.parse_args()

    here = os.path.realpath(os.path.join(os.path.dirname(__file__), '..',
                                         '..'))
    if os.path.realpath(a.tree) == here:
        sys.exit('mutate.py: give it a private copy, not this checkout')
    programs = ['tests/unit/test-unit-' + t for t in a.tests.split(',')]
    if verdict(a.build, programs):
        sys.exit('mutate.py: the tests fail before any mutation')

    survivors, total = [], 0
    for f in a.files.split(','):
        path = os.path.join(a.tree, f)
        with open(path) as fp:
            orig = fp.read()
        lines = orig.splitlines()
        try:
            for pos, op in list(sites(orig)):
                total += 1
                line = orig.count('\n', 0, pos) + 1
                with open(path, 'w') as fp:
                    fp.write(orig[:pos] + FLIP[op] + orig[pos + len(op):])
                v = verdict(a.build, programs)
                where = '%s:%d %s -> %s  %s' % (f, line, op, FLIP[op],
                                               lines[line - 1].strip())
                if not v:
                    survivors.append(where)
                print('%s   [%s]' % (where, v or 'SURVIVED'), flush=True)
        finally:
            with open(path, 'w') as fp:
                fp.write(orig)
    run(['ninja', '-C', a.build] + programs)
    print('\n%d mutants, %d survived' % (total, len(survivors)))
    for s in survivors:
        print('survivor: ' + s)
    return 1 if survivors else 0


if __name__ == '__main__':
    sys.exit(main())
