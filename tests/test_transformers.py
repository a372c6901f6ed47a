"""The transformer tasks (E5, E6): architectures, data preparation, loss, smoke runs."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch
import torch.nn.functional as F

from tasks.experiments.data import multi30k as m30k
from tasks.experiments.data.wikitext2 import batchify, get_batch, load_wikitext2, tokenise
from tasks.experiments.models.transformer_lm import TransformerLM
from tasks.experiments.models.transformer_mt import Seq2SeqTransformer, smoothed_nll_sum
from tests.helpers import count_params


def test_lm_architecture_matches_e5():
    assert count_params(TransformerLM(33_278)) == (19, 13_826_878)
    model = TransformerLM(50, d_model=16, nhead=2, d_ff=16)
    # The second layer starts as a copy of the first (nn.TransformerEncoder clones it).
    a, b = model.layers
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    out = model(torch.randint(0, 50, (7, 3)))
    assert out.shape == (7, 3, 50) and torch.allclose(out.exp().sum(-1), torch.ones(7, 3))


@pytest.mark.parametrize("norm, tensors, params", [
    (None, 19, 13_826_878),  # the default: no LayerNorm
    ("layernorm_noaffine", 19, 13_826_878),  # the other reading of the paper's 19 (gap 19)
    ("layernorm", 27, 13_826_878 + 2 * 2 * 2 * 200),  # 2 layers x 2 norms x (gain, bias)
])
def test_lm_norm_variants_and_their_tensor_counts(norm, tensors, params):
    from tasks.runner.cli import compose

    cfg = compose("task=wikitext2_transformer", f"task.norm={'null' if norm is None else norm}")
    assert cfg.task.norm == norm
    assert count_params(TransformerLM(33_278, norm=cfg.task.norm)) == (tensors, params)
    torch.manual_seed(0)
    model = TransformerLM(40, d_model=16, nhead=2, d_ff=16, dropout=0.0, norm=norm).eval()
    x = model.encoder(torch.randint(0, 40, (5, 2)))
    mask = torch.triu(torch.full((5, 5), float("-inf")), diagonal=1)
    out = model.layers[0](x, mask)
    normalised = torch.allclose(out.mean(-1), torch.zeros(5, 2), atol=1e-5) and torch.allclose(
        out.var(-1, unbiased=False), torch.ones(5, 2), atol=1e-3)
    assert normalised == (norm is not None)  # a fresh LayerNorm's gain is 1 and bias 0


def test_lm_norm_is_checked():
    from tasks.errors import UserError
    from tasks.runner import validation
    from tasks.runner.cli import compose

    with pytest.raises(UserError, match="task.norm must be null, layernorm or layernorm_noaffine"):
        validation.validate(compose("task=wikitext2_transformer", "task.norm=batchnorm"))


def test_lm_is_causal():
    torch.manual_seed(0)
    model = TransformerLM(30, d_model=16, nhead=2, d_ff=16, dropout=0.0).eval()
    x = torch.randint(0, 30, (6, 2))
    y = x.clone()
    y[4:] = (y[4:] + 1) % 30  # change only the future
    assert torch.allclose(model(x)[:4], model(y)[:4], atol=1e-6)


def test_mt_architecture_matches_e6():
    vocab = 1000
    n, total = count_params(Seq2SeqTransformer(vocab, pad=1))
    assert n == 121 and total == 44_070_912 + 512 * vocab
    small = Seq2SeqTransformer(40, pad=1, d_model=16, d_inner=32, n_layers=1, n_head=2, d_k=8, d_v=8)
    assert small.embedding.weight[1].abs().sum() > 0  # the padding row is not zero (Nero-safe)
    src = torch.randint(4, 40, (3, 5))
    trg = torch.randint(4, 40, (3, 6))
    assert small(src, trg).shape == (3, 6, 40)


def test_batchify_and_target_shift():
    ids = torch.arange(23)
    data = batchify(ids, 4)  # 5 rows, remainder of 3 dropped
    assert data.shape == (5, 4)
    assert data[:, 1].tolist() == [5, 6, 7, 8, 9]  # each column is a contiguous stream
    x, y = get_batch(data, 0, 3)
    assert torch.equal(x, data[0:3]) and torch.equal(y, data[1:4].reshape(-1))
    x, y = get_batch(data, 3, 3)  # the last chunk is shorter
    assert x.shape[0] == 1 and torch.equal(y, data[4].reshape(-1))


def test_wikitext_vocabulary_and_cache(tmp_path):
    vocab, ids = tokenise({"train": ["a b", "", "b c"], "valid": ["d a"], "test": ["e"]})
    assert vocab == ["a", "b", "<eos>", "c", "d", "e"]  # order of first appearance
    assert ids["train"].tolist() == [0, 1, 2, 2, 1, 3, 2]  # empty line -> just <eos>
    folder = tmp_path / "wikitext-2"
    folder.mkdir()
    for split, text in (("train", " x y \n\n y z \n"), ("valid", " z x \n"), ("test", " w \n")):
        (folder / f"{split}.txt").write_text(text)
    vocab, ids = load_wikitext2(tmp_path)
    assert vocab == ["x", "y", "<eos>", "z", "w"]
    for split in ("train", "valid", "test"):
        (folder / f"{split}.txt").unlink()  # a second load must not re-read the text
    again, ids2 = load_wikitext2(tmp_path)
    assert again == vocab and torch.equal(ids2["train"], ids["train"])


def test_multi30k_vocabulary_rules(tmp_path):
    folder = tmp_path / "multi30k"
    folder.mkdir()
    de = ["ein Hund läuft .", "ein Hund sitzt .", "eine Katze läuft .", "Ein Hund ."]
    en = ["A dog runs .", "a dog sits .", "a cat runs .", "a dog ."]
    for split in ("train", "val"):
        (folder / f"{split}.de").write_text("\n".join(de) + "\n")
        (folder / f"{split}.en").write_text("\n".join(en) + "\n")
    data = m30k.load_multi30k(tmp_path, max_len=100, min_freq=2)
    vocab = data["vocab"]
    assert vocab[:4] == ["<unk>", "<blank>", "<s>", "</s>"]
    # Target words (min count 2) by frequency then alphabetically, then source-only words.
    assert vocab[4:8] == [".", "a", "dog", "runs"]
    assert vocab[8:] == ["ein", "hund", "läuft"]  # lower-cased: "Ein" counts as "ein"
    src, trg = data["pairs"]["train"][0]
    assert src[0] == m30k.BOS and src[-1] == m30k.EOS
    assert [vocab[i] for i in trg[1:-1]] == ["a", "dog", "runs", "."]
    assert (folder / "tokens-100-2.pt").exists()
    short = m30k.load_multi30k(tmp_path, max_len=3, min_freq=2)  # a length filter of 3 tokens
    assert len(short["pairs"]["train"]) == 1  # only "a dog ." / "Ein Hund ." survives


def test_label_smoothed_loss_by_hand():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 6)
    gold = torch.tensor([[2, 5, 1], [0, 1, 1]])  # 1 is the padding id
    eps = 0.1
    logp = F.log_softmax(logits, -1)
    expected = 0.0
    for b in range(2):
        for t in range(3):
            if gold[b, t] == 1:
                continue
            for k in range(6):
                q = 1 - eps if k == gold[b, t] else eps / 5
                expected -= q * logp[b, t, k].item()
    got = smoothed_nll_sum(logits, gold, pad=1, eps=eps).item()
    assert got == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("task", ["wikitext2_transformer", "multi30k_transformer"])
def test_smoke_trains(smoke, task):
    record = smoke(f"task={task}", "task.epochs=6", "optimizer=adam", "optimizer.lr=0.003")
    assert record.status == "ok", record.reason
    losses = [e["train/loss"] for e in record.history]
    assert losses[-1] < 0.8 * losses[0]
    assert math.isfinite(record.final)
    if task == "wikitext2_transformer":
        assert record.extra["test_ppl_of_best_val_model"] > 1
    else:
        assert 0 <= record.extra["val_bleu_greedy_beyond_paper"] <= 100
        assert record.extra["vocab_size"] > 4


def test_missing_text_data_is_a_clear_error(tmp_path):
    from tasks.errors import UserError

    with pytest.raises(UserError, match="WikiText-2 is not in"):
        load_wikitext2(tmp_path)
    with pytest.raises(UserError, match="Multi30k is not in"):
        m30k.load_multi30k(tmp_path, 100, 3)


def test_multi30k_counts_words_after_lowercasing():
    counter = Counter({"a": 3, "b": 3, "c": 5, "<unk>": 9, "d": 1})
    assert m30k.legacy_vocab(counter, 2) == m30k.SPECIALS + ["c", "a", "b"]
