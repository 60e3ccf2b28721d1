#!/usr/bin/env python3
"""Writes the hand-made seeds of the model and index fuzz targets into
fuzz/corpus/<target>/ (standard library only; run from anywhere):

- gguf: a tiny Llama GGUF v3 (configuration keys, a BPE tokenizer, F32, F16
  and Q8_0 tensors), and the same as GGUF v2;
- safetensors: F32, F16 and BF16 tensors with metadata;
- model_config: a BERT (MiniLM) and a Llama (SmolLM2) config.json;
- index (with the scratch folder of one model_targets::index call as the
  argument): one seed per index file (the first byte picks the file the
  rest replaces), each the file as the target's valid index holds it.

The coverage-guided runs grow the corpus from these (fuzz/README.md).
"""

import json
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(target, name, data):
    folder = os.path.join(ROOT, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def gguf_string(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gguf_kv(key, kind, value):
    out = gguf_string(key) + struct.pack("<I", kind)
    if kind == 4:  # u32
        out += struct.pack("<I", value)
    elif kind == 5:  # i32
        out += struct.pack("<i", value)
    elif kind == 6:  # f32
        out += struct.pack("<f", value)
    elif kind == 7:  # bool
        out += struct.pack("<?", value)
    elif kind == 8:  # string
        out += gguf_string(value)
    elif kind == 9:  # array: (element kind, values)
        elem, values = value
        out += struct.pack("<IQ", elem, len(values))
        for v in values:
            out += gguf_string(v) if elem == 8 else struct.pack({4: "<I", 5: "<i", 6: "<f"}[elem], v)
    return out


def q8_0(values):
    """32 values as one Q8_0 block: f16 scale, 32 int8."""
    scale = max(abs(v) for v in values) / 127 or 1.0
    return struct.pack("<e", scale) + b"".join(struct.pack("<b", round(v / scale)) for v in values)


def gguf(version):
    vocab = ["<s>", "</s>", "a", "b", "c", "ab", "Ġ", "Ġa"]
    kvs = [
        ("general.architecture", 8, "llama"),
        ("general.alignment", 4, 32),
        ("llama.context_length", 4, 64),
        ("llama.embedding_length", 4, 32),
        ("llama.block_count", 4, 1),
        ("llama.feed_forward_length", 4, 64),
        ("llama.attention.head_count", 4, 4),
        ("llama.attention.head_count_kv", 4, 2),
        ("llama.attention.layer_norm_rms_epsilon", 6, 1e-5),
        ("llama.rope.freq_base", 6, 10000.0),
        ("llama.vocab_size", 4, len(vocab)),
        ("tokenizer.ggml.model", 8, "gpt2"),
        ("tokenizer.ggml.pre", 8, "llama-bpe"),
        ("tokenizer.ggml.tokens", 9, (8, vocab)),
        ("tokenizer.ggml.token_type", 9, (5, [3, 3, 1, 1, 1, 1, 1, 1])),
        ("tokenizer.ggml.merges", 9, (8, ["a b", "Ġ a"])),
        ("tokenizer.ggml.bos_token_id", 4, 0),
        ("tokenizer.ggml.eos_token_id", 4, 1),
        ("tokenizer.ggml.add_bos_token", 7, True),
    ]
    f32 = struct.pack("<32f", *[i / 10 for i in range(32)])
    f16 = struct.pack("<32e", *[i / 10 for i in range(32)])
    q8 = q8_0([(i - 16) / 8 for i in range(32)])
    tensors = [("token_embd.weight", [32, 1], 0, f32), ("output_norm.weight", [32], 1, f16), ("blk.0.ffn_up.weight", [32, 1], 8, q8)]
    header = b"GGUF" + struct.pack("<I", version)
    header += struct.pack("<QQ", len(tensors), len(kvs))
    header += b"".join(gguf_kv(*kv) for kv in kvs)
    data, infos = b"", b""
    for name, dims, kind, body in tensors:
        infos += gguf_string(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        infos += struct.pack("<IQ", kind, len(data))
        data += body + b"\0" * (-len(body) % 32)
    out = header + infos
    out += b"\0" * (-len(out) % 32)
    return out + data


def safetensors():
    tensors = {
        "embeddings.word_embeddings.weight": ("F32", [2, 3], struct.pack("<6f", *range(6))),
        "embeddings.LayerNorm.weight": ("F16", [4], struct.pack("<4e", 1, 1, 1, 1)),
        "pooler.dense.bias": ("BF16", [2], struct.pack("<2H", 0x3F80, 0x4000)),
    }
    header, data = {"__metadata__": {"format": "pt"}}, b""
    for name, (dtype, shape, body) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(body)]}
        data += body
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


BERT = {
    "architectures": ["BertModel"], "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1, "hidden_size": 384, "initializer_range": 0.02, "intermediate_size": 1536,
    "layer_norm_eps": 1e-12, "max_position_embeddings": 512, "model_type": "bert", "num_attention_heads": 12,
    "num_hidden_layers": 6, "pad_token_id": 0, "position_embedding_type": "absolute", "type_vocab_size": 2,
    "vocab_size": 30522,
}
LLAMA = {
    "architectures": ["LlamaForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
    "hidden_size": 576, "intermediate_size": 1536, "max_position_embeddings": 8192, "model_type": "llama",
    "num_attention_heads": 9, "num_hidden_layers": 30, "num_key_value_heads": 3, "rms_norm_eps": 1e-5,
    "rope_theta": 100000, "tie_word_embeddings": True, "vocab_size": 49152,
}


def index_seeds(folder):
    """The five files of the valid index model_targets::index writes, in its
    order, read from its scratch folder (/tmp/uae-fuzz-<pid>/index)."""
    names = ["header.json", "ids.jsonl", "vectors.f32", "hnsw.json", "hnsw.graph"]
    out = []
    for name in names:
        with open(os.path.join(folder, name), "rb") as f:
            out.append(f.read())
    return out


def main():
    import sys
    put("gguf", "seed-v3", gguf(3))
    put("gguf", "seed-v2", gguf(2))
    put("safetensors", "seed", safetensors())
    put("model_config", "seed-bert", json.dumps(BERT).encode())
    put("model_config", "seed-llama", json.dumps(LLAMA).encode())
    if len(sys.argv) > 1:
        for which, body in enumerate(index_seeds(sys.argv[1])):
            put("index", f"seed-{which}", bytes([which]) + body)


if __name__ == "__main__":
    main()
