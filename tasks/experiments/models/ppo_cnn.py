"""E7's actor-critic ("CNNBase" of Kostrikov's PPO): a shared conv trunk, a value and a policy head."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.distributions import Categorical


def _init(layer: nn.Module, gain: float) -> nn.Module:
    nn.init.orthogonal_(layer.weight, gain=gain)
    nn.init.zeros_(layer.bias)
    return layer


class ActorCritic(nn.Module):
    """Input 4x84x84 uint8 frames (scaled by 1/255). 12 tensors, 866 439 parameters for 6 actions."""

    def __init__(self, actions: int = 6, frames: int = 4) -> None:
        super().__init__()
        g = math.sqrt(2.0)
        self.trunk = nn.Sequential(
            _init(nn.Conv2d(frames, 32, 8, stride=4), g), nn.ReLU(),
            _init(nn.Conv2d(32, 64, 4, stride=2), g), nn.ReLU(),
            _init(nn.Conv2d(64, 32, 3, stride=1), g), nn.ReLU(), nn.Flatten(),
            _init(nn.Linear(32 * 7 * 7, 512), g), nn.ReLU(),
        )
        self.critic = _init(nn.Linear(512, 1), 1.0)
        self.actor = _init(nn.Linear(512, actions), 0.01)

    def forward(self, obs: torch.Tensor) -> tuple[Categorical, torch.Tensor]:
        h = self.trunk(obs.float() / 255.0)
        return Categorical(logits=self.actor(h)), self.critic(h).squeeze(-1)
