"""Atari Pong with the wrappers of E7 (OpenAI baselines semantics) on gymnasium + ale-py.

Per environment, inside out: no-op reset (up to 30), max-and-skip 4 (the pixel-wise max of the
last two frames), 84x84 grayscale with INTER_AREA (gymnasium's AtariPreprocessing does these
three), episodic life (a no-op for Pong, which has no lives), FIRE on reset, the raw episode
return recorded (RecordEpisodeStatistics: a full game, -21 ... 21; FIRE's steps score nothing),
rewards clipped to their sign for training. Frames are stacked by the caller (PPO storage),
as baselines' VecFrameStack.
Vector environments reset a finished episode in the same step (baselines' semantics).
The outermost wrapper, :class:`Resumable`, saves an episode in progress as plain data (the
emulator with its RNG, the environment's RNG, each wrapper's counters) and restores it, so a
resumed run continues the very same episodes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ale_py
import gymnasium as gym
import numpy as np

gym.register_envs(ale_py)


class FireReset(gym.Wrapper):
    """Press FIRE, then action 2, after every reset (baselines' FireResetEnv)."""

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict]:
        obs, info = self.env.reset(**kwargs)
        for action in (1, 2):
            obs, _, terminated, truncated, info = self.env.step(action)
            if terminated or truncated:
                obs, info = self.env.reset(**kwargs)
        return obs, info


# What each wrapper (by class name) carries from one step to the next. Not carried: the
# wall-clock start of an episode (RecordEpisodeStatistics' "t"), meaningless in a new process.
_CARRIED = {
    "TimeLimit": ("_elapsed_steps",),
    "OrderEnforcing": ("_has_reset",),
    "AtariPreprocessing": ("lives", "game_over"),
    "RecordEpisodeStatistics": ("episode_returns", "episode_lengths", "episode_count"),
}


class Resumable(gym.Wrapper):
    """The state of an episode in progress as plain data (bytes, numbers), and back.

    Vector environments reach it by name: ``envs.call("snapshot")`` gathers one snapshot per
    environment; ``envs.set_attr("restore_from", snapshots)`` then ``envs.call("restore")``
    puts them back, in this process or in the async workers.
    """

    restore_from: dict[str, Any] | None = None

    def _chain(self) -> list[Any]:
        chain, env = [], self.env
        while isinstance(env, gym.Wrapper):
            chain.append(env)
            env = env.env
        return chain

    def snapshot(self) -> dict[str, Any]:
        base = self.unwrapped
        carried = [
            {k: _plain(getattr(w, k)) for k in _CARRIED.get(type(w).__name__, ()) if hasattr(w, k)}
            for w in self._chain()
        ]
        return {
            "ale": base.ale.cloneState(include_rng=True).__getstate__(),
            "rng": base.np_random.bit_generator.state,
            "carried": carried,
        }

    def restore(self) -> None:
        snap, self.restore_from = self.restore_from, None
        if snap is None:
            raise RuntimeError("restore() needs restore_from to be set first")
        base = self.unwrapped
        state = ale_py.ALEState.__new__(ale_py.ALEState)
        state.__setstate__(snap["ale"])
        base.ale.restoreState(state)
        base.np_random.bit_generator.state = snap["rng"]
        for wrapper, values in zip(self._chain(), snap["carried"], strict=True):
            for key, value in values.items():
                setattr(wrapper, key, value)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def make_env(env_id: str, noop_max: int = 30) -> Callable[[], Any]:
    def thunk() -> Any:
        env = gym.make(env_id)
        env = gym.wrappers.AtariPreprocessing(env, noop_max=noop_max, frame_skip=4,
                                              screen_size=84, terminal_on_life_loss=False,
                                              grayscale_obs=True, scale_obs=False)
        if "FIRE" in env.unwrapped.get_action_meanings():
            env = FireReset(env)
        return Resumable(record_and_clip(env))

    return thunk


def record_and_clip(env: Any) -> Any:
    """Record the raw episode return (baselines' Monitor), then clip rewards to their sign."""
    env = gym.wrappers.RecordEpisodeStatistics(env)
    return gym.wrappers.TransformReward(env, lambda r: float(np.sign(r)))


def make_vector_env(env_id: str, n: int, kind: str = "async", noop_max: int = 30) -> Any:
    cls = gym.vector.AsyncVectorEnv if kind == "async" else gym.vector.SyncVectorEnv
    return cls([make_env(env_id, noop_max) for _ in range(n)],
               autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)


def finished_returns(infos: dict) -> list[float]:
    """Raw returns of the episodes that ended in this vector step."""
    final = infos.get("final_info")
    if not final or "episode" not in final:
        return []
    mask = final["_episode"]
    return [float(r) for r in final["episode"]["r"][mask]]
