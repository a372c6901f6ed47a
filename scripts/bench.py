"""Run every benchmark of `make bench` and write their output, with its provenance, to one file.

    python scripts/bench.py                                # -> results/benchmarks/cpu.md
    python scripts/bench.py --device cuda --out results/benchmarks/cuda.md
    python scripts/bench.py --quick --out /tmp/bench.md    # each script at its smallest setting

Each script runs in its own process, one after another, and its standard output is pasted into
the file unedited, under the exact command that produced it. The file's head says how it was made:
the command, the machine (CPU model and cores, the GPU where one was used), torch, the commit and
the date. It is written once every script has finished, atomically (readers see the old file or
the whole new one); a script that fails leaves the old file as it was. ``--quick`` numbers only
show that the scripts run, so they never go to the default file.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch

from tasks.files import write_atomically
from tasks.runner.records import cpu_name, git_state

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "results" / "benchmarks" / "cpu.md"


@dataclass(frozen=True)
class Section:
    title: str
    script: str
    device_flag: bool  # whether the script takes --device
    about: str  # what the numbers are, in words that stay true whatever they are


SECTIONS = [
    Section("Optimiser step", "bench_optim.py", True,
            "Median wall-clock time per optimiser step and its ratio to SGD(foreach)'s median, "
            "measured in the same rounds (interleaved), so that the ratios do not depend on the "
            "machine's load; the state elements compare Nero's memory with Adam's. `fused` is the "
            "default on the CPU (the C++ kernels of `nero/_native.py`); `plain loop` is the "
            "reference path the kernels are tested against."),
    Section("Runner overhead", "bench_runner.py", True,
            "An MNIST-MLP epoch through the runner (`tasks/runner/loop.py`: record, checks, "
            "progress) against a bare PyTorch loop doing the same work, rounds interleaved; "
            "with `diagnostics=false` (the default) and with `diagnostics=true` (per-layer "
            "norms, means and angles each epoch, and the run's figure)."),
    Section("Training throughput (fp32, Nero)", "bench_throughput.py", True,
            "Full training steps (forward, backward, Nero step) of the paper's models on "
            "synthetic data already on the device."),
    Section("Pong PPO", "bench_ppo.py", True,
            "Agent steps per second of the Pong environments alone (random actions) and of full "
            "PPO updates with Nero through the task: whether the emulators or the learner bound "
            "training on this machine."),
]


def machine(device: str) -> str:
    text = f"{cpu_name()}, {os.cpu_count()} cores ({torch.get_num_threads()} torch threads)"
    if device.startswith("cuda"):
        text += f"; GPU {torch.cuda.get_device_name(torch.device(device))}"
    return text


def head(command: str, device: str, quick: bool) -> str:
    git = git_state(REPO)
    commit = git["commit"] or "unknown"
    if git["dirty"]:
        commit += " (with uncommitted changes)"
    lines = [f"# Benchmarks on {'a GPU' if device.startswith('cuda') else 'the CPU'}", "",
             f"- Command: `{command}`",
             f"- Machine: {machine(device)}",
             f"- Software: torch {torch.__version__}, Python {platform.python_version()}",
             f"- Commit: {commit}",
             f"- Date: {datetime.now(timezone.utc).isoformat(timespec='seconds')}", "",
             "Written by the command above: each block below is the unedited output of the command "
             "over it. Ratios compare with a baseline measured in the same process; absolute times "
             "move with the machine's load."]
    if quick:
        lines += ["", "**QUICK SETTINGS (`--quick`)**: every script at its smallest setting, to show "
                      "that it runs. These numbers are not measurements to quote."]
    return "\n".join(lines) + "\n"


def run_section(section: Section, device: str, quick: bool) -> tuple[str, str]:
    """The command (as text) and its standard output; SystemExit with its error if it fails."""
    args = [sys.executable, str(REPO / "scripts" / section.script)]
    if section.device_flag:
        args += ["--device", device]
    if quick:
        args.append("--quick")
    shown = " ".join(["python", f"scripts/{section.script}", *args[2:]])
    print(f"$ {shown}", flush=True)
    proc = subprocess.run(args, cwd=REPO, capture_output=True, text=True)
    sys.stdout.write(proc.stdout)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-20:])
        raise SystemExit(f"{tail}\nbench: `{shown}` failed (exit {proc.returncode}); "
                         "no results file was written")
    return shown, proc.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"the results file (default {DEFAULT_OUT.relative_to(REPO)}; "
                             "required with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="each script at its smallest setting: shows that they run")
    args = parser.parse_args(argv)
    if args.quick and args.out is None:
        parser.error("--quick needs --out: quick numbers never replace the published file")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device} but no CUDA device is available; use --device cpu")
    out = args.out or DEFAULT_OUT
    command = " ".join(["python", "scripts/bench.py", *map(shlex.quote, argv or sys.argv[1:])])
    parts = [head(command, args.device, args.quick)]
    for section in SECTIONS:
        shown, stdout = run_section(section, args.device, args.quick)
        parts.append(f"\n## {section.title} (`{shown}`)\n\n{section.about}\n\n"
                     f"```\n{stdout.rstrip()}\n```\n")
    text = "".join(parts)
    write_atomically(out, lambda f: f.write(text.encode()))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
