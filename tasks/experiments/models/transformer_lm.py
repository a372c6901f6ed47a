"""E5: the Wikitext-2 word-level transformer LM, without LayerNorm, from standard PyTorch modules.

The authors built it with a locally patched PyTorch (``TransformerEncoderLayer(norm=..., sp=...)``,
gap 19). The paper counts 19 parameter tensors: both LayerNorms absent, or both present without
gains and biases; nothing else has that count. The default is the post-residual encoder layer
with them removed:
``x <- x + Dropout(MHA(x))``, then ``x <- x + Dropout(W2 Dropout(ReLU(W1 x + b1)) + b2)``;
``norm="layernorm_noaffine"`` (or ``"layernorm"``, with gains and biases: 27 tensors) puts
PyTorch's post-residual LayerNorm after each of the two sums, as ``nn.TransformerEncoderLayer``.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn


def sinusoids(length: int, dim: int) -> torch.Tensor:
    """PE(pos, 2i) = sin(pos / 10000^(2i/dim)), PE(pos, 2i+1) = cos(...): shape (length, dim)."""
    pos = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(length, dim)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)
    return pe


NORMS = (None, "layernorm", "layernorm_noaffine")  # None: no LayerNorm (the default, gap 19)


class EncoderLayer(nn.Module):
    def __init__(self, d_model: int, nhead: int, d_ff: int, dropout: float,
                 norm: str | None = None) -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        # Packed q/k/v projection (Xavier-uniform, zero biases) and output projection: PyTorch's.
        self.attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.linear1 = nn.Linear(d_model, d_ff)
        self.linear2 = nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        if norm is None:
            self.norm1 = self.norm2 = nn.Identity()
        else:
            affine = norm == "layernorm"
            self.norm1 = nn.LayerNorm(d_model, elementwise_affine=affine)
            self.norm2 = nn.LayerNorm(d_model, elementwise_affine=affine)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # need_weights=False routes attention through scaled_dot_product_attention.
        attn = self.attn(x, x, x, attn_mask=mask, need_weights=False, is_causal=True)[0]
        x = self.norm1(x + self.dropout1(attn))
        ff = self.linear2(self.dropout(F.relu(self.linear1(x))))
        return self.norm2(x + self.dropout2(ff))


class TransformerLM(nn.Module):
    """Embedding (x sqrt(d)) + sinusoids + dropout, 2 layers, linear decoder, log-softmax.

    Defaults are E5's: 2 layers, 2 heads, width 200, FFN 200, dropout 0.2; with V = 33 278:
    19 tensors and 13 826 878 parameters. Inputs are (seq_len, batch) token ids.
    """

    def __init__(self, vocab: int, d_model: int = 200, nhead: int = 2, d_ff: int = 200,
                 layers: int = 2, dropout: float = 0.2, max_len: int = 5000,
                 norm: str | None = None) -> None:
        super().__init__()
        self.d_model = d_model
        self.encoder = nn.Embedding(vocab, d_model)
        self.register_buffer("pe", sinusoids(max_len, d_model).unsqueeze(1), persistent=False)
        self.pos_dropout = nn.Dropout(dropout)
        first = EncoderLayer(d_model, nhead, d_ff, dropout, norm)
        # nn.TransformerEncoder clones its layer: every layer starts as a copy of the first.
        self.layers = nn.ModuleList([first] + [copy.deepcopy(first) for _ in range(layers - 1)])
        self.decoder = nn.Linear(d_model, vocab)
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)
        nn.init.uniform_(self.decoder.weight, -0.1, 0.1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        n = tokens.shape[0]
        mask = torch.triu(torch.full((n, n), float("-inf"), device=tokens.device), diagonal=1)
        x = self.encoder(tokens) * math.sqrt(self.d_model)
        x = self.pos_dropout(x + self.pe[:n])
        for layer in self.layers:
            x = layer(x, mask)
        return F.log_softmax(self.decoder(x), dim=-1)
