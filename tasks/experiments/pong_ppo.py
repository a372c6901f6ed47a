"""E7: PPO on Atari Pong (Table 1 row 6, Fig. 8), written to read top to bottom like CleanRL.

One runner "epoch" is one PPO update: a 128-step rollout of 8 environments, GAE, then 4 epochs
of 4 minibatches, every optimiser step (with its global-norm clip of 0.5) handed to the runner.
The learning rate decays linearly per update (the runner's ``linear`` schedule).

Metric (gap 27): the mean raw score of the last 10 completed training episodes, reported every
``eval_every`` updates and at the end; the value after the last update is Table 1's number.
Beyond the paper, and labelled so: the mean score of a few greedy-policy episodes at the end.

Resuming: the network, optimiser, RNG streams, episode statistics and counters are restored
exactly, and so are the episodes in progress: each emulator with its RNG, each environment's
RNG and wrapper counters (:class:`tasks.experiments.data.atari.Resumable`) and the frame stacks. A resumed
run is identical to an uninterrupted one.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from .base import RunContext, Stepper, Task
from .configs import PongConfig
from .data.atari import finished_returns, make_env, make_vector_env
from .models.ppo_cnn import ActorCritic


# -- storage and advantages ------------------------------------------------------------------------
def gae(rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor,
        next_value: torch.Tensor, gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimates and returns; all (T, N) but ``next_value`` (N,).

    ``dones[t]`` marks that the episode ended with step t, so V(s_{t+1}) is not bootstrapped:
    delta_t = r_t + gamma V(s_{t+1}) (1 - d_t) - V(s_t); A_t = delta_t + gamma lam (1 - d_t) A_{t+1}.
    """
    adv = torch.zeros_like(rewards)
    last = torch.zeros_like(next_value)
    for t in reversed(range(rewards.shape[0])):
        following = next_value if t == rewards.shape[0] - 1 else values[t + 1]
        keep = 1.0 - dones[t]
        delta = rewards[t] + gamma * following * keep - values[t]
        last = delta + gamma * lam * keep * last
        adv[t] = last
    return adv, adv + values


def push_frame(frames: torch.Tensor, obs: np.ndarray, done: np.ndarray) -> torch.Tensor:
    """Stack of the last frames per env; a finished episode's stack starts again from zeros.

    The observations of gymnasium's FrameStackObservation(padding_type="zero") (tests/
    test_pong_ppo.py), kept here because this stack is one device tensor in the task's state
    and checkpoint, where the wrapper's is numpy arrays inside each worker process.
    """
    frames = torch.roll(frames, shifts=-1, dims=1)
    if done.any():
        frames[torch.as_tensor(done, device=frames.device)] = 0
    frames[:, -1] = torch.as_tensor(obs, device=frames.device)
    return frames


# -- the PPO loss ------------------------------------------------------------------------------------
def ppo_loss(logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, values: torch.Tensor,
             old_values: torch.Tensor, returns: torch.Tensor, entropy: torch.Tensor, clip: float,
             value_coef: float, entropy_coef: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped policy and value losses of E7's table; returns (total, parts)."""
    ratio = torch.exp(logp - old_logp)
    policy = -torch.min(ratio * adv, torch.clamp(ratio, 1 - clip, 1 + clip) * adv).mean()
    clipped = old_values + torch.clamp(values - old_values, -clip, clip)
    value = 0.5 * torch.max((values - returns) ** 2, (clipped - returns) ** 2).mean()
    ent = entropy.mean()
    total = value_coef * value + policy - entropy_coef * ent
    return total, {"policy_loss": policy.detach(), "value_loss": value.detach(), "entropy": ent.detach()}


class PongPPO(Task):
    metric = "reward"
    goal = "max"
    Config = PongConfig
    cfg: PongConfig

    def __init__(self, cfg: PongConfig, ctx: RunContext) -> None:
        super().__init__(cfg, ctx)
        dev = ctx.device
        self.n, self.steps = cfg.num_envs, cfg.num_steps
        self.envs = make_vector_env(cfg.env_id, self.n, cfg.vector_env, cfg.noop_max)
        self.model = ActorCritic(int(self.envs.single_action_space.n), cfg.frame_stack).to(dev)
        self.frames = torch.zeros(self.n, cfg.frame_stack, 84, 84, dtype=torch.uint8, device=dev)
        self.returns: deque[float] = deque(maxlen=10)
        self.episodes = 0
        self.agent_steps = 0
        self._reset_envs()
        shape = (self.steps, self.n)
        self.buf_obs = torch.zeros(shape + tuple(self.frames.shape[1:]), dtype=torch.uint8, device=dev)
        self.buf_actions = torch.zeros(shape, dtype=torch.long, device=dev)
        self.buf_logp, self.buf_values, self.buf_rewards, self.buf_dones = (
            torch.zeros(shape, device=dev) for _ in range(4))

    def _reset_envs(self) -> None:
        seeds = [self.ctx.seed + rank + 1_000_003 * self.agent_steps for rank in range(self.n)]
        obs, _ = self.envs.reset(seed=seeds)
        self.frames.zero_()
        self._push(obs, np.zeros(self.n, dtype=bool))

    def _push(self, obs: np.ndarray, done: np.ndarray) -> None:
        self.frames = push_frame(self.frames, obs, done)

    def modules(self) -> dict[str, nn.Module]:
        return {"model": self.model}

    def steps_per_epoch(self) -> int:
        return 1

    def batches(self, epoch: int, start: int) -> Iterator[Any]:
        if start == 0:
            yield epoch

    # -- one update: rollout, advantages, K epochs of minibatch steps ----------------------------
    @torch.no_grad()
    def _rollout(self) -> torch.Tensor:
        for t in range(self.steps):
            self.buf_obs[t] = self.frames
            dist, value = self.model(self.frames)
            action = dist.sample()
            self.buf_actions[t], self.buf_logp[t], self.buf_values[t] = action, dist.log_prob(action), value
            obs, reward, terminated, truncated, infos = self.envs.step(action.cpu().numpy())
            done = np.logical_or(terminated, truncated)
            self.buf_rewards[t] = torch.as_tensor(reward, dtype=torch.float32)
            self.buf_dones[t] = torch.as_tensor(done, dtype=torch.float32)
            for r in finished_returns(infos):
                self.returns.append(r)
                self.episodes += 1
            self._push(obs, done)
        self.agent_steps += self.steps * self.n
        return self.model(self.frames)[1]

    def train_step(self, batch: Any, step: Stepper) -> dict[str, Any]:
        cfg = self.cfg
        next_value = self._rollout()
        adv, ret = gae(self.buf_rewards, self.buf_values, self.buf_dones, next_value,
                       cfg.gamma, cfg.gae_lambda)
        total = self.steps * self.n
        obs = self.buf_obs.reshape((total,) + tuple(self.buf_obs.shape[2:]))
        actions, old_logp = self.buf_actions.reshape(total), self.buf_logp.reshape(total)
        old_values, ret, adv = self.buf_values.reshape(total), ret.reshape(total), adv.reshape(total)
        if cfg.norm_adv:  # once per update, over all samples (Kostrikov's PPO)
            adv = (adv - adv.mean()) / (adv.std() + 1e-5)
        size = total // cfg.num_minibatches
        sums: dict[str, torch.Tensor] = {}
        for _ in range(cfg.update_epochs):
            perm = torch.randperm(total, device=obs.device)
            for i in range(cfg.num_minibatches):  # the remainder, if any, is dropped
                mb = perm[i * size:(i + 1) * size]
                dist, values = self.model(obs[mb])
                loss, parts = ppo_loss(dist.log_prob(actions[mb]), old_logp[mb], adv[mb], values,
                                       old_values[mb], ret[mb], dist.entropy(), cfg.clip_coef,
                                       cfg.value_coef, cfg.entropy_coef)
                step(loss)
                for key, value in {"loss": loss.detach(), **parts}.items():
                    sums[key] = sums.get(key, 0.0) + value
        n_steps = cfg.update_epochs * cfg.num_minibatches
        out: dict[str, Any] = {k: v / n_steps for k, v in sums.items()}
        out["agent_steps"] = float(self.agent_steps)
        if self.returns:
            out["reward_last10"] = float(np.mean(self.returns))
        return out

    # -- evaluation --------------------------------------------------------------------------------
    def evaluate(self, epoch: int) -> dict[str, Any]:
        out: dict[str, Any] = {
            "reward": float(np.mean(self.returns)) if self.returns else None,
            "episodes": self.episodes,
            "agent_steps": self.agent_steps,
        }
        if epoch == self.epochs and self.cfg.eval_episodes > 0:
            out["greedy_return_beyond_paper"] = self._greedy_episodes()
        return out

    @torch.no_grad()
    def _greedy_episodes(self) -> float:
        """Mean raw score of ``eval_episodes`` greedy-policy episodes (beyond the paper)."""
        env = make_env(self.cfg.env_id, self.cfg.noop_max)()
        self.model.eval()
        scores = []
        for k in range(self.cfg.eval_episodes):
            obs, _ = env.reset(seed=10_000 + self.ctx.seed * 100 + k)
            running = np.zeros(1, dtype=bool)
            frames = push_frame(torch.zeros_like(self.frames[:1]), obs[None], running)
            score = 0.0
            for _ in range(self.cfg.eval_max_steps):
                dist, _ = self.model(frames)
                obs, _, terminated, truncated, info = env.step(int(dist.probs.argmax()))
                frames = push_frame(frames, obs[None], running)
                if terminated or truncated:
                    score = float(info["episode"]["r"])
                    break
            else:  # the cap was reached: count the raw score so far
                score = float(env.get_wrapper_attr("episode_returns"))
            scores.append(score)
        env.close()
        self.model.train()
        return float(np.mean(scores))

    # -- checkpoints ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"returns": list(self.returns), "episodes": self.episodes,
                "agent_steps": self.agent_steps, "envs": list(self.envs.call("snapshot")),
                "frames": self.frames.cpu()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.returns = deque(state["returns"], maxlen=10)
        self.episodes, self.agent_steps = state["episodes"], state["agent_steps"]
        if "envs" not in state:  # a checkpoint from before episodes were saved: start afresh
            self._reset_envs()
            return
        self.envs.set_attr("restore_from", state["envs"])
        self.envs.call("restore")
        self.frames.copy_(state["frames"])

    def close(self) -> None:
        self.envs.close()
