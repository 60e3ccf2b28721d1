#!/usr/bin/env python3
r"""Make the input of the teacher log-likelihood benchmark: 256 (prompt,
continuation) pairs of real question-answering text from the python-faq data
set, the workload of utility labelling (one query scored against several
candidate passages).

    python3 assets/make_faq_dataset.py          # if $UAE_CACHE/data/python-faq is missing
    python3 assets/make_logprob_bench_input.py [--data DIR] [--out FILE] [--n 256]

Stdlib only; deterministic (no randomness, input file order only). Output
(default $UAE_CACHE/data/logprob-bench-256.jsonl; not committed): one JSON
object per line, {"id", "prompt", "continuation"}, ids unique.

Prompt format: the plain-text (no chat template) form of uae-teacher's
default utility prompt (uae-teacher/src/prompt.rs WITH_PASSAGE /
WITHOUT_PASSAGE, then "\nAnswer:"; the answer follows after one space, the
lm-evaluation-harness convention); no special tokens:

    prompt       = "Answer the question using the passage.\n\nPassage: {passage}"
                   "\n\nQuestion: {question}\nAnswer:"
    continuation = " " + {answer}

with {passage} a corpus passage's "text", {question} the query's "text" and
{answer} the query's first gold answer (answers[0]). `qa_prompt()` below is the
one definition here; assets/make_llm_reference.py imports it (and
`qa_prompt_no_passage()`, "Answer the question.\n\nQuestion: {question}\nAnswer:",
the closed-book prompt a utility score compares against).

Items (n = --n, default 256; Q = number of queries, 179 for the default data):
  * items 0 .. min(n, Q)-1: every query in queries.jsonl order with its first
    gold passage (corpus id "<query id>/0"); id "<query id>|<passage id>".
  * the remaining m = n - Q items (77 by default): j = 0 .. m-1 pairs query
    floor(j * Q / m) with the distractor passage floor(j * L / m) of the L
    "library/..." passages in corpus.jsonl order; same id scheme.
"""
import argparse
import json
import os
import sys
from pathlib import Path

UAE_CACHE = Path(os.environ.get("UAE_CACHE", Path.home() / ".cache" / "uae"))
DEFAULT_DATA = UAE_CACHE / "data" / "python-faq"

# uae-teacher/src/prompt.rs WITH_PASSAGE / WITHOUT_PASSAGE (the user turn when
# the teacher uses a chat template) and the plain-text suffix it appends.
WITH_PASSAGE = "Answer the question using the passage.\n\nPassage: {passage}\n\nQuestion: {question}"
WITHOUT_PASSAGE = "Answer the question.\n\nQuestion: {question}"
PLAIN_SUFFIX = "\nAnswer:"
PROMPT_TEMPLATE = WITH_PASSAGE + PLAIN_SUFFIX
NO_PASSAGE_TEMPLATE = WITHOUT_PASSAGE + PLAIN_SUFFIX
CONTINUATION_DELIMITER = " "


def qa_prompt(passage: str, question: str) -> str:
    """The benchmark's QA prompt: a passage, then the question."""
    return PROMPT_TEMPLATE.format(passage=passage, question=question)


def qa_prompt_no_passage(question: str) -> str:
    """The same prompt without a passage (closed book)."""
    return NO_PASSAGE_TEMPLATE.format(question=question)


def qa_continuation(answer: str) -> str:
    return CONTINUATION_DELIMITER + answer


def read_jsonl(path: Path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def build_items(data: Path, n: int):
    queries = read_jsonl(data / "queries.jsonl")
    corpus = read_jsonl(data / "corpus.jsonl")
    by_id = {p["_id"]: p for p in corpus}
    library = [p for p in corpus if p["_id"].startswith("library/")]
    if not queries or not library:
        sys.exit(f"{data}: no queries or no library passages")

    def item(q, p):
        return {"id": f"{q['_id']}|{p['_id']}",
                "prompt": qa_prompt(p["text"], q["text"]),
                "continuation": qa_continuation(q["answers"][0])}

    items = []
    for q in queries[:n]:
        gold = by_id.get(q["_id"] + "/0")
        if gold is None:
            sys.exit(f"query {q['_id']}: no passage {q['_id']}/0 in corpus.jsonl")
        items.append(item(q, gold))
    m = n - len(items)
    for j in range(m):
        q = queries[j * len(queries) // m]
        p = library[j * len(library) // m]
        items.append(item(q, p))
    ids = [it["id"] for it in items]
    assert len(set(ids)) == len(ids), "duplicate ids"
    return items


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(DEFAULT_DATA),
                    help="python-faq directory (made by assets/make_faq_dataset.py)")
    ap.add_argument("--out", default=None,
                    help="output JSONL (default $UAE_CACHE/data/logprob-bench-<n>.jsonl)")
    ap.add_argument("--n", type=int, default=256)
    args = ap.parse_args()

    data = Path(args.data)
    if not (data / "queries.jsonl").is_file():
        sys.exit(f"{data}/queries.jsonl missing: run assets/make_faq_dataset.py first")
    out = Path(args.out) if args.out else UAE_CACHE / "data" / f"logprob-bench-{args.n}.jsonl"
    items = build_items(data, args.n)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    with open(tmp, "w", encoding="utf-8") as f:
        for it in items:
            f.write(json.dumps(it, ensure_ascii=False) + "\n")
    tmp.replace(out)
    chars = sum(len(it["prompt"]) + len(it["continuation"]) for it in items)
    print(f"wrote {out}: {len(items)} items, {chars} characters", file=sys.stderr)
    print(out)


if __name__ == "__main__":
    main()
