#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The C code in the docs is real code.

  doc-code.py same DOC.md FILE.c
      the ```c blocks of DOC.md, put end to end with one blank line between
      them, must be FILE.c byte for byte (docs/tutorial.md quotes
      examples/tutorial/ramdisk.c piece by piece).
  doc-code.py extract DOC.md HEADING OUT.c
      write the first ```c block under the "## HEADING" section of DOC.md
      to OUT.c (the README's snippet, which the caller then compiles).
"""
import difflib
import re
import sys

BLOCK = re.compile(r'^```c\n(.*?)^```$', re.M | re.S)


def blocks(text):
    return [m.group(1) for m in BLOCK.finditer(text)]


def same(doc, src):
    quoted = '\n'.join(blocks(open(doc).read()))
    code = open(src).read()
    if not quoted:
        print(f'FAIL: {doc} has no ```c block')
        return 1
    if quoted == code:
        print(f'ok: the {len(blocks(open(doc).read()))} C blocks of {doc} are {src}')
        return 0
    print(f'FAIL: the C blocks of {doc}, end to end, are not {src}:')
    sys.stdout.writelines(difflib.unified_diff(
        code.splitlines(True), quoted.splitlines(True), src, doc + ' (C blocks)'))
    return 1


def extract(doc, heading, out):
    text = open(doc).read()
    m = re.search(r'^## ' + re.escape(heading) + r'\n(.*?)(?=^## |\Z)', text,
                  re.M | re.S)
    if not m:
        print(f'FAIL: {doc} has no "## {heading}" section')
        return 1
    code = blocks(m.group(1))
    if not code:
        print(f'FAIL: the "## {heading}" section of {doc} has no ```c block')
        return 1
    with open(out, 'w') as f:
        f.write(code[0])
    return 0


if __name__ == '__main__':
    if len(sys.argv) == 4 and sys.argv[1] == 'same':
        sys.exit(same(sys.argv[2], sys.argv[3]))
    if len(sys.argv) == 5 and sys.argv[1] == 'extract':
        sys.exit(extract(*sys.argv[2:]))
    print(__doc__, file=sys.stderr)
    sys.exit(2)
