#!/usr/bin/env python3
"""Loads an exported model directory the way the Python ecosystem does,
without torch: huggingface_hub parses its model card (README.md) and
fastembed's tokenizer loader reads its tokenizer files (tokenizer.json,
tokenizer_config.json, special_tokens_map.json, config.json).

    python assets/check_export_loaders.py MODEL_DIR TEXT

Prints one JSON line: the card's library_name, pipeline_tag, base_model and
tags, and the token ids fastembed's tokenizer gives TEXT. Exits non-zero
(with the loader's error) when either fails. The `uae export` test runs it
with the venv of assets/setup-test-env.sh.
"""
import json
import sys
from pathlib import Path

from fastembed.common.preprocessor_utils import load_tokenizer
from huggingface_hub import ModelCard


def main():
    model_dir, text = Path(sys.argv[1]), sys.argv[2]
    card = ModelCard.load(model_dir / "README.md")
    tokenizer, special = load_tokenizer(model_dir)
    ids = tokenizer.encode(text).ids
    print(json.dumps({
        "library_name": card.data.library_name,
        "pipeline_tag": card.data.pipeline_tag,
        "base_model": card.data.base_model,
        "tags": card.data.tags,
        "ids": ids,
        "special_tokens": sorted(special),
    }))


if __name__ == "__main__":
    main()
