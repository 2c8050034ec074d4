"""Every program that a test, benchmark or deploy script starts is listed in
deploy/programs.list, which deploy/setup.sh installs and checks. A program
used by a test but missing from the list is the failure a fresh machine shows
and a machine where somebody installed it by hand hides: this test makes it
fail everywhere.

What counts as starting a program:
  Python  the first element of a list literal given to subprocess.run/Popen/
          check_output/call/check_call/os.exec* or assigned to a name with
          `cmd` or `argv` in it; the command words of a string given to sh(),
          os.system() or subprocess with a string; shutil.which("x");
  shell   the first word of every command of deploy/ and tests/ scripts;
  meson   find_program('x').
Wrappers are looked through: `ip netns exec NS prog`, `timeout N prog`,
`taskset -c N prog`, `setpriv ... prog`, `env A=B prog`.

It also checks that deploy/setup.sh, before the suite, stops at once on a
listed program that is missing, naming its package.

Usage: programs_listed.py [--self-test]; exit 0 when every program is listed."""
import ast
import os
import re
import shlex
import subprocess
import sys
import tempfile

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
LIST = os.path.join(ROOT, "deploy", "programs.list")

SUBPROCESS_CALLS = {"run", "Popen", "check_output", "call", "check_call", "execv", "execvp", "execvpe", "execve"}
SHELL_CALLS = {"sh", "system"}
SHELL_KEYWORDS = {
    "if", "then", "else", "elif", "fi", "for", "in", "do", "done", "while", "until", "case", "esac", "function",
    "local", "export", "set", "unset", "echo", "printf", "read", "return", "exit", "cd", "[", "[[", "]", "]]", "test",
    "true", "false", ":", ".", "source", "shift", "eval", "trap", "wait", "kill", "command", "declare", "readonly",
    "exec", "break", "continue", "pushd", "popd", "!", "{", "}", "(", ")", "time", "getopts", "type", "hash", "ulimit",
    "umask", "let", "mapfile", "shopt", "pwd",
}
PLACEHOLDER = "\x00"  # an f-string's {expression}: not a program name we can know


def listed_programs(path=LIST):
    out = {}
    with open(path) as f:
        for line in f:
            words = line.split("#", 1)[0].split()
            if len(words) >= 2:
                out[words[0]] = words[1]
    return out


def after_wrappers(words):
    """The command words with wrapper programs yielded as well: `ip netns exec
    NS prog ...` gives ip and prog."""
    while words:
        prog = words[0]
        yield prog
        rest = words[1:]
        if prog == "ip" and rest[:2] == ["netns", "exec"] and len(rest) >= 3:
            words = rest[3:]
        elif prog in ("timeout", "taskset", "nice", "chrt", "stdbuf", "setpriv", "env", "sudo", "nohup"):
            while rest and (rest[0].startswith("-") or "=" in rest[0]):
                # Options that take a value: taskset -c LIST, timeout -s SIG, nice -n N.
                takes_value = rest[0] in ("-c", "-s", "-k", "-n", "-p", "-o", "-e", "-i")
                rest = rest[2:] if takes_value else rest[1:]
            if prog in ("timeout", "chrt") and rest:
                rest = rest[1:]  # the duration / priority
            elif prog == "taskset" and rest and words[1:2] != ["-c"] and not words[1].startswith("-"):
                rest = rest[1:]  # a mask given without -c
            words = rest
        else:
            return


def _without_comment(line):
    """The line up to a `#` that starts a word outside quotes."""
    quote = None
    for k, c in enumerate(line):
        if quote:
            if c == quote:
                quote = None
            elif c == "\\" and quote == '"':
                continue
        elif c in "'\"":
            quote = c
        elif c == "#" and (k == 0 or line[k - 1] in " \t;|&("):
            return line[:k]
    return line


def _without_arithmetic(text):
    """Shell text with every $(( ... )) and (( ... )) (nested parentheses
    and all) replaced by 0 (a value) or true (a command): arithmetic names
    variables, not programs."""
    out, i = [], 0
    while i < len(text):
        start = text.find("((", i)
        if start < 0:
            out.append(text[i:])
            break
        begin = start - 1 if start > 0 and text[start - 1] == "$" else start
        out.append(text[i:begin])
        depth, j = 0, start
        while j < len(text):
            depth += {"(": 1, ")": -1}.get(text[j], 0)
            j += 1
            if depth == 0:
                break
        out.append("0" if begin < start else "true")  # a value, or a command that is no program
        i = j
    return "".join(out)


def _shell_tokens(text):
    """Words and operators of shell text; newlines are operators too.
    Here-document bodies and $((arithmetic)) are left out."""
    lines, heredoc = [], None
    for line in text.splitlines():
        if heredoc is not None:
            if line.strip() == heredoc:
                heredoc = None
            continue
        line = _without_comment(line)
        m = re.search(r"<<-?\s*['\"]?(\w+)['\"]?", line)
        if m:
            heredoc = m.group(1)
            line = line[:m.start()]
        lines.append(line)
    text = _without_arithmetic("\n".join(lines).replace("\\\n", " "))
    lex = shlex.shlex(text, posix=True, punctuation_chars="();<>|&\n")
    lex.whitespace = " \t\r"
    lex.commenters = ""  # comments are cut by _without_comment: `$#` is no comment
    lex.whitespace_split = True
    try:
        raw = list(lex)
    except ValueError:  # an unbalanced quote: fall back to plain words
        return text.replace("\n", " \n ").split(" ")
    # shlex joins neighbouring operator characters (`)\n`, `();`): split
    # them into the shell's operators.
    tokens = []
    for t in raw:
        if t and all(c in "();<>|&\n" for c in t):
            tokens.extend(re.findall(r"&&|\|\||;;|>>|<<|>&|<&|&>|[();<>|&\n]", t))
        else:
            tokens.append(t)
    return tokens


def defined_functions(text):
    tokens = _shell_tokens(text)
    return {tokens[i] for i in range(len(tokens) - 2) if tokens[i + 1] == "(" and tokens[i + 2] == ")"}


def shell_commands(text, functions=frozenset()):
    """Program names at command position in shell text; `functions`: names
    the enclosing script defines."""
    tokens = _shell_tokens(text)
    functions = set(functions) | defined_functions(text)
    separators = {";", "|", "||", "&&", "&", "(", "\n", ";;", "{", "}", "$(", "`"}
    found, i, at_command, case_depth, pattern_next = [], 0, True, 0, False
    for t in tokens:  # "$(cmd ...)" inside a quoted word
        for inner in re.findall(r"\$\(([^()]*)\)", t):
            found.extend(shell_commands(inner, functions))
    while i < len(tokens):
        t = tokens[i]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        if t in separators or t.endswith("$"):  # `$` then `(`: a command substitution
            at_command = True
            pattern_next = case_depth > 0 and t in (";;", "\n")
            i += 1
            continue
        if t in (">", "<", ">>", ">&", "<&", "&>", "2>", ")"):
            i += 2 if t != ")" else 1
            continue
        if not at_command:
            i += 1
            continue
        if case_depth:  # a case pattern: `up router)`, `*)`, `1G|1g)`
            j = i
            while j < len(tokens) and (tokens[j] == "|" or tokens[j] not in separators | {")", ">", "<"}):
                j += 1
            if j < len(tokens) and tokens[j] == ")":
                i = j + 1
                continue
        if t == "case":
            case_depth += 1
            while i < len(tokens) and tokens[i] != "in":
                i += 1
            i += 1
            continue
        if t == "esac":
            case_depth -= 1
            i += 1
            continue
        if t in ("for", "select"):  # `for VAR in WORDS`: no command until the separator
            at_command = False
            i += 1
            continue
        if re.match(r"^[A-Za-z_][A-Za-z0-9_]*(\[[^]]*\])?\+?=", t):  # VAR=value (VAR=( ... ) an array)
            if t.endswith("=") and nxt == "(":
                while i < len(tokens) and tokens[i] != ")":
                    i += 1
            i += 1
            continue
        if t in ("if", "then", "else", "elif", "do", "while", "until", "!", "time"):
            i += 1
            continue
        # The command word: take the words up to the next separator and look
        # through wrappers (`ip netns exec NS prog`).
        j = i
        words = []
        while j < len(tokens) and tokens[j] not in separators and tokens[j] not in (">", "<", ">>", ")"):
            words.append(tokens[j])
            if tokens[j].endswith("=") and j + 1 < len(tokens) and tokens[j + 1] == "(":
                while j < len(tokens) and tokens[j] != ")":  # `local a=(x y)`: an array, not a command
                    j += 1
            j += 1
        for prog in after_wrappers(words):
            if prog in SHELL_KEYWORDS or prog in functions or prog.startswith(("$", "-", "./")):
                continue
            if re.match(r"^[A-Za-z0-9_./+-]+$", prog):
                found.append(prog)
        at_command = False
        i = j
    return found


def string_value(node):
    """The text of a str constant or f-string, {expressions} as PLACEHOLDER."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else PLACEHOLDER for v in node.values)
    return None


def list_program(node):
    """A list/tuple literal's first element, when it is a string."""
    if isinstance(node, (ast.List, ast.Tuple)) and node.elts:
        s = string_value(node.elts[0])
        if s and PLACEHOLDER not in s:
            return s
    return None


def call_name(func):
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def python_programs(source, filename="<source>"):
    found = []
    tree = ast.parse(source, filename)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = call_name(node.func)
            first = node.args[0] if node.args else None
            if name in SUBPROCESS_CALLS and first is not None:
                prog = list_program(first)
                if prog:
                    found.extend(after_wrappers([string_value(e) or PLACEHOLDER for e in first.elts]))
                elif string_value(first) is not None and any(
                        k.arg == "shell" for k in node.keywords):
                    found.extend(shell_commands(string_value(first)))
            elif name in SHELL_CALLS and first is not None and string_value(first) is not None:
                found.extend(shell_commands(string_value(first)))
            elif name == "which" and first is not None and string_value(first):
                found.append(string_value(first))
        elif isinstance(node, ast.Assign):
            targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
            if any("cmd" in t.lower() or "argv" in t.lower() for t in targets) and list_program(node.value):
                found.extend(after_wrappers([string_value(e) or PLACEHOLDER for e in node.value.elts]))
    return [p for p in found if p and PLACEHOLDER not in p]


def meson_programs(text):
    return re.findall(r"find_program\(\s*'([^']+)'", text)


def is_shell_script(path):
    if path.endswith(".sh"):
        return True
    try:
        with open(path, "rb") as f:
            return f.readline().startswith(b"#!") and b"sh" in open(path, "rb").readline()
    except OSError:
        return False


def sources():
    for top in ("tests", "perf", "deploy", ".ci"):
        for dirpath, dirnames, files in os.walk(os.path.join(ROOT, top)):
            dirnames[:] = [d for d in dirnames if d not in ("corpus", "__pycache__")]
            for f in files:
                yield os.path.join(dirpath, f)


def programs_started():
    """{program: [file, ...]} over the test, benchmark and deploy sources."""
    uses = {}
    # Functions of one script may be called from another that sources it.
    shell_functions = set()
    for path in sources():
        if is_shell_script(path) and not path.endswith(".py"):
            with open(path) as f:
                shell_functions |= defined_functions(f.read())
    for path in sources():
        rel = os.path.relpath(path, ROOT)
        if path.endswith(".py"):
            with open(path) as f:
                progs = python_programs(f.read(), rel)
        elif os.path.basename(path) == "meson.build":
            with open(path) as f:
                progs = meson_programs(f.read())
        elif is_shell_script(path):
            with open(path) as f:
                progs = shell_commands(f.read(), shell_functions)
        else:
            continue
        for p in progs:
            # The project's own programs (deploy/lab, perf/*.py) are not packages.
            if p.startswith(("deploy/", "perf/", "build/", "tests/")) or "/deploy/" in p:
                continue
            uses.setdefault(p, []).append(rel)
    return uses


def self_test():
    """The scanner finds programs in each form the sources use (made-up names:
    real ones here would read as programs the tests start to a word grep)."""
    py = '''
import subprocess, shutil
subprocess.run(["proga", "-t1", url])
sh(f"ip netns exec {ns} progb -c 198.18.0.2")
sh("ip netns exec x timeout 5 progc ping-pong")
subprocess.Popen(["ip", "netns", "exec", h, "taskset", "-c", "0", "progd", "-c", conf])
cmd = ["proge", "--flood"]
shutil.which("progf")
subprocess.run(f"progg -s {url} | progh .", shell=True)
subprocess.run([NGSTACK, "check", path])
modes = ["forwarder", "router"]
'''
    got = set(python_programs(py))
    want = {"proga", "ip", "progb", "timeout", "progc", "taskset", "progd", "proge", "progf", "progg", "progh"}
    assert got == want, f"python scanner: got {sorted(got)}, want {sorted(want)}"
    shell = '''#!/usr/bin/env bash
f() { x; }
# progi in a comment is not a command
if [ -x /x ]; then modprobe vfio-pci; fi
for d in $(lspci -n | awk '{print $1}'); do echo "$d"; done
X=1 dpdk-devbind.py --status
local missing=() p
while [ $# -gt 0 ]; do case $1 in -x) shift ;; esac; done  # the comment's words are no commands
case "$1" in 1G|1g) x=$(( (a * b + 1) / c )) ;; --release|release) (( n & 1 )) && rmdir /x ;; esac
[ "$(id -u)" = 0 ] || echo "$(basename "$0")"
f
'''
    got = set(shell_commands(shell))
    want = {"x", "modprobe", "lspci", "awk", "dpdk-devbind.py", "id", "basename", "rmdir"}
    assert got == want, f"shell scanner: got {sorted(got)}, want {sorted(want)}"
    assert meson_programs("p = find_program('/usr/bin/python3')\n") == ["/usr/bin/python3"]


def check_before_suite():
    """deploy/setup.sh stops before the suite when a listed program is missing,
    naming the package; with every program present it passes."""
    setup = os.path.join(ROOT, "deploy", "setup.sh")
    with tempfile.NamedTemporaryFile("w", suffix=".list") as f:
        f.write("# program package\nngstack-no-such-program   ngstack-some-package\nsed sed\n")
        f.flush()
        r = subprocess.run(["bash", setup, "check-programs"], env={**os.environ, "NGS_PROGRAMS_LIST": f.name},
                           capture_output=True, text=True, timeout=60)
    assert r.returncode != 0, f"check-programs passed with a missing program:\n{r.stdout}{r.stderr}"
    assert "ngstack-no-such-program is missing: apt-get install ngstack-some-package" in r.stderr, r.stderr
    assert "sed is missing" not in r.stderr, r.stderr
    r = subprocess.run(["bash", setup, "check-programs"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"check-programs fails on this machine:\n{r.stderr}"


def main():
    self_test()
    print("ok: the scanner finds programs started from Python, shell and meson sources")
    check_before_suite()
    print("ok: deploy/setup.sh check-programs names the package of a missing program and stops")
    if "--self-test" in sys.argv:
        return 0
    listed = listed_programs()
    uses = programs_started()
    missing = {p: files for p, files in uses.items() if p not in listed}
    for p in sorted(uses):
        print(f"{'ok' if p in listed else 'NOT LISTED'}: {p} ({listed.get(p, '?')}): {', '.join(sorted(set(uses[p])))}")
    if missing:
        for p, files in sorted(missing.items()):
            print(f"FAIL: {p} is started by {', '.join(sorted(set(files)))} but deploy/programs.list does not list it "
                  f"(add it with the Debian package that provides it)")
        print(f"0 passed, 1 failed")
        return 1
    print(f"ok: all {len(uses)} programs the tests, benchmarks and deploy scripts start are in deploy/programs.list")
    print("1 passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
