#!/usr/bin/env python3
"""Extract real passages from the Python 3.11 documentation (Debian package
python3.11-doc) for embedding benchmarks and retrieval experiments.

Every <p> element inside the documentation body of each HTML page becomes a
candidate paragraph (markup stripped with the stdlib html.parser, whitespace
collapsed). Paragraphs are kept when their MiniLM word-piece count (special
tokens excluded, no truncation) lies in [--min-tokens, --max-tokens]; exact
duplicates are dropped. If more than N remain, N are sampled with a fixed seed
and written in document order. Output: JSON lines {"id": ..., "text": ...},
with id = "<page path>#p<paragraph index in page>".

Requires the `tokenizers` package (e.g. the reference venv):
    apt-get install -y python3.11-doc
    $UAE_CACHE/venv/bin/python assets/make_passages.py [-n 1000] [-o OUT]
"""
import argparse
import html.parser
import json
import os
import random
import subprocess
import sys
from pathlib import Path

UAE_CACHE = Path(os.environ.get("UAE_CACHE", Path.home() / ".cache" / "uae"))
DEFAULT_MODEL = UAE_CACHE / "models" / "all-MiniLM-L6-v2"
DOC_PACKAGE = "python3.11-doc"
# Pages that are not prose documentation.
SKIP_NAMES = {"genindex.html", "search.html", "py-modindex.html", "contents.html"}
SKIP_PARTS = {"_static", "_sources", "_images", "whatsnew"}


class ParagraphParser(html.parser.HTMLParser):
    """Collect the text of <p> elements inside <div role="main"> (Sphinx body)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.paragraphs = []
        self._div_depth = 0      # depth of <div> nesting
        self._main_at = None     # div depth at which the main body opened
        self._p_depth = 0
        self._skip_depth = 0     # inside elements whose text we drop
        self._buf = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "div":
            self._div_depth += 1
            cls = (a.get("class") or "").split()
            if self._main_at is None and (a.get("role") == "main" or "body" in cls):
                self._main_at = self._div_depth
        elif tag == "p" and self._main_at is not None:
            if self._p_depth == 0:
                self._buf = []
            self._p_depth += 1
        elif self._p_depth and (tag in ("script", "style") or
                                (tag == "a" and "headerlink" in (a.get("class") or ""))):
            self._skip_depth += 1
        elif self._p_depth and tag == "br":
            self._buf.append(" ")

    def handle_endtag(self, tag):
        if tag == "div":
            if self._main_at is not None and self._div_depth == self._main_at:
                self._main_at = None
            self._div_depth -= 1
        elif tag == "p" and self._p_depth:
            self._p_depth -= 1
            if self._p_depth == 0:
                text = " ".join("".join(self._buf).split())
                if text:
                    self.paragraphs.append(text)
        elif self._skip_depth and tag in ("script", "style", "a"):
            self._skip_depth -= 1

    def handle_data(self, data):
        if self._p_depth and not self._skip_depth:
            self._buf.append(data)


def doc_html_files(root=None):
    if root:
        files = [str(p) for p in Path(root).rglob("*.html")]
        base = Path(root)
    else:
        try:
            out = subprocess.run(["dpkg", "-L", DOC_PACKAGE], check=True,
                                 capture_output=True, text=True).stdout
        except (OSError, subprocess.CalledProcessError):
            sys.exit(f"error: {DOC_PACKAGE} not installed (apt-get install -y {DOC_PACKAGE}) "
                     "or pass --doc-root")
        files = [l for l in out.splitlines() if l.endswith(".html") and os.path.isfile(l)]
        base = Path(os.path.commonpath(files)) if files else Path("/")
        # commonpath of all html files is the html/ root
    picked = []
    for f in sorted(set(files)):
        rel = Path(f).relative_to(base)
        if rel.name in SKIP_NAMES or SKIP_PARTS.intersection(rel.parts):
            continue
        picked.append((str(rel), f))
    return picked


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--num", type=int, default=1000)
    ap.add_argument("-o", "--output", default=None,
                    help="default: $UAE_CACHE/data/passages-<N>.jsonl")
    ap.add_argument("--model", default=str(DEFAULT_MODEL), help="dir with tokenizer.json")
    ap.add_argument("--doc-root", default=None, help="html root (default: from dpkg -L)")
    ap.add_argument("--min-tokens", type=int, default=20)
    ap.add_argument("--max-tokens", type=int, default=250)
    ap.add_argument("--seed", type=int, default=20240601)
    args = ap.parse_args()

    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(str(Path(args.model) / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()

    candidates, seen = [], set()
    files = doc_html_files(args.doc_root)
    for rel, path in files:
        p = ParagraphParser()
        p.feed(Path(path).read_text(encoding="utf-8", errors="replace"))
        p.close()
        for i, text in enumerate(p.paragraphs):
            if text in seen:
                continue
            seen.add(text)
            candidates.append((f"{rel}#p{i}", text))
    lens = [len(e.ids) for e in tok.encode_batch([t for _, t in candidates],
                                                 add_special_tokens=False)]
    kept = [(c, n) for c, n in zip(candidates, lens)
            if args.min_tokens <= n <= args.max_tokens]
    if len(kept) < args.num:
        sys.exit(f"error: only {len(kept)} paragraphs in range, asked for {args.num}")
    idx = sorted(random.Random(args.seed).sample(range(len(kept)), args.num))
    chosen = [kept[i] for i in idx]

    out = Path(args.output) if args.output else UAE_CACHE / "data" / f"passages-{args.num}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for (pid, text), _ in chosen:
            f.write(json.dumps({"id": pid, "text": text}, ensure_ascii=False) + "\n")
    os.replace(tmp, out)

    n = sorted(n for _, n in chosen)
    q = lambda x: n[min(len(n) - 1, int(x * len(n)))]
    print(json.dumps({
        "output": str(out), "written": len(chosen), "html_files": len(files),
        "paragraphs": len(candidates), "in_range": len(kept),
        "wordpieces_no_special": {"min": n[0], "p10": q(0.1), "p50": q(0.5),
                                  "p90": q(0.9), "max": n[-1],
                                  "mean": round(sum(n) / len(n), 1)},
    }), file=sys.stderr)


if __name__ == "__main__":
    main()
