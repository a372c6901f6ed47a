"""Bad input, table-driven: config values, files planted in run folders, data in the real format
with wrong content, damaged or foreign checkpoints and records, crafted records for the
aggregator. Each case goes through the public entry point (``scripts/train.py``'s main, run in
this process so that a case costs a composition, not an interpreter start; ``scripts/aggregate.py``'s
main) and must end with exit status 2, exactly one ``error:`` line and no traceback, and must
leave every file as it was: no record, no checkpoint, nothing outside the folders named, no file
a planted link points to changed. The only things a refused run may leave are empty folders, an
empty ``.lock`` and Hydra's own log files (``.hydra/``, ``train.log``)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import os
import signal
import socket
import stat
import struct
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from tasks.runner import checkpoints, identity
from tests.helpers import compose

SMOKE = ("task=mnist_mlp", "scale=smoke", "logger=none", "progress=false")
# A FIFO opened without O_NONBLOCK never returns: the case fails instead of hanging. The limit
# leaves room for a process's first case (its imports) on a loaded machine or an xdist worker.
HANG_S = 120


class MyOptimizer(torch.optim.SGD):
    """A user's own optimiser: one option annotated, two typed only by their defaults."""

    def __init__(self, params, lr: float = 0.1, flag: bool = False, plain=False, scale=1.0,
                 steps=(1, 2)):
        super().__init__(params, lr=lr)


# -- the entry points, in this process -------------------------------------------------------------
def train(*args: str, hang_s: int = HANG_S) -> tuple[int, str]:
    """``scripts/train.py ARGS``: (exit status, stdout + stderr)."""
    from tasks.runner import cli

    text = io.StringIO()
    argv, code = sys.argv, 0

    def hang(*_):
        raise TimeoutError(f"the run hung for {hang_s}s")

    previous = signal.signal(signal.SIGALRM, hang)
    signal.alarm(hang_s)
    sys.argv = ["train.py", *args]
    try:
        with contextlib.redirect_stdout(text), contextlib.redirect_stderr(text):
            try:
                cli.main()
            except SystemExit as err:
                code = err.code if isinstance(err.code, int) else 1
            except BaseException as err:
                print(f"Traceback (escaped): {type(err).__name__}: {err}")
                code = -1
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        sys.argv = argv
    return code, text.getvalue()


def preflight(*args: str) -> tuple[int, str]:
    """What ``train(*args)`` does up to the checks made before Hydra creates any folder: compose
    (a composition error is one line and status 2, as tasks.runner.cli.main reports it), then
    the preflight callback itself (one line per problem and status 2). Status 0: accepted."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from tasks.runner.cli import Preflight, one_line

    text = io.StringIO()
    code = 0
    with contextlib.redirect_stdout(text), contextlib.redirect_stderr(text):
        try:
            cfg = compose(*args)
            Preflight().on_run_start(cfg)
        except (HydraException, OmegaConfBaseException) as err:
            print(f"error: {one_line(err)}")
            code = 2
        except SystemExit as err:
            code = err.code if isinstance(err.code, int) else 1
        except BaseException as err:
            print(f"Traceback (escaped): {type(err).__name__}: {err}")
            code = -1
    return code, text.getvalue()


def aggregate(root: Path, out: Path, *args: str) -> tuple[int, str]:
    from scripts import aggregate as cli

    text = io.StringIO()
    with contextlib.redirect_stdout(text), contextlib.redirect_stderr(text):
        try:
            code = cli.main([str(root), "--out", str(out), *args])
        except BaseException as err:
            print(f"Traceback (escaped): {type(err).__name__}: {err}")
            code = -1
    return code, text.getvalue()


# -- what "nothing written" means ------------------------------------------------------------------
def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry below ``root``: its type and, for files, a digest (FIFOs are never opened)."""
    out: dict[str, tuple] = {}
    for folder, dirs, names in os.walk(root):
        for name in dirs + names:
            path = Path(folder) / name
            info = os.lstat(path)
            key = str(path.relative_to(root))
            if stat.S_ISREG(info.st_mode):
                out[key] = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
            elif stat.S_ISLNK(info.st_mode):
                out[key] = ("link", os.readlink(path))
            else:
                out[key] = (stat.S_IFMT(info.st_mode),)
    return out


def allowed_new(key: str, entry: tuple, root: Path) -> bool:
    parts = Path(key).parts
    if entry[0] == stat.S_IFDIR:
        return True
    if parts[-1] == ".lock":
        return (root / key).stat().st_size == 0
    return ".hydra" in parts or parts[-1].endswith(".log")  # Hydra's job log


def assert_nothing_written(before: dict, root: Path) -> None:
    after = snapshot(root)
    changed = [k for k, v in before.items() if after.get(k) != v]
    new = [k for k, v in after.items() if k not in before and not allowed_new(k, v, root)]
    assert not changed and not new, f"changed {changed}, new {new}"


def assert_one_line(code: int, text: str, expected: str) -> None:
    lines = [line for line in text.splitlines() if line.strip()]
    assert "Traceback" not in text, text[-3000:]
    assert code == 2, text[-3000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), text[-3000:]
    assert expected in lines[0], lines[0]


# -- helpers that plant things ---------------------------------------------------------------------
def cell(tmp: Path, *overrides: str) -> Path:
    """The run folder of SMOKE + overrides in ``tmp/out``."""
    return identity.of(compose(*SMOKE, f"out_dir={tmp / 'out'}", *overrides)).directory(tmp / "out")


def victim(tmp: Path) -> Path:
    """A file outside every run folder, which no case may change."""
    path = tmp / "outside" / "precious.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("not a run's file\n")
    return path


def plant(name: str, kind: str) -> Callable[[Path], None]:
    """Put ``kind`` at ``<cell>/<name>``: a link to a file outside, a link to /dev/null, a FIFO,
    a folder, a socket, a hard link to a file outside, a plain file (for .hydra)."""

    def setup(tmp: Path) -> None:
        path = cell(tmp) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "symlink":
            path.symlink_to(victim(tmp))
        elif kind == "dangling":
            path.symlink_to(tmp / "outside" / "nothing-here")
        elif kind == "devnull":
            path.symlink_to("/dev/null")
        elif kind == "dirlink":
            target = victim(tmp).parent
            path.symlink_to(target, target_is_directory=True)
        elif kind == "fifo":
            os.mkfifo(path)
        elif kind == "folder":
            path.mkdir()
        elif kind == "file":
            path.write_text("a file where a folder belongs\n")
        elif kind == "socket":  # bound from its folder: a socket's path has at most 107 bytes
            here = os.getcwd()
            os.chdir(path.parent)
            try:
                sock = socket.socket(socket.AF_UNIX)
                sock.bind(path.name)
                sock.close()
            finally:
                os.chdir(here)
        elif kind == "hardlink":
            os.link(victim(tmp), path)
        else:
            raise AssertionError(kind)

    return setup


def write_idx(raw: Path, prefix: str, images: np.ndarray, labels: np.ndarray) -> None:
    raw.mkdir(parents=True, exist_ok=True)
    n, h, w = images.shape
    (raw / f"{prefix}-images-idx3-ubyte").write_bytes(
        struct.pack(">IIII", 2051, n, h, w) + images.astype(np.uint8).tobytes())
    (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(
        struct.pack(">II", 2049, len(labels)) + labels.astype(np.uint8).tobytes())


def mnist(labels_max: int = 9, size: int = 28, n: int = 40) -> Callable[[Path], None]:
    """Real-format MNIST idx files in ``tmp/data`` whose content may be wrong."""

    def setup(tmp: Path) -> None:
        rng = np.random.default_rng(0)
        raw = tmp / "data" / "MNIST" / "raw"
        for prefix in ("train", "t10k"):
            labels = rng.integers(0, 10, n)
            labels[0] = labels_max
            write_idx(raw, prefix, rng.integers(0, 255, (n, size, size)), labels)

    return setup


def cifar(damage: str) -> Callable[[Path], None]:
    """CIFAR-10 in the real pickle format: the real table of MD5s (nothing of a test's files
    matches it), or with ``own`` checksums a table that fits the files, whose content is wrong."""

    def setup(tmp: Path) -> None:
        from tests.test_cifar import write_cifar

        write_cifar(tmp / "data", n_train=20, n_test=10)
        folder = tmp / "data" / "cifar-10-batches-py"
        if damage == "crafted meta":  # unpickling it would create a file
            marker = tmp / "outside" / "ran"
            (folder / "batches.meta").write_bytes(
                b"cos\nsystem\n(S'mkdir -p " + str(marker).encode() + b"'\ntR.")
        elif damage == "crafted batch":
            (folder / "data_batch_1").write_bytes(b"cos\nsystem\n(S'true'\ntR.")
        elif damage == "missing batch":
            (folder / "data_batch_3").unlink()

    return setup


SMALL = "task.n_train=100 task.n_test=50 task.epochs=2"  # a run of a second or two


@functools.cache
def _reference_checkpoint() -> bytes:
    """The checkpoint a SMALL run leaves (trained once per test session)."""
    from tasks.runner.loop import run

    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose(*SMOKE, *SMALL.split(), f"out_dir={tmp}", f"data_dir={tmp}/data",
                      "checkpoint.keep=true")
        run(cfg)
        return (identity.of(cfg).directory(tmp) / "checkpoint.pt").read_bytes()


def checkpoint(change: Callable[[dict], None]) -> Callable[[Path], None]:
    """A checkpoint with the right checksum and fingerprint whose content does not fit."""

    def setup(tmp: Path) -> None:
        target = cell(tmp, *SMALL.split()) / "checkpoint.pt"
        target.parent.mkdir(parents=True)
        target.write_bytes(_reference_checkpoint())
        payload = checkpoints.load(target, identity.of(compose(*SMOKE, *SMALL.split())).fingerprint)
        change(payload)
        checkpoints.save(target, payload)

    return setup


def _other_shapes(payload: dict) -> None:
    payload["modules"]["model"] = {k: torch.zeros(*(s + 1 for s in v.shape))
                                   for k, v in payload["modules"]["model"].items()}


def _missing_weights(payload: dict) -> None:
    payload["modules"]["model"].pop(next(iter(payload["modules"]["model"])))


class Raw(str):
    """JSON text put into a record as it is."""


def record_with(config: object, **fields) -> Callable[[Path], None]:
    """A record of schema 1 in the cell's folder whose config is ``config``."""

    def setup(tmp: Path) -> None:
        path = cell(tmp) / "record.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"schema": 1, "status": "ok", "sweep": "adhoc", "scale": "smoke",
                           "task": "mnist_mlp", "optimizer": "nero", "lr": 0.01, "seed": 0,
                           "config": "@", **fields})
        path.write_text(text.replace('"@"', config if isinstance(config, Raw) else
                                     json.dumps(config)))

    return setup


def deep(n: int) -> str:
    """A config nested ``n`` levels deep, as JSON text (too deep for json's own encoder)."""
    return '{"task": ' + '{"a": ' * n + "{}" + "}" * n + "}"


def user_conf(text: str, name: str = "mine") -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        folder = tmp / "conf" / "optimizer"
        folder.mkdir(parents=True)
        (folder / f"{name}.yaml").write_text(text)

    return setup


MY_OPT = ("hydra.searchpath=[file://{tmp}/conf]", "optimizer=mine")
MINE = user_conf("_target_: tests.test_bad_input.MyOptimizer\nlr: 0.1\n")


# -- the table -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    id: str
    args: tuple[str, ...]  # overrides; {tmp} is the case's folder
    expected: str  # in the error line
    setup: Callable[[Path], None] | None = None
    smoke: bool = True  # prefix SMOKE


def case(id: str, args: str, expected: str, setup=None, smoke: bool = True) -> Case:
    return Case(id, tuple(args.split()), expected, setup, smoke)


TRAIN = [
    # 1. an option's type, from the class's signature: Nero, LAMB, Madam, torch's, a user's
    case("nero-bool-off", "optimizer.mean_constraint=off", "mean_constraint must be true or false"),
    case("nero-bool-quoted-false", "optimizer.mean_constraint='false'", "(quoted, so a string)"),
    case("nero-bool-maybe", "optimizer.mean_constraint=maybe", "got 'maybe'"),
    case("nero-norm-yes", "optimizer.norm_constraint=yes", "norm_constraint must be true or false"),
    case("nero-constraints-int", "+optimizer.constraints=1", "constraints must be true or false"),
    case("nero-constraints-off", "+optimizer.constraints=off", "constraints must be true or false"),
    case("nero-beta-string", "optimizer.beta='0.9'", "beta must be a finite number"),
    case("nero-bias-scale-list", "optimizer.bias_scale=[1]", "bias_scale must be a finite number"),
    case("nero-fused-on", "optimizer.fused=on", "fused must be true or false"),
    case("lamb-constraints-off", "optimizer=lamb optimizer.constraints=off", "LAMB"),
    case("lamb-bias-correction-yes", "optimizer=lamb optimizer.bias_correction=yes",
         "bias_correction must be true or false"),
    case("lamb-betas-three", "optimizer=lamb optimizer.betas=[0.9,0.99,0.5]", "betas must be"),
    case("lamb-max-norm-string", "optimizer=lamb optimizer.max_weight_norm=big",
         "max_weight_norm must be a finite number"),
    case("madam-constraints-maybe", "optimizer=madam optimizer.constraints=maybe", "Madam"),
    case("madam-p-scale-true", "optimizer=madam optimizer.p_scale=true", "p_scale must be"),
    case("adamw-amsgrad-yes", "optimizer=adamw +optimizer.amsgrad=yes", "amsgrad must be true"),
    case("adamw-amsgrad-quoted", "optimizer=adamw +optimizer.amsgrad='false'", "quoted"),
    case("adamw-maximize-no", "optimizer=adamw +optimizer.maximize=no", "maximize must be"),
    case("adamw-foreach-off", "optimizer=adamw +optimizer.foreach=off", "foreach must be"),
    case("adamw-capturable-int", "optimizer=adamw +optimizer.capturable=1", "capturable must be"),
    case("adamw-betas-one", "optimizer=adamw optimizer.betas=[0.9]", "betas must be a list of 2"),
    case("adamw-weight-decay-bool", "optimizer=adamw optimizer.weight_decay=true",
         "weight_decay must be a finite number"),
    case("adam-amsgrad-on", "optimizer=adam +optimizer.amsgrad=on", "amsgrad must be true"),
    case("sgd-nesterov-yes", "optimizer=sgd +optimizer.nesterov=yes", "nesterov must be true"),
    case("sgd-momentum-inf", "optimizer=sgd optimizer.momentum=inf", "momentum must be a finite"),
    case("role-option-off", "task=cifar10_cgan +optimizer.modules.D.mean_constraint=off",
         "optimizer.modules.D.mean_constraint must be true or false"),
    case("user-annotated-bool", " ".join(MY_OPT) + " +optimizer.flag=off",
         "MyOptimizer: optimizer.flag must be true or false", MINE),
    case("user-default-bool", " ".join(MY_OPT) + " +optimizer.plain=maybe",
         "optimizer.plain must be true or false", MINE),
    case("user-default-float", " ".join(MY_OPT) + " +optimizer.scale='3'",
         "optimizer.scale must be a finite number", MINE),
    case("user-default-tuple", " ".join(MY_OPT) + " +optimizer.steps=[1]",
         "optimizer.steps must be a list of 2", MINE),
    # 6. non-finite numbers
    case("grad-clip-inf", "task.grad_clip=inf", "task.grad_clip must be a finite number"),
    case("sigma-inf", "task=mnist_cwn task.sigma=inf", "task.sigma must be a finite number"),
    case("sigma-nan", "task=mnist_cwn task.sigma=nan", "task.sigma must be a finite number"),
    case("opt-grad-clip-inf", "optimizer.grad_clip=inf", "grad_clip must be a finite number"),
    case("beta-nan", "optimizer.beta=nan", "optimizer.beta must be a finite number"),
    case("minutes-inf", "checkpoint.every_minutes=inf", "checkpoint.every_minutes must be a finite"),
    case("vgg-width-inf", "task=cifar10_vgg11 task.width=inf", "task.width must be a finite"),
    case("bn-penalty-inf", "task=imagenet_resnet50 task.bn_gain_penalty=inf",
         "task.bn_gain_penalty must be a finite"),
    case("entropy-inf", "task=pong_ppo task.entropy_coef=inf", "task.entropy_coef must be a finite"),
    case("gamma-inf", "task=wikitext2_transformer task.schedule.gamma=inf",
         "task.schedule.gamma must be a finite"),
    case("betas-inf", "optimizer=adamw optimizer.betas=[0.9,inf]",
         "optimizer.betas[1] must be a finite number"),
    case("lr-nan", "optimizer.lr=nan", "optimizer.lr must be a finite number"),
    # 8. ranges the models and loaders need
    case("cgan-z-dim-6", "task=cifar10_cgan task.z_dim=6", "task.z_dim must split into 4 chunks"),
    case("cgan-workers-negative", "task=cifar10_cgan task.num_workers=-1",
         "task.num_workers must be >= 0"),
    case("cgan-embed-small", "task=cifar10_cgan task.embed_classes=5", "task.embed_classes"),
    case("vgg-image-1", "task=cifar10_vgg11 task.image_size=1", "task.image_size must be from 32"),
    case("vgg-image-16", "task=cifar10_vgg11 task.image_size=16", "task.image_size must be from 32"),
    case("vgg-image-64", "task=cifar10_vgg11 task.image_size=64", "task.image_size must be from 32"),
    case("cifar-classes-5", "task=cifar10_resnet18 task.synthetic=false task.classes=5",
         "task.classes must be >= 10"),
    case("imagenet-bn-group-7", "task=imagenet_resnet50 task.bn_group=7",
         "task.bn_group must be >= 2 and divide task.batch_size"),
    case("imagenet-bn-group-1", "task=imagenet_resnet50 task.bn_group=1", "task.bn_group"),
    case("multi30k-max-len-1", "task=multi30k_transformer task.max_len=1", "task.max_len must be"),
    case("multi30k-positions", "task=multi30k_transformer task.max_positions=20",
         "task.max_positions must be >= "),
    case("multi30k-bleu-len", "task=multi30k_transformer task.bleu_max_len=500",
         "task.max_positions must be >= 502"),
    case("pong-env-unknown", "task=pong_ppo task.env_id=NoSuchGame-v4",
         "task.env_id 'NoSuchGame-v4' is not an environment"),
    case("pong-env-ale-unknown", "task=pong_ppo task.env_id=ALE/Nope-v5", "task.env_id"),
    case("role-not-in-task", "+optimizer.modules.D.beta=0.5",
         "optimizer.modules names D, which task mnist_mlp does not have"),
    case("role-not-in-cgan", "task=cifar10_cgan +optimizer.modules.gen.beta=0.5",
         "optimizer.modules names gen"),
    case("modules-not-mapping", "optimizer.modules=abc", "optimizer.modules must map roles"),
    # 9. run keys, paths and config files
    case("out-dir-empty", "out_dir=", "out_dir must name a folder"),
    case("data-dir-empty", "data_dir=", "data_dir must name a folder"),
    case("searchpath-missing", "hydra.searchpath=[file://{tmp}/no-such-folder]",
         "hydra.searchpath names file://"),
    case("broken-user-yaml", "hydra.searchpath=[file://{tmp}/conf] optimizer=broken",
         "is not valid YAML", user_conf("_target_: torch.optim.SGD\nlr: [0.1\n", "broken")),
    # values that hold today: they must keep holding
    case("precision-fp8", "precision=fp8", "expected one of"),
    case("compile-maybe", "compile=maybe", "compile"),
    case("seed-abc", "seed=abc", "seed"),
    case("seed-negative", "seed=-1", "seed must be a whole number"),
    case("seed-float", "seed=1.5", "seed"),
    case("epochs-zero", "task.epochs=0", "task.epochs must be > 0"),
    case("epochs-abc", "task.epochs=abc", "task.epochs"),
    case("batch-zero", "task.batch_size=0", "task.batch_size must be > 0"),
    case("batch-float", "task.batch_size=2.5", "task.batch_size"),
    case("width-zero", "task.width=0", "task.width must be > 0"),
    case("depth-negative", "task.depth=-3", "task.depth must be > 0"),
    case("n-train-zero", "task.n_train=0", "task.n_train must be > 0"),
    case("log-every-zero", "log_every=0", "log_every must be > 0"),
    case("check-every-zero", "check_every=0", "check_every must be > 0"),
    case("threads-zero", "threads=0", "threads must be > 0"),
    case("threads-abc", "threads=abc", "threads"),
    case("device-tpu", "device=tpu", "device must be auto"),
    case("deterministic-maybe", "deterministic=maybe", "deterministic must be auto"),
    case("diagnostics-maybe", "diagnostics=maybe", "diagnostics"),
    case("every-steps-zero", "checkpoint.every_steps=0", "checkpoint.every_steps must be > 0"),
    case("cluster-gpus-negative", "cluster.gpus=-1", "cluster.gpus must be >= 0"),
    case("cluster-mem-zero", "cluster.mem_gb=0", "cluster.mem_gb must be > 0"),
    case("init-timeout-zero", "logger.init_timeout=0", "logger.init_timeout must be > 0"),
    case("sweep-escape", "sweep=../../escape", "sweep must be a plain name"),
    case("sweep-slash", "sweep=a/b", "sweep must be a plain name"),
    case("unknown-top-key", "+foo=1", "unknown config key foo"),
    case("unknown-task-key", "+task.epoch=5", "unknown config key task.epoch"),
    case("unknown-option", "+optimizer.momentum=0.5", "optimizer Nero has no option momentum"),
    case("lr-negative", "optimizer.lr=-1", "optimizer.lr must be a finite number > 0"),
    case("lr-zero", "optimizer.lr=0", "optimizer.lr must be a finite number > 0"),
    case("lr-string", "optimizer.lr=abc", "optimizer.lr must be a finite number > 0"),
    case("nero-beta-range", "optimizer.beta=1.5", "beta"),
    case("unknown-task", "task=nosuch", "task"),
    case("unknown-optimizer", "optimizer=nosuch", "optimizer"),
    case("target-missing", "optimizer._target_=nosuch.Optim", "cannot be imported"),
    case("target-not-optimizer", "optimizer._target_=pathlib.Path",
         "is not a torch.optim.Optimizer class"),
    case("schedule-gamma-negative", "task.schedule.gamma=-1", "task.gamma must be > 0"),
    case("cwn-sigma-zero", "task=mnist_cwn task.sigma=0", "task.sigma must be > 0"),
    case("pong-gamma-2", "task=pong_ppo task.gamma=2", "task.gamma must be in [0, 1]"),
    case("pong-vector-env", "task=pong_ppo task.vector_env=threads", "task.vector_env"),
    case("dropout-one", "task=multi30k_transformer task.dropout=1", "task.dropout must be in"),
    case("text-heads", "task=wikitext2_transformer task.nhead=3", "must be a multiple of"),
    case("fid-protocol", "task=cifar10_cgan task.fid.protocol=mine", "task.fid.protocol"),
    case("vgg-arch", "task=cifar10_vgg11 task.arch=vgg19", "task.arch must be one of"),
    # 2 and 9. files in the run folder that are not what they claim to be
    case("lock-symlink", "", ".lock is a symbolic link", plant(".lock", "symlink")),
    case("lock-dangling", "", ".lock is a symbolic link", plant(".lock", "dangling")),
    case("lock-folder", "", ".lock is a folder", plant(".lock", "folder")),
    case("lock-fifo", "", ".lock is a FIFO", plant(".lock", "fifo")),
    case("lock-hardlink", "", ".lock is a hard link", plant(".lock", "hardlink")),
    case("lock-socket", "", ".lock is a socket", plant(".lock", "socket")),
    case("record-symlink", "", "record.json is a symbolic link", plant("record.json", "symlink")),
    case("record-devnull", "", "record.json is a symbolic link", plant("record.json", "devnull")),
    case("record-fifo", "", "record.json is a FIFO", plant("record.json", "fifo")),
    case("record-socket", "", "record.json is a socket", plant("record.json", "socket")),
    case("checkpoint-symlink", "", "checkpoint.pt is a symbolic link",
         plant("checkpoint.pt", "symlink")),
    case("checkpoint-fifo", "", "checkpoint.pt is a FIFO", plant("checkpoint.pt", "fifo")),
    case("checkpoint-folder", "", "checkpoint.pt is a folder", plant("checkpoint.pt", "folder")),
    case("hydra-dir-symlink", "", ".hydra is a symbolic link", plant(".hydra", "dirlink")),
    case("hydra-dir-file", "", ".hydra is a file", plant(".hydra", "file")),
    case("hydra-config-symlink", "", "config.yaml is a symbolic link",
         plant(".hydra/config.yaml", "symlink")),
    case("hydra-hydra-symlink", "", "hydra.yaml is a symbolic link",
         plant(".hydra/hydra.yaml", "symlink")),
    case("hydra-overrides-fifo", "", "overrides.yaml is a FIFO",
         plant(".hydra/overrides.yaml", "fifo")),
    case("hydra-log-symlink", "", "train.log is a symbolic link", plant("train.log", "symlink")),
    # 9. records that are records of nothing
    case("record-config-string", "", "record of another configuration (it stores no config)",
         record_with("task=mnist_mlp")),
    case("record-config-list", "", "record of another configuration (it stores no config)",
         record_with(["task", "mnist_mlp"])),
    # 7. checkpoints of the right checksum and configuration, other content
    case("checkpoint-other-shapes", SMALL, "does not fit this run's model", checkpoint(_other_shapes)),
    case("checkpoint-missing-weights", SMALL, "force=true", checkpoint(_missing_weights)),
    case("checkpoint-no-modules", SMALL, "force=true", checkpoint(lambda p: p.pop("modules"))),
    case("checkpoint-no-rng", SMALL, "force=true", checkpoint(lambda p: p.pop("rng"))),
    case("checkpoint-no-state", SMALL, "force=true", checkpoint(lambda p: p.pop("state"))),
    case("checkpoint-optimizer-state", SMALL, "force=true",
         checkpoint(lambda p: p["optimizers"].update(model={"state": {}, "param_groups": []}))),
    case("checkpoint-roles", SMALL, "force=true",
         checkpoint(lambda p: p.update(modules={"G": p["modules"]["model"]}))),
    # 6. real-format data with the wrong content; 3. CIFAR-10 verified before unpickling
    case("mnist-label-200", "task.synthetic=false download=false data_dir={tmp}/data",
         "labels from", mnist(labels_max=200)),
    case("mnist-label-10", "task.synthetic=false download=false data_dir={tmp}/data",
         "not MNIST's 0-9", mnist(labels_max=10)),
    case("mnist-images-10x10", "task.synthetic=false download=false data_dir={tmp}/data",
         "10x10 images, not MNIST's 28x28", mnist(size=10)),
    case("mnist-images-32x32", "task.synthetic=false download=false data_dir={tmp}/data",
         "32x32 images", mnist(size=32)),
    case("cifar-crafted-meta", "task=cifar10_vgg11 task.synthetic=false task.n_train=null "
         "download=false data_dir={tmp}/data", "torchvision's MD5 check", cifar("crafted meta")),
    case("cifar-crafted-batch", "task=cifar10_vgg11 task.synthetic=false task.n_train=null "
         "download=false data_dir={tmp}/data", "data_batch_1", cifar("crafted batch")),
    case("cifar-not-the-real-files", "task=cifar10_resnet18 task.synthetic=false "
         "task.n_train=null download=false data_dir={tmp}/data", "fail(s) torchvision's MD5",
         cifar("none")),
]


# Config cases that also go through scripts/train.py's main, to show the whole path's status
# and output: one of each kind of check.
THROUGH_CLI = {"nero-bool-off", "adamw-amsgrad-yes", "grad-clip-inf", "cgan-z-dim-6",
               "role-not-in-task", "out-dir-empty", "precision-fp8", "unknown-task-key"}


@pytest.mark.parametrize("c", TRAIN, ids=[c.id for c in TRAIN])
def test_bad_input_of_a_run_is_one_line_and_changes_nothing(tmp_path, c):
    if c.setup is not None:
        c.setup(tmp_path)
    args = [a.replace("{tmp}", str(tmp_path)) for a in c.args]
    defaults = [f"out_dir={tmp_path / 'out'}", f"data_dir={tmp_path / 'data'}"]
    before = snapshot(tmp_path)
    # A value refused by the checks before any folder exists costs one composition here; the
    # cases that plant files, name config folders, or stand for the whole path go through the CLI.
    whole = c.setup is not None or any(a.startswith("hydra.") for a in args) or c.id in THROUGH_CLI
    code, text = (train if whole else preflight)(*(SMOKE if c.smoke else ()), *defaults, *args)
    assert_one_line(code, text, c.expected)
    assert_nothing_written(before, tmp_path)
    assert not (tmp_path / "outside" / "ran").exists()  # no crafted pickle was loaded


def test_a_full_disk_at_start_is_one_line(tmp_path, monkeypatch):
    """A folder with room for an empty file but not for a run's files: refused by the probe,
    before Hydra writes its own files."""
    import errno
    import tempfile

    real = tempfile.NamedTemporaryFile

    class Full:
        def __init__(self, *args, **kwargs):
            self.f = real(*args, **kwargs)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            if len(data) > 4096:  # 4 KiB free
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.f.write(data)

        def __getattr__(self, name):
            return getattr(self.f, name)

    from tasks.runner import folders

    monkeypatch.setattr(folders.tempfile, "NamedTemporaryFile", Full)
    code, text = train(*SMOKE, f"out_dir={tmp_path / 'out'}", f"data_dir={tmp_path / 'data'}")
    assert_one_line(code, text, "No space left on device")
    assert not any((tmp_path / "out").rglob("*.yaml"))


def test_a_record_nested_too_deeply_is_trained_again_in_one_line(tmp_path):
    """As any damaged record: one line says so, and the cell is trained again."""
    path = cell(tmp_path, *SMALL.split()) / "record.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"schema": 1, "status": "ok", "config": ' + deep(5000) + "}")
    code, text = train(*SMOKE, *SMALL.split(), f"out_dir={tmp_path / 'out'}",
                       f"data_dir={tmp_path / 'data'}", hang_s=300)
    assert code == 0 and "Traceback" not in text, text[-3000:]
    assert any("record.json" in line and "nested too deeply" in line
               and "training the cell again" in line for line in text.splitlines()), text[-3000:]
    assert json.loads(path.read_text())["status"] == "ok"


# -- 4. the aggregator: crafted records never name a path outside --out -------------------------
def good_record(**changes) -> dict:
    base = {"schema": 1, "status": "ok", "sweep": "table1", "scale": "smoke",
            "task": "cifar10_vgg11", "optimizer": "nero", "lr": 0.01, "seed": 0, "variant": {},
            "final": 10.0, "metric": "top1_error", "goal": "min", "hardware": "test CPU",
            "history": [{"epoch": 1, "top1_error": 10.0}], "config": {"seed": 0},
            "git": {"commit": "0" * 16, "dirty": False}, "finished_at": "2026-01-01"}
    return {**base, **changes}


AGGREGATOR = [
    ("scale-escape", {"scale": "../../elsewhere"}, "scale must be a plain name"),
    ("scale-absolute", {"scale": "/tmp/elsewhere"}, "scale must be a plain name"),
    ("scale-slash", {"scale": "a/b"}, "scale must be a plain name"),
    ("task-escape", {"task": "../x"}, "task must be a plain name"),
    ("optimizer-dotdot", {"optimizer": ".."}, "optimizer must be a plain name"),
    ("sweep-escape", {"sweep": "../table1"}, "sweep must be a plain name"),
    ("scale-not-string", {"scale": ["smoke"]}, "scale must be a plain name"),
    ("lr-negative", {"lr": -1}, "optimizer.lr must be a finite number > 0"),
    ("seed-string", {"seed": "0; rm"}, "seed must be a whole number"),
    ("config-string", {"config": "seed=0"}, "its config is a str, not a mapping"),
    ("config-list", {"config": [1, 2]}, "its config is a list, not a mapping"),
    ("config-deep", {"config": Raw(deep(5000))}, "nested too deeply"),
]


@pytest.mark.parametrize("fields,expected", [a[1:] for a in AGGREGATOR],
                         ids=[a[0] for a in AGGREGATOR])
def test_a_crafted_record_is_ignored_by_the_aggregator(tmp_path, fields, expected):
    root = tmp_path / "results"
    for seed, scale in ((0, "smoke"), (1, "paper")):  # two scales: a folder per scale
        path = root / "table1" / f"good{seed}" / "record.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(good_record(seed=seed, scale=scale)))
    bad = root / "table1" / "bad" / "record.json"
    bad.parent.mkdir(parents=True)
    raw = {k: v for k, v in fields.items() if isinstance(v, Raw)}
    text = json.dumps(good_record(**{k: "@" if k in raw else v for k, v in fields.items()}))
    for value in raw.values():
        text = text.replace('"@"', value)
    bad.write_text(text)
    out = tmp_path / "results" / "artefacts"
    before = {k: v for k, v in snapshot(tmp_path).items()}
    code, text = aggregate(root, out, "--only", "table1")  # no figure: fast
    assert "Traceback" not in text, text
    assert code in (0, 2), text
    ignored = [line for line in text.splitlines() if line.startswith("ignored ")]
    assert any("bad/record.json" in line and expected in line for line in ignored), text
    after = snapshot(tmp_path)
    outside = [k for k in after if k not in before and not (tmp_path / k).is_relative_to(out)]
    assert not outside and all(after.get(k) == v for k, v in before.items()), outside


def test_a_string_that_reads_as_a_bool_is_quoted_in_a_difference():
    """A record of ``mean_constraint: 'false'`` (a string, accepted before option types were
    checked) against a run of ``false``: the message must not read "false vs false"."""
    theirs = {"optimizer": {"mean_constraint": "false"}}
    ours = {"optimizer": {"mean_constraint": False}}
    assert identity.differences(theirs, ours) == "optimizer.mean_constraint 'false' vs false"
