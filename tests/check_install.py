#!/usr/bin/env python3
"""`cmake --install` into a temporary prefix puts every file where it belongs: the binary runs
(--version), the man page renders, the bash completion completes, the example configs are there.

  check_install.py CMAKE BUILD_DIR
"""
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile


def run(*cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)


def main(cmake, build):
    failures = []
    with tempfile.TemporaryDirectory(prefix="tlstrace-install-") as tmp:
        prefix = pathlib.Path(tmp)
        r = run(cmake, "--install", build, "--prefix", str(prefix))
        if r.returncode != 0:
            print(r.stdout, r.stderr)
            return 1
        want = ["bin/tlstrace", "share/man/man1/tlstrace.1", "share/bash-completion/completions/tlstrace",
                "share/doc/tlstrace/examples/explicit.toml", "share/doc/tlstrace/examples/reverse.toml",
                "share/doc/tlstrace/README.md", "share/doc/tlstrace/cli.md", "share/doc/tlstrace/events.md"]
        for w in want:
            if not (prefix / w).is_file():
                failures.append(f"missing after install: {w}")
        if failures:
            print("\n".join(failures))
            return 1

        # The installed binary runs from the prefix.
        r = run(str(prefix / "bin/tlstrace"), "--version")
        if r.returncode != 0 or not r.stdout.startswith("tlstrace "):
            failures.append(f"bin/tlstrace --version: status {r.returncode}, {r.stdout!r} {r.stderr!r}")
        else:
            print("installed:", r.stdout.strip())

        # The man page: a .TH header, and it renders without warnings where man/groff exist.
        page = prefix / "share/man/man1/tlstrace.1"
        text = page.read_text()
        if not text.startswith(".TH TLSTRACE 1 "):
            failures.append("tlstrace.1 does not start with .TH TLSTRACE 1")
        if shutil.which("groff"):
            r = run("groff", "-man", "-Tutf8", "-ww", "-z", str(page))
            if r.returncode != 0 or r.stderr.strip():
                failures.append(f"groff warns about tlstrace.1: {r.stderr.strip()}")
        if shutil.which("man"):
            r = run("man", "-P", "cat", "-l", str(page), env={**os.environ, "MANWIDTH": "100", "LC_ALL": "C"})
            if r.returncode != 0 or "SYNOPSIS" not in r.stdout or "tlstrace proxy" not in r.stdout:
                failures.append(f"man -l tlstrace.1 failed: status {r.returncode} {r.stderr.strip()}")
            else:
                print(f"man page renders: {len(r.stdout.splitlines())} lines")
        else:
            print("man not installed: checked the .TH header only")

        # The bash completion parses and completes commands, options and choices.
        comp = prefix / "share/bash-completion/completions/tlstrace"
        script = f"""source {comp}
t() {{ COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMPREPLY=(); _tlstrace; echo "${{COMPREPLY[*]}}"; }}
t tlstrace prox; t tlstrace proxy --mo; t tlstrace proxy --mode ""; t tlstrace ca ""
"""
        r = run("bash", "-c", script)
        got = r.stdout.splitlines()
        expect = ["proxy", "--mode", "explicit reverse transparent socks5", "init show export install"]  # ("pro" is proxy and probe)
        if r.returncode != 0 or got != expect:
            failures.append(f"bash completion: got {got} (status {r.returncode}, {r.stderr.strip()}), want {expect}")
        else:
            print("bash completion completes commands, options and choices")

    print("\n".join(failures) if failures else "install ok")
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2]))
