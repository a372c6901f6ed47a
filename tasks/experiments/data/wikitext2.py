"""WikiText-2 as the PyTorch word-language-model example ships it, tokenised once and cached.

Sources, in order: ``<data_dir>/wikitext-2/{train,valid,test}.txt`` (the example's files, the
tokenised ``wikitext-2-v1`` with ``<unk>``), else Hugging Face ``datasets`` (``wikitext``,
``wikitext-2-v1``) when downloads are allowed. Each line is split on whitespace and ends with ``<eos>``; the
vocabulary is built over train, then valid, then test, in order of first appearance (E5):
33 278 tokens. The ids are cached in ``<data_dir>/wikitext-2/tokens.pt``.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from pathlib import Path

import torch

from tasks.errors import UserError
from tasks.files import write_atomically

SPLITS = ("train", "valid", "test")


def tokenise(splits: dict[str, Iterable[str]]) -> tuple[list[str], dict[str, torch.Tensor]]:
    vocab: dict[str, int] = {}
    ids: dict[str, torch.Tensor] = {}
    for split in SPLITS:
        out: list[int] = []
        for line in splits[split]:
            for word in line.split() + ["<eos>"]:
                out.append(vocab.setdefault(word, len(vocab)))
        ids[split] = torch.tensor(out, dtype=torch.long)
    return list(vocab), ids


def _from_hub() -> dict[str, list[str]]:
    try:
        from datasets import load_dataset

        ds = load_dataset("wikitext", "wikitext-2-v1")
    except Exception as err:
        raise UserError(
            "WikiText-2 not found: put train.txt, valid.txt and test.txt (the PyTorch "
            "word_language_model files) in <data_dir>/wikitext-2/, or run online so that "
            f"Hugging Face datasets can fetch 'wikitext-2-v1' ({type(err).__name__})"
        ) from None
    names = {"train": "train", "valid": "validation", "test": "test"}
    return {split: ds[names[split]]["text"] for split in SPLITS}


def load_wikitext2(root: Path, download: bool = False) -> tuple[list[str], dict[str, torch.Tensor]]:
    """(vocabulary, {split: token ids}) from the cache, else the local files, else (with
    ``download``) the Hugging Face hub."""
    folder = root / "wikitext-2"
    cache = folder / "tokens.pt"
    if cache.exists():
        data = torch.load(cache, weights_only=True)
        return data["vocab"], data["ids"]
    files = {s: folder / f"{s}.txt" for s in SPLITS}
    if all(f.exists() for f in files.values()):
        splits = {s: files[s].read_text(encoding="utf-8").splitlines() for s in SPLITS}
    elif download:
        splits = _from_hub()
    else:
        raise UserError(f"WikiText-2 is not in {folder}: run `make data TASKS=wikitext2_transformer` "
                        "where the network is (or put train.txt, valid.txt and test.txt there), "
                        "or add download=true to fetch it in this run")
    vocab, ids = tokenise(splits)
    write_atomically(cache, lambda f: torch.save({"vocab": vocab, "ids": ids}, f))
    return vocab, ids


def batchify(ids: torch.Tensor, bsz: int) -> torch.Tensor:
    """Cut the stream into ``bsz`` equal columns (remainder dropped): shape (rows, bsz)."""
    rows = ids.numel() // bsz
    return ids[: rows * bsz].view(bsz, rows).t().contiguous()


def get_batch(source: torch.Tensor, i: int, bptt: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows [i, i+n) as input and [i+1, i+1+n) as targets, n = min(bptt, rows - 1 - i)."""
    n = min(bptt, source.shape[0] - 1 - i)
    return source[i:i + n], source[i + 1:i + 1 + n].reshape(-1)


def write_synthetic(folder: Path, tokens: int, seed: int) -> None:
    """A small corpus in the example's layout: sentences from a first-order Markov chain over a
    few dozen words (learnable), with rare words already replaced by ``<unk>``."""
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(40)] + ["<unk>", "the", "of", "."]
    successors = {w: rng.sample(words, 3) for w in words}
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", tokens), ("valid", tokens // 5), ("test", tokens // 5)):
        lines, count, word = [], 0, "the"
        while count < n:
            line = []
            for _ in range(rng.randint(5, 15)):
                word = rng.choice(successors[word])
                line.append(word)
            lines.append(" " + " ".join(line) + " ")
            count += len(line) + 1
        (folder / f"{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
