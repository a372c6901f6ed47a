"""Nero's CPU kernel: one pass over memory per neuron, built from C++ source on first use.

On a CPU the step is bound by memory traffic. The plain path touches each row many times and a
compiled torch graph still reads ``p`` and ``g`` twice; this kernel reads each row of ``p`` and
``g`` from memory once, does the update and the projection while the row sits in cache, and
writes it once, which is what an SGD step costs. It computes what :func:`nero.nero_update_`
does (the same float32 operations in the same order, summed in SIMD lanes), for float32 tensors
whose neurons each fill one block of memory.

The source is compiled with the system C++ compiler (``$CXX``, else ``c++``/``g++``/``clang++``)
into ``$NERO_CACHE_DIR`` (default ``~/.cache/nero``), once per source, compiler and CPU model,
and loaded with ``ctypes``: no Python headers, no build tools beyond the compiler. It links the
OpenMP runtime that torch has already loaded, so it shares torch's threads. Where no compiler
works, :func:`load` returns None and Nero takes its plain path. ``NERO_NATIVE=0`` switches the
kernel off.
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
from pathlib import Path

__all__ = ["load", "SOURCE"]

SOURCE = r"""
#include <cmath>
#include <cstdint>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

// One neuron of d >= 2 entries: update, then centre and normalise as flags say. The same
// float32 steps as the plain path (update, subtract the mean of the updated row, divide by
// the norm of the centred row), with each sum taken in the pass that writes its operand.
inline int64_t neuron(float* __restrict p, const float* __restrict g, float* v, int64_t d,
                      float neg_lr_scale, float correction, int flags, float beta,
                      float one_minus_beta) {
  const bool centre = flags & 1, normalise = flags & 2;
  int64_t bad = 0;
  float gg = 0.0f;
#pragma omp simd reduction(+ : gg)
  for (int64_t j = 0; j < d; ++j) gg += g[j] * g[j];
  float c = 0.0f;
  if (!std::isfinite(gg)) {
    bad = 1;  // skipped: no update, running average unchanged (still projected below)
  } else {
    *v = *v * beta + gg * one_minus_beta;
    const float denom = std::sqrt(*v / correction);
    if (denom > 0.0f) c = neg_lr_scale / denom;  // zero running average: no update (0/0 -> 0)
  }
  float s = 0.0f;
  if (c != 0.0f) {
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < d; ++j) {
      const float x = p[j] + g[j] * c;
      p[j] = x;
      s += x;
    }
  } else if (centre) {
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < d; ++j) s += p[j];
  }
  float ss = 0.0f;
  if (centre) {
    const float mean = s / static_cast<float>(d);
#pragma omp simd reduction(+ : ss)
    for (int64_t j = 0; j < d; ++j) {
      const float x = p[j] - mean;
      p[j] = x;
      ss += x * x;
    }
  } else if (normalise) {
#pragma omp simd reduction(+ : ss)
    for (int64_t j = 0; j < d; ++j) ss += p[j] * p[j];
  }
  if (normalise) {
    const float norm = std::sqrt(ss);
    if (norm > 0.0f) {  // an all-zero neuron stays zero
      const float inv = 1.0f / norm;
#pragma omp simd
      for (int64_t j = 0; j < d; ++j) p[j] *= inv;
    }
  }
  return bad;
}

// Units of one entry with nothing to project (1-D tensors): elementwise, vectorised.
inline int64_t units(float* __restrict p, const float* __restrict g, float* __restrict v,
                     int64_t n, float neg_lr_scale, float correction, float beta,
                     float one_minus_beta) {
  int64_t bad = 0;
#pragma omp simd reduction(+ : bad)
  for (int64_t i = 0; i < n; ++i) {
    const float gg = g[i] * g[i];
    const bool finite = std::isfinite(gg);
    const float v_new = finite ? v[i] * beta + gg * one_minus_beta : v[i];
    const float denom = std::sqrt(v_new / correction);
    v[i] = v_new;
    p[i] += (finite && denom > 0.0f) ? g[i] * (neg_lr_scale / denom) : 0.0f;
    bad += finite ? 0 : 1;
  }
  return bad;
}

}  // namespace

// One Nero step for every unit of a list of float32 tensors. Tensor t has units[t] neurons of
// fan_in[t] contiguous floats; flags[t] bit 0 = centre (mean constraint, only with fan-in > 1),
// bit 1 = normalise (norm constraint). Each thread takes an even share of every tensor's
// neurons, so no thread waits on another until the end. Returns the number of units whose
// gradient was not finite.
extern "C" int64_t nero_step_f32(
    int64_t n_tensors, const int64_t* n_units, const int64_t* fan_in,
    const int64_t* p_ptrs, const int64_t* g_ptrs, const int64_t* v_ptrs,
    const float* neg_lr_scale, const float* correction, const uint8_t* flags,
    float beta, float one_minus_beta, int n_threads) {
  int64_t bad = 0;
#pragma omp parallel num_threads(n_threads) reduction(+ : bad)
  {
    for (int64_t t = 0; t < n_tensors; ++t) {
      float* p = reinterpret_cast<float*>(p_ptrs[t]);
      const float* g = reinterpret_cast<const float*>(g_ptrs[t]);
      float* v = reinterpret_cast<float*>(v_ptrs[t]);
      const int64_t n = n_units[t], d = fan_in[t];
      const int f = flags[t] & (d > 1 ? 3 : 2);  // fan-in-1 neurons are not centred
      if (d == 1 && f == 0) {
        int64_t lo = 0, hi = n;
#ifdef _OPENMP
        const int64_t k = omp_get_num_threads(), me = omp_get_thread_num();
        lo = n * me / k;
        hi = n * (me + 1) / k;
#endif
        bad += units(p + lo, g + lo, v + lo, hi - lo, neg_lr_scale[t], correction[t], beta,
                     one_minus_beta);
        continue;
      }
#pragma omp for schedule(static) nowait
      for (int64_t i = 0; i < n; ++i)
        bad += neuron(p + i * d, g + i * d, v + i, d, neg_lr_scale[t], correction[t], f, beta,
                      one_minus_beta);
    }
  }
  return bad;
}
"""

_FLAG_SETS = (
    ["-O3", "-march=native", "-fopenmp"],
    ["-O3", "-fopenmp"],
    ["-O3"],  # e.g. Apple clang without OpenMP: the pragmas are ignored, one thread
)
_STATE: dict[str, ctypes.CDLL | None] = {}


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


def _build(cxx: str, flags: list[str]) -> Path:
    key = hashlib.sha256("\0".join([SOURCE, cxx, *flags, _cpu_id()]).encode()).hexdigest()[:16]
    target = _cache_dir() / f"nero_native_{key}.so"
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
                lib = ctypes.CDLL(str(_build(cxx, flags)))
                break
            except (OSError, subprocess.SubprocessError) as err:
                detail = getattr(err, "stderr", "") or str(err)
                errors.append(f"{' '.join(flags)}: {detail.strip()[-300:]}")
        if lib is None:
            reason = "; ".join(errors) if errors else "no C++ compiler found (set $CXX)"
            warnings.warn(
                f"Nero: the CPU kernel could not be built ({reason}); using the plain path, "
                "which is several times slower. Install a C++ compiler, or pass fused=False "
                "to silence this.",
                RuntimeWarning,
                stacklevel=4,
            )
        else:
            fn = lib.nero_step_f32
            fn.restype = ctypes.c_int64
            fn.argtypes = [ctypes.c_int64] + [ctypes.c_void_p] * 8 + [
                ctypes.c_float, ctypes.c_float, ctypes.c_int,
            ]
    _STATE["lib"] = lib
    return lib
