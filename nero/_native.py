"""The optimisers' CPU kernels, built from C++ source on first use.

On a CPU an optimiser step is bound by memory traffic. The plain paths touch each tensor many
times (one pass per torch operation). These kernels make one pass for Nero and Madam and two for
LAMB (whose trust ratio needs whole-tensor norms first): each neuron is read from memory once,
updated and projected while it sits in cache, and written once. They compute what the plain
paths in :mod:`nero._functional` compute, in the same float32 operations and order, except that
sums are taken in SIMD lanes (LAMB's norms in float64) and Madam's exp is a polynomial good to
about 1 ulp. They take float32 CPU tensors whose neurons each fill one block of memory;
everything else takes the plain path.

The source is compiled with the system C++ compiler (``$CXX``, else ``c++``/``g++``/``clang++``)
into ``$NERO_CACHE_DIR`` (default ``~/.cache/nero``), once per source, compiler and CPU model,
and loaded with ``ctypes``: no Python headers and no build tools beyond the compiler. It links
the OpenMP runtime that torch has already loaded, so it shares torch's threads. Where no
compiler works, :func:`load` warns once and returns None, and the optimisers take their plain
paths. ``NERO_NATIVE=0`` switches the kernels off.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ._functional import fan_in, rows_view, units

__all__ = ["load", "SOURCE", "eligible", "take", "grad_like", "layout", "run"]

# The kernels' C++ source, shipped with the package and compiled on first use.
SOURCE = (Path(__file__).with_name("csrc") / "kernels.cpp").read_text()

_FLAG_SETS = (
    ["-O3", "-fno-math-errno", "-fno-trapping-math", "-march=native", "-fopenmp"],
    ["-O3", "-fno-math-errno", "-fno-trapping-math", "-fopenmp"],
    ["-O3", "-fno-math-errno", "-fno-trapping-math"],  # no OpenMP (e.g. Apple clang): one thread
)
_STATE: dict[str, ctypes.CDLL | None] = {}
_I64, _F32, _INT, _PTR = ctypes.c_int64, ctypes.c_float, ctypes.c_int, ctypes.c_void_p
_SIGNATURES = {
    "nero_step_f32": (_I64, [_I64] + [_PTR] * 8 + [_F32, _F32, _INT]),
    "madam_step_f32": (_I64, [_I64] + [_PTR] * 8 + [_F32] * 4 + [_INT]),
    "lamb_step_f32": (None, [_I64] + [_PTR] * 7 + [_F32] * 10 + [_PTR, _INT]),
}


def _compiler() -> str | None:
    for name in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _cpu_id() -> str:
    """What a binary built with -march=native depends on: the CPU's model and feature flags."""
    try:
        info = Path("/proc/cpuinfo").read_text()
        lines = [ln for ln in info.splitlines() if ln.startswith(("model name", "flags"))][:2]
        return "\n".join(lines)
    except OSError:
        return platform.processor() + platform.machine()


def _cache_dir() -> Path:
    root = os.environ.get("NERO_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "nero"
    )
    path = Path(root)
    try:
        path.mkdir(parents=True, exist_ok=True)
        if os.access(path, os.W_OK):
            return path
    except OSError:
        pass
    return Path(tempfile.gettempdir())


def _target(cxx: str, flags: list[str]) -> Path:
    key = hashlib.sha256("\0".join([SOURCE, cxx, *flags, _cpu_id()]).encode()).hexdigest()[:16]
    return _cache_dir() / f"nero_native_{key}.so"


def _build(cxx: str, flags: list[str]) -> Path:
    target = _target(cxx, flags)
    if target.exists():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "nero_native.cpp"
        src.write_text(SOURCE)
        out = Path(tmp) / target.name
        cmd = [cxx, *flags, "-std=c++17", "-shared", "-fPIC", str(src), "-o", str(out)]
        subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=300)
        # Another process may be building the same file: the rename makes either copy whole.
        staged = target.with_name(f"{target.name}.{os.getpid()}.tmp")
        shutil.copyfile(out, staged)
        os.replace(staged, target)
    return target


def _open(cxx: str, flags: list[str]) -> ctypes.CDLL:
    path = _build(cxx, flags)
    try:
        return ctypes.CDLL(str(path))
    except OSError:  # a damaged cache entry (e.g. a full disk): build it again
        path.unlink(missing_ok=True)
        return ctypes.CDLL(str(_build(cxx, flags)))


def load() -> ctypes.CDLL | None:
    """The compiled kernel library, built on first use; None where it cannot be built."""
    if "lib" in _STATE:
        return _STATE["lib"]
    lib = None
    if os.environ.get("NERO_NATIVE", "1") != "0":
        cxx = _compiler()
        errors = []
        for flags in _FLAG_SETS if cxx else ():
            try:
                lib = _open(cxx, flags)
                break
            except (OSError, subprocess.SubprocessError) as err:
                detail = getattr(err, "stderr", "") or str(err)
                errors.append(f"{' '.join(flags)}: {detail.strip()[-300:]}")
        if lib is None:
            reason = "; ".join(errors) if errors else "no C++ compiler found (set $CXX)"
            warnings.warn(
                f"nero: the CPU kernels could not be built ({reason}); Nero, Madam and LAMB use "
                "their plain paths, which are several times slower. Install a C++ compiler, or "
                "set NERO_NATIVE=0 to silence this.",
                RuntimeWarning,
                stacklevel=4,
            )
        else:
            for name, (restype, argtypes) in _SIGNATURES.items():
                fn = getattr(lib, name)
                fn.restype, fn.argtypes = restype, argtypes
    _STATE["lib"] = lib
    return lib


def eligible(p: Tensor, *state: Tensor) -> bool:
    """Whether the kernels can take ``p``: float32 on the CPU, each neuron one dense block of
    memory, and every state tensor of the same dtype and layout (one per element) or a
    contiguous vector (one per neuron)."""
    if p.device.type != "cpu" or p.dtype != torch.float32 or rows_view(p) is None:
        return False
    return all(
        s.dtype == torch.float32
        and s.device.type == "cpu"
        and ((s.shape == p.shape and s.stride() == p.stride()) or (s.dim() == 1 and s.is_contiguous()))
        for s in state
    )


def take(items: list[tuple], n_state: int) -> tuple[list[tuple], list[tuple], ctypes.CDLL | None]:
    """Split ``(param, grad, *state, ...)`` tuples into those the kernels take and the rest.

    ``n_state`` state tensors follow the gradient in each tuple. Returns (taken, rest, library);
    nothing is taken where no tensor is eligible or the kernels cannot be built.
    """
    taken = [it for it in items if eligible(it[0], *it[2 : 2 + n_state])]
    if not taken or (lib := load()) is None:
        return [], items, None
    ids = {id(it[0]) for it in taken}
    return taken, [it for it in items if id(it[0]) not in ids], lib


def grad_like(p: Tensor, g: Tensor) -> Tensor:
    """The gradient ``g`` of ``p`` in ``p``'s dtype and memory layout (copied where it differs)."""
    if g.stride() == p.stride() and g.dtype == p.dtype:
        return g
    return torch.empty_like(p).copy_(g)


def layout(p: Tensor) -> tuple[int, int]:
    """(units, entries per unit) of a non-empty tensor, as the kernels take them."""
    return units(p), fan_in(p)


I64, F32, U8 = torch.int64, torch.float32, torch.uint8


def run(
    lib: ctypes.CDLL, name: str, rows: list[tuple], dtypes: Sequence[torch.dtype], *scalars: float
) -> Any:
    """Call kernel ``name`` with one tuple of arguments per tensor, passed as one array per
    column (``dtypes``), then ``scalars`` and the thread count. The caller keeps the tensors
    whose pointers ``rows`` hold alive until this returns."""
    columns = [torch.tensor(col, dtype=dt) for col, dt in zip(zip(*rows), dtypes)]
    fn = getattr(lib, name)
    return fn(len(rows), *(c.data_ptr() for c in columns), *scalars, torch.get_num_threads())
