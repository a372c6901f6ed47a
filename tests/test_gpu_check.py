"""The CPU-visible parts of the GPU check: make gpu-check's dry path, bench_gpu.py's files and
the plan that reads them. (The GPU parts are tests/test_gpu.py, marked gpu.)"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO, compose

HIDDEN = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "WANDB_MODE": "disabled"}


def script(name: str, *args: str, env: dict | None = None, timeout: int = 600):
    return subprocess.run([sys.executable, str(REPO / "scripts" / name), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout, env=env or HIDDEN)


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_gpu_check_without_cuda_prints_its_stages_and_exits_0():
    # The venv this suite runs in stands for .venv; -o keeps make from reinstalling it. Under
    # `make test` this make is a sub-make, which would print "Entering/Leaving directory" lines.
    proc = subprocess.run(["make", "--no-print-directory", "-o", ".venv/.installed",
                           f"BIN={Path(sys.executable).parent}", "gpu-check"], cwd=REPO,
                          capture_output=True, text=True, timeout=300, env=HIDDEN)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    parts = [ln for ln in lines if ln.startswith("would run")]
    assert len(parts) == 6
    assert all("-m gpu" in ln for ln in parts[:3]) and "bench_gpu.py" in parts[3]
    assert "task=cifar10_vgg11" in parts[4] and "task=wikitext2_transformer" in parts[5]
    assert lines[-1] == ("gpu-check: nothing ran (no CUDA device here); run `make gpu-check` on "
                         "a GPU node")


@pytest.mark.slow
def test_gpu_check_shards_select_every_gpu_test_once():
    """The three pytest processes of the first stage together run each gpu test exactly once."""
    from scripts.gpu_check import TEST_SHARDS

    # The four selections in one process, which imports the gpu tests (and torch) once.
    code = ("import sys, pytest\n"
            "for args in ([], *(['-k', e] for e in sys.argv[1:])):\n"
            "    pytest.main(['--collect-only', '-q', '-p', 'no:cacheprovider', '-m', 'gpu', *args,"
            " 'tests/test_gpu.py'])\n"
            "    print('=== selection end', flush=True)\n")
    proc = subprocess.run([sys.executable, "-c", code, *TEST_SHARDS.values()], cwd=REPO,
                          capture_output=True, text=True, timeout=300, env=HIDDEN)
    chunks = proc.stdout.split("=== selection end")[:-1]
    assert len(chunks) == 1 + len(TEST_SHARDS), proc.stdout[-3000:] + proc.stderr[-3000:]
    everything, *shards = [{ln for ln in c.splitlines() if "::" in ln} for c in chunks]
    assert len(everything) > 40 and sum(len(s) for s in shards) == len(everything)
    assert set().union(*shards) == everything


def test_the_slices_of_gpu_check_are_valid_paper_scale_configs(tmp_path):
    from scripts.gpu_check import SLICE_STEPS, stages
    from tasks.runner.validation import validate

    for _, cmd in stages(tmp_path)[2][1]:
        assert cmd[1] == "scripts/train.py"
        cfg = compose(*cmd[2:])
        validate(cfg)
        assert cfg.scale.name == "paper" and cfg.device == "cuda"
        batch = cfg.task.batch_size * (cfg.task.get("bptt") or 1)
        items = cfg.task.get("n_train") or cfg.task.get("synthetic_tokens")
        assert items // batch >= SLICE_STEPS  # a few hundred steps at the paper's batch size


def test_bench_gpu_without_cuda_says_so_in_one_line():
    proc = script("bench_gpu.py")
    assert proc.returncode == 0 and len(proc.stdout.strip().splitlines()) == 1
    assert "no CUDA device" in proc.stdout
    assert script("bench_gpu.py", "--require-cuda").returncode == 2


@pytest.mark.slow
def test_bench_gpu_writes_its_files_and_the_plan_reads_them(tmp_path):
    """A real measurement at toy size (on the CPU, as the file says), then the plan from it."""
    proc = script("bench_gpu.py", "--device", "cpu", "--param-sets", "mlp5", "--tasks",
                  "mnist_cwn", "--steps", "2", "--warmup", "1", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    (js,) = tmp_path.glob("gpu-*.json")
    (md,) = tmp_path.glob("gpu-*.md")
    assert js.stem == md.stem and not list(tmp_path.glob(".*tmp"))
    data = json.loads(js.read_text())
    meta = data["meta"]
    assert meta["device_type"] == "cpu" and meta["device"] in md.read_text()
    for key in ("command", "device", "driver", "torch", "commit", "date"):
        assert meta[key] and str(meta[key]) in md.read_text(), key
    assert set(data["optimizers"]["mlp5"]["ms_per_step"]) == {
        "sgd(foreach)", "adam(fused)", "nero", "madam", "lamb"}
    assert data["optimizers"]["mlp5"]["tensors"] == 10
    assert "measured on the CPU, not a GPU" in md.read_text()
    cwn = data["tasks"]["mnist_cwn"]
    assert cwn["batch_size"] == 250 and cwn["steps"] == 2 and cwn["runner_s_per_step"] > 0

    plan = script("prepare_data.py", "--tasks", "mnist_cwn,pong_ppo", "--plan", "--bench-dir",
                  str(tmp_path))
    assert plan.returncode == 0, plan.stderr
    out = plan.stdout
    hours = 1200 * cwn["runner_s_per_step"] / 3600  # 5 epochs of 240 steps
    line = next(ln for ln in out.splitlines() if "measured" in ln and "ms per step" in ln)
    assert f"{hours:.3g} h each" in line and js.name in line
    assert re.search(r"pong_ppo: .* in the paper \(~[\d,.]+ GPU-h, the paper's figure\)", out)
    assert f"{meta['device']}: not measured for this task" in out
    assert re.search(r"measured: mnist_cwn; the paper's figures: pong_ppo", out)
    missing = script("prepare_data.py", "--tasks", "mnist_cwn", "--plan", "--bench-dir",
                     str(tmp_path), "--gpu", "h200")
    assert missing.returncode == 2 and "no benchmark of a device matching 'h200'" in missing.stderr


def test_plan_refuses_a_damaged_benchmark_file(tmp_path):
    (tmp_path / "gpu-x.json").write_text("{not json")
    proc = script("prepare_data.py", "--tasks", "mnist_cwn", "--plan", "--bench-dir", str(tmp_path))
    assert proc.returncode == 2 and "gpu-x.json is not a readable benchmark" in proc.stderr
