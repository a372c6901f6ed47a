// The CPU kernels of Nero, Madam and LAMB (see nero/_native.py, which compiles this file with the
// system C++ compiler on first use and calls it through ctypes). Each kernel takes one array per
// argument column (a pointer and sizes per tensor) and splits every tensor's neurons evenly over
// the OpenMP threads. Check it with: g++ -std=c++17 -fopenmp -Wall -Wextra -fsyntax-only kernels.cpp
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

// One neuron of d entries: update, then centre and normalise as flags say. The same
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
// fan_in[t] contiguous floats; flags[t] bit 0 = centre (mean constraint), bit 1 = normalise
// (norm constraint). Each thread takes an even share of every tensor's
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
      // Fan-in-1 neurons are not centred under the norm constraint (it would divide by zero).
      const int f = (d > 1 || !(flags[t] & 2)) ? flags[t] : flags[t] & 2;
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
