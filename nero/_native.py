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

__all__ = ["load", "SOURCE", "eligible", "grad_like", "layout", "run"]

SOURCE = r"""
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

struct Pointers {
  float* p;        // the parameter
  const float* g;  // its gradient
  float* v;        // its running average
};

// Tensor t's data, from the addresses the Python side passes as int64 arrays.
inline Pointers pointers(const int64_t* p_ptrs, const int64_t* g_ptrs, const int64_t* v_ptrs,
                         int64_t t) {
  return {reinterpret_cast<float*>(p_ptrs[t]), reinterpret_cast<const float*>(g_ptrs[t]),
          reinterpret_cast<float*>(v_ptrs[t])};
}

// True for finite x; a comparison (false for NaN) that vectorises, unlike std::isfinite.
inline bool finite(float x) { return std::fabs(x) <= 3.40282347e+38f; }

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
  if (!finite(gg)) {
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
    const bool ok = finite(gg);
    const float v_new = ok ? v[i] * beta + gg * one_minus_beta : v[i];
    const float denom = std::sqrt(v_new / correction);
    v[i] = v_new;
    p[i] += (ok && denom > 0.0f) ? g[i] * (neg_lr_scale / denom) : 0.0f;
    bad += ok ? 0 : 1;
  }
  return bad;
}

// The calling thread's share [lo, hi) of n items, in the same split for every pass.
inline void share(int64_t n, int64_t* lo, int64_t* hi) {
#ifdef _OPENMP
  const int64_t k = omp_get_num_threads(), me = omp_get_thread_num();
  *lo = n * me / k;
  *hi = n * (me + 1) / k;
#else
  *lo = 0;
  *hi = n;
#endif
}

// Centre (fan-in > 1 only) and normalise one neuron, in the plain path's two passes.
inline void project(float* __restrict p, int64_t d) {
  if (d > 1) {
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < d; ++j) s += p[j];
    const float mean = s / static_cast<float>(d);
#pragma omp simd
    for (int64_t j = 0; j < d; ++j) p[j] -= mean;
  }
  float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
  for (int64_t j = 0; j < d; ++j) ss += p[j] * p[j];
  const float norm = std::sqrt(ss);
  if (norm > 0.0f) {
    const float inv = 1.0f / norm;
#pragma omp simd
    for (int64_t j = 0; j < d; ++j) p[j] *= inv;
  }
}

// exp(x) for float32 in a form the compiler vectorises (libm's expf is not, without
// -ffast-math): x = k ln2 + r with |r| <= ln2/2, e^r by the Cephes polynomial (about 1 ulp),
// 2^k put straight into the exponent bits. x is clamped to [-87.3, 88.3], where e^x and 2^k
// are normal floats (Madam's arguments are within +-lr * g_bound).
inline float vec_exp(float x) {
  x = std::min(std::max(x, -87.3f), 88.3f);
  const float k = std::floor(x * 1.44269504088896341f + 0.5f);
  const float r = (x - k * 0.693359375f) - k * -2.12194440e-4f;
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(k) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return y * scale;
}

// Madam on n entries: multiplicative update, clamp. Returns the count of non-finite entries.
inline int64_t madam_entries(float* __restrict p, const float* __restrict g, float* __restrict v,
                             int64_t n, float neg_lr, float correction, float max_abs,
                             float beta, float one_minus_beta, float g_bound) {
  int64_t bad = 0;
#pragma omp simd reduction(+ : bad)
  for (int64_t i = 0; i < n; ++i) {
    const bool ok = finite(g[i]);
    const float g0 = ok ? g[i] : 0.0f;
    const float v_new = ok ? v[i] * beta + g0 * g0 * one_minus_beta : v[i];
    v[i] = v_new;
    const float denom = std::sqrt(v_new / correction);
    float g_hat = (ok && denom > 0.0f) ? g0 / denom : 0.0f;
    g_hat = std::min(std::max(g_hat, -g_bound), g_bound);
    const float sign = p[i] > 0.0f ? 1.0f : (p[i] < 0.0f ? -1.0f : 0.0f);
    const float w = p[i] * vec_exp(neg_lr * g_hat * sign);
    p[i] = std::min(std::max(w, -max_abs), max_abs);
    bad += ok ? 0 : 1;
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
      auto [p, g, v] = pointers(p_ptrs, g_ptrs, v_ptrs, t);
      const int64_t n = n_units[t], d = fan_in[t];
      const int f = flags[t] & (d > 1 ? 3 : 2);  // fan-in-1 neurons are not centred
      if (d == 1 && f == 0) {
        int64_t lo, hi;
        share(n, &lo, &hi);
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

// One Madam step for a list of float32 tensors of n_units[t] neurons of fan_in[t] floats each;
// project[t] != 0 centres and normalises every neuron after its update (MadamCS). Returns the
// number of non-finite gradient entries (skipped).
extern "C" int64_t madam_step_f32(
    int64_t n_tensors, const int64_t* n_units, const int64_t* fan_in,
    const int64_t* p_ptrs, const int64_t* g_ptrs, const int64_t* v_ptrs,
    const float* correction, const float* max_abs, const uint8_t* project_flags,
    float neg_lr, float beta, float one_minus_beta, float g_bound, int n_threads) {
  int64_t bad = 0;
#pragma omp parallel num_threads(n_threads) reduction(+ : bad)
  {
    for (int64_t t = 0; t < n_tensors; ++t) {
      auto [p, g, v] = pointers(p_ptrs, g_ptrs, v_ptrs, t);
      const int64_t n = n_units[t], d = fan_in[t];
      if (!project_flags[t]) {
        int64_t lo, hi;
        share(n * d, &lo, &hi);
        bad += madam_entries(p + lo, g + lo, v + lo, hi - lo, neg_lr, correction[t], max_abs[t],
                             beta, one_minus_beta, g_bound);
        continue;
      }
#pragma omp for schedule(static) nowait
      for (int64_t i = 0; i < n; ++i) {
        bad += madam_entries(p + i * d, g + i * d, v + i * d, d, neg_lr, correction[t],
                             max_abs[t], beta, one_minus_beta, g_bound);
        project(p + i * d, d);
      }
    }
  }
  return bad;
}

// One LAMB step for a list of float32 tensors (cybertronai semantics): pass 1 updates m and v
// and sums ||W||^2 and ||u||^2 per tensor (in double, per thread); pass 2 recomputes u from m
// and v and applies the trust ratio, projecting each neuron (LambCS) while it is in cache.
// scratch holds 2 * n_tensors * n_threads doubles.
extern "C" void lamb_step_f32(
    int64_t n_tensors, const int64_t* n_units, const int64_t* fan_in,
    const int64_t* p_ptrs, const int64_t* g_ptrs, const int64_t* m_ptrs, const int64_t* v_ptrs,
    const uint8_t* project_flags, float neg_lr, float beta1, float one_minus_beta1, float beta2,
    float one_minus_beta2, float correction1, float correction2, float eps, float weight_decay,
    float max_weight_norm, double* scratch, int n_threads) {
  for (int64_t i = 0; i < 2 * n_tensors * n_threads; ++i) scratch[i] = 0.0;
#pragma omp parallel num_threads(n_threads)
  {
#ifdef _OPENMP
    double* mine = scratch + 2 * n_tensors * omp_get_thread_num();
#else
    double* mine = scratch;
#endif
    for (int64_t t = 0; t < n_tensors; ++t) {
      const float* p = reinterpret_cast<const float*>(p_ptrs[t]);
      const float* g = reinterpret_cast<const float*>(g_ptrs[t]);
      float* m = reinterpret_cast<float*>(m_ptrs[t]);
      float* v = reinterpret_cast<float*>(v_ptrs[t]);
      int64_t lo, hi;
      share(n_units[t] * fan_in[t], &lo, &hi);
      double ww = 0.0, uu = 0.0;
#pragma omp simd reduction(+ : ww, uu)
      for (int64_t i = lo; i < hi; ++i) {
        const float m_new = m[i] * beta1 + g[i] * one_minus_beta1;
        const float v_new = v[i] * beta2 + g[i] * g[i] * one_minus_beta2;
        m[i] = m_new;
        v[i] = v_new;
        const float u = (m_new / correction1) / (std::sqrt(v_new / correction2) + eps) +
                        weight_decay * p[i];
        ww += static_cast<double>(p[i]) * p[i];
        uu += static_cast<double>(u) * u;
      }
      mine[2 * t] = ww;
      mine[2 * t + 1] = uu;
    }
#pragma omp barrier
    for (int64_t t = 0; t < n_tensors; ++t) {
      double ww = 0.0, uu = 0.0;
      for (int k = 0; k < n_threads; ++k) {
        ww += scratch[2 * (k * n_tensors + t)];
        uu += scratch[2 * (k * n_tensors + t) + 1];
      }
      const float w_norm = std::min(static_cast<float>(std::sqrt(ww)), max_weight_norm);
      const float u_norm = static_cast<float>(std::sqrt(uu));
      const float trust = (w_norm > 0.0f && u_norm > 0.0f) ? w_norm / u_norm : 1.0f;
      float* p = reinterpret_cast<float*>(p_ptrs[t]);
      const float* m = reinterpret_cast<const float*>(m_ptrs[t]);
      const float* v = reinterpret_cast<const float*>(v_ptrs[t]);
      const int64_t n = n_units[t], d = fan_in[t];
      auto apply = [&](int64_t lo, int64_t hi) {
#pragma omp simd
        for (int64_t i = lo; i < hi; ++i) {
          const float u = (m[i] / correction1) / (std::sqrt(v[i] / correction2) + eps) +
                          weight_decay * p[i];
          p[i] += neg_lr * (u * trust);
        }
      };
      if (!project_flags[t]) {
        int64_t lo, hi;
        share(n * d, &lo, &hi);
        apply(lo, hi);
        continue;
      }
#pragma omp for schedule(static) nowait
      for (int64_t i = 0; i < n; ++i) {
        apply(i * d, (i + 1) * d);
        project(p + i * d, d);
      }
    }
  }
}
"""

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


def grad_like(p: Tensor) -> Tensor:
    """``p.grad`` in ``p``'s dtype and memory layout (copied only where it differs)."""
    g = p.grad
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
