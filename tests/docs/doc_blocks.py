#!/usr/bin/env python3
"""Keeps the code and the output that the docs show true: every C++ example compiles, every output
block is what its program prints today.

Where it looks: README.md, docs/*.md, and the public headers (<layer>/include/**/*.hpp).

Markdown conventions (a directive is an HTML comment on the line right before the fence):

  ```cpp              A C++ example. With `int main(` it is a whole program; otherwise a fragment,
                      compiled as the body of a function after `#include <tapegrad/tapegrad.hpp>` and
                      `using namespace tapegrad;`.
  <!-- cpp setup:     Hidden declarations a fragment uses (what the surrounding text describes),
  const Tensor x = scalar(1.0);    placed before it in the same function body.
  -->
  <!-- cpp skip: why -->          A deliberately incomplete fragment: not compiled.
  <!-- output: PROGRAM [ARGS] [after="X"] [from="Y"] [to="Z"] -->
  ```                 Output of build/examples/PROGRAM (run in a scratch directory): the lines from
                      the first line containing Y (searching after the first line containing X)
                      through the next line containing Z, or without to= up to the next blank
                      line; without from=, all of it. Source paths print relative to the
                      repository (examples/traced_neuron.cpp:30).
  ```text / ```sh     Not checked (diagrams, commands, output of long runs).
  A bare ``` block with no directive is an error: say what it is.

Header convention (a fence inside a comment, same rules; no hidden setup, so declare what it uses):

  //   ```cpp
  //   tapegrad::Tensor w = tapegrad::scalar(0.6).requires_grad_();
  //   ```
  //   ```output: traced_neuron after="== cross-entropy" from="check_gradient" to="largest"
  //   ...
  //   ```

Usage:
  doc_blocks.py extract OUT.cpp      write every C++ block into one translation unit (each block in
                                     its own namespace, with #line pointing at the doc), written
                                     only when it changed
  doc_blocks.py check --bin-dir DIR  run the programs and diff every output block (exit 1 on drift)
  doc_blocks.py update --bin-dir DIR rewrite every output block with what the program prints
  doc_blocks.py selftest --bin-dir DIR   proves check fails on a stale block and update fixes it
  doc_blocks.py test-names --tests-binary BIN   every `Suite.Name` a doc cites exists
Options: --source DIR (the repository; default: two levels above this file), --docs FILE... (only
these files).
"""

import argparse
import difflib
import pathlib
import re
import shlex
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
FENCE_MD = re.compile(r"^```(.*)$")
FENCE_HPP = re.compile(r"^(\s*//(\s*))```(.*)$")
MAIN = re.compile(r"\bint\s+main\s*\(")
INCLUDE = re.compile(r"^\s*#\s*include\b")
# A source path as std::source_location prints it (absolute, or relative to the build directory),
# shown relative to the repository.
SOURCE_PATH = re.compile(
    r"(?:[^\s()'\"]*/)?((?:examples|tests|bench|core|ops|nn|io)/[\w./-]+\.(?:cpp|hpp|h))")
OUTPUT_KEYS = ("after", "from", "to")


class DocError(Exception):
    pass


class Block:
    """One fenced block: `lines` are its contents (comment prefix removed), at file lines
    [first, first + len(lines)) (0-based), and what the directive says about it."""

    def __init__(self, path, info, first, lines, prefix, directive):
        self.path, self.info, self.first, self.lines = path, info, first, lines
        self.prefix = prefix  # header blocks: the "//   " each line carries
        self.directive = directive  # (kind, text) or None

    def where(self, offset=0):
        return f"{self.path}:{self.first + offset + 1}"


def directive_before(lines, fence_index):
    """The HTML comment that ends on the line right before a Markdown fence, as (kind, text)."""
    end = fence_index - 1
    if end < 0 or not lines[end].rstrip().endswith("-->"):
        return None
    start = end
    while start >= 0 and "<!--" not in lines[start]:
        start -= 1
    if start < 0:
        return None
    text = "\n".join(lines[start:end + 1])
    text = text[text.index("<!--") + 4:text.rindex("-->")].strip()
    for kind in ("output:", "cpp setup:", "cpp skip:"):
        if text.startswith(kind):
            return kind[:-1], text[len(kind):].strip()
    return None


def markdown_blocks(path, text):
    lines = text.split("\n")
    blocks, i = [], 0
    while i < len(lines):
        match = FENCE_MD.match(lines[i])
        if not match:
            i += 1
            continue
        j = i + 1
        while j < len(lines) and lines[j].rstrip() != "```":
            j += 1
        if j == len(lines):
            raise DocError(f"{path}:{i + 1}: a ``` fence that is never closed")
        blocks.append(Block(path, match.group(1).strip(), i + 1, lines[i + 1:j], "",
                            directive_before(lines, i)))
        i = j + 1
    return blocks


def header_blocks(path, text):
    lines = text.split("\n")
    blocks, i = [], 0
    while i < len(lines):
        match = FENCE_HPP.match(lines[i])
        if not match:
            i += 1
            continue
        prefix, info = match.group(1), match.group(3).strip()
        body, j = [], i + 1
        while j < len(lines) and not re.match(r"^\s*//\s*```\s*$", lines[j]):
            line = lines[j]
            if line.startswith(prefix):
                body.append(line[len(prefix):])
            elif line.strip() == "//":
                body.append("")
            else:
                raise DocError(f"{path}:{j + 1}: a line inside the ``` block does not start with "
                               f"'{prefix}' (or the block is never closed)")
            j += 1
        if j == len(lines):
            raise DocError(f"{path}:{i + 1}: a ``` fence that is never closed")
        directive = None
        if info.startswith("output:"):
            directive, info = ("output", info[len("output:"):].strip()), ""
        blocks.append(Block(path, info, i + 1, body, prefix, directive))
        i = j + 1
    return blocks


def doc_files(source, only):
    if only:
        return [pathlib.Path(p).resolve() for p in only]
    files = [source / "README.md"] + sorted((source / "docs").glob("*.md"))
    for include in sorted(source.glob("*/include")):
        files += sorted(include.rglob("*.hpp"))
    return [f for f in files if f.is_file()]


def all_blocks(source, only):
    blocks = []
    for path in doc_files(source, only):
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".md":
            blocks += markdown_blocks(path, text)
        elif "```" in text:
            blocks += header_blocks(path, text)
    return blocks


# ---------------------------------------------------------------------------------------- extract


def cpp_blocks(blocks):
    result = []
    for block in blocks:
        if block.directive and block.directive[0] == "cpp skip":
            continue
        if block.info == "cpp" or block.info.startswith("cpp "):
            result.append(block)
    return result


def setup_of(block):
    """The hidden setup: text of a `cpp setup:` directive, and the doc line it starts on."""
    if not block.directive or block.directive[0] != "cpp setup":
        return [], 0
    lines = block.path.read_text(encoding="utf-8").split("\n")
    end = block.first - 2  # the line holding "-->"
    start = end
    while "<!--" not in lines[start]:
        start -= 1
    body = lines[start:end + 1]
    body[0] = body[0].split("cpp setup:", 1)[1]
    body[-1] = body[-1].rsplit("-->", 1)[0]
    return body, start


def extract(source, only, out):
    includes, parts = ["#include <tapegrad/tapegrad.hpp>"], []
    blocks = cpp_blocks(all_blocks(source, only))
    for n, block in enumerate(blocks):
        code = list(block.lines)
        for k, line in enumerate(code):
            if INCLUDE.match(line):
                if line.strip() not in includes:
                    includes.append(line.strip())
                code[k] = ""  # keep the line numbers
        name = f"doc_block_{n}"
        path = str(block.path).replace("\\", "/")
        parts.append(f"// {block.where(-1)}")
        parts.append(f"namespace {name} {{\nusing namespace tapegrad;")
        if MAIN.search("\n".join(code)):
            # A main in a namespace is an ordinary function: no implicit `return 0`.
            parts.append('#pragma GCC diagnostic push\n#pragma GCC diagnostic ignored "-Wreturn-type"')
            parts.append(f'#line {block.first + 1} "{path}"')
            parts += code
            parts.append("#pragma GCC diagnostic pop")
        else:
            setup, setup_line = setup_of(block)
            parts.append("void fragment() {")
            if setup:
                parts.append(f'#line {setup_line + 1} "{path}"')
                parts += setup
            parts.append(f'#line {block.first + 1} "{path}"')
            parts += code
            parts.append("}")
        parts.append(f"}}  // namespace {name}\n")
    text = ("// Generated by tests/docs/doc_blocks.py from the docs' and headers' ```cpp blocks; "
            "do not edit.\n" + "\n".join(includes) + "\n\n" + "\n".join(parts) +
            "\nint main() { return 0; }  // compiled and linked, not run\n")
    out = pathlib.Path(out)
    if not out.exists() or out.read_text(encoding="utf-8") != text:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    print(f"doc_blocks: {len(blocks)} C++ blocks -> {out}")


# ----------------------------------------------------------------------------------------- output


def parse_output_directive(block):
    try:
        words = shlex.split(block.directive[1])
    except ValueError as e:
        raise DocError(f"{block.where(-1)}: cannot parse the output directive: {e}")
    command, keys = [], {}
    for word in words:
        key, eq, value = word.partition("=")
        if eq and key in OUTPUT_KEYS:
            keys[key] = value
        else:
            command.append(word)
    if not command:
        raise DocError(f"{block.where(-1)}: the output directive names no program")
    return command, keys


class Runner:
    def __init__(self, bin_dirs):
        self.bin_dirs = [pathlib.Path(d).resolve() for d in bin_dirs]
        self.cache = {}

    def output(self, command):
        key = tuple(command)
        if key not in self.cache:
            program = next((d / command[0] for d in self.bin_dirs if (d / command[0]).is_file()),
                           None)
            if program is None:
                raise DocError(f"program {command[0]} not found in "
                               f"{', '.join(map(str, self.bin_dirs))} (build it first)")
            with tempfile.TemporaryDirectory() as scratch:  # programs write files into cwd
                run = subprocess.run([str(program)] + command[1:], cwd=scratch, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
            lines = [SOURCE_PATH.sub(r"\1", line.rstrip()) for line in run.stdout.split("\n")]
            while lines and not lines[-1]:
                lines.pop()
            self.cache[key] = lines
        return self.cache[key]


def expected_lines(block, runner):
    command, keys = parse_output_directive(block)
    lines = runner.output(command)

    def find(text, start, what):
        for k in range(start, len(lines)):
            if text in lines[k]:
                return k
        raise DocError(f"{block.where(-1)}: `{' '.join(command)}` prints no line containing "
                       f"{what}=\"{text}\"" + (f" after line {start}" if start else ""))

    start = find(keys["after"], 0, "after") + 1 if "after" in keys else 0
    if "from" in keys:
        start = find(keys["from"], start, "from")
    if "to" in keys:
        end = find(keys["to"], start, "to") + 1
    elif "from" in keys:  # a paragraph: up to the next blank line
        end = next((k for k in range(start, len(lines)) if not lines[k].strip()), len(lines))
    else:
        end = len(lines)
    return lines[start:end]


def output_blocks(blocks):
    bare = [b for b in blocks
            if b.path.suffix == ".md" and b.info == "" and b.directive is None]
    if bare:
        raise DocError("\n".join(
            f"{b.where(-1)}: a bare ``` block: mark it <!-- output: PROGRAM ... --> on the line "
            f"before (checked against the program), or write ```text (not checked)" for b in bare))
    return [b for b in blocks if b.directive and b.directive[0] == "output"]


def check(source, only, bin_dirs):
    runner, stale, count = Runner(bin_dirs), 0, 0
    for block in output_blocks(all_blocks(source, only)):
        count += 1
        want = expected_lines(block, runner)
        have = [line.rstrip() for line in block.lines]
        if have != want:
            stale += 1
            print(f"{block.where(-1)}: the output block differs from what "
                  f"`{parse_output_directive(block)[0][0]}` prints today:")
            sys.stdout.writelines(
                line + "\n" for line in difflib.unified_diff(
                    have, want, f"{block.path.name} (the doc)", "the program", lineterm="", n=1))
    if stale:
        print(f"doc_blocks: {stale} of {count} output blocks are stale; regenerate them with\n"
              f"  python3 {HERE / 'doc_blocks.py'} update --bin-dir {' --bin-dir '.join(bin_dirs)}")
        return 1
    print(f"doc_blocks: all {count} output blocks match their programs")
    return 0


def update(source, only, bin_dirs):
    runner, changed = Runner(bin_dirs), 0
    by_file = {}
    for block in output_blocks(all_blocks(source, only)):
        by_file.setdefault(block.path, []).append(block)
    for path, blocks in by_file.items():
        lines = path.read_text(encoding="utf-8").split("\n")
        for block in sorted(blocks, key=lambda b: -b.first):  # from the end: indices stay valid
            want = expected_lines(block, runner)
            if [line.rstrip() for line in block.lines] == want:
                continue
            changed += 1
            new = [(block.prefix + line).rstrip() if line else block.prefix.rstrip()
                   for line in want]
            lines[block.first:block.first + len(block.lines)] = new
        path.write_text("\n".join(lines), encoding="utf-8")
    print(f"doc_blocks: rewrote {changed} output blocks")
    return 0


TEST_NAME = re.compile(r"`([A-Z][A-Za-z0-9]*)\.([A-Z][A-Za-z0-9_]*|\*)`")


def check_test_names(source, only, tests_binary):
    """Every `Suite.Name` (or `Suite.*`) a doc cites, for a suite the test binary has, exists."""
    listing = subprocess.run([tests_binary, "--gtest_list_tests"], text=True, check=True,
                             stdout=subprocess.PIPE).stdout
    suites, suite = {}, None
    for line in listing.split("\n"):
        if line and not line.startswith(" "):
            suite = line.split(".")[0]
            suites.setdefault(suite, set())
        elif line.strip() and suite:
            suites[suite].add(line.split()[0])
    missing, cited = [], 0
    for path in doc_files(source, only):
        for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
            for suite, name in TEST_NAME.findall(line):
                if suite not in suites:
                    continue  # not a test suite (Suite-like prose); a renamed suite is caught by *
                cited += 1
                if name != "*" and name not in suites[suite]:
                    missing.append(f"{path}:{number}: cites {suite}.{name}, which "
                                   f"{tests_binary} does not have")
    print("\n".join(missing) if missing else
          f"doc_blocks: all {cited} test names the docs cite exist")
    return 1 if missing else 0


def selftest(bin_dirs):
    """check must fail on a stale block (and say where), update must fix it, and a bare block and
    a missing program must be errors."""
    with tempfile.TemporaryDirectory() as scratch:
        doc = pathlib.Path(scratch) / "doc.md"
        doc.write_text("# t\n\n<!-- output: readme_example from=\"step\" to=\"step\" -->\n```\n"
                       "step   0  loss 9.999999\n```\n", encoding="utf-8")
        args = [sys.executable, str(HERE / "doc_blocks.py")]
        dirs = sum((["--bin-dir", d] for d in bin_dirs), [])

        def run(*what):
            r = subprocess.run(args + list(what) + dirs + ["--docs", str(doc)], text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            return r.returncode, r.stdout

        rc, text = run("check")
        assert rc == 1 and f"{doc}:4: the output block differs" in text, text
        assert "-step   0  loss 9.999999" in text, text
        rc, text = run("update")
        assert rc == 0 and "rewrote 1" in text, text
        rc, text = run("check")
        assert rc == 0 and "all 1 output blocks match" in text, text
        assert "loss 9.999999" not in doc.read_text(), doc.read_text()
        doc.write_text("```\nanything\n```\n", encoding="utf-8")
        rc, text = run("check")
        assert rc == 1 and "a bare ``` block" in text, text
        doc.write_text("<!-- output: no_such_program -->\n```\nx\n```\n", encoding="utf-8")
        rc, text = run("check")
        assert rc == 1 and "no_such_program not found" in text, text
    print("doc_blocks selftest: stale block caught and rewritten; bare block and missing program "
          "rejected")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=["extract", "check", "update", "selftest", "test-names"])
    parser.add_argument("--tests-binary", help="test-names: the GoogleTest binary")
    parser.add_argument("out", nargs="?", help="extract: the .cpp file to write")
    parser.add_argument("--source", default=str(HERE.parent.parent))
    parser.add_argument("--bin-dir", action="append", default=[])
    parser.add_argument("--docs", nargs="*", default=[])
    args = parser.parse_args()
    source = pathlib.Path(args.source).resolve()
    try:
        if args.mode == "extract":
            if not args.out:
                parser.error("extract needs the output file")
            extract(source, args.docs, args.out)
            return 0
        if args.mode == "test-names":
            if not args.tests_binary:
                parser.error("test-names needs --tests-binary (e.g. build/tests/tapegrad_tests)")
            return check_test_names(source, args.docs, args.tests_binary)
        if not args.bin_dir:
            parser.error(f"{args.mode} needs --bin-dir (e.g. build/examples)")
        if args.mode == "check":
            return check(source, args.docs, args.bin_dir)
        if args.mode == "update":
            return update(source, args.docs, args.bin_dir)
        return selftest(args.bin_dir)
    except DocError as e:
        print(f"doc_blocks: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
