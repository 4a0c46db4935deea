/*
 * Fused LayerNorm, QuickGELU and column sums, forward and backward, for TF.js's WASM backend.
 *
 * Why this exists: written with TF.js ops, LayerNorm is about nine elementwise kernels forward and twelve backward,
 * QuickGELU three forward and six backward, each a full pass over the activations with its own dispatch; at the
 * `small` profile they were about a fifth of a training step. Here each is one pass per row. Unlike the other
 * kernels of src/kernels/, these do not give TF.js's bits: the sums run in a different order and the exponential
 * is our own (below), so results agree with the TF.js formulas to float rounding (test/layers.test.ts, 1e-4).
 */

#include <wasm_simd128.h>

/* exp(x) for float: x = n ln2 + r, |r| <= ln2/2, e^r by its degree-6 Taylor polynomial (relative error < 2e-7 on
 * that range, Cephes's expf scheme), times 2^n built in the exponent bits. Clamped where float over/underflows. */
static inline float exp_f(float x) {
  if (x > 88.0f) x = 88.0f;
  if (x < -87.0f) x = -87.0f;
  float n = __builtin_rintf(x * 1.44269504088896341f);
  float r = x - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  union { float f; int i; } s;
  s.i = ((int)n + 127) << 23;
  return p * s.f;
}

/* LayerNorm over rows of x [n, c]: y = xhat * gamma + beta, xhat = (x - mean) * rstd; keeps xhat and rstd [n]
 * for the backward pass. Two passes over each row (mean, then variance), as the textbook formula. */
__attribute__((export_name("layernorm_fwd"))) void layernorm_fwd(const float *x, const float *gamma, const float *beta, float *y, float *xhat, float *rstd, int n, int c, float eps) {
  for (int i = 0; i < n; i++) {
    const float *xr = x + (long)i * c;
    float sum = 0.0f;
    for (int j = 0; j < c; j++) sum += xr[j];
    float mean = sum / (float)c;
    float sq = 0.0f;
    for (int j = 0; j < c; j++) {
      float d = xr[j] - mean;
      sq += d * d;
    }
    float rs = 1.0f / __builtin_sqrtf(sq / (float)c + eps);
    rstd[i] = rs;
    float *hr = xhat + (long)i * c, *yr = y + (long)i * c;
    for (int j = 0; j < c; j++) {
      float h = (xr[j] - mean) * rs;
      hr[j] = h;
      yr[j] = h * gamma[j] + beta[j];
    }
  }
}

/* Its gradient: dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * gamma; dgamma = sum over rows of
 * dy * xhat, dbeta = sum over rows of dy (both [c], overwritten). */
__attribute__((export_name("layernorm_bwd"))) void layernorm_bwd(const float *dy, const float *xhat, const float *rstd, const float *gamma, float *dx, float *dgamma, float *dbeta, int n, int c) {
  for (int j = 0; j < c; j++) dgamma[j] = dbeta[j] = 0.0f;
  for (int i = 0; i < n; i++) {
    const float *dr = dy + (long)i * c, *hr = xhat + (long)i * c;
    float s1 = 0.0f, s2 = 0.0f;
    for (int j = 0; j < c; j++) {
      float g = dr[j] * gamma[j];
      s1 += g;
      s2 += g * hr[j];
      dgamma[j] += dr[j] * hr[j];
      dbeta[j] += dr[j];
    }
    float m1 = s1 / (float)c, m2 = s2 / (float)c, rs = rstd[i];
    float *xr = dx + (long)i * c;
    for (int j = 0; j < c; j++) xr[j] = rs * (dr[j] * gamma[j] - m1 - hr[j] * m2);
  }
}

/* exp_f on four lanes: the same operations in the same order, so each lane equals exp_f of it. */
static inline v128_t exp_f4(v128_t x) {
  x = wasm_f32x4_min(x, wasm_f32x4_splat(88.0f));
  x = wasm_f32x4_max(x, wasm_f32x4_splat(-87.0f));
  v128_t n = wasm_f32x4_nearest(wasm_f32x4_mul(x, wasm_f32x4_splat(1.44269504088896341f)));
  v128_t r = wasm_f32x4_sub(x, wasm_f32x4_mul(n, wasm_f32x4_splat(0.693359375f)));
  r = wasm_f32x4_add(r, wasm_f32x4_mul(n, wasm_f32x4_splat(2.12194440e-4f)));
  v128_t p = wasm_f32x4_splat(1.9875691500e-4f);
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(1.3981999507e-3f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(8.3334519073e-3f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(4.1665795894e-2f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(1.6666665459e-1f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(5.0000001201e-1f));
  p = wasm_f32x4_add(wasm_f32x4_add(wasm_f32x4_mul(wasm_f32x4_mul(p, r), r), r), wasm_f32x4_splat(1.0f));
  v128_t scale = wasm_i32x4_shl(wasm_i32x4_add(wasm_i32x4_trunc_sat_f32x4(n), wasm_i32x4_splat(127)), 23);
  return wasm_f32x4_mul(p, scale);
}

/* QuickGELU, y = x * s with s = sigmoid(1.702 x); keeps s for the backward pass. Four lanes at a time. */
__attribute__((export_name("quickgelu_fwd"))) void quickgelu_fwd(const float *x, float *y, float *s, int n) {
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    v128_t xv = wasm_v128_load(x + i);
    v128_t e = exp_f4(wasm_f32x4_mul(wasm_f32x4_splat(-1.702f), xv));
    v128_t sv = wasm_f32x4_div(wasm_f32x4_splat(1.0f), wasm_f32x4_add(wasm_f32x4_splat(1.0f), e));
    wasm_v128_store(s + i, sv);
    wasm_v128_store(y + i, wasm_f32x4_mul(xv, sv));
  }
  for (; i < n; i++) {
    float si = 1.0f / (1.0f + exp_f(-1.702f * x[i]));
    s[i] = si;
    y[i] = x[i] * si;
  }
}

/* Its gradient: dx = dy * (s + 1.702 x s (1 - s)). */
__attribute__((export_name("quickgelu_bwd"))) void quickgelu_bwd(const float *dy, const float *x, const float *s, float *dx, int n) {
  for (int i = 0; i < n; i++) dx[i] = dy[i] * (s[i] + 1.702f * x[i] * s[i] * (1.0f - s[i]));
}

/* Column sums of x [n, c] (a bias's gradient), row after row. */
__attribute__((export_name("column_sum"))) void column_sum(const float *x, float *out, int n, int c) {
  for (int j = 0; j < c; j++) out[j] = 0.0f;
  for (int i = 0; i < n; i++) {
    const float *xr = x + (long)i * c;
    for (int j = 0; j < c; j++) out[j] += xr[j];
  }
}
