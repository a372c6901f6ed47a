"""E6: the paper's "WMT16 En-De" row, which its code trained on Multi30k German -> English.

Table 1 row 5 and Fig. 7. Everywhere in this suite the task is named for the data it really
uses (gap 23). The headline metric is the per-token validation perplexity after the last epoch;
greedy-decoding BLEU on the validation set is reported at the end, beyond the paper.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .base import RunContext, Stepper, Task
from .configs import Multi30kConfig
from .data.batches import index_batches, num_batches
from .data.multi30k import BOS, EOS, PAD, load_multi30k, pad_batch, write_synthetic
from .models.transformer_mt import Seq2SeqTransformer, smoothed_nll_sum


class Multi30kTranslation(Task):
    metric = "val_ppl"
    goal = "min"
    Config = Multi30kConfig
    cfg: Multi30kConfig

    def __init__(self, cfg: Multi30kConfig, ctx: RunContext) -> None:
        super().__init__(cfg, ctx)
        root = ctx.data_dir
        if cfg.synthetic:
            root = ctx.run_dir / "synthetic"
            if not (root / "multi30k" / "train.de").exists():
                write_synthetic(root / "multi30k", cfg.synthetic_pairs, seed=0)
        data = load_multi30k(root, cfg.max_len, cfg.min_freq, ctx.download)
        self.vocab = data["vocab"]
        self.train_pairs = data["pairs"]["train"]
        self.val_pairs = data["pairs"]["val"]
        self.references = data["references"]
        self.model = Seq2SeqTransformer(
            len(self.vocab), PAD, cfg.d_model, cfg.d_inner, cfg.n_layers, cfg.n_head, cfg.d_k,
            cfg.d_v, cfg.dropout, cfg.max_positions,
        ).to(ctx.device)

    def modules(self) -> dict[str, nn.Module]:
        return {"model": self.model}

    def steps_per_epoch(self) -> int:
        return num_batches(len(self.train_pairs), self.cfg.batch_size, drop_last=False)

    def batches(self, epoch: int, start: int) -> Iterator[Any]:
        # Random batches of 128 pairs, reshuffled each epoch (gap 26).
        self.model.train()
        dev = self.ctx.device
        for idx in index_batches(len(self.train_pairs), self.cfg.batch_size, self.ctx.seed, epoch,
                                 start):
            pairs = [self.train_pairs[i] for i in idx.tolist()]
            yield pad_batch([s for s, _ in pairs], dev), pad_batch([t for _, t in pairs], dev)

    def train_step(self, batch: Any, step: Stepper) -> dict[str, torch.Tensor]:
        src, trg = batch
        gold = trg[:, 1:]
        logits = self.model(src, trg[:, :-1])
        loss = smoothed_nll_sum(logits, gold, PAD, self.cfg.label_smoothing)
        step(loss)  # a sum over tokens, as the original (SGD's step scales with batch tokens)
        tokens = (gold != PAD).sum()
        return {"loss": loss.detach() / tokens, "tokens": tokens.float()}

    @torch.no_grad()
    def evaluate(self, epoch: int) -> dict[str, float]:
        self.model.eval()
        total = torch.zeros((), device=self.ctx.device)
        tokens = 0
        for i in range(0, len(self.val_pairs), self.cfg.batch_size):
            pairs = self.val_pairs[i:i + self.cfg.batch_size]
            src = pad_batch([s for s, _ in pairs], self.ctx.device)
            trg = pad_batch([t for _, t in pairs], self.ctx.device)
            gold = trg[:, 1:]
            logits = self.model(src, trg[:, :-1]).float()
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), gold.reshape(-1),
                                     ignore_index=PAD, reduction="sum")
            tokens += int((gold != PAD).sum())
        self.model.train()
        loss = float(total) / tokens
        return {"val_loss": loss, "val_ppl": math.exp(min(loss, 100.0))}

    @torch.no_grad()
    def finish(self) -> dict[str, float]:
        out: dict[str, float] = {"vocab_size": len(self.vocab)}
        if not self.cfg.bleu:
            return out
        import sacrebleu

        self.model.eval()
        hyps = []
        for i in range(0, len(self.val_pairs), self.cfg.batch_size):
            src = pad_batch([s for s, _ in self.val_pairs[i:i + self.cfg.batch_size]], self.ctx.device)
            for row in self.model.greedy(src, BOS, EOS, self.cfg.bleu_max_len).tolist():
                words = []
                for t in row:
                    if t in (EOS, PAD):
                        break
                    words.append(self.vocab[t])
                hyps.append(" ".join(words))
        # Beyond the paper: greedy decoding, lower-cased spaCy tokens on both sides.
        out["val_bleu_greedy_beyond_paper"] = sacrebleu.corpus_bleu(hyps, [self.references],
                                                                    tokenize="none").score
        return out
