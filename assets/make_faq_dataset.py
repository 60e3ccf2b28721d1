#!/usr/bin/env python3
r"""Build a small, real question-answering retrieval data set in BEIR layout from
the Python FAQ of Debian's python3.11-doc, with distractors from the library
reference.

    apt-get install -y python3.11-doc
    python3 assets/make_faq_dataset.py [--out DIR] [--distractors 2000] [--seed 13]

Stdlib only. Output (default $UAE_CACHE/data/python-faq/; not committed):
  corpus.jsonl        {"_id", "title", "text"}      one passage per line
  queries.jsonl       {"_id", "text", "answers": [str]}   one FAQ question per line
  qrels/{train,dev,test}.tsv   header "query-id\tcorpus-id\tscore"; score 1 for
                      every passage of the query's own answer (and no other)
  summary.json        what the summary line printed

How it is made (all deterministic):
  * FAQ pages: html/faq/*.html except index.html, in sorted order. Every
    <section> below the page's <h1> section is a candidate entry; its question is
    the heading text (the "¶" permalink dropped) and its answer is the section's
    OWN content (nested sections excluded). Entries whose own content has no
    prose are skipped: group headings ("Core Language") have no own content;
    an answer of only code blocks is "only code". Counts are printed.
  * Prose blocks: the text of each <p> element (Sphinx wraps list items, table
    cells and notes in <p> too) with markup stripped and whitespace collapsed;
    <p class="admonition-title"> / "topic-title" and anything in <nav> or <pre>
    are dropped. Code blocks (<pre>) are not part of any passage.
  * Sentences: a sentence ends at ".", "!" or "?" (optionally followed by closing
    quotes/brackets) when whitespace and then an upper-case letter, a digit, or
    an opening quote/bracket follow, unless the word ending there is one of
    e.g. i.e. etc. vs. cf. Mr. Dr. No. or a single letter ("A."). The text end
    ends the last sentence.
  * Gold answer: the first sentence of the answer's first prose block
    (sentences never span blocks, so a block ending in ":" before a dropped code
    block ends a sentence); while it has fewer than 4 words (e.g. "Yes."), the
    next sentence (same or next block) is appended with a space.
  * Chunking (FAQ answers and distractor pages alike): blocks in order; a block
    of more than 120 words (whitespace-separated) is first cut into pieces of
    whole sentences of at most 120 words (a single longer sentence stays
    whole); then consecutive pieces are merged while the result has at most 120
    words. Passage text = the pieces joined by a space.
  * FAQ passages: _id "faq/<page>.html#<section id>/<n>" (n from 0), title = the
    page's <h1> title (e.g. "Programming FAQ"; never the question). Query _id =
    "faq/<page>.html#<section id>".
  * Distractors: pages html/library/*.html in sorted path order, paragraphs
    taken as by make_passages.py (ParagraphParser: <p> in the Sphinx body),
    paragraphs of fewer than 8 words dropped, chunked per page as above; chunks
    whose text equals an earlier chunk (or an FAQ passage) are dropped. Of the M
    chunks left, N = --distractors are taken evenly spread: indices
    floor(i * M / N), i = 0..N-1. _id "library/<page>.html/<chunk index in page>",
    title = page <title> minus " — Python 3.11.x documentation".
  * Split: query ids sorted, shuffled with random.Random(seed); the first
    round(n*train%) are train, the next round(n*dev%) dev, the rest test.
"""
import argparse
import html.parser
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

UAE_CACHE = Path(os.environ.get("UAE_CACHE", Path.home() / ".cache" / "uae"))
DOC_PACKAGE = "python3.11-doc"
MAX_WORDS = 120
MIN_ANSWER_WORDS = 4
MIN_DISTRACTOR_WORDS = 8

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_passages import ParagraphParser  # noqa: E402


# --------------------------------------------------------------- parsing ----
class FaqParser(html.parser.HTMLParser):
    """Sections of one FAQ page: id, depth, heading, own prose blocks, own <pre>
    count; and the page <title>."""

    SKIP_TAGS = {"nav", "pre", "script", "style"}
    SKIP_P_CLASSES = {"admonition-title", "topic-title"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.sections = []      # dicts, in document order
        self._stack = []        # indices into self.sections (open sections)
        self._skip = []         # open elements whose text is dropped
        self._heading = None    # text buffer while inside <h1>..<h6>
        self._p = None          # text buffer while inside a kept top-level <p>
        self._p_depth = 0
        self._in_title = False
        self.title = ""

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        cls = (a.get("class") or "").split()
        if tag == "title":
            self._in_title = True
        elif tag == "section":
            self.sections.append({"id": a.get("id", ""), "depth": len(self._stack) + 1,
                                  "heading": "", "blocks": [], "pre": 0})
            self._stack.append(len(self.sections) - 1)
        elif tag in self.SKIP_TAGS or (tag == "a" and "headerlink" in cls):
            if tag == "pre" and self._stack and not self._skip:
                self.sections[self._stack[-1]]["pre"] += 1
            self._skip.append(tag)
        elif re.fullmatch(r"h[1-6]", tag) and self._stack and not self._skip:
            self._heading = []
        elif tag == "p" and self._stack and not self._skip:
            self._p_depth += 1
            if self._p_depth == 1:
                self._p = None if self.SKIP_P_CLASSES.intersection(cls) else []
        elif tag == "br" and self._p is not None:
            self._p.append(" ")

    def handle_endtag(self, tag):
        if self._skip:
            if tag == self._skip[-1]:
                self._skip.pop()
            return
        if tag == "title":
            self._in_title = False
        elif tag == "section" and self._stack:
            self._stack.pop()
        elif re.fullmatch(r"h[1-6]", tag) and self._heading is not None:
            self.sections[self._stack[-1]]["heading"] = " ".join("".join(self._heading).split())
            self._heading = None
        elif tag == "p" and self._p_depth:
            self._p_depth -= 1
            if self._p_depth == 0:
                if self._p is not None:
                    text = " ".join("".join(self._p).split())
                    if text:
                        self.sections[self._stack[-1]]["blocks"].append(text)
                self._p = None

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        if self._skip:
            return
        if self._heading is not None:
            self._heading.append(data)
        elif self._p is not None:
            self._p.append(data)


# ------------------------------------------------------------------ text ----
ABBREV = {"e.g.", "i.e.", "etc.", "vs.", "cf.", "mr.", "dr.", "no."}
SENT_END = re.compile(r"""[.!?]['")\]”’]*(?=\s+[A-Z0-9'"(\[“‘`])""")


def sentences(text):
    """Split text into sentences (see the module docstring)."""
    out, start = [], 0
    for m in SENT_END.finditer(text):
        end = m.end()
        word = text[start:end].split()[-1].lower() if text[start:end].split() else ""
        word = word.rstrip("'\")]”’")
        if word in ABBREV or re.fullmatch(r"[a-z]\.", word):
            continue
        out.append(text[start:end].strip())
        start = end
    rest = text[start:].strip()
    if rest:
        out.append(rest)
    return out


def nwords(text):
    return len(text.split())


def chunk(blocks, max_words=MAX_WORDS):
    """Blocks -> passages (see the module docstring)."""
    pieces = []
    for b in blocks:
        if nwords(b) <= max_words:
            pieces.append(b)
            continue
        cur = []
        for s in sentences(b):
            if cur and nwords(" ".join(cur + [s])) > max_words:
                pieces.append(" ".join(cur))
                cur = []
            cur.append(s)
        if cur:
            pieces.append(" ".join(cur))
    out, cur = [], []
    for p in pieces:
        if cur and nwords(" ".join(cur + [p])) > max_words:
            out.append(" ".join(cur))
            cur = []
        cur.append(p)
    if cur:
        out.append(" ".join(cur))
    return out


def gold_answer(blocks):
    sents = [s for b in blocks for s in sentences(b)]
    ans = []
    for s in sents:
        ans.append(s)
        if nwords(" ".join(ans)) >= MIN_ANSWER_WORDS:
            break
    return " ".join(ans)


def page_title(title):
    return re.sub(r"\s+[—-]+\s+Python [0-9.]+ documentation\s*$", "", " ".join(title.split()))


# ----------------------------------------------------------------- input ----
def html_root(arg):
    if arg:
        return Path(arg)
    try:
        out = subprocess.run(["dpkg", "-L", DOC_PACKAGE], check=True,
                             capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        sys.exit(f"error: {DOC_PACKAGE} not installed (apt-get install -y {DOC_PACKAGE}) "
                 "or pass --doc-root")
    for line in out.splitlines():
        if line.endswith("/faq/index.html"):
            return Path(line).parent.parent
    sys.exit(f"error: no faq/index.html in {DOC_PACKAGE}")


def faq_entries(root, stats):
    entries = []
    for path in sorted((root / "faq").glob("*.html")):
        if path.name == "index.html":
            continue
        p = FaqParser()
        p.feed(path.read_text(encoding="utf-8", errors="replace"))
        p.close()
        top = next((s for s in p.sections if s["depth"] == 1), None)
        title = top["heading"] if top else page_title(p.title)
        stats["faq_pages"] += 1
        for s in p.sections:
            if s["depth"] == 1:
                continue
            if not s["blocks"]:
                key = "skipped_only_code" if s["pre"] else "skipped_no_content"
                stats[key] += 1
                if s["pre"]:
                    stats["skipped_only_code_ids"].append(f"faq/{path.name}#{s['id']}")
                continue
            entries.append({"qid": f"faq/{path.name}#{s['id']}", "question": s["heading"],
                            "title": title, "blocks": s["blocks"]})
    return entries


def distractor_chunks(root):
    out = []
    for path in sorted((root / "library").glob("*.html")):
        p = ParagraphParser()
        p.feed(path.read_text(encoding="utf-8", errors="replace"))
        p.close()
        m = re.search(r"<title>(.*?)</title>", path.read_text(encoding="utf-8", errors="replace"),
                      re.S)
        title = page_title(html.unescape(m.group(1))) if m else path.stem
        paras = [t for t in p.paragraphs if nwords(t) >= MIN_DISTRACTOR_WORDS]
        for i, text in enumerate(chunk(paras)):
            out.append({"_id": f"library/{path.name}/{i}", "title": title, "text": text})
    return out


# ------------------------------------------------------------------ main ----
def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(UAE_CACHE / "data" / "python-faq"))
    ap.add_argument("--distractors", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--split", default="70/10/20", help="train/dev/test percentages")
    ap.add_argument("--doc-root", default=None, help="html root (default: from dpkg -L)")
    args = ap.parse_args()
    pct = [float(x) for x in args.split.split("/")]
    if len(pct) != 3 or abs(sum(pct) - 100) > 1e-9:
        sys.exit("error: --split must be three percentages summing to 100")

    root = html_root(args.doc_root)
    stats = {"faq_pages": 0, "skipped_no_content": 0, "skipped_only_code": 0,
             "skipped_only_code_ids": []}
    entries = faq_entries(root, stats)
    if not entries:
        sys.exit("error: no FAQ entries found")
    ids = [e["qid"] for e in entries]
    if len(set(ids)) != len(ids):
        sys.exit("error: duplicate FAQ section ids")

    corpus, queries, rels, seen = [], [], {}, set()
    for e in entries:
        chunks = chunk(e["blocks"])
        rels[e["qid"]] = []
        for n, text in enumerate(chunks):
            did = f"{e['qid']}/{n}"
            corpus.append({"_id": did, "title": e["title"], "text": text})
            rels[e["qid"]].append(did)
            seen.add(text)
        queries.append({"_id": e["qid"], "text": e["question"],
                        "answers": [gold_answer(e["blocks"])]})
    n_faq = len(corpus)

    pool = []
    for c in distractor_chunks(root):
        if c["text"] not in seen:
            seen.add(c["text"])
            pool.append(c)
    if args.distractors > len(pool):
        sys.exit(f"error: only {len(pool)} distractor chunks, asked for {args.distractors}")
    m, n = len(pool), args.distractors
    corpus += [pool[(i * m) // n] for i in range(n)]

    order = sorted(rels)
    random.Random(args.seed).shuffle(order)
    n_train = round(len(order) * pct[0] / 100)
    n_dev = round(len(order) * pct[1] / 100)
    splits = {"train": order[:n_train], "dev": order[n_train:n_train + n_dev],
              "test": order[n_train + n_dev:]}

    out = Path(args.out)
    (out / "qrels").mkdir(parents=True, exist_ok=True)

    def write(name, lines):
        tmp = out / (name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(lines)
        os.replace(tmp, out / name)

    write("corpus.jsonl", (json.dumps(c, ensure_ascii=False) + "\n" for c in corpus))
    write("queries.jsonl", (json.dumps(q, ensure_ascii=False) + "\n" for q in queries))
    for split, qids in splits.items():
        write(f"qrels/{split}.tsv", ["query-id\tcorpus-id\tscore\n"] +
              [f"{q}\t{d}\t1\n" for q in sorted(qids) for d in rels[q]])

    per_q = sorted(len(v) for v in rels.values())
    words = sorted(nwords(c["text"]) for c in corpus)
    ans_words = sorted(nwords(q["answers"][0]) for q in queries)
    q = lambda xs, f: xs[min(len(xs) - 1, int(f * len(xs)))]
    summary = {
        "out": str(out), "seed": args.seed, "split": args.split,
        "faq_pages": stats["faq_pages"], "faq_entries": len(entries),
        "skipped_group_or_empty": stats["skipped_no_content"],
        "skipped_only_code": stats["skipped_only_code"],
        "skipped_only_code_ids": stats["skipped_only_code_ids"],
        "queries": {k: len(v) for k, v in splits.items()},
        "corpus": len(corpus), "faq_passages": n_faq, "distractors": n,
        "distractor_pool": m,
        "passages_per_query": {"min": per_q[0], "mean": round(sum(per_q) / len(per_q), 2),
                               "max": per_q[-1],
                               "hist": {str(k): per_q.count(k) for k in sorted(set(per_q))}},
        "passage_words": {"min": words[0], "p50": q(words, 0.5), "p90": q(words, 0.9),
                          "max": words[-1]},
        "answer_words": {"min": ans_words[0], "p50": q(ans_words, 0.5), "max": ans_words[-1]},
    }
    write("summary.json", [json.dumps(summary, indent=1) + "\n"])
    print(json.dumps(summary), file=sys.stderr)


if __name__ == "__main__":
    main()
