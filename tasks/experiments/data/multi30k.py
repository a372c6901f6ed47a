"""Multi30k German -> English (the data behind the paper's "WMT16" row, gap 23), as E6 prepared it.

Sources, in order: ``<data_dir>/multi30k/{train,val}.{de,en}`` (the corpus's raw text files, one
sentence per line), else Hugging Face ``datasets`` (``bentrevett/multi30k``) when downloads are allowed.
Tokenisation with spaCy's rule-based German and English tokenizers (blank pipelines, no model
download), lower-cased; pairs with a side longer than ``max_len`` tokens are dropped; one shared
vocabulary: the target (English) vocabulary of the training split with min frequency 3, then the
source-only words appended, each ordered as torchtext's legacy ``Vocab`` (specials, then by
frequency, ties alphabetically). Cached in ``<data_dir>/multi30k/tokens-<max_len>-<min_freq>.pt``.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

import torch

from tasks.errors import UserError
from tasks.files import write_atomically

SPECIALS = ["<unk>", "<blank>", "<s>", "</s>"]  # torchtext Field order: unk, pad, init, eos
UNK, PAD, BOS, EOS = range(4)


def _tokenizers():
    import spacy

    de, en = spacy.blank("de"), spacy.blank("en")
    return (lambda s: [t.text.lower() for t in de.tokenizer(s.strip())],
            lambda s: [t.text.lower() for t in en.tokenizer(s.strip())])


def _read_local(folder: Path) -> dict[str, tuple[list[str], list[str]]] | None:
    files = {split: (folder / f"{split}.de", folder / f"{split}.en") for split in ("train", "val")}
    if not all(a.exists() and b.exists() for a, b in files.values()):
        return None
    return {s: (a.read_text(encoding="utf-8").splitlines(), b.read_text(encoding="utf-8").splitlines())
            for s, (a, b) in files.items()}


def _read_hub() -> dict[str, tuple[list[str], list[str]]]:
    try:
        from datasets import load_dataset

        ds = load_dataset("bentrevett/multi30k")
    except Exception as err:
        raise UserError(
            "Multi30k not found: put train.de, train.en, val.de and val.en in "
            "<data_dir>/multi30k/, or run online so that Hugging Face datasets can fetch "
            f"'bentrevett/multi30k' ({type(err).__name__})"
        ) from None
    return {s: (ds[h]["de"], ds[h]["en"]) for s, h in (("train", "train"), ("val", "validation"))}


def legacy_vocab(counter: Counter, min_freq: int) -> list[str]:
    """torchtext legacy ordering: specials, then frequency (descending), ties alphabetically."""
    words = sorted((w for w, c in counter.items() if c >= min_freq and w not in SPECIALS),
                   key=lambda w: (-counter[w], w))
    return SPECIALS + words


def build(raw: dict[str, tuple[list[str], list[str]]], max_len: int, min_freq: int) -> dict[str, Any]:
    tok_de, tok_en = _tokenizers()
    pairs = {}
    for split, (de_lines, en_lines) in raw.items():
        if len(de_lines) != len(en_lines):
            raise UserError(f"Multi30k {split}: {len(de_lines)} German vs {len(en_lines)} English lines")
        tokenised = [(tok_de(d), tok_en(e)) for d, e in zip(de_lines, en_lines)]
        pairs[split] = [(s, t) for s, t in tokenised if len(s) <= max_len and len(t) <= max_len]
    src_counts = Counter(w for s, _ in pairs["train"] for w in s)
    trg_counts = Counter(w for _, t in pairs["train"] for w in t)
    vocab = legacy_vocab(trg_counts, min_freq)
    known = set(vocab)
    vocab += [w for w in legacy_vocab(src_counts, min_freq) if w not in known]
    index = {w: i for i, w in enumerate(vocab)}

    def encode(words: list[str]) -> list[int]:
        return [BOS] + [index.get(w, UNK) for w in words] + [EOS]

    return {"vocab": vocab,
            "pairs": {s: [(encode(a), encode(b)) for a, b in ps] for s, ps in pairs.items()},
            "references": [" ".join(t) for _, t in pairs["val"]]}


def load_multi30k(root: Path, max_len: int, min_freq: int, download: bool = False) -> dict[str, Any]:
    """The tokenised corpus from its cache, else the local files, else (with ``download``) the
    Hugging Face hub."""
    folder = root / "multi30k"
    cache = folder / f"tokens-{max_len}-{min_freq}.pt"
    if cache.exists():
        return torch.load(cache, weights_only=True)
    raw = _read_local(folder)
    if raw is None:
        if not download:
            raise UserError(f"Multi30k is not in {folder}: run `make data TASKS=multi30k_transformer` "
                            "where the network is (or put train.de, train.en, val.de and val.en "
                            "there), or add download=true to fetch it in this run")
        raw = _read_hub()
    data = build(raw, max_len, min_freq)
    write_atomically(cache, lambda f: torch.save(data, f))
    return data


def pad_batch(seqs: list[list[int]], device: torch.device) -> torch.Tensor:
    width = max(len(s) for s in seqs)
    out = torch.full((len(seqs), width), PAD, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.tensor(s)
    return out.to(device, non_blocking=True)


def write_synthetic(folder: Path, pairs: int, seed: int) -> None:
    """A toy parallel corpus in the raw layout: German words map one-to-one to English words."""
    rng = random.Random(seed)
    de = ["haus", "hund", "katze", "mann", "frau", "kind", "ball", "baum", "auto", "wasser",
          "läuft", "spielt", "sitzt", "rot", "groß"]
    en = ["house", "dog", "cat", "man", "woman", "child", "ball", "tree", "car", "water",
          "runs", "plays", "sits", "red", "big"]
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", pairs), ("val", max(8, pairs // 5))):
        src, trg = [], []
        for _ in range(n):
            idx = [rng.randrange(len(de)) for _ in range(rng.randint(3, 8))]
            src.append("ein " + " ".join(de[i] for i in idx) + ".")
            trg.append("a " + " ".join(en[i] for i in idx) + ".")
        (folder / f"{split}.de").write_text("\n".join(src) + "\n", encoding="utf-8")
        (folder / f"{split}.en").write_text("\n".join(trg) + "\n", encoding="utf-8")
