"""The CUDA paths (tests marked gpu, skipped without CUDA; ``make gpu-check`` runs them).

Each test is sized to run in well under a minute on one GPU, compilation included. Where the
logic is the same on the CPU (the augmentation's distribution, the compiled graph of Nero with
CPU tensors sent through it), the test is parametrised over the device and its CPU case runs in
every suite.

Tolerances are float32 rounding, derived once in :func:`rounding_bound`: two paths that compute
the same float32 function in a different order differ by a few roundings per operation and by
one rounding per level of a reduction tree.
"""

from __future__ import annotations

import copy
import io
import json
import math
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import nero.nero as nero_module
from nero import LAMB, Madam, Nero
from tests.helpers import (
    REPO,
    assert_resumed_as_uninterrupted,
    devices,
    first,
    killed_and_resumed,
    run_cell,
)

EPS32 = torch.finfo(torch.float32).eps
TASKS = sorted(p.stem for p in (REPO / "conf" / "task").glob("*.yaml"))
gpu = pytest.mark.gpu


def rounding_bound(reference: torch.Tensor, other: torch.Tensor | None = None) -> torch.Tensor:
    """Elementwise bound on |a - b| for two float32 computations of one optimiser step.

    An element passes through about 8 float32 operations (each path rounds each to within half
    an ulp, so the two differ by at most 8 ulps of the tensor's largest entry) and through
    reductions over at most ``numel`` entries (pairwise or tree summation: one rounding per
    level, log2(numel) levels); the factor 4 covers the square root and the division of the
    normalisation, which pass a relative error on at most doubled. Low-precision parameters
    are stored rounded, so one ulp of their own type (at either value) is added.
    """
    ref = reference.detach().double()
    n = max(reference.numel(), 2)
    bound = 4 * (math.log2(n) + 8) * EPS32 * ref.abs().max()
    if reference.dtype in (torch.float16, torch.bfloat16):
        big = ref.abs() if other is None else torch.maximum(ref.abs(), other.detach().double().abs())
        bound = bound + torch.finfo(reference.dtype).eps * big
    return bound + torch.finfo(torch.float32).tiny


def assert_step_close(got: torch.Tensor, want: torch.Tensor, what: str) -> None:
    diff = (got.detach().double() - want.detach().double().to(got.device)).abs()
    bound = rounding_bound(want.to(got.device), got)
    worst = float((diff - bound).max())
    assert worst <= 0, f"{what}: differs beyond float32 rounding (by {worst:.3g} past the bound)"


# -- the optimisers ---------------------------------------------------------------------------
class Net(nn.Module):
    """A conv weight (channels_last on the device), Linear layers, an embedding, a LayerNorm."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(16, 12)
        self.ln = nn.LayerNorm(12)
        self.conv = nn.Conv2d(3, 8, 3)
        self.fc = nn.Linear(12, 24)
        self.head = nn.Linear(24, 5)


def nero_groups(net: Net) -> list[dict]:
    """Three groups with their own lr, beta and constraints."""
    return [
        {"params": [net.conv.weight, net.fc.weight, net.head.weight], "lr": 0.01},
        {"params": [net.emb.weight], "lr": 0.02, "beta": 0.99, "mean_constraint": False},
        {"params": [net.ln.weight, net.ln.bias, net.conv.bias, net.fc.bias, net.head.bias],
         "lr": 0.005},
    ]


def make_net(device: str, dtype: torch.dtype) -> Net:
    torch.manual_seed(0)
    net = Net().to(device=device, dtype=dtype)
    return net.to(memory_format=torch.channels_last)  # only the 4-d conv weight changes layout


def random_grads(net: nn.Module, step: int, nonfinite: bool) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(500 + step)
    grads = []
    for p in net.parameters():
        grad = torch.randn(p.shape, generator=g)
        if nonfinite and p is net.fc.weight:
            grad[3, 5] = float("nan")
        if nonfinite and p is net.fc.bias:
            grad[1] = float("inf")
        grads.append(grad.to(device=p.device, dtype=p.dtype))
    return grads


@pytest.fixture
def compiled_path(monkeypatch):
    """Counts the calls of Nero's compiled graph, and sends CPU tensors through it too (private
    names: how many tensors the graph took is not visible outside, and without a GPU the switch
    is the only way to reach it)."""
    calls = []
    real = nero_module._compiled_weights

    def counted(items, hyper):
        calls.append(len(items))
        return real(items, hyper)

    monkeypatch.setattr(nero_module, "_compiled_weights", counted)
    monkeypatch.setattr(nero_module, "_COMPILE_ON_CPU", True)
    monkeypatch.setattr(nero_module._native, "load", lambda: None)
    return calls


@pytest.mark.parametrize("device,dtype", [
    pytest.param("cuda", torch.float32, marks=gpu),
    pytest.param("cuda", torch.bfloat16, marks=gpu),
    pytest.param("cuda", torch.float16, marks=gpu),
    pytest.param("cpu", torch.float32, marks=pytest.mark.slow),
])
def test_nero_compiled_graph_matches_plain_path_step_by_step(device, dtype, compiled_path):
    """Each step from the same state: the compiled graph's result against the plain path's.

    The plain twin is rebuilt from the compiled side's weights and state before every step, so
    the comparison is of one step (no trajectory), and the compiled side's weights are never
    written from outside (which would send them down the plain path once)."""
    net = make_net(device, dtype)
    opt = Nero(nero_groups(net), fused=True)
    base = [group["lr"] for group in opt.param_groups]
    for t in range(6):
        for group, lr in zip(opt.param_groups, base):
            group["lr"] = lr * (1.0 - t / 8)  # a schedule: the graph takes lr as an input
        twin = copy.deepcopy(net)
        twin_opt = Nero(nero_groups(twin), fused=False)  # projects twin: overwritten next
        with torch.no_grad():
            for q, p in zip(twin.parameters(), net.parameters()):
                q.copy_(p)
        twin_opt.load_state_dict(copy.deepcopy(opt.state_dict()))
        for model, grads in ((net, random_grads(net, t, t == 2)), (twin, random_grads(twin, t, t == 2))):
            for p, g in zip(model.parameters(), grads):
                p.grad = g
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # a compile failure would fall back
            warnings.filterwarnings("ignore", "Nero: .* non-finite gradient", RuntimeWarning)
            opt.step()
            twin_opt.step()
        for (name, p), q in zip(net.named_parameters(), twin.parameters()):
            assert_step_close(p, q, f"step {t + 1}, {name}")
            assert_step_close(opt.state[p]["v"], twin_opt.state[q]["v"], f"step {t + 1}, v of {name}")
    assert len(compiled_path) >= 6  # the weights really went through the compiled graph
    assert net.conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert opt.nonfinite_count == 2  # a neuron of fc.weight and an entry of fc.bias, at step 3


def madam_lamb_cases() -> list:
    """Factories taking (params, plain): plain=True is the per-tensor reference path."""
    return [
        pytest.param(lambda ps, plain: Madam(ps, lr=0.01, fused=not plain), id="madam"),
        pytest.param(lambda ps, plain: Madam(ps, lr=0.01, constraints=True, fused=not plain),
                     id="madam-cs"),
        pytest.param(lambda ps, plain: LAMB(ps, lr=0.01, betas=(0.0, 0.999), fused=not plain,
                                            foreach=None if not plain else False), id="lamb"),
        pytest.param(lambda ps, plain: LAMB(ps, lr=0.01, constraints=True, weight_decay=0.01,
                                            fused=not plain, foreach=None if not plain else False),
                     id="lamb-cs"),
    ]


@gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("make", madam_lamb_cases())
def test_madam_and_lamb_cuda_steps_match_the_cpu_plain_path(make, dtype):
    """Each step from the same state: CUDA (LAMB's multi-tensor kernels for float32) against
    the plain per-tensor path on the CPU."""
    net = make_net("cuda", dtype)
    opt = make(net.parameters(), False)
    for t in range(5):
        twin = copy.deepcopy(net).cpu()
        twin_opt = make(twin.parameters(), True)
        twin_opt.load_state_dict(copy.deepcopy(opt.state_dict()))  # moved to the CPU
        for model in (net, twin):
            for p, g in zip(model.parameters(), random_grads(model, t, False)):
                p.grad = g
        opt.step()
        twin_opt.step()
        for (name, p), q in zip(net.named_parameters(), twin.parameters()):
            assert_step_close(p, q, f"step {t + 1}, {name}")


def resume_cases() -> list:
    nero_, madam, lamb = (lambda ps: Nero(ps, lr=0.01), lambda ps: Madam(ps, lr=0.01, constraints=True),
                          lambda ps: LAMB(ps, lr=0.01, betas=(0.9, 0.999)))
    return [
        pytest.param("cuda", nero_, marks=gpu, id="cuda-nero"),
        pytest.param("cuda", madam, marks=gpu, id="cuda-madam-cs"),
        pytest.param("cuda", lamb, marks=gpu, id="cuda-lamb"),
        # CPU tensors sent through Nero's compiled graph: what CUDA tensors take
        pytest.param("cpu", nero_, marks=pytest.mark.slow, id="cpu-compiled-nero"),
    ]


def train_steps(net: Net, opt, start: int, stop: int) -> None:
    for t in range(start, stop):
        for p, g in zip(net.parameters(), random_grads(net, t, False)):
            p.grad = g
        opt.step()


@pytest.mark.parametrize("device,make", resume_cases())
def test_state_dicts_moved_through_the_cpu_resume_exactly(device, make, compiled_path):
    """Train 6 steps on the device; or train 3, save to the CPU (as a checkpoint does), load
    into a new model and optimiser on the device, train 3 more: identical bit for bit. (Nero's
    compiled graph must know the loaded weights as its own, or it rounds them differently.)"""
    a = make_net(device, torch.float32)
    opt_a = make(a.parameters())
    train_steps(a, opt_a, 0, 6)
    b = make_net(device, torch.float32)
    opt_b = make(b.parameters())
    train_steps(b, opt_b, 0, 3)
    buf = io.BytesIO()
    torch.save({"model": b.state_dict(), "opt": opt_b.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, map_location="cpu", weights_only=True)
    assert all(v.device.type == "cpu" for v in saved["model"].values())
    c = make_net(device, torch.float32)
    opt_c = make(c.parameters())
    c.load_state_dict(saved["model"])
    opt_c.load_state_dict(saved["opt"])
    assert all(s["step"] == 3 for s in opt_c.state.values())
    assert all(t.device.type == device for s in opt_c.state.values() for t in s.values()
               if isinstance(t, torch.Tensor) and t.dim() > 0)
    train_steps(c, opt_c, 3, 6)
    for (name, p), q in zip(a.named_parameters(), c.parameters()):
        assert torch.equal(p, q), name


# -- the runner on CUDA -------------------------------------------------------------------------
SETTINGS = {"fp32": ["precision=fp32"], "bf16": ["precision=bf16"], "compile": ["compile=true"]}


@gpu
@pytest.mark.parametrize("setting", sorted(SETTINGS))
@pytest.mark.parametrize("task", TASKS)
def test_every_task_smoke_runs_on_cuda(tmp_path, task, setting):
    record = run_cell(tmp_path, "scale=smoke", f"task={task}", "device=cuda", *SETTINGS[setting])
    assert record.status == "ok", record.reason
    assert record.device.startswith("cuda") and record.steps > 0
    assert record.final is not None and math.isfinite(record.final)
    assert all(math.isfinite(e["train/loss"]) for e in record.history)
    assert record.config["precision"] == ("bf16" if setting == "bf16" else "fp32")
    assert record.config["compile"] == (setting == "compile")


@gpu
def test_killed_and_resumed_cuda_run_gives_the_identical_record(tmp_path):
    args = ["task=mnist_mlp", "optimizer=nero", "scale=smoke", "logger=none", "task.epochs=4",
            "task.n_train=12000", "checkpoint.every_steps=7", "progress=true", "device=cuda",
            "deterministic=true"]
    a, b, stderr = killed_and_resumed(tmp_path, args)
    assert a.device.startswith("cuda") and b.device.startswith("cuda")
    assert_resumed_as_uninterrupted(a, b, stderr)


def torchrun(n: int) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}"]


def nccl_worlds() -> list:
    two = pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs")
    return [pytest.param(1, marks=gpu), pytest.param(2, marks=[gpu, two])]


@pytest.mark.parametrize("world", nccl_worlds())
def test_ddp_over_nccl_ranks_agree_and_match_one_process(tmp_path, world):
    out = tmp_path / "ddp.json"
    proc = subprocess.run([*torchrun(world), str(REPO / "tests" / "ddp_worker.py"), str(out), "cuda"],
                          capture_output=True, text=True, timeout=300, cwd=REPO,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["backend"] == "nccl" and result["world"] == world
    assert result["params_equal"] and result["nero_state_equal"]
    if world == 1:
        assert result["single_process_equal"]  # DDP's reducer changes nothing at world size 1


@pytest.mark.parametrize("world", nccl_worlds())
def test_ddp_record_over_nccl_equals_single_process(tmp_path, world):
    args = ["task=imagenet_resnet50", "scale=smoke", "logger=none", "progress=false",
            "task.n_train=32", "task.batch_size=8", f"task.bn_group={8 // world}", "device=cuda",
            "deterministic=true"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    single = subprocess.run([sys.executable, str(REPO / "scripts" / "train.py"), *args,
                             f"out_dir={tmp_path / 'single'}"], capture_output=True, text=True,
                            timeout=300, cwd=REPO, env=env)
    assert single.returncode == 0, single.stderr[-2000:]
    ddp = subprocess.run([*torchrun(world), str(REPO / "scripts" / "train.py"), *args,
                          f"out_dir={tmp_path / 'ddp'}"], capture_output=True, text=True,
                         timeout=300, cwd=REPO, env=env)
    assert ddp.returncode == 0, ddp.stderr[-2000:]
    a = json.loads(first(tmp_path / "single", "record.json").read_text())
    b = json.loads(first(tmp_path / "ddp", "record.json").read_text())
    assert b["device"].startswith(f"{world} x cuda" if world > 1 else "cuda")
    for ea, eb in zip(a["history"], b["history"], strict=True):
        for key in ("train/loss", "train/top1_acc", "top1_error", "val_loss"):
            assert eb[key] == pytest.approx(ea[key], rel=1e-4, abs=1e-5), key


# The flags each precision means (tasks/runner/validation.py sets them, the record's "backend"
# says which were in force): fp32 is IEEE float32 in matmuls and convolutions.
EXPECTED_BACKEND = {
    "fp32": {"matmul_tf32": False, "cudnn_tf32": False, "float32_matmul_precision": "highest"},
    "tf32": {"matmul_tf32": True, "cudnn_tf32": True, "float32_matmul_precision": "high"},
}
DETERMINISM = {
    "true": {"cudnn_deterministic": True, "cudnn_benchmark": False, "deterministic_algorithms": True},
    "auto": {"cudnn_deterministic": False, "cudnn_benchmark": True, "deterministic_algorithms": False},
}


def backend_flags() -> dict:
    return {
        "matmul_tf32": torch.backends.cuda.matmul.allow_tf32,
        "cudnn_tf32": torch.backends.cudnn.allow_tf32,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
    }


@gpu
@pytest.mark.parametrize("deterministic", sorted(DETERMINISM))
@pytest.mark.parametrize("precision", ["fp32", "tf32", "bf16"])
def test_backend_flags_of_each_precision_are_in_force_inside_the_run(tmp_path, monkeypatch,
                                                                     precision, deterministic):
    from tasks.experiments import get_task

    seen: list[dict] = []
    cls = get_task("mnist_mlp")
    real = cls.train_step

    def spying(self, batch, step):
        seen.append(backend_flags())
        return real(self, batch, step)

    monkeypatch.setattr(cls, "train_step", spying)
    # Flags left by an earlier test must not be what this run reports.
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = precision == "fp32"
    torch.set_float32_matmul_precision("high" if precision == "fp32" else "highest")
    try:
        record = run_cell(tmp_path, "scale=smoke", "task=mnist_mlp", "device=cuda", "task.epochs=1",
                          f"precision={precision}", f"deterministic={deterministic}")
    finally:  # what a run sets stays set in this process: leave the defaults to later tests
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = False, False
    assert record.status == "ok", record.reason
    assert seen and all(flags == seen[0] for flags in seen)  # the same at every step
    assert record.backend == seen[0]
    for key, value in {**EXPECTED_BACKEND.get(precision, {}), **DETERMINISM[deterministic]}.items():
        assert seen[0][key] == value, key


# -- data and features on CUDA ------------------------------------------------------------------
def coordinate_images(n: int) -> torch.Tensor:
    """uint8 images whose pixels name their own position: red = 8 * row, green = 8 * column,
    blue = 255 (0 where an augmentation fills in)."""
    rows = torch.arange(32).view(32, 1).expand(32, 32)
    cols = torch.arange(32).view(1, 32).expand(32, 32)
    image = torch.stack([8 * rows, 8 * cols, torch.full((32, 32), 255)]).to(torch.uint8)
    return image.expand(n, 3, 32, 32).contiguous()


def drawn_parameters(images: torch.Tensor) -> dict[str, np.ndarray]:
    """(crop offset, flip, rotation angle) of each augmented coordinate image: the affine map
    from output pixels to the source pixels they show, fitted by least squares (nearest
    neighbour sampling moves each source coordinate by at most half a pixel)."""
    images = images.double()
    valid = images[:, 2] > 127
    src = torch.stack([(images[:, 0] / 8).round(), (images[:, 1] / 8).round()], -1)
    centre = 15.5
    r = torch.arange(32, dtype=torch.float64) - centre
    out = torch.stack(torch.meshgrid(r, r, indexing="ij"), -1)
    offsets, flips, angles = [], [], []
    for k in range(len(images)):
        m = valid[k]
        x = torch.cat([out[m], torch.ones(int(m.sum()), 1, dtype=torch.float64)], 1)
        sol = torch.linalg.lstsq(x, src[k][m] - centre).solution  # rows: d/drow, d/dcol, shift
        a = sol[:2].T  # source (row, col) = a @ output (row, col) + shift
        flip = bool(torch.linalg.det(a) < 0)
        if flip:
            a = a * torch.tensor([[1.0], [-1.0]], dtype=torch.float64)
        offsets.append(sol[2].round().tolist())
        flips.append(flip)
        angles.append(math.degrees(math.atan2(float(a[0, 1]), float(a[0, 0]))))
    return {"offset": np.array(offsets, dtype=int), "flip": np.array(flips),
            "angle": np.array(angles)}


@pytest.mark.parametrize("device", devices())
def test_device_augmentation_draws_the_distribution_of_the_torchvision_pipeline(device):
    """The batched augmentation (on ``device``) against torchvision's PIL transforms, the CPU
    pipeline (``task.pipeline=torchvision``): crop offsets (chi-square over the 9 x 9 cells),
    flips (chi-square), rotation angles (two-sample Kolmogorov-Smirnov). Each test is at level
    1e-4, so the four together raise a false alarm with probability below 4e-4 (Bonferroni)."""
    from PIL import Image
    from scipy import stats
    from torchvision import transforms as T

    from tasks.experiments.data.cifar import MEAN, STD, augment

    n = 2000
    torch.manual_seed(0)
    out = augment(coordinate_images(n).to(device)).cpu()
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    ours = drawn_parameters(((out * std + mean) * 255).round())
    pil = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.RandomRotation(15)])
    source = Image.fromarray(coordinate_images(1)[0].permute(1, 2, 0).numpy())
    torch.manual_seed(1)
    theirs = drawn_parameters(torch.stack([
        torch.from_numpy(np.array(pil(source))).permute(2, 0, 1) for _ in range(n)]))
    for drawn in (ours, theirs):  # the estimates are what they claim to be
        assert np.abs(drawn["offset"]).max() <= 4 and np.abs(drawn["angle"]).max() <= 15.5
    alpha = 1e-4
    cells = [(o[:, 0] + 4) * 9 + o[:, 1] + 4 for o in (ours["offset"], theirs["offset"])]
    table = np.array([np.bincount(c, minlength=81) for c in cells])
    table = table[:, table.sum(0) > 0]
    assert stats.chi2_contingency(table).pvalue > alpha, "crop offsets"
    flips = np.array([[d["flip"].sum(), n - d["flip"].sum()] for d in (ours, theirs)])
    assert stats.chi2_contingency(flips).pvalue > alpha, "flips"
    assert stats.ks_2samp(ours["angle"], theirs["angle"]).pvalue > alpha, "rotation angles"
    # and what the paper's script asks for, uniform angles in [-15, 15] degrees: seen beyond
    # 3 degrees, as a rotation by less than ~1.8 (half a pixel at the image's edge) leaves
    # nearest-neighbour sampling unchanged and reads as 0
    big = np.abs(ours["angle"][np.abs(ours["angle"]) > 3])
    assert stats.kstest(big, stats.uniform(3, 12).cdf).pvalue > alpha, "angle range"


def random_inception() -> nn.Module:
    """The FID network with seeded He-initialised weights (the real ones are a download): the
    features keep their scale through its 90 layers, so their rounding is representative."""
    from tasks.experiments.fid import FIDInception

    net = FIDInception().eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                fan = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=g) * math.sqrt(2 / fan))
    return net


def features64(net: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """FIDInception.forward in float64 (its own forward takes the images to float32)."""
    x = torch.nn.functional.interpolate(images.double() / 255.0, size=(299, 299), mode="bilinear",
                                        align_corners=False)
    return net.blocks(2 * x - 1).flatten(1)


@gpu
def test_fid_features_on_cuda_equal_the_cpu_ones():
    """Against float64 on the CPU (the exact features, to float64 rounding): CUDA's float32
    features may be off by at most 32 times the CPU's own float32 error. Both are float32
    evaluations of one function that differ only in summation order and convolution algorithm
    (cuDNN may pick Winograd or FFT transforms, whose error is a small constant factor, below
    an order of magnitude, above a direct convolution's); TF32 is off, as precision=fp32 sets
    it. In float64 both devices agree to 1e-9 relative (float64 rounding times the same factor)."""
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(1))
    net = random_inception()
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        with torch.no_grad():
            cpu32 = net(images).double()
            cuda32 = copy.deepcopy(net).cuda()(images.cuda()).double().cpu()
            exact = features64(net.double(), images)
            cuda64 = features64(net.cuda(), images.cuda()).cpu()
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old
    scale = exact.abs().max()
    assert torch.isfinite(exact).all() and scale > 1e-3  # features that carry information
    cpu_err = float((cpu32 - exact).abs().max() / scale)
    cuda_err = float((cuda32 - exact).abs().max() / scale)
    assert 0 < cpu_err < 1e-4, cpu_err
    assert cuda_err <= 32 * cpu_err, (cuda_err, cpu_err)
    assert float((cuda64 - exact).abs().max() / scale) < 1e-9
