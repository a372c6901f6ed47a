"""E5: the Wikitext-2 transformer language model, Table 1 row 4 and Fig. 6."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .base import RunContext, Stepper, Task
from .configs import Gpt2Config, Wikitext2Config
from .data.wikitext2 import batchify, get_batch, load_wikitext2, write_synthetic
from .models.transformer_lm import TransformerLM


class Wikitext2LM(Task):
    """Validation perplexity after every epoch; test perplexity of the best-validation model."""

    metric = "val_ppl"
    goal = "min"
    Config: type[Wikitext2Config | Gpt2Config] = Wikitext2Config
    cfg: Wikitext2Config | Gpt2Config

    def __init__(self, cfg: Wikitext2Config | Gpt2Config, ctx: RunContext) -> None:
        super().__init__(cfg, ctx)
        root = ctx.data_dir
        if cfg.synthetic:  # the smoke corpus, written in the real layout and read back by it
            root = ctx.run_dir / "synthetic"
            if not (root / "wikitext-2" / "tokens.pt").exists():
                write_synthetic(root / "wikitext-2", cfg.synthetic_tokens, seed=0)
        self.vocab, ids = load_wikitext2(root, ctx.download)
        dev = ctx.device
        self.train = batchify(ids["train"], cfg.batch_size).to(dev)
        self.valid = batchify(ids["valid"], cfg.eval_batch_size).to(dev)
        self.test = batchify(ids["test"], cfg.eval_batch_size).to(dev)
        self.model = self.build_model().to(dev)
        self.best_loss: float | None = None
        self.best_state: dict[str, torch.Tensor] | None = None

    def build_model(self) -> nn.Module:
        cfg = self.cfg
        return TransformerLM(len(self.vocab), cfg.emsize, cfg.nhead, cfg.nhid, cfg.nlayers,
                             cfg.dropout, norm=cfg.norm)

    def modules(self) -> dict[str, nn.Module]:
        return {"model": self.model}

    def steps_per_epoch(self) -> int:
        return len(range(0, self.train.shape[0] - 1, self.cfg.bptt))

    def batches(self, epoch: int, start: int) -> Iterator[Any]:
        # No shuffling: each column is an independent stream, read front to back (E5).
        self.model.train()
        for i in range(start * self.cfg.bptt, self.train.shape[0] - 1, self.cfg.bptt):
            yield get_batch(self.train, i, self.cfg.bptt)

    def train_step(self, batch: Any, step: Stepper) -> dict[str, torch.Tensor]:
        data, targets = batch
        output = self.model(data)
        loss = F.nll_loss(output.view(-1, output.shape[-1]), targets)
        step(loss)
        return {"loss": loss.detach()}

    @torch.no_grad()
    def _loss(self, source: torch.Tensor, model: nn.Module) -> float:
        """Per-position average NLL over all targets, as E5's evaluate()."""
        model.eval()
        total = torch.zeros((), device=source.device)
        for i in range(0, source.shape[0] - 1, self.cfg.bptt):
            data, targets = get_batch(source, i, self.cfg.bptt)
            out = model(data)
            total += data.shape[0] * F.nll_loss(out.view(-1, out.shape[-1]), targets)
        model.train()
        return float(total) / (source.shape[0] - 1)

    def evaluate(self, epoch: int) -> dict[str, float]:
        loss = self._loss(self.valid, self.model)
        if math.isfinite(loss) and (self.best_loss is None or loss < self.best_loss):
            self.best_loss = loss
            self.best_state = {k: v.detach().to("cpu", copy=True)
                               for k, v in self.model.state_dict().items()}
        return {"val_loss": loss, "val_ppl": math.exp(min(loss, 100.0))}

    def finish(self) -> dict[str, float]:
        if self.best_state is None:
            return {}
        best = copy.deepcopy(self.model)
        best.load_state_dict(self.best_state)
        loss = self._loss(self.test, best)
        return {"test_ppl_of_best_val_model": math.exp(min(loss, 100.0)),
                "best_val_loss": self.best_loss, "vocab_size": len(self.vocab)}

    def state_dict(self) -> dict[str, Any]:
        return {"best_loss": self.best_loss, "best_state": self.best_state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_loss, self.best_state = state["best_loss"], state["best_state"]


class Wikitext2GPT2(Wikitext2LM):
    """Beyond the paper: Hugging Face's GPT-2 architecture on E5's data, schedule and loss."""

    Config = Gpt2Config
    cfg: Gpt2Config

    def __init__(self, cfg: Gpt2Config, ctx: RunContext) -> None:
        super().__init__(cfg, ctx)

    def build_model(self) -> nn.Module:
        from .models.gpt2 import GPT2LM

        cfg = self.cfg
        return GPT2LM(len(self.vocab), cfg.n_embd, cfg.n_layer, cfg.n_head, cfg.n_inner,
                      cfg.dropout, n_positions=cfg.bptt)
