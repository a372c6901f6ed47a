"""The benchmark scripts run end to end at their smallest setting, and `make bench` writes its
results file itself: the measured output, with the command, machine, torch, commit and date."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import datetime, timezone

import pytest
import torch

from tasks.runner.records import cpu_name
from tests.helpers import REPO

# A line of each script's own output that holds a measured number.
MEASURED = {
    "bench_optim.py": r"nero\(fused\)\s+\d+\.\d+\s+\d+\.\d+",
    "bench_runner.py": r"diagnostics=false\s+bare loop \d+\.\d+s\s+runner \d+\.\d+s\s+overhead "
                       r"[+-]\d+\.\d+%.*\n\s+diagnostics=true\s+bare loop \d+\.\d+s\s+runner "
                       r"\d+\.\d+s\s+overhead [+-]\d+\.\d+%",
    "bench_throughput.py": r"transformer_lm\s+\d+\.\d+ tokens/s",
    "bench_ppo.py": r"end to end \(sync\):\s+\d+ agent steps/s",
}


@pytest.mark.slow
def test_bench_writes_every_measurement_with_its_provenance(tmp_path):
    out = tmp_path / "cpu.md"
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    started = datetime.now(timezone.utc).replace(microsecond=0)
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "bench.py"), "--quick", "--out",
                           str(out)], cwd=REPO, capture_output=True, text=True, timeout=1200,
                          env={**os.environ, "WANDB_MODE": "disabled"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text()
    head = dict(re.findall(r"^- (\w+): (.*)$", text, re.M))
    assert head["Command"] == f"`python scripts/bench.py --quick --out {out}`"
    assert head["Machine"].startswith(f"{cpu_name()}, {os.cpu_count()} cores")
    assert f"torch {torch.__version__}" in head["Software"]
    assert head["Commit"].split()[0] == commit
    assert started <= datetime.fromisoformat(head["Date"]) <= datetime.now(timezone.utc)
    assert "QUICK SETTINGS" in text
    blocks = re.findall(r"^## [^\n]*\(`python scripts/(\S+) ([^`]*)`\)\n.*?```\n(.*?)```", text,
                        re.M | re.S)
    assert [b[0] for b in blocks] == list(MEASURED)
    for script, args, block in blocks:
        assert args == "--device cpu --quick"
        assert re.search(MEASURED[script], block), (script, block)
        assert block in proc.stdout  # pasted from the script's own run, unedited


def test_a_failing_benchmark_leaves_the_results_file_as_it_was(tmp_path, monkeypatch, capsys):
    from scripts import bench

    out = tmp_path / "cpu.md"
    out.write_text("the last full run\n")
    # check_artefacts.py refuses the arguments every benchmark gets: a script that fails.
    monkeypatch.setattr(bench, "SECTIONS", [bench.Section("fails", "check_artefacts.py", True, "")])
    with pytest.raises(SystemExit, match="check_artefacts.py --device cpu --quick.* failed"):
        bench.main(["--quick", "--out", str(out)])
    assert out.read_text() == "the last full run\n"
    assert [p.name for p in tmp_path.iterdir()] == ["cpu.md"]  # no temporary file left


def test_quick_numbers_never_replace_the_published_file(capsys):
    from scripts import bench

    with pytest.raises(SystemExit) as err:
        bench.main(["--quick"])
    assert err.value.code == 2 and "--quick needs --out" in capsys.readouterr().err


def test_make_bench_is_the_driver_writing_the_results_file():
    dry = subprocess.run(["make", "-n", "bench"], cwd=REPO, capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr
    assert re.search(r"python scripts/bench\.py --out results/benchmarks/cpu\.md$", dry.stdout, re.M)
