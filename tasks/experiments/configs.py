"""The typed schema of every task's config (Hydra structured configs), and the table that declares
every task once (:data:`TASKS`: its name, its class, its schema and so the data it may read).

Each ``conf/task/<name>.yaml`` starts from its schema here (``defaults: [/schema/task/<name>@_here_]``),
so Hydra converts and checks types at composition: ``task.epochs=abc`` or ``task.batch_size=2.5``
fail before anything runs. Ranges and choices are checked in ``__post_init__``, which the runner's
validation triggers (tasks/runner/validation.py), as are keys the schema does not know. The
values themselves, with the reasons behind them, live in the YAML files. This module imports
nothing heavy, so configs can be checked without loading a task's dependencies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

from omegaconf import MISSING

from .base import Checked, TaskConfig, positive, require


def one_of(obj: object, name: str, choices: tuple[str, ...]) -> None:
    value = getattr(obj, name)
    require(value in choices, f"task.{name} must be one of {', '.join(choices)}, got {value!r}")


def at_least(obj: object, name: str, low: float) -> None:
    value = getattr(obj, name)
    require(value >= low, f"task.{name} must be >= {low:g}, got {value}")


def probability(obj: object, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        require(0 <= value < 1, f"task.{name} must be in [0, 1), got {value}")


@dataclass
class _Synthetic:
    """Real data from ``data_dir`` (downloaded where allowed), or a synthetic stand-in (smoke)."""

    synthetic: bool = MISSING
    n_train: Optional[int] = None  # noqa: UP045 - synthetic sizes (smoke scale only)
    real_data: ClassVar[tuple[str, ...]] = ()  # what the real data needs

    def needs(self) -> tuple[str, ...]:
        return () if self.synthetic else self.real_data

    def _check_sizes(self) -> None:
        positive(self, "n_train", allow_none=True)


@dataclass
class MnistMLPConfig(_Synthetic, TaskConfig):
    real_data: ClassVar[tuple[str, ...]] = ("mnist",)
    depth: int = MISSING
    width: int = MISSING
    batch_size: int = MISSING
    n_test: Optional[int] = None  # noqa: UP045

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_sizes()
        positive(self, "depth", "width", "batch_size")
        positive(self, "n_test", allow_none=True)


@dataclass
class MnistCWNConfig(MnistMLPConfig):
    sigma: float = MISSING

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self, "sigma")


@dataclass
class CifarConfig(_Synthetic, TaskConfig):
    real_data: ClassVar[tuple[str, ...]] = ("cifar10",)
    arch: str = MISSING
    classes: int = MISSING
    batch_size: int = MISSING
    eval_train: bool = MISSING
    augment: bool = MISSING
    pipeline: str = MISSING
    num_workers: int = MISSING
    channels_last: bool = MISSING
    width: float = MISSING
    image_size: int = MISSING
    n_test: Optional[int] = None  # noqa: UP045

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_sizes()
        one_of(self, "arch", ("vgg11", "resnet18"))
        one_of(self, "pipeline", ("device", "torchvision"))
        positive(self, "classes", "batch_size", "width", "image_size")
        positive(self, "n_test", allow_none=True)
        at_least(self, "num_workers", 0)
        if self.arch == "vgg11":  # five 2x2 max-pools must leave a 1x1 map for the classifier
            require(32 <= self.image_size < 64,
                    f"task.image_size must be from 32 to 63 for VGG-11, got {self.image_size}")
        if not self.synthetic:  # CIFAR-10's labels are 0-9
            require(self.classes >= 10, f"task.classes must be >= 10 for CIFAR-10's labels, got "
                                        f"{self.classes}")


@dataclass
class FidConfig(Checked):
    samples: int = MISSING
    batch_size: int = MISSING
    protocol: str = MISSING
    extractor: str = MISSING
    inception_path: Optional[str] = None  # noqa: UP045
    headline: str = MISSING

    def __post_init__(self) -> None:
        require(self.samples > 1 and self.batch_size > 0,
                f"task.fid.samples must be > 1 and task.fid.batch_size > 0, got {self.samples} "
                f"and {self.batch_size}")
        require(self.protocol in ("authors", "standard"),
                f"task.fid.protocol must be authors or standard, got {self.protocol!r}")
        require(self.extractor in ("inception", "random"),
                f"task.fid.extractor must be inception or random, got {self.extractor!r}")
        require(self.headline in ("test", "train"),
                f"task.fid.headline must be test or train, got {self.headline!r}")


@dataclass
class CganConfig(_Synthetic, TaskConfig):
    real_data: ClassVar[tuple[str, ...]] = ("cifar10", "inception")
    roles: ClassVar[tuple[str, ...]] = ("G", "D")
    nf: int = MISSING
    z_dim: int = MISSING
    embed_classes: int = MISSING
    batch_size: int = MISSING
    num_workers: int = MISSING
    image_size: int = MISSING
    fid: FidConfig = MISSING

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_sizes()
        positive(self, "nf", "z_dim", "embed_classes", "batch_size", "image_size")
        require(self.z_dim % 4 == 0, f"task.z_dim must split into 4 chunks, got {self.z_dim}")
        require(self.embed_classes >= 10, "task.embed_classes must be >= 10 (CIFAR-10's labels "
                                          f"index the embedding), got {self.embed_classes}")
        at_least(self, "num_workers", 0)

    def needs(self) -> tuple[str, ...]:
        # the images only for real data; the FID weights whenever they are not given elsewhere
        own_weights = self.fid.extractor == "inception" and not self.fid.inception_path
        return (() if self.synthetic else ("cifar10",)) + (("inception",) if own_weights else ())


@dataclass
class _Text:
    synthetic: bool = MISSING
    dropout: float = MISSING
    batch_size: int = MISSING
    real_data: ClassVar[tuple[str, ...]] = ()

    def needs(self) -> tuple[str, ...]:
        return () if self.synthetic else self.real_data

    def _check_text(self) -> None:
        probability(self, "dropout")
        positive(self, "batch_size")


@dataclass
class _Wikitext2(_Text):
    """E5's word-level Wikitext-2: streams of ``bptt`` tokens."""

    real_data: ClassVar[tuple[str, ...]] = ("wikitext2",)
    bptt: int = MISSING
    eval_batch_size: int = MISSING
    synthetic_tokens: Optional[int] = None  # noqa: UP045

    def _check_stream(self, width: str, heads: str) -> None:
        self._check_text()
        positive(self, "bptt", "eval_batch_size")
        positive(self, "synthetic_tokens", allow_none=True)
        w, h = getattr(self, width), getattr(self, heads)
        require(w % h == 0, f"task.{width} ({w}) must be a multiple of task.{heads} ({h})")


@dataclass
class Wikitext2Config(_Wikitext2, TaskConfig):
    emsize: int = MISSING
    nhead: int = MISSING
    nhid: int = MISSING
    nlayers: int = MISSING
    # null: no LayerNorm (the paper's 19 tensors); layernorm_noaffine also has 19 (gap 19);
    # layernorm: with gains and biases, 27
    norm: Optional[str] = None  # noqa: UP045

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self, "emsize", "nhead", "nhid", "nlayers")
        require(self.norm in (None, "layernorm", "layernorm_noaffine"),
                f"task.norm must be null, layernorm or layernorm_noaffine, got {self.norm!r}")
        self._check_stream("emsize", "nhead")


@dataclass
class Gpt2Config(_Wikitext2, TaskConfig):
    """Beyond the paper: GPT-2's architecture on E5's data and schedule."""

    n_embd: int = MISSING
    n_layer: int = MISSING
    n_head: int = MISSING
    n_inner: int = MISSING

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self, "n_embd", "n_layer", "n_head", "n_inner")
        self._check_stream("n_embd", "n_head")


@dataclass
class Multi30kConfig(_Text, TaskConfig):
    real_data: ClassVar[tuple[str, ...]] = ("multi30k",)
    d_model: int = MISSING
    d_inner: int = MISSING
    n_layers: int = MISSING
    n_head: int = MISSING
    d_k: int = MISSING
    d_v: int = MISSING
    max_len: int = MISSING
    min_freq: int = MISSING
    max_positions: int = MISSING
    label_smoothing: float = MISSING
    bleu: bool = MISSING
    bleu_max_len: int = MISSING
    synthetic_pairs: Optional[int] = None  # noqa: UP045

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_text()
        positive(self, "d_model", "d_inner", "n_layers", "n_head", "d_k", "d_v", "max_len",
                 "min_freq", "max_positions", "bleu_max_len")
        positive(self, "synthetic_pairs", allow_none=True)
        probability(self, "label_smoothing")
        # A sentence gets BOS and EOS; the sinusoidal table must cover the longest sequence.
        require(self.max_len >= 2, f"task.max_len must be >= 2 (pairs with a side longer are "
                                   f"dropped), got {self.max_len}")
        longest = max(self.max_len, self.bleu_max_len) + 2
        require(self.max_positions >= longest, f"task.max_positions must be >= {longest} "
                f"(task.max_len or task.bleu_max_len, plus BOS and EOS), got {self.max_positions}")


@dataclass
class PongConfig(TaskConfig):
    env_id: str = MISSING
    num_envs: int = MISSING
    num_steps: int = MISSING
    update_epochs: int = MISSING
    num_minibatches: int = MISSING
    gamma: float = MISSING
    gae_lambda: float = MISSING
    clip_coef: float = MISSING
    value_coef: float = MISSING
    entropy_coef: float = MISSING
    norm_adv: bool = MISSING
    frame_stack: int = MISSING
    noop_max: int = MISSING
    vector_env: str = MISSING
    eval_episodes: int = MISSING
    eval_max_steps: int = MISSING
    real_data: ClassVar[tuple[str, ...]] = ("pong",)  # the ROM, at every scale

    def needs(self) -> tuple[str, ...]:
        return self.real_data

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self, "num_envs", "num_steps", "update_epochs", "num_minibatches", "clip_coef",
                 "frame_stack", "eval_max_steps")
        require(self.num_envs * self.num_steps >= self.num_minibatches,
                "task.num_envs x task.num_steps must be at least task.num_minibatches")
        for name in ("gamma", "gae_lambda"):
            value = getattr(self, name)
            require(0 <= value <= 1, f"task.{name} must be in [0, 1], got {value}")
        at_least(self, "value_coef", 0)
        at_least(self, "entropy_coef", 0)
        at_least(self, "noop_max", 0)
        at_least(self, "eval_episodes", 0)
        one_of(self, "vector_env", ("async", "sync"))
        require(_registered_env(self.env_id), f"task.env_id {self.env_id!r} is not an "
                "environment gymnasium knows (with ale-py's Atari games), e.g. ALE/Pong-v5")


def _registered_env(env_id: str) -> bool:
    """Whether gymnasium (with ale-py's games registered) knows ``env_id``; True when they are
    not installed (the data check reports that)."""
    try:
        import ale_py
        import gymnasium as gym
    except ImportError:
        return True
    gym.register_envs(ale_py)
    try:
        gym.spec(env_id)
    except gym.error.Error:
        return False
    return True


@dataclass
class ImageNetConfig(_Synthetic, TaskConfig):
    real_data: ClassVar[tuple[str, ...]] = ("imagenet",)
    arch: str = MISSING
    batch_size: int = MISSING
    train_images: int = MISSING
    bn_gain_penalty: float = MISSING
    num_workers: int = MISSING
    channels_last: bool = MISSING
    image_size: int = MISSING
    resize: int = MISSING
    classes: int = MISSING
    n_val: Optional[int] = None  # noqa: UP045
    bn_group: Optional[int] = None  # noqa: UP045 - null: BN over each process's whole batch

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_sizes()
        one_of(self, "arch", ("resnet50", "resnet_tiny"))
        positive(self, "batch_size", "train_images", "image_size", "resize", "classes")
        positive(self, "n_val", "bn_group", allow_none=True)
        if self.bn_group is not None:  # BN needs 2 images a group, and groups fill the batch
            require(self.bn_group >= 2 and self.batch_size % self.bn_group == 0,
                    f"task.bn_group must be >= 2 and divide task.batch_size ({self.batch_size}), "
                    f"got {self.bn_group}")
        at_least(self, "bn_gain_penalty", 0)
        at_least(self, "num_workers", 0)


# -- the table of tasks --------------------------------------------------------------------------
@dataclass(frozen=True)
class PaperRuns:
    """What a task's paper-scale runs cost, for the plan (``make data ... PLAN=1``): its sweeps
    (conf/experiment/), its parameter count, one run's time on the paper's hardware
    (docs/experiments.md), and one run's training steps (epochs x iterations per epoch of its
    config), which turn a measured time per step (scripts/bench_gpu.py) into hours; None where a
    step is not one batch of a fixed size (PPO's updates, GPT-2's BPE stream)."""

    sweeps: tuple[str, ...]
    params_m: float
    hours_per_run: float
    hardware: str
    steps_per_run: int | None = None


@dataclass(frozen=True)
class TaskEntry:
    """A task's declaration: its class (``"module:Class"``, imported when a run needs it), its
    config's schema, whose ``real_data`` names every data item it may read, and what its
    paper-scale runs cost. Its name is the key in :data:`TASKS`, ``conf/task/<name>.yaml`` and
    ``conf/task_scale/<name>_smoke.yaml``."""

    target: str
    schema: type[TaskConfig]
    paper: PaperRuns


RTX = "an RTX 2080Ti"
TASKS: dict[str, TaskEntry] = {
    "mnist_cwn": TaskEntry("tasks.experiments.mnist:MnistCWN", MnistCWNConfig,
                           PaperRuns(("fig3_cwn",), 2.47, 1 / 60, "a P100", 5 * 240)),
    "mnist_mlp": TaskEntry("tasks.experiments.mnist:MnistMLP", MnistMLPConfig,
                           PaperRuns(("fig3_deep_mlp",), 60.9, 0.5, "a P100", 50 * 240)),
    # 199 epochs of ceil(50 000 / 128) = 391 iterations
    "cifar10_vgg11": TaskEntry("tasks.experiments.cifar:Cifar10Classifier", CifarConfig,
                               PaperRuns(("table1", "fig1_constraints", "fig2_granularity"), 28.1,
                                         1.0, RTX, 199 * 391)),
    "cifar10_resnet18": TaskEntry("tasks.experiments.cifar:Cifar10Classifier", CifarConfig,
                                  PaperRuns(("table1",), 11.2, 2.0, RTX, 199 * 391)),
    "cifar10_cgan": TaskEntry("tasks.experiments.cgan:Cifar10CGAN", CganConfig,
                              PaperRuns(("table1",), 4.83, 3.0, RTX, 121 * 196)),
    "wikitext2_transformer": TaskEntry("tasks.experiments.wikitext2:Wikitext2LM", Wikitext2Config,
                                       PaperRuns(("table1",), 13.8, 0.25, RTX, 20 * 2984)),
    # beyond the paper: E5's LM's time, for a model of about its size
    "wikitext2_gpt2": TaskEntry("tasks.experiments.wikitext2:Wikitext2GPT2", Gpt2Config,
                                PaperRuns(("table1",), 7.3, 0.25, f"{RTX} (as E5's LM)")),
    "multi30k_transformer": TaskEntry("tasks.experiments.multi30k:Multi30kTranslation",
                                      Multi30kConfig,
                                      PaperRuns(("table1",), 49.0, 1.0, RTX, 100 * 227)),
    "pong_ppo": TaskEntry("tasks.experiments.pong_ppo:PongPPO", PongConfig,
                          PaperRuns(("table1", "fig8_lamb_beta1"), 0.87, 1.5, RTX)),
    # 90 epochs of ceil(1 281 167 / 400) = 3 203 global batches
    "imagenet_resnet50": TaskEntry("tasks.experiments.imagenet:ImageNetResNet50", ImageNetConfig,
                                   PaperRuns(("fig9_imagenet",), 25.6, 180.0,
                                             "4 RTX 2080Tis (45 h)", 90 * 3203)),
}
