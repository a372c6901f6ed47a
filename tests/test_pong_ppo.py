"""PPO on Pong (E7): GAE and the clipped losses by hand, the wrappers, the network, a real smoke run."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from tasks.experiments.data.atari import finished_returns, make_env, make_vector_env, record_and_clip
from tasks.experiments.models.ppo_cnn import ActorCritic
from tasks.experiments.pong_ppo import gae, ppo_loss, push_frame
from tests.helpers import killed_and_resumed, strip_times


def test_network_matches_e7():
    model = ActorCritic(6)
    params = list(model.parameters())
    assert len(params) == 12 and sum(p.numel() for p in params) == 866_439
    dist, value = model(torch.randint(0, 256, (3, 4, 84, 84), dtype=torch.uint8))
    assert dist.probs.shape == (3, 6) and value.shape == (3,)
    # Actor gain 0.01: the initial policy is almost uniform.
    assert (dist.probs - 1 / 6).abs().max() < 0.01


def test_gae_by_hand():
    gamma, lam = 0.9, 0.8
    rewards = torch.tensor([[1.0], [0.0], [2.0]])
    values = torch.tensor([[0.5], [1.0], [0.2]])
    dones = torch.tensor([[0.0], [1.0], [0.0]])  # the episode ends with step 1
    next_value = torch.tensor([3.0])
    adv, ret = gae(rewards, values, dones, next_value, gamma, lam)
    d2 = 2.0 + 0.9 * 3.0 - 0.2
    a2 = d2
    d1 = 0.0 - 1.0  # no bootstrap across the episode end
    a1 = d1
    d0 = 1.0 + 0.9 * 1.0 - 0.5
    a0 = d0 + gamma * lam * a1
    assert torch.allclose(adv.squeeze(1), torch.tensor([a0, a1, a2]))
    assert torch.allclose(ret, adv + values)


def test_clipped_losses_by_hand():
    logp = torch.log(torch.tensor([0.5, 0.2]))
    old = torch.log(torch.tensor([0.25, 0.4]))  # ratios 2.0 and 0.5
    adv = torch.tensor([1.0, -1.0])
    values, old_values = torch.tensor([1.0, 0.0]), torch.tensor([0.5, 0.2])
    returns = torch.tensor([2.0, -1.0])
    entropy = torch.tensor([1.5, 0.5])
    total, parts = ppo_loss(logp, old, adv, values, old_values, returns, entropy, 0.1, 0.5, 0.01)
    # Policy: min(2*1, 1.1*1) = 1.1 and min(0.5*-1, 0.9*-1) = -0.9 -> -(1.1 - 0.9) / 2.
    assert parts["policy_loss"].item() == pytest.approx(-0.1)
    # Value: clipped predictions 0.6 and 0.1; max((1-2)^2, (0.6-2)^2) = 1.96,
    # max((0+1)^2, (0.1+1)^2) = 1.21; 0.5 * mean = 0.7925.
    assert parts["value_loss"].item() == pytest.approx(0.7925)
    assert total.item() == pytest.approx(0.5 * 0.7925 - 0.1 - 0.01 * 1.0)


class _Scores(gym.Env):
    """Rewards of 5, -3 and 0, then the episode ends."""

    observation_space = gym.spaces.Box(0, 255, (2,), np.uint8)
    action_space = gym.spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        self.t = 0
        return np.zeros(2, np.uint8), {}

    def step(self, action):
        self.t += 1
        reward = {1: 5.0, 2: -3.0}.get(self.t, 0.0)
        return np.zeros(2, np.uint8), reward, self.t == 3, False, {}


def test_training_rewards_are_clipped_but_returns_raw():
    env = record_and_clip(_Scores())
    env.reset()
    rewards = [env.step(0)[1] for _ in range(2)]
    *_, info = env.step(0)
    assert rewards == [1.0, -1.0]
    assert float(info["episode"]["r"]) == 2.0  # 5 - 3, unclipped


def test_real_pong_observations():
    env = make_env("PongNoFrameskip-v4")()
    obs, _ = env.reset(seed=0)
    assert obs.shape == (84, 84) and obs.dtype == np.uint8
    for _ in range(300):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        assert reward in (-1.0, 0.0, 1.0)
    env.close()
    envs = make_vector_env("PongNoFrameskip-v4", 2, "sync")
    obs, _ = envs.reset(seed=[0, 1])
    assert obs.shape == (2, 84, 84)
    envs.close()
    assert finished_returns({}) == []


class Frames(gym.Env):
    """Frame t of an episode is filled with 10 * episode + t; episodes last ``length`` steps."""

    observation_space = gym.spaces.Box(0, 255, (2, 2), np.uint8)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, length: int) -> None:
        self.length, self.episode, self.t = length, 0, 0

    def frame(self) -> np.ndarray:
        return np.full((2, 2), 10 * self.episode + self.t, np.uint8)

    def reset(self, *, seed=None, options=None):
        self.episode, self.t = self.episode + 1, 0
        return self.frame(), {}

    def step(self, action):
        self.t += 1
        return self.frame(), 0.0, self.t == self.length, False, {}


def test_frame_stacks_are_gymnasiums_frame_stack_observation():
    """push_frame gives the observations of gymnasium's FrameStackObservation (zero padding) in
    a same-step autoreset vector env, episode ends included: the same frames, in the same
    order. Ours is kept because its stack lives on the device in the task's state (one tensor in
    the checkpoint), where the wrapper's is numpy arrays in each worker process."""
    autoreset = gym.vector.AutoresetMode.SAME_STEP
    lengths = (3, 5)
    plain = gym.vector.SyncVectorEnv([lambda n=n: Frames(n) for n in lengths], autoreset_mode=autoreset)
    stacked = gym.vector.SyncVectorEnv(
        [lambda n=n: gym.wrappers.FrameStackObservation(Frames(n), 4, padding_type="zero")
         for n in lengths], autoreset_mode=autoreset)
    obs, _ = plain.reset(seed=0)
    ours = push_frame(torch.zeros(2, 4, 2, 2, dtype=torch.uint8), obs, np.zeros(2, dtype=bool))
    theirs, _ = stacked.reset(seed=0)
    assert torch.equal(ours, torch.from_numpy(theirs))
    for _ in range(12):  # four episodes of the first env, two and a half of the second
        obs, _, terminated, truncated, _ = plain.step(np.zeros(2, dtype=np.int64))
        ours = push_frame(ours, obs, np.logical_or(terminated, truncated))
        theirs, *_ = stacked.step(np.zeros(2, dtype=np.int64))
        assert torch.equal(ours, torch.from_numpy(theirs))
    # Step 12 began episode 5 of the first env (its stack starts from zeros) and is step 2 of
    # episode 3 of the second.
    assert ours[:, :, 0, 0].tolist() == [[0, 0, 0, 50], [0, 30, 31, 32]]


def test_smoke_run_records_training_returns(smoke):
    record = smoke("task=pong_ppo")
    assert record.status == "ok", record.reason
    assert -21 <= record.final <= 21
    last = record.history[-1]
    assert last["episodes"] >= 1 and last["agent_steps"] == 8 * 2 * 128
    assert "greedy_return_beyond_paper" in last


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_episodes_in_progress_are_restored_exactly(kind):
    """A snapshot taken mid-episode, restored into fresh environments, replays the same frames."""
    actions = np.random.default_rng(0).integers(0, 6, size=(60, 2))
    source = make_vector_env("PongNoFrameskip-v4", 2, kind)
    source.reset(seed=[5, 6])
    for a in actions[:20]:
        source.step(a)
    snapshots = list(source.call("snapshot"))
    expected = [source.step(a)[:2] for a in actions[20:]]
    source.close()
    target = make_vector_env("PongNoFrameskip-v4", 2, kind)
    target.reset(seed=[100, 200])  # other episodes entirely
    target.set_attr("restore_from", snapshots)
    target.call("restore")
    replay = [target.step(a)[:2] for a in actions[20:]]
    target.close()
    for (obs_a, rew_a), (obs_b, rew_b) in zip(expected, replay, strict=True):
        assert np.array_equal(obs_a, obs_b) and np.array_equal(rew_a, rew_b)
    assert any(not np.array_equal(expected[0][0][0], o[0][0]) for o in expected[1:])  # frames move


@pytest.mark.slow
def test_resume_after_sigkill_gives_the_same_record(tmp_path):
    args = ["task=pong_ppo", "optimizer=nero", "scale=smoke", "logger=none", "progress=true",
            "task.checkpoint_every_epochs=2", "task.eval_every=1"]
    a, b, stderr = killed_and_resumed(tmp_path, args)
    assert "resuming" in stderr
    assert strip_times(a.history) == strip_times(b.history)
    assert (a.final, a.steps) == (b.final, b.steps)
