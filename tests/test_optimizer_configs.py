"""Any optimiser is one config file: a user's own class through Hydra's search path, ad hoc ones,
the modern baselines from their packages, schedule-free train/eval modes, and the GPT-2 task."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from tasks.errors import UserError
from tasks.runner import identity
from tasks.runner.optimizers import accepted, build_optimizer, describe
from tests.helpers import REPO, compose, run_cell

USER_OPTIMIZER = '''
import torch


class SignSGD(torch.optim.Optimizer):
    """A user's optimiser: steps of lr * scale * sign(gradient)."""

    def __init__(self, params, lr=0.01, scale=1.0):
        super().__init__(params, dict(lr=lr, scale=scale))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad.sign(), alpha=-group["lr"] * group["scale"])
'''


@pytest.fixture
def user_package(tmp_path):
    """A package of the user's, and a config folder naming its class (nothing in the repo)."""
    package = tmp_path / "userpkg" / "signsgd"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(USER_OPTIMIZER)
    configs = tmp_path / "userconf" / "optimizer"
    configs.mkdir(parents=True)
    (configs / "signsgd.yaml").write_text("_target_: signsgd.SignSGD\nlr: 0.01\nscale: 0.5\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path / 'userpkg'}{os.pathsep}{REPO}"}
    return tmp_path / "userconf", env


@pytest.mark.slow
def test_a_users_optimizer_runs_a_sweep_and_becomes_a_table1_column(tmp_path, user_package):
    configs, env = user_package
    out = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "benchmark_optimizer.py"), "--optimizer",
         "signsgd", "--config-dir", str(configs), "--out", str(out), "--scale", "smoke",
         "--tasks", "wikitext2_transformer", "--", "optimizer.lr=0.01,0.1"],
        cwd=REPO, env={**env, "NERO_JOBS": "1"}, capture_output=True, text=True,
        timeout=600)  # NERO_JOBS=1: cells in the sweep's process, no worker startups
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-2000:]
    from tasks.runner import records

    found = list(records.find(out))
    mine = [r for r in found if r.optimizer == "signsgd"]
    assert len(mine) == 4 and {r.seed for r in mine} == {0, 1, 2}  # grid, then seeds 1-2
    assert mine[0].optimizer_class == {"class": "signsgd.SignSGD", "package": "signsgd",
                                          "version": None}
    assert mine[0].config["optimizer"]["scale"] == 0.5
    table = (out / "artefacts" / "table1" / "table1.md").read_text()
    header = next(line for line in table.splitlines() if line.startswith("| Task"))
    assert "signsgd†" in header and "Nero" in header
    row = next(line for line in table.splitlines() if "Wikitext-2" in line)
    assert "paper 172.99 ± 0.51, Δ" in row  # Nero: ours beside the paper's
    assert "missing<br>paper 181.76 ± 0.49" in row  # SGD was not run here: the paper's alone
    assert "beyond the paper" in table


def test_a_misspelt_option_of_a_users_optimizer_names_the_accepted_ones(tmp_path, user_package):
    configs, env = user_package
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "train.py"), "task=mnist_mlp",
                          "scale=smoke", "logger=none", f"out_dir={tmp_path}", "optimizer=signsgd",
                          f"hydra.searchpath=[file://{configs}]", "+optimizer.scael=2"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    # One line naming the class, the misspelt key and every option it does accept.
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("error: ") and "SignSGD" in line and "scael" in line, line
    assert all(name in line for name in ("lr", "scale", "grad_clip", "modules")), line


def test_ad_hoc_optimizers_from_the_command_line_get_their_own_identity():
    cfg = compose("task=mnist_mlp", "optimizer=adam", "optimizer._target_=torch.optim.AdamW",
                  "optimizer.weight_decay=0.1")
    opt = build_optimizer([nn.Parameter(torch.zeros(2, 2))], cfg.optimizer)
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["weight_decay"] == 0.1
    ident = identity.of(cfg)
    assert ident.variant["optimizer._target_"] == "torch.optim.AdamW"
    with pytest.raises(UserError, match="cannot be imported"):
        build_optimizer([nn.Parameter(torch.zeros(2))], {"_target_": "nope.Missing", "lr": 0.1})
    with pytest.raises(UserError, match="is not a torch.optim.Optimizer"):
        build_optimizer([nn.Parameter(torch.zeros(2))], {"_target_": "torch.nn.Linear", "lr": 0.1})


def test_options_are_checked_against_the_class_signature():
    assert accepted(torch.optim.SGD) >= {"momentum", "weight_decay", "nesterov"}
    assert "params" not in accepted(torch.optim.SGD) and "lr" not in accepted(torch.optim.SGD)
    assert describe({"_target_": "nero.Nero"})["class"] == "nero.nero.Nero"
    assert describe({"_target_": "torch.optim.SGD"})["package"] == "torch"


@pytest.mark.parametrize("name,cls", [("adamw", "torch.optim.adamw.AdamW"),
                                      ("lion", "lion_pytorch.lion_pytorch.Lion"),
                                      ("schedulefree_adamw",
                                       "schedulefree.adamw_schedulefree.AdamWScheduleFree")])
def test_modern_baselines_run_from_their_packages(tmp_path, name, cls):
    record = run_cell(tmp_path, "task=mnist_mlp", "scale=smoke", f"optimizer={name}",
                      "optimizer.lr=0.001", "task.epochs=3")
    assert record.status == "ok" and record.optimizer_class["class"] == cls
    losses = [e["train/loss"] for e in record.history]
    assert losses[-1] < losses[0]  # it trains


MODES = '''
import torch


class Modal(torch.optim.SGD):
    """SGD that, like schedule-free optimisers, has train and eval modes; it logs them."""

    log = []

    def __init__(self, params, lr=0.01):
        super().__init__(params, lr=lr)
        self.mode = "eval"

    def train(self):
        self.mode = "train"
        Modal.log.append("train")

    def eval(self):
        self.mode = "eval"
        Modal.log.append("eval")

    def step(self, closure=None):
        assert self.mode == "train", "a step in eval mode"
        return super().step(closure)
'''


def test_optimizers_with_modes_train_in_train_mode_and_evaluate_in_eval_mode(tmp_path, monkeypatch):
    (tmp_path / "modal.py").write_text(MODES)
    monkeypatch.syspath_prepend(str(tmp_path))
    import modal

    record = run_cell(tmp_path, "task=mnist_mlp", "scale=smoke", "optimizer=sgd",
                      "optimizer._target_=modal.Modal", "~optimizer.momentum",
                      "~optimizer.weight_decay", "task.epochs=3")
    assert record.status == "ok"
    # train first; then eval and train around each of the 3 evaluations; eval for the end
    assert modal.Modal.log == ["train"] + ["eval", "train"] * 3 + ["eval"]


# -- GPT-2 -----------------------------------------------------------------------------------------
def test_gpt2_projections_are_linear_layers_computing_the_same_function():
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.pytorch_utils import Conv1D

    from tasks.experiments.models.gpt2 import replace_conv1d

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_positions=8, n_embd=16, n_layer=2,
                                       n_head=2, n_inner=32, bos_token_id=None,
                                       eos_token_id=None)).eval()
    ids = torch.randint(0, 50, (3, 8))
    before = model(input_ids=ids).logits
    assert replace_conv1d(model) == 8  # c_attn, c_proj, c_fc, mlp.c_proj per layer
    assert not any(isinstance(m, Conv1D) for m in model.modules())
    attn = model.transformer.h[0].attn.c_attn
    assert isinstance(attn, nn.Linear) and attn.weight.shape == (48, 16)  # (out, in)
    assert torch.allclose(model(input_ids=ids).logits, before, atol=1e-5)
    assert model.lm_head.weight is model.transformer.wte.weight  # still tied


def test_nero_on_gpt2_projects_token_vectors_and_output_neurons(tmp_path):
    from nero import Nero
    from tasks.experiments.models.gpt2 import GPT2LM

    model = GPT2LM(vocab=60, n_embd=16, n_layer=2, n_head=2, n_inner=32, dropout=0.0,
                   n_positions=8)
    opt = Nero(model.parameters(), lr=0.01)
    wte = model.gpt2.transformer.wte.weight
    assert len([p for p in model.parameters() if p is wte]) == 1  # the tie is one tensor
    assert torch.allclose(wte.norm(dim=1), torch.ones(60), atol=1e-5)  # one neuron per token
    assert torch.allclose(wte.mean(dim=1), torch.zeros(60), atol=1e-6)
    fc = model.gpt2.transformer.h[0].mlp.c_fc.weight  # (out 32, in 16): rows = output neurons
    assert fc.shape == (32, 16) and torch.allclose(fc.norm(dim=1), torch.ones(32), atol=1e-5)
    gain = model.gpt2.transformer.h[0].ln_1.weight
    assert opt.state[gain]["scale"] == 1.0  # LayerNorm gains: per entry, scale mean|1| = 1
    assert opt.state[model.gpt2.transformer.h[0].ln_1.bias]["scale"] == 0.01  # zero-initialised


def test_gpt2_task_trains_at_smoke_scale(tmp_path):
    record = run_cell(tmp_path, "task=wikitext2_gpt2", "scale=smoke", "task.epochs=3")
    assert record.status == "ok"
    losses = [e["train/loss"] for e in record.history]
    assert losses[-1] < losses[0] and record.final == record.history[-1]["val_ppl"]


def test_the_gpt2_row_is_marked_beyond_the_paper(tmp_path):
    from tasks.analysis import tables
    from tasks.analysis.selection import Records
    from tasks.runner.identity import Identity
    from tasks.runner.records import Record

    rs = [Record(Identity("table1", "smoke", "wikitext2_gpt2", "nero", 0.01, s), "ok", final=150.0)
          for s in range(3)]
    md = tables.table1_markdown(tables.table1(Records(rs)))
    row = next(line for line in md.splitlines() if "GPT-2" in line)
    assert row.startswith("| Language model†") and "150.00 ± 0.00" in row
    assert textwrap.dedent(row).count("paper ") == 0  # no published number for it
    assert Path(REPO / "conf" / "task" / "wikitext2_gpt2.yaml").exists()
