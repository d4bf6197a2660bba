#!/usr/bin/env python3
"""Generates the man page and the bash completion of tlstrace from its own --help, and keeps
docs/cli.md's copies of the help in step, so none of them can drift from the program.

  cli_docs.py man TLSTRACE OUT.1              roff man page (section 1)
  cli_docs.py bash-completion TLSTRACE OUT    bash completion script
  cli_docs.py markdown TLSTRACE DOC.md        rewrite the generated help blocks of DOC.md
  cli_docs.py check-markdown TLSTRACE DOC.md  exit 1 when DOC.md's help blocks are stale

The help is CLI11's: sections "Positionals:", "Options:", "Subcommands:", one entry per line
(two spaces, the spec, the description from column 30 or on the next line).
"""
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field


@dataclass
class Entry:
    names: list          # ["-l", "--listen"] or ["action"] for a positional
    value: str = ""      # "TEXT", "UINT", ... ("" for a flag)
    choices: list = field(default_factory=list)
    default: str = ""
    required: bool = False
    help: str = ""


@dataclass
class Command:
    name: str            # "" for the top level
    summary: str = ""
    usage: str = ""
    positionals: list = field(default_factory=list)
    options: list = field(default_factory=list)
    subcommands: list = field(default_factory=list)  # (name, summary)
    raw: str = ""


# The help must not depend on the caller's locale; a sanitizer build's leak report at exit must not
# fail the build (its tests check leaks).
ENV = {**os.environ, "LC_ALL": "C", "ASAN_OPTIONS": "detect_leaks=0"}


def run_help(binary, *args):
    out = subprocess.run([binary, *args, "--help"], capture_output=True, text=True, check=True, env=ENV)
    return out.stdout.rstrip("\n") + "\n"


SPEC = re.compile(r"^(?P<names>[^ ]+)(?: (?P<value>[A-Z]+)(?::\{(?P<choices>[^}]*)\})?(?:=(?P<default>\S*))?)?"
                  r"(?P<required> REQUIRED)?$")


def parse_entry(spec, text):
    m = SPEC.match(spec)
    if not m:
        return Entry([spec], help=text)
    return Entry(names=m["names"].split(","), value=m["value"] or "",
                 choices=m["choices"].split(",") if m["choices"] else [], default=m["default"] or "",
                 required=bool(m["required"]), help=text)


def parse(text, name=""):
    cmd = Command(name, raw=text)
    lines = text.splitlines()
    section, pending = None, None
    for i, line in enumerate(lines):
        if i == 0 and not line.startswith("Usage:"):
            cmd.summary = line.strip()
            continue
        if line.startswith("Usage:"):
            cmd.usage = line[len("Usage:"):].strip()
            continue
        if line.endswith(":") and not line.startswith(" "):
            section, pending = line[:-1], None
            continue
        if not line.strip():
            continue
        if line.startswith("  ") and not line.startswith("   "):  # a new entry
            body = line[2:]
            parts = re.split(r"\s{2,}", body, maxsplit=1)
            spec, desc = parts[0].strip(), (parts[1].strip() if len(parts) > 1 else "")
            if section == "Subcommands":
                cmd.subcommands.append((spec, desc))
                pending = None
                continue
            # CLI11 pads the spec to column 30; a longer spec whose choices/default run into the
            # description is split by SPEC (e.g. `--leaf-key TEXT:{ec,rsa}=ec key of ...`).
            m = re.match(r"^(\S+(?: [A-Z]+(?::\{[^}]*\})?(?:=\S*)?)?(?: REQUIRED)?)(?: (.*))?$", body.strip())
            if m and not desc and m.group(2):
                spec, desc = m.group(1), m.group(2).strip()
            e = parse_entry(spec, desc)
            (cmd.positionals if section == "Positionals" else cmd.options).append(e)
            pending = e
        elif pending is not None:  # a continuation line of the description
            pending.help = (pending.help + " " + line.strip()).strip()
    return cmd


def collect(binary):
    top = parse(run_help(binary), "")
    subs = [parse(run_help(binary, name), name) for name, _ in top.subcommands]
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True, env=ENV).stdout.strip()
    return top, subs, version


# ---------------------------------------------------------------------------------------------
# man page

def roff(s):
    s = s.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + s if s.startswith((".", "'")) else s


def man_entry(e):
    names = ", ".join(f"\\fB{roff(n)}\\fR" for n in e.names)
    if e.value:
        names += " \\fI" + (roff("|".join(e.choices)) if e.choices else e.value) + "\\fR"
    out = [".TP", names, roff(e.help or "")]
    if e.default:
        out[-1] += f" (default: {roff(e.default)})"
    return out


def man(binary):
    top, subs, version = collect(binary)
    prog = "tlstrace"
    ver = version.split()[1] if len(version.split()) > 1 else version
    out = [f'.TH TLSTRACE 1 "" "{prog} {roff(ver)}" "User Commands"',
           ".SH NAME", f"{prog} \\- {roff(top.summary.split(': ', 1)[-1])}",
           ".SH SYNOPSIS"]
    for s in subs:
        pos = " ".join(f"\\fI{roff(p.names[0])}\\fR" for p in s.positionals)
        out += [f"\\fB{prog} {s.name}\\fR [\\fIOPTIONS\\fR] {pos}".rstrip(), ".br"]
    out += [f"\\fB{prog}\\fR \\fB\\-\\-version\\fR | \\fB\\-\\-help\\fR",
            ".SH DESCRIPTION",
            f"{prog} terminates a client's TCP+TLS connection with a certificate forged on the fly from its own CA, "
            "opens its own TCP+TLS connection to the real server, relays the bytes and traces both legs: the TCP "
            "lifecycle, every TLS handshake message, the certificate verdict, the negotiated parameters and the key log.",
            ".PP",
            "Every option of \\fBproxy\\fR can also come from a TOML file (\\fB\\-\\-config\\fR, keys are the long "
            "option names); the command line wins over the file.",
            ".SH OPTIONS"]
    for e in top.options:
        out += man_entry(e)
    out.append(".SH COMMANDS")
    for s in subs:
        out += [f".SS {prog} {s.name}", roff(s.summary)]
        for p in s.positionals:
            out += man_entry(p)
        for e in s.options:
            out += man_entry(e)
    out += [".SH ENVIRONMENT",
            ".TP", "\\fBTLSTRACE_HOME\\fR", "directory of the interception CA when \\fB\\-\\-ca\\-dir\\fR is not given "
            "(default \\fI~/.tlstrace\\fR)",
            ".TP", "\\fBSSLKEYLOGFILE\\fR", "default of \\fB\\-\\-keylog\\fR",
            ".SH FILES",
            ".TP", "\\fI~/.tlstrace/ca.pem\\fR, \\fI~/.tlstrace/ca.key\\fR",
            "the interception CA, created on first start (the key with mode 0600)",
            ".TP", "\\fI/usr/share/doc/tlstrace/examples/*.toml\\fR", "commented example configuration files",
            ".SH EXIT STATUS",
            "0 on success (SIGINT/SIGTERM stop the proxy cleanly), non\\-zero on a usage or start\\-up error.",
            ".SH EXAMPLES",
            ".nf",
            f"{prog} proxy",
            "curl \\-x http://127.0.0.1:8080 \\-\\-cacert ~/.tlstrace/ca.pem https://example.com/",
            f"{prog} proxy \\-m reverse \\-l 127.0.0.1:8443 \\-u localhost:443 \\-\\-events events.jsonl",
            f"{prog} convert events.jsonl \\-\\-to keylog > keys.log",
            ".fi",
            ".SH SEE ALSO",
            "\\fBopenssl\\-s_client\\fR(1), \\fBwireshark\\fR(1); the event schema in "
            "\\fI/usr/share/doc/tlstrace/events.md\\fR"]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# bash completion

def bash_completion(binary):
    top, subs, _ = collect(binary)
    q = lambda words: " ".join(words)
    cases = []
    for s in subs:
        opts = [n for e in s.options for n in e.names]
        valued = [n for e in s.options if e.value and not e.choices for n in e.names]
        choice_cases = [f"      {'|'.join(e.names)}) COMPREPLY=($(compgen -W \"{q(e.choices)}\" -- \"$cur\")); return ;;"
                        for e in s.options if e.choices]
        pos_choices = next((p.choices for p in s.positionals if p.choices), [])
        pos_line = (f'COMPREPLY=($(compgen -W "{q(pos_choices)}" -- "$cur"))' if pos_choices
                    else 'COMPREPLY=($(compgen -f -- "$cur"))' if s.positionals else "COMPREPLY=()")
        cases.append(f"""    {s.name})
      case "$prev" in
{chr(10).join(choice_cases) if choice_cases else '      __tlstrace_none) ;;'}
      {'|'.join(valued) or '__tlstrace_none'}) COMPREPLY=($(compgen -f -- "$cur")); return ;;
      esac
      if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "{q(opts)}" -- "$cur"))
      else
        {pos_line}
      fi
      ;;""")
    top_opts = [n for e in top.options for n in e.names]
    return f"""# bash completion for tlstrace -*- shell-script -*-
# Generated from `tlstrace --help` and each command's --help by tools/cli_docs.py; do not edit.
_tlstrace() {{
  local cur prev cmd i
  cur="${{COMP_WORDS[COMP_CWORD]}}"
  prev="${{COMP_WORDS[COMP_CWORD-1]}}"
  cmd=""
  for ((i = 1; i < COMP_CWORD; i++)); do
    case "${{COMP_WORDS[i]}}" in
      -*) ;;
      *) cmd="${{COMP_WORDS[i]}}"; break ;;
    esac
  done
  case "$cmd" in
    "")
      COMPREPLY=($(compgen -W "{q([n for n, _ in top.subcommands] + top_opts)}" -- "$cur"))
      ;;
{chr(10).join(cases)}
  esac
}}
complete -o filenames -F _tlstrace tlstrace
"""


# ---------------------------------------------------------------------------------------------
# docs/cli.md: the help blocks between markers are the program's output

BLOCK = re.compile(r"(<!-- help: (?P<args>[^>]*?) -->\n```text\n)(?P<body>.*?)(```\n)", re.S)


def markdown_blocks(binary, text):
    def repl(m):
        args = m["args"].split()
        body = subprocess.run([binary, *args], capture_output=True, text=True, check=True, env=ENV).stdout
        if args == ["--version"]:
            body = re.sub(r"\(.*\)", "(OpenSSL …, allocator …)", body)  # the machine's libraries
        return m.group(1) + body.rstrip("\n") + "\n" + m.group(4)
    return BLOCK.sub(repl, text)


def main(argv):
    if len(argv) != 4 or argv[1] not in ("man", "bash-completion", "markdown", "check-markdown"):
        print(__doc__, file=sys.stderr)
        return 2
    what, binary, path = argv[1:]
    if what == "man":
        text = man(binary)
    elif what == "bash-completion":
        text = bash_completion(binary)
    else:
        with open(path) as f:
            old = f.read()
        text = markdown_blocks(binary, old)
        if what == "check-markdown":
            if text != old:
                print(f"{path}: its help blocks differ from `{binary} ... --help`: "
                      f"run tools/cli_docs.py markdown {binary} {path}", file=sys.stderr)
                return 1
            print(f"{path}: help blocks match the program")
            return 0
    with open(path, "w") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
