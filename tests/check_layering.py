#!/usr/bin/env python3
"""The layering rule of src/ (docs/architecture.md), as one table, and its check.

Every folder of src/ is one layer. LAYERS below says, per folder, which other src/ folders it may
include (always folders listed above it: dependencies point down) and which third-party header
families it may use. A family is caught twice: by its #include lines and by its API names in the
code (OpenSSL's `SSL_CTX*` reached through another header is still OpenSSL).

  check_layering.py SRC_DIR [--doc docs/architecture.md]   check; exit 1 on any violation
  check_layering.py --markdown                             print the table for the docs
  check_layering.py --write-doc docs/architecture.md       rewrite the doc's table in place

A folder of the table that does not exist yet (session/ before it is extracted) is fine; a folder
of src/ that the table does not name is a violation, so a new layer has to be placed here first.
Violations print as `file:line: what`, one per line.
"""
import argparse
import pathlib
import re
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Family:
    name: str       # as the table and the messages spell it
    headers: tuple  # #include <...> prefixes
    symbols: str    # regex of API names used in code (comments and strings removed first), or ""


FAMILIES = [
    Family("OpenSSL", ("openssl/",),
           r"\b(?:SSL|SSL_CTX|SSL_CIPHER|SSL_SESSION|X509|X509_NAME|X509_STORE|EVP_PKEY|EVP_MD|BIO|BIGNUM"
           r"|ASN1_TIME|OSSL_PARAM)\b"
           r"|\b(?:SSL|X509|EVP|BIO|ERR|OPENSSL|OpenSSL|BN|PEM|RAND|ASN1|CRYPTO|OSSL|TLS1|EC|DH)_[A-Za-z0-9_]+"),
    Family("Asio/Beast", ("boost/asio", "boost/beast", "boost/system/"), r"\bboost::(?:asio|beast)::"),
    Family("Boost.JSON", ("boost/json",), r"\bboost::json::"),
    Family("spdlog", ("spdlog/", "fmt/"), r"\bspdlog::"),
    Family("CLI11", ("CLI/",), r"\bCLI::"),
    Family("toml++", ("toml++/",), r"\btoml::"),
    Family("GMP", ("gmp.h",), r"\bmpz_[a-z_]+"),
    Family("jemalloc", ("jemalloc/",), r"\bmallctl\b|\bje_[a-z_]+"),
    Family("libbpf", ("bpf/",), r"\b(?:bpf_map__|ring_buffer__|libbpf_)[a-z_]+"),
    Family("zlib", ("zlib.h",), r"\b(?:compress2|compressBound|uncompress|z_stream|deflateInit_?|inflateInit_?)\b"),
    Family("libpcap", ("pcap/", "pcap.h"),
           r"\bpcap_(?:t|pkthdr|create|activate|compile|setfilter|dispatch|close|geterr|datalink|set_[a-z_]+"
           r"|get_selectable_fd|freecode|setnonblock)\b"),
]
FAMILY = {f.name: f for f in FAMILIES}


@dataclass(frozen=True)
class Layer:
    folder: str
    uses: tuple        # other src/ folders it may include (each must be listed above it)
    third_party: tuple  # header families it may include
    what: str          # one line for the docs table


# Bottom to top. The one table: the check, the docs table and the dependency order all come from it.
LAYERS = [
    Layer("wire", (), (), "pure: bytes to typed TLS messages, IANA registries"),
    Layer("trace", ("wire",), ("Boost.JSON",), "pure: events, JSON values, per-leg decoder, text renderers, tracer queue"),
    Layer("config", (), ("toml++",), "pure: configuration structs, validation, config files"),
    Layer("tls", ("wire", "trace"), ("OpenSSL", "Boost.JSON", "GMP"),
          "the OpenSSL adapter: RAII, engine over memory BIOs, contexts, crypto.h arithmetic"),
    Layer("analysis", ("wire", "trace", "config", "tls"), ("Boost.JSON",),
          "key-exchange checks (arithmetic through tls/crypto.h), JA3/JA4, diagnosis, summary"),
    Layer("pki", ("wire", "trace", "tls"), ("OpenSSL", "Boost.JSON"), "the CA and forged leaves"),
    Layer("sinks", ("wire", "trace"), ("spdlog", "Boost.JSON"), "text, JSON Lines, key log, pcapng writers"),
    Layer("session", ("wire", "trace", "config", "tls", "analysis", "pki"), ("Boost.JSON",),
          "pure sans-I/O ProxySession: inputs in, actions out"),
    Layer("report", ("wire", "trace", "sinks"), ("Boost.JSON", "zlib"),
          "pure: events grouped into connections for the report page, the page (embedded HTML/CSS/JS)"),
    Layer("net", ("wire", "trace", "config", "tls", "analysis", "pki", "sinks", "session", "report"),
          ("Asio/Beast", "Boost.JSON", "libbpf", "libpcap"),
          "thin executor of session actions on Asio sockets; --capture"),
    Layer("app", ("wire", "trace", "config", "tls", "analysis", "pki", "sinks", "session", "report", "net"),
          ("Asio/Beast", "Boost.JSON", "spdlog", "CLI11", "jemalloc"), "main, CLI11, the composition root"),
]

# TEMPORARY: known violations of today's tree, allowed so the suite stays green while they are
# being removed. (file, family or folder) -> why. Each is reported on every run; delete the entry
# with the code it covers.
TEMPORARY = {}

SOURCE_SUFFIXES = {".h", ".hpp", ".cpp", ".cc", ".inc"}
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')
# Comments and string/char literals, removed before looking for API names.
STRIP = re.compile(r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'', re.S)


def check_table():
    """The table itself: every folder once, every dependency pointing down, families known."""
    errors, seen = [], []
    for layer in LAYERS:
        if layer.folder in seen:
            errors.append(f"check_layering.py: {layer.folder} is listed twice")
        for dep in layer.uses:
            if dep not in seen:
                errors.append(f"check_layering.py: {layer.folder} may use {dep}, which is not listed below it "
                              "(dependencies point down)")
        for fam in layer.third_party:
            if fam not in FAMILY:
                errors.append(f"check_layering.py: {layer.folder}: unknown header family {fam}")
        seen.append(layer.folder)
    return errors


def blank_out(text):
    """Comments and literals replaced by spaces, newlines kept, so line numbers stay right."""
    return STRIP.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)


def check_file(path, rel, layer, folders):
    """Yields (line, key, message) for each violation in one file; key is a family or folder."""
    allowed_fams = [FAMILY[n] for n in layer.third_party]
    text = path.read_text(errors="replace")
    lines = text.splitlines()
    for no, line in enumerate(lines, 1):
        m = INCLUDE.match(line)
        if not m:
            continue
        quote, inc = m.groups()
        if quote == '"':
            top = inc.split("/", 1)[0] if "/" in inc else None
            if top is None or top == layer.folder:
                continue
            if top not in folders:
                yield no, top, f'"{inc}": {top}/ is not a folder of src/ the layering table knows'
            elif top not in layer.uses:
                yield no, top, f'"{inc}": {layer.folder}/ may not include {top}/ (may include: {", ".join(layer.uses) or "nothing"})'
            continue
        if "/" not in inc:
            continue  # the standard library and the C/POSIX headers: allowed everywhere
        fam = next((f for f in FAMILIES if inc.startswith(f.headers)), None)
        if fam is None:
            if inc.split("/", 1)[0] in ("sys", "arpa", "netinet", "linux", "net", "bits"):
                continue  # system headers
            yield no, inc, f"<{inc}>: a third-party header in no family of the layering table"
        elif fam not in allowed_fams:
            yield no, fam.name, f"<{inc}>: {layer.folder}/ may not include {fam.name} ({where(fam.name)})"
    code = blank_out(text).splitlines()
    for fam in FAMILIES:
        if fam in allowed_fams or not fam.symbols:
            continue
        pat = re.compile(fam.symbols)
        for no, line in enumerate(code, 1):
            if INCLUDE.match(lines[no - 1]):
                continue
            hit = pat.search(line)
            if hit:
                yield no, fam.name, f"{hit.group(0)}: {layer.folder}/ may not use {fam.name} ({where(fam.name)})"


def where(family):
    return "only in " + ", ".join(l.folder + "/" for l in LAYERS if family in l.third_party)


def check_tree(src, root, temporary):
    errors, allowed = check_table(), {}
    folders = {l.folder: l for l in LAYERS}
    for d in sorted(p for p in src.iterdir() if p.is_dir()):
        if d.name not in folders:
            errors.append(f"{d.relative_to(root)}: a folder of src/ the layering table does not name: add it to "
                          "LAYERS in tests/check_layering.py and to docs/architecture.md")
    for layer in LAYERS:
        d = src / layer.folder
        if not d.is_dir():
            continue  # not extracted yet: fine, and checked as soon as it exists
        for f in sorted(d.rglob("*")):
            if f.suffix not in SOURCE_SUFFIXES or not f.is_file():
                continue
            rel = f.relative_to(root).as_posix()
            for no, key, msg in check_file(f, rel, layer, folders):
                if (rel, key) in temporary:
                    allowed.setdefault((rel, key), []).append(no)
                else:
                    errors.append(f"{rel}:{no}: {msg}")
    return errors, allowed


MARK_BEGIN = "<!-- layering table: generated by tests/check_layering.py --write-doc; do not edit by hand -->"
MARK_END = "<!-- end of layering table -->"


def markdown():
    out = ["| folder (bottom to top) | may include from src/ | third-party headers | what |", "|---|---|---|---|"]
    for l in LAYERS:
        uses = ", ".join(f"`{u}/`" for u in l.uses) or "—"
        fams = ", ".join(l.third_party) or "standard library only"
        out.append(f"| `{l.folder}/` | {uses} | {fams} | {l.what} |")
    out.append("")
    out.append("Header families: " + "; ".join(
        f"{f.name} = " + ", ".join(f"`<{h}…>`" for h in f.headers) for f in FAMILIES) + ". "
        "The standard library and C/POSIX headers are allowed everywhere.")
    if TEMPORARY:
        out.append("")
        out.append("Temporarily allowed (known violations, each reported on every run):")
        out.append("")
        for (f, key), why in TEMPORARY.items():
            out.append(f"- `{f}` uses {key} — until: {why}")
    return "\n".join(out)


def doc_block(text):
    if MARK_BEGIN not in text or MARK_END not in text:
        return None
    return text.split(MARK_BEGIN, 1)[1].split(MARK_END, 1)[0].strip("\n")


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", nargs="?", help="the src/ directory to check")
    ap.add_argument("--doc", help="also check that this file's layering table matches LAYERS")
    ap.add_argument("--markdown", action="store_true", help="print the table as markdown")
    ap.add_argument("--write-doc", metavar="FILE", help="rewrite the table in FILE between its markers")
    ap.add_argument("--strict", action="store_true", help="ignore TEMPORARY: report every violation")
    ap.add_argument("-v", "--verbose", action="store_true", help="list every line of the temporary exceptions")
    a = ap.parse_args(argv)
    if a.markdown:
        print(markdown())
        return 0
    if a.write_doc:
        p = pathlib.Path(a.write_doc)
        text = p.read_text()
        if doc_block(text) is None:
            print(f"{p}: no markers {MARK_BEGIN!r} ... {MARK_END!r}", file=sys.stderr)
            return 1
        head, rest = text.split(MARK_BEGIN, 1)
        tail = rest.split(MARK_END, 1)[1]
        p.write_text(f"{head}{MARK_BEGIN}\n{markdown()}\n{MARK_END}{tail}")
        return 0
    if not a.src:
        ap.error("give SRC_DIR, --markdown or --write-doc")
    src = pathlib.Path(a.src).resolve()
    errors, allowed = check_tree(src, src.parent, {} if a.strict else TEMPORARY)
    if a.doc:
        block = doc_block(pathlib.Path(a.doc).read_text())
        if block is None:
            errors.append(f"{a.doc}:1: no generated layering table (markers missing)")
        elif block != markdown():
            errors.append(f"{a.doc}:1: the layering table differs from tests/check_layering.py: run "
                          f"tests/check_layering.py --write-doc {a.doc}")
    for (rel, key), nos in sorted(allowed.items()):
        shown = nos if a.verbose else nos[:3]
        more = f" and {len(nos) - len(shown)} more" if len(nos) > len(shown) else ""
        print(f"{rel}:{nos[0]}: TEMPORARILY ALLOWED: {key} on lines {', '.join(map(str, shown))}{more} "
              f"(until: {TEMPORARY[(rel, key)]})")
    stale = [] if a.strict else [k for k in TEMPORARY if k not in allowed]
    for rel, key in stale:
        print(f"{rel}: note: the temporary exception for {key} is no longer needed: remove it from TEMPORARY")
    print("\n".join(errors) if errors else "layering ok")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
