"""Hugging Face's GPT-2 architecture, built from a config (no hub download), for word-level LM.

Beyond the paper: a standard ``transformers`` model on E5's data, sized like E5's LM. Two things
matter for Nero, whose neurons are slices along a weight's first dimension:

- GPT-2 stores its projections as ``Conv1D`` weights of shape (in, out), the transpose of
  ``nn.Linear``'s. Each is replaced by an ``nn.Linear`` holding the transposed weight, which
  computes the same function, so that a weight's rows are its output units (as in every other
  model of the suite) and Nero's per-neuron projection acts on output neurons.
- The token embedding is tied to the output layer (one tensor): each row, a token's vector, is a
  neuron, as for the translation model's shared embedding (E6). LayerNorm gains and biases are
  1-D: each entry is a unit with its own running average and the tensor's mean |initial value|
  as its scale (1 for the gains, 0.01 for the zero-initialised biases), the code rule of gap 1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def linear_from_conv1d(conv: nn.Module) -> nn.Linear:
    """The nn.Linear computing what a transformers Conv1D (weight (in, out)) computes."""
    n_in, n_out = conv.weight.shape
    linear = nn.Linear(n_in, n_out, bias=conv.bias is not None)
    with torch.no_grad():
        linear.weight.copy_(conv.weight.t())
        if conv.bias is not None:
            linear.bias.copy_(conv.bias)
    return linear.to(conv.weight.device, conv.weight.dtype)


def replace_conv1d(model: nn.Module) -> int:
    """Swap every Conv1D of ``model`` for its nn.Linear; returns how many were swapped."""
    from transformers.pytorch_utils import Conv1D

    swapped = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, Conv1D):
                setattr(parent, name, linear_from_conv1d(child))
                swapped += 1
    return swapped


class GPT2LM(nn.Module):
    """GPT-2 (pre-LayerNorm, learned positions, tied embeddings) taking E5's (seq, batch) token
    layout and returning log-probabilities of shape (seq, batch, vocabulary), as E5's LM does."""

    def __init__(self, vocab: int, n_embd: int, n_layer: int, n_head: int, n_inner: int,
                 dropout: float, n_positions: int) -> None:
        super().__init__()
        from transformers import GPT2Config, GPT2LMHeadModel

        config = GPT2Config(vocab_size=vocab, n_positions=n_positions, n_embd=n_embd,
                            n_layer=n_layer, n_head=n_head, n_inner=n_inner,
                            resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout,
                            bos_token_id=None, eos_token_id=None, tie_word_embeddings=True)
        self.gpt2 = GPT2LMHeadModel(config)
        replace_conv1d(self.gpt2)

    def forward(self, data: torch.Tensor) -> torch.Tensor:
        logits = self.gpt2(input_ids=data.t()).logits  # (batch, seq, vocabulary)
        return F.log_softmax(logits.transpose(0, 1), dim=-1)
