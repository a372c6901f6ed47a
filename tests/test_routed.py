"""Optimisers that split the parameters (tasks/runner/routed.py), the successors' configs from
their packages (Muon, NorMuon, SOAP, Shampoo), and pytorch_optimizer's Nero beside ours."""

from __future__ import annotations

import copy
import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from nero import Nero
from tasks.errors import UserError
from tasks.runner import identity
from tasks.runner.optimizers import build_optimizer, check_options
from tasks.runner.routed import Routed
from tests.helpers import (
    REPO,
    assert_resumed_as_uninterrupted,
    compose,
    killed_and_resumed,
    run_cell,
)
from tests.test_bad_input import assert_nothing_written, assert_one_line, snapshot, train
from tests.test_optimizers import Mixed, loss_of, twin_models

EPS32 = torch.finfo(torch.float32).eps
TABLE1 = ["cifar10_cgan", "cifar10_vgg11", "cifar10_resnet18", "wikitext2_transformer",
          "multi30k_transformer", "pong_ppo"]
# The output layers of the suite's models: Muon's authors give them to AdamW.
HEADS = {"cifar10_cgan": {"D": ["linear.parametrizations.weight.original"]},
         "cifar10_vgg11": {"model": ["classifier.6.weight"]},
         "cifar10_resnet18": {"model": ["fc.weight"]},
         "wikitext2_transformer": {"model": ["decoder.weight"]},
         "multi30k_transformer": {"model": ["embedding.weight"]},  # tied to the output layer
         "pong_ppo": {"model": ["actor.weight", "critic.weight"]},
         "mnist_mlp": {"model": ["layers.4.weight"]}}


def built_task(name: str, tmp: Path):
    from tasks.experiments import get_task
    from tasks.experiments.base import RunContext

    cfg = compose(f"task={name}", "scale=smoke")
    return get_task(name)(cfg.task, RunContext(device=torch.device("cpu"), data_dir=tmp,
                                               run_dir=tmp, seed=0, download=False))


@pytest.mark.parametrize("optimizer", ["muon", "normuon"])
def test_routing_is_complete_and_disjoint_on_every_table1_task(tmp_path, optimizer):
    cfg = compose(f"optimizer={optimizer}")
    for name in [*TABLE1, "mnist_mlp"]:
        task = built_task(name, tmp_path)
        orthogonalised = 0
        for role, module in task.modules().items():
            opt = build_optimizer(task.param_groups(role), cfg.optimizer, role, module)
            assert isinstance(opt, Routed)
            names = {id(p): n for n, p in module.named_parameters()}
            trainable = [p for p in module.parameters() if p.requires_grad]
            routed = [p for g in opt.param_groups for p in g["params"]]
            # every trainable tensor in exactly one route, the record's names saying which
            assert sorted(map(id, routed)) == sorted(map(id, trainable)), (name, role)
            assert sum(map(len, opt.tensors.values())) == len(trainable)
            for route, part in opt.parts.items():
                assert [names[id(p)] for g in part.param_groups for p in g["params"]] == \
                    opt.tensors[route]
            hidden = [p for route, part in opt.parts.items() if route != "rest"
                      for g in part.param_groups for p in g["params"]]
            assert all(p.ndim in (2, 4) for p in hidden)
            embeddings = {id(m.weight) for m in module.modules() if isinstance(m, nn.Embedding)}
            assert not embeddings & set(map(id, hidden))
            heads = HEADS[name].get(role, [])
            assert set(heads) <= set(opt.tensors["rest"]), (name, role, opt.tensors)
            orthogonalised += len(hidden)
        assert orthogonalised, f"{name}: no tensor gets Muon's update"


def test_a_routed_optimizer_is_one_torch_optimizer_for_schedulers_and_state():
    torch.manual_seed(0)
    model = Mixed()
    cfg = compose("optimizer=muon").optimizer
    opt = build_optimizer(model.parameters(), cfg, "model", model)
    assert opt.tensors["hidden"] == ["fc1.weight", "fc2.weight"]  # emb, head, 1-D: AdamW
    assert opt.tensors["conv"] == ["conv.weight"]
    assert [g["lr"] for g in opt.param_groups] == [0.02, 0.02, pytest.approx(0.02 * 0.015)]
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5 ** step)
    for t in range(2):
        opt.zero_grad()
        loss_of(model, t).backward()
        opt.step()
        sched.step()
    # the scheduler's lr is the lr each part steps with
    assert opt.parts["hidden"].param_groups[0]["lr"] == pytest.approx(0.02 / 4)
    assert opt.parts["rest"].param_groups[0]["lr"] == pytest.approx(0.02 * 0.015 / 4)
    w = model.fc1.weight
    assert "momentum_buffer" in opt.state[w] and "exp_avg" in opt.state[model.head.weight]
    with pytest.raises(KeyError):
        opt.state[torch.zeros(1)]  # reading the merged state never creates an entry


def test_a_routed_optimizer_resumes_bit_exactly_from_its_state_dict():
    a, _ = twin_models()
    cfg = compose("optimizer=muon").optimizer
    opt_a = build_optimizer(a.parameters(), cfg, "model", a)
    for t in range(3):
        opt_a.zero_grad()
        loss_of(a, t).backward()
        opt_a.step()
    for group in opt_a.param_groups:
        group["initial"] = group["lr"]
    b = copy.deepcopy(a)
    opt_b = build_optimizer(b.parameters(), cfg, "model", b)
    opt_b.load_state_dict(copy.deepcopy(opt_a.state_dict()))
    assert [id(g) for g in opt_b.param_groups] == [
        id(g) for part in opt_b.parts.values() for g in part.param_groups]
    for t in range(3, 8):
        for model, opt in ((a, opt_a), (b, opt_b)):
            for group in opt.param_groups:  # a schedule, through the composite's groups
                group["lr"] = group["initial"] * 0.5 ** t
            opt.zero_grad()
            loss_of(model, t).backward()
            opt.step()
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    with pytest.raises(ValueError, match="routes"):
        opt_b.load_state_dict({"routes": {"hidden": opt_a.parts["hidden"].state_dict()}})


@pytest.mark.slow
def test_a_killed_muon_run_resumes_to_the_same_record_which_names_every_class(tmp_path):
    args = ["task=mnist_mlp", "optimizer=muon", "scale=smoke", "logger=none", "task.epochs=3",
            "task.n_train=4000", "checkpoint.every_steps=7", "threads=1"]
    a, b, stderr = killed_and_resumed(tmp_path, args)
    assert_resumed_as_uninterrupted(a, b, stderr)
    described = a.optimizer_class
    assert described["class"] == "tasks.runner.routed.Routed"
    assert {n: r["class"] for n, r in described["routes"].items()} == {
        "hidden": "torch.optim.Muon", "conv": "pytorch_optimizer.optimizer.muon.muon.Muon",
        "rest": "torch.optim.adamw.AdamW"}
    assert described["routes"]["conv"]["tensors"] == {"model": []}  # an MLP has no kernels
    assert described["routes"]["hidden"]["tensors"]["model"] == [
        f"layers.{i}.weight" for i in range(4)]
    assert described["routes"]["rest"]["tensors"]["model"] == [
        *(f"layers.{i}.bias" for i in range(4)), "layers.4.weight", "layers.4.bias"]
    assert a.history[-1]["train/loss"] < a.history[0]["train/loss"]


def test_the_routed_config_is_part_of_the_identity():
    plain = identity.of(compose("task=mnist_mlp", "optimizer=muon"))
    assert plain.variant == {} and plain.optimizer == "muon"
    other = identity.of(compose("task=mnist_mlp", "optimizer=muon",
                                "optimizer.routes.hidden.momentum=0.9"))
    assert other.variant == {"optimizer.routes.hidden.momentum": 0.9}
    assert other.fingerprint != plain.fingerprint


# -- bad input: one line, exit 2, nothing written ---------------------------------------------------
SMOKE = ("task=mnist_mlp", "scale=smoke", "logger=none", "progress=false", "optimizer=muon")
BAD = [
    ("rule-matches-nothing", "+optimizer.routes.extra={_target_:torch.optim.SGD,params:{name:[nosuch]}}",
     "optimizer.routes.extra gets no tensor of model (its rule {'name': ['nosuch']})"),
    ("route-refuses-its-tensors", "optimizer.routes.hidden.params.ndim=3",
     "optimizer Muon: Muon only supports 2D parameters"),
    ("a-tensor-no-route-takes", "+optimizer.routes.rest.params.ndim=1",
     "tensor layers.4.weight of model (Linear, 2-D) matches no route's rule"),
    ("rules-overlap", "+optimizer.routes.rest.params.ndim=[1,2]",
     "tensor layers.0.weight of model matches the rules of both hidden and rest"),
    ("unknown-rule-key", "+optimizer.routes.hidden.params.dims=2",
     "optimizer.routes.hidden.params has no key dims"),
    ("rule-ndim-string", "optimizer.routes.hidden.params.ndim=two",
     "optimizer.routes.hidden.params.ndim must be a whole number"),
    ("route-option-type", "+optimizer.routes.rest.amsgrad=yes",
     "optimizer AdamW: optimizer.routes.rest.amsgrad must be true or false"),
    ("route-option-misspelt", "+optimizer.routes.hidden.momentun=0.9",
     "optimizer Muon has no option momentun"),
    ("route-lr-scale", "optimizer.routes.rest.lr_scale=0",
     "optimizer.routes.rest.lr_scale must be a finite number > 0"),
    ("route-no-class", "~optimizer.routes.rest._target_",
     "optimizer.routes.rest names no class"),
    ("top-level-option", "+optimizer.momentum=0.9",
     "a routed optimiser's options belong to its routes"),
    ("package-option-misspelt", "optimizer=soap +optimizer.betass=[0.9,0.9]",
     "optimizer SOAP has no option betass"),
    ("package-option-type", "optimizer=soap optimizer.precondition_1d=yes",
     "optimizer.precondition_1d must be true or false"),
]


@pytest.mark.parametrize("args,expected", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_bad_routed_config_is_one_line(tmp_path, args, expected):
    before = snapshot(tmp_path)
    code, text = train(*SMOKE, f"out_dir={tmp_path / 'out'}", f"data_dir={tmp_path / 'data'}",
                       *args.split())
    assert_one_line(code, text, expected)
    assert_nothing_written(before, tmp_path)


# -- the successors, from their packages ------------------------------------------------------------
@pytest.mark.parametrize("name,classes", [
    ("muon", ["torch.optim.Muon", "pytorch_optimizer.optimizer.muon.muon.Muon",
              "torch.optim.adamw.AdamW"]),
    ("normuon", ["pytorch_optimizer.optimizer.muon.normuon.NorMuon", "torch.optim.adamw.AdamW"]),
    ("soap", ["pytorch_optimizer.optimizer.soap.SOAP"]),
    ("shampoo", ["pytorch_optimizer.optimizer.shampoo.ScalableShampoo"])])
def test_the_successors_train_from_their_packages(tmp_path, name, classes):
    record = run_cell(tmp_path, "task=mnist_mlp", "scale=smoke", f"optimizer={name}",
                      "task.epochs=2", "task.n_train=500")
    assert record.status == "ok", record.reason
    described = record.optimizer_class
    got = [r["class"] for r in described["routes"].values()] if "routes" in described else [
        described["class"]]
    assert got == classes
    losses = [e["train/loss"] for e in record.history]
    assert losses[-1] < losses[0]  # it trains


def test_every_successor_config_passes_the_option_checks():
    for name in ("muon", "normuon", "soap", "shampoo"):
        check_options(compose(f"optimizer={name}").optimizer)


# -- pytorch_optimizer's Nero beside ours -----------------------------------------------------------
def test_pytorch_optimizers_nero_differs_where_stated_and_agrees_elsewhere():
    from pytorch_optimizer import Nero as PeerNero

    # Where they differ. 1: it adds eps = 1e-8 to the update's denominator and to the norm it
    # divides by; ours has no eps (degenerate neurons are guarded instead).
    assert inspect.signature(PeerNero).parameters["eps"].default == 1e-8
    assert "eps" not in inspect.signature(Nero).parameters
    # 2: it projects lazily, at a tensor's first step; ours at construction.
    a, b = twin_models()
    before = [p.detach().clone() for p in b.parameters()]
    ours, peer = Nero(a.parameters(), lr=0.01, fused=False), PeerNero(b.parameters(), lr=0.01)
    assert all(torch.equal(p, q) for p, q in zip(b.parameters(), before))
    assert not torch.equal(a.fc1.weight, b.fc1.weight)
    # 3: one switch for both constraints (ours: mean_constraint, norm_constraint); and a fan-in-1
    # neuron, which a zero-mean unit vector cannot be, it zeroes; ours keeps it at norm 1.
    assert "constraints" in inspect.signature(PeerNero).parameters
    one_in_ours, one_in_peer = nn.Linear(1, 4), nn.Linear(1, 4)
    one_in_peer.load_state_dict(one_in_ours.state_dict())
    Nero(one_in_ours.parameters())
    lazy = PeerNero(one_in_peer.parameters())
    one_in_peer(torch.ones(2, 1)).sum().backward()
    lazy.step()
    assert torch.allclose(one_in_ours.weight.abs(), torch.ones(4, 1))
    assert torch.count_nonzero(one_in_peer.weight) == 0

    # Elsewhere they agree: from the same projected weights, with its eps at 0, the same steps on
    # the same batches give the same tensors to float32 rounding. One step rounds each entry a
    # few times (update, centring, a norm over at most 72 entries, division: under 64 ulps of a
    # unit-norm row's entries); rows stay at unit norm, so the errors of steps add up.
    steps = 10
    b.load_state_dict(a.state_dict())
    start = a.fc1.weight.detach().clone()
    peer = PeerNero(b.parameters(), lr=0.01, eps=0.0)
    for t in range(steps):
        for model, opt in ((a, ours), (b, peer)):
            opt.zero_grad()
            loss_of(model, t).backward()
            opt.step()
    tol = steps * 64 * EPS32
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert (p - q).abs().max() <= tol * max(1.0, p.abs().max()), name
    assert (a.fc1.weight - start).abs().max() > 100 * tol  # they did move


def test_build_optimizer_without_a_module_routes_by_shape_only():
    cfg = {"_target_": "tasks.runner.routed.Routed", "lr": 0.02, "routes": {
        "hidden": {"_target_": "torch.optim.Muon", "params": {"ndim": 2}},
        "rest": {"_target_": "torch.optim.AdamW"}}}
    w, b = nn.Parameter(torch.zeros(3, 2)), nn.Parameter(torch.zeros(3))
    opt = build_optimizer([w, b], cfg)
    assert opt.tensors == {"hidden": ["param0"], "rest": ["param1"]}
    with pytest.raises(UserError, match="only one route may take"):
        build_optimizer([w, b], {**cfg, "routes": {"a": {"_target_": "torch.optim.SGD"},
                                                   "b": {"_target_": "torch.optim.SGD"}}})


@pytest.mark.slow
def test_benchmark_optimizer_runs_muon_beside_nero(tmp_path):
    out = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "benchmark_optimizer.py"), "--optimizer", "muon",
         "--out", str(out), "--scale", "smoke", "--tasks", "wikitext2_transformer", "--",
         "optimizer.lr=0.01"], cwd=REPO, capture_output=True, text=True, timeout=600,
        env={**os.environ, "NERO_JOBS": "1"})  # cells in the sweep's process: no worker startups
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-2000:]
    from tasks.runner import records

    found = list(records.find(out))
    assert sorted((r.optimizer, r.seed) for r in found) == [
        (o, s) for o in ("muon", "nero") for s in (0, 1, 2)]  # the grid, then seeds 1-2
    muon = next(r for r in found if r.optimizer == "muon")
    assert muon.status == "ok"
    routes = muon.optimizer_class["routes"]
    assert routes["hidden"]["class"] == "torch.optim.Muon"
    assert "layers.0.linear1.weight" in routes["hidden"]["tensors"]["model"]
    assert {"encoder.weight", "decoder.weight"} <= set(routes["rest"]["tensors"]["model"])
    table = (out / "artefacts" / "table1" / "table1.md").read_text()
    header = next(line for line in table.splitlines() if line.startswith("| Task"))
    assert "Muon†" in header and "Nero" in header
