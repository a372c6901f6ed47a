"""E6: the translation transformer (Transformer-base shapes, post-LN, non-affine LayerNorm).

One embedding matrix E (V x d) is the source embedding, the target embedding and the output
projection (logits = g E^T, no d^-1/2 scaling). Attention projections have no biases; scores are
(q / sqrt(d_k)) k^T with masked positions excluded; LayerNorm(d, eps 1e-6, no gain or bias)
after every residual sum and after the embedding (h = LN(Dropout(E[x] + PE))).
With the defaults: 121 parameter tensors, 44 070 912 + 512 V parameters.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def sinusoid_table(positions: int, dim: int) -> torch.Tensor:
    """angle(pos, j) = pos / 10000^(2 floor(j/2) / dim); sin on even j, cos on odd j."""
    pos = torch.arange(positions, dtype=torch.float64).unsqueeze(1)
    j = torch.arange(dim, dtype=torch.float64)
    angle = pos / torch.pow(10000.0, 2 * torch.div(j, 2, rounding_mode="floor") / dim)
    table = torch.where(j % 2 == 0, torch.sin(angle), torch.cos(angle))
    return table.float()


class Attention(nn.Module):
    def __init__(self, d_model: int, n_head: int, d_k: int, d_v: int, dropout: float) -> None:
        super().__init__()
        self.n_head, self.d_k, self.d_v = n_head, d_k, d_v
        self.w_qs = nn.Linear(d_model, n_head * d_k, bias=False)
        self.w_ks = nn.Linear(d_model, n_head * d_k, bias=False)
        self.w_vs = nn.Linear(d_model, n_head * d_v, bias=False)
        self.fc = nn.Linear(n_head * d_v, d_model, bias=False)
        self.dropout_p = dropout
        self.dropout = nn.Dropout(dropout)

    def forward(self, q: torch.Tensor, kv: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, lq, _ = q.shape
        lk = kv.shape[1]
        h = self.n_head
        qh = self.w_qs(q).view(b, lq, h, self.d_k).transpose(1, 2)
        kh = self.w_ks(kv).view(b, lk, h, self.d_k).transpose(1, 2)
        vh = self.w_vs(kv).view(b, lk, h, self.d_v).transpose(1, 2)
        # mask: True where attention is allowed, broadcast to (b, h, lq, lk).
        out = F.scaled_dot_product_attention(
            qh, kh, vh, attn_mask=mask.unsqueeze(1),
            dropout_p=self.dropout_p if self.training else 0.0, scale=self.d_k**-0.5,
        )
        out = out.transpose(1, 2).reshape(b, lq, h * self.d_v)
        return self.dropout(self.fc(out))


class FeedForward(nn.Module):
    def __init__(self, d_model: int, d_inner: int, dropout: float) -> None:
        super().__init__()
        self.w_1 = nn.Linear(d_model, d_inner)
        self.w_2 = nn.Linear(d_inner, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.w_2(F.relu(self.w_1(x))))


def _norm(x: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x, x.shape[-1:], eps=1e-6)  # no gain, no bias (E6)


class EncoderLayer(nn.Module):
    def __init__(self, d_model: int, d_inner: int, n_head: int, d_k: int, d_v: int,
                 dropout: float) -> None:
        super().__init__()
        self.self_attn = Attention(d_model, n_head, d_k, d_v, dropout)
        self.ffn = FeedForward(d_model, d_inner, dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = _norm(x + self.self_attn(x, x, mask))
        return _norm(x + self.ffn(x))


class DecoderLayer(nn.Module):
    def __init__(self, d_model: int, d_inner: int, n_head: int, d_k: int, d_v: int,
                 dropout: float) -> None:
        super().__init__()
        self.self_attn = Attention(d_model, n_head, d_k, d_v, dropout)
        self.enc_attn = Attention(d_model, n_head, d_k, d_v, dropout)
        self.ffn = FeedForward(d_model, d_inner, dropout)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, self_mask: torch.Tensor,
                enc_mask: torch.Tensor) -> torch.Tensor:
        x = _norm(x + self.self_attn(x, x, self_mask))
        x = _norm(x + self.enc_attn(x, memory, enc_mask))
        return _norm(x + self.ffn(x))


class Seq2SeqTransformer(nn.Module):
    """Inputs are (batch, length) token ids; ``pad`` is the padding id (``<blank>``)."""

    def __init__(self, vocab: int, pad: int, d_model: int = 512, d_inner: int = 2048,
                 n_layers: int = 6, n_head: int = 8, d_k: int = 64, d_v: int = 64,
                 dropout: float = 0.1, max_positions: int = 200) -> None:
        super().__init__()
        self.pad = pad
        self.embedding = nn.Embedding(vocab, d_model)
        self.register_buffer("pe", sinusoid_table(max_positions, d_model), persistent=False)
        self.dropout = nn.Dropout(dropout)
        args = (d_model, d_inner, n_head, d_k, d_v, dropout)
        self.encoder = nn.ModuleList(EncoderLayer(*args) for _ in range(n_layers))
        self.decoder = nn.ModuleList(DecoderLayer(*args) for _ in range(n_layers))
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)  # the padding row too: it must not be all zero (E6)

    def _embed(self, tokens: torch.Tensor) -> torch.Tensor:
        return _norm(self.dropout(self.embedding(tokens) + self.pe[: tokens.shape[1]]))

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        src_mask = (src != self.pad).unsqueeze(1)  # (b, 1, ls)
        h = self._embed(src)
        for layer in self.encoder:
            h = layer(h, src_mask)
        return h, src_mask

    def decode(self, trg: torch.Tensor, memory: torch.Tensor, src_mask: torch.Tensor) -> torch.Tensor:
        n = trg.shape[1]
        causal = torch.ones(n, n, dtype=torch.bool, device=trg.device).tril()
        trg_mask = (trg != self.pad).unsqueeze(1) & causal
        g = self._embed(trg)
        for layer in self.decoder:
            g = layer(g, memory, trg_mask, src_mask)
        return g @ self.embedding.weight.t()

    def forward(self, src: torch.Tensor, trg_in: torch.Tensor) -> torch.Tensor:
        memory, src_mask = self.encode(src)
        return self.decode(trg_in, memory, src_mask)

    @torch.no_grad()
    def greedy(self, src: torch.Tensor, bos: int, eos: int, max_len: int) -> torch.Tensor:
        memory, src_mask = self.encode(src)
        out = torch.full((src.shape[0], 1), bos, dtype=torch.long, device=src.device)
        done = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)
        for _ in range(max_len):
            nxt = self.decode(out, memory, src_mask)[:, -1].argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, self.pad), nxt)
            out = torch.cat([out, nxt.unsqueeze(1)], dim=1)
            done |= nxt == eos
            if bool(done.all()):
                break
        return out[:, 1:]


def smoothed_nll_sum(logits: torch.Tensor, gold: torch.Tensor, pad: int, eps: float) -> torch.Tensor:
    """Label-smoothed cross-entropy summed over non-pad tokens, as E6's training loss.

    The target puts 1 - eps on the gold token and eps / (V - 1) on every other token, the
    padding and special tokens included (gap 25).
    """
    logp = F.log_softmax(logits.float(), dim=-1)
    v = logp.shape[-1]
    gold_lp = logp.gather(-1, gold.unsqueeze(-1)).squeeze(-1)
    others = logp.sum(-1) - gold_lp
    loss = -((1.0 - eps) * gold_lp + eps / (v - 1) * others)
    return loss.masked_select(gold != pad).sum()
