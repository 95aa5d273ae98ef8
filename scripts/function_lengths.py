#!/usr/bin/env python3
"""function_lengths.py: the length of every C++/CUDA function, to keep each under a limit.

    scripts/function_lengths.py [--max N] [--top K] [PATH ...]   (default: src/ kernels/, limit 150)

A function's length is its lines from the first line of its signature to its
closing brace. Lambdas and local classes count toward the function that holds
them. Prints the K longest (--top) and every function over --max lines; exits
1 when there is one (the project's rule: no function over 150 lines).

The scan needs no compiler: comments, string and character literals and
preprocessor lines are blanked, then braces are matched; a brace opens a
function body when it follows a parameter list (with qualifiers, a trailing
return type or a constructor's initializer list) outside any function.
"""
import argparse
import os
import re
import sys

EXTENSIONS = ('.cpp', '.hpp', '.cu', '.cuh', '.h', '.cc')


def blank(text):
    """The text with comments, literals and preprocessor lines as spaces (newlines kept)."""
    out = []
    i, n = 0, len(text)
    line_start = True
    while i < n:
        c = text[i]
        if line_start and c == '#':
            # A preprocessor line, with its continuations.
            while i < n and text[i] != '\n':
                if text[i] == '\\' and i + 1 < n and text[i + 1] == '\n':
                    out.append(' \n')
                    i += 2
                    continue
                out.append(' ')
                i += 1
            continue
        if c == '\n':
            out.append(c)
            line_start = True
            i += 1
            continue
        if not c.isspace():
            line_start = False
        if text.startswith('//', i):
            while i < n and text[i] != '\n':
                out.append(' ')
                i += 1
            continue
        if text.startswith('/*', i):
            j = text.find('*/', i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r'[^\n]', ' ', text[i:j]))
            i = j
            continue
        m = re.match(r'(?:u8|[uUL])?R"([^(\s]*)\(', text[i:i + 20])
        if m and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == '_')):
            end = ')' + m.group(1) + '"'
            j = text.find(end, i + m.end())
            j = n if j < 0 else j + len(end)
            out.append('""' + re.sub(r'[^\n]', ' ', text[i + 2:j]))
            i = j
            continue
        if c == '"' or (c == "'" and not (i > 0 and text[i - 1].isalnum())):  # 1'000'000 is a number
            j = i + 1
            while j < n and text[j] != c and text[j] != '\n':
                j += 2 if text[j] == '\\' else 1
            j = min(j + 1, n)
            out.append(c + ' ' * (j - i - 2) + c if j - i >= 2 else c)
            i = j
            continue
        out.append(c)
        i += 1
    return ''.join(out)


FUNCTION_END = re.compile(
    r'\)\s*(?:const|override|final|noexcept(?:\s*\([^)]*\))?|mutable|&&?|\s)*'
    r'(?:->\s*[\w:<>,\s*&]+)?\s*$')
CTOR_INIT = re.compile(r'\)\s*(?:noexcept\s*)?:\s*[\w:]+\s*[({]')


def function_name(header):
    """The qualified name before a header's parameter list ("Trainer::run", "lambda")."""
    head = header.strip()
    if re.match(r'^(?:[\w:&*<>,\s]*=\s*)?\[', head) or re.search(r'=\s*\[[^\]]*\]\s*\(', head):
        return 'lambda'
    paren = head.find('(')
    if head.startswith('operator') or 'operator' in head[:paren]:
        m = re.search(r'([\w:~]*operator\s*(?:\(\)|[^\s(]+))\s*\(', head)
        if m:
            return m.group(1)
    before = head[:paren]
    m = re.search(r'([~\w:]+)\s*$', before)
    return m.group(1) if m else '?'


def scan(path):
    """Yields (name, first line, last line) of every function in the file."""
    with open(path, encoding='utf-8', errors='replace') as f:
        text = blank(f.read())
    # Scopes: 'ns' (namespace, class, extern, aggregate: functions may open
    # inside), 'init' (a braced member initializer), or a function's record.
    stack = []
    header_start = 0  # where the text before the next brace began (at a non-function scope)
    line = 1
    depth_in_function = 0
    for i, c in enumerate(text):
        if c == '\n':
            line += 1
            continue
        if depth_in_function:
            if c == '{':
                depth_in_function += 1
            elif c == '}':
                depth_in_function -= 1
                if depth_in_function == 0:
                    name, first = stack.pop()
                    yield name, first, line
                    header_start = i + 1
            continue
        if c == ';':
            header_start = i + 1
        elif c == '{':
            header = text[header_start:i]
            stripped = header.strip()
            previous = stripped[-1:] if stripped else ''
            ctor = CTOR_INIT.search(header)
            if ctor and (previous.isalnum() or previous in '_>'):
                stack.append(('init', None))  # a member initializer a_{b}
                continue
            is_function = '(' in header and (FUNCTION_END.search(header) or (ctor and previous in ')}'))
            if is_function and not re.search(r'\b(?:namespace|class|struct|union|enum)\s+\w*\s*(?::[^()]*)?$',
                                             stripped):
                offset = len(header) - len(header.lstrip())
                first = text.count('\n', 0, header_start + offset) + 1
                stack.append((function_name(header), first))
                depth_in_function = 1
            else:
                stack.append(('ns', None))
                header_start = i + 1
        elif c == '}':
            if stack:
                kind, _ = stack.pop()
                if kind == 'init':
                    continue
            header_start = i + 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('paths', nargs='*', help='files or folders (default: src kernels, from the project root)')
    ap.add_argument('--max', type=int, default=150, help='the longest a function may be (lines; default 150)')
    ap.add_argument('--top', type=int, default=10, help='list the K longest functions (default 10)')
    args = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    paths = args.paths or [os.path.join(root, 'src'), os.path.join(root, 'kernels')]
    files = []
    for p in paths:
        if os.path.isdir(p):
            for d, _, names in os.walk(p):
                files += [os.path.join(d, n) for n in names if n.endswith(EXTENSIONS)]
        else:
            files.append(p)
    found = []
    for path in sorted(files):
        rel = os.path.relpath(path, root) if path.startswith(root) else path
        for name, first, last in scan(path):
            found.append((last - first + 1, rel, first, name))
    found.sort(key=lambda f: (-f[0], f[1], f[2]))
    for length, rel, first, name in found[:args.top]:
        print(f'{length:5d}  {rel}:{first}  {name}')
    over = [f for f in found if f[0] > args.max]
    if over:
        print(f'{len(over)} function(s) over {args.max} lines:', file=sys.stderr)
        for length, rel, first, name in over:
            print(f'  {rel}:{first}: {name} is {length} lines', file=sys.stderr)
        return 1
    print(f'{len(found)} functions in {len(files)} files; none over {args.max} lines')
    return 0


if __name__ == '__main__':
    sys.exit(main())
