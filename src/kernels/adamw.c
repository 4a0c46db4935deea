/* build: shared-memory */
/*
 * AdamW's update of one parameter, for optim.ts. The arithmetic is the JavaScript loop's, operation for operation
 * in float64 with float32 loads and stores, so the results are the same bits; only two lanes at a time.
 *
 * Why this exists: the update's three divisions and square root per value ran at 10-17 ns a value in JavaScript,
 * 5-10 ms a step for MiniCLIP's 538K parameters (2-4% of a training step, and the part of a two-core step that
 * neither core can hide). V8 does not vectorise, and float64x2 division and square root halve that cost.
 *
 * The module imports a shared memory (built with --shared-memory) so that both threads of two-core training run it
 * on the same parameters, gradients and optimiser state, which live in that memory. It is built without a stack,
 * which both threads would share: everything here must stay in locals (no arrays whose address is taken, no calls).
 */
#include <wasm_simd128.h>

static inline v128_t lo(v128_t x) { return wasm_f64x2_promote_low_f32x4(x); }
static inline v128_t hi(v128_t x) { return wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(x, x, 2, 3, 0, 1)); }
/* Round two float64x2 to float32 (to nearest, as a Float32Array store does) and pack them. */
static inline v128_t pack(v128_t a, v128_t b) { return wasm_i32x4_shuffle(wasm_f32x4_demote_f64x2_zero(a), wasm_f32x4_demote_f64x2_zero(b), 0, 1, 4, 5); }

/*
 * p, m, v updated in place from the gradient g (+ g2 when g2 is not null: the float32 sum of two threads'
 * gradients). omb1 = 1 - b1 and omb2 = 1 - b2 come from JavaScript, so they are the same doubles; c1 and c2 are the
 * bias corrections.
 */
__attribute__((export_name("adamw"))) void adamw(float *restrict p, const float *restrict g, const float *restrict g2, float *restrict m,
                                                  float *restrict v, int n, double b1, double omb1, double b2, double omb2, double c1,
                                                  double c2, double eps, double lr, double wd) {
  const v128_t B1 = wasm_f64x2_splat(b1), OMB1 = wasm_f64x2_splat(omb1), B2 = wasm_f64x2_splat(b2), OMB2 = wasm_f64x2_splat(omb2);
  const v128_t C1 = wasm_f64x2_splat(c1), C2 = wasm_f64x2_splat(c2), EPS = wasm_f64x2_splat(eps), LR = wasm_f64x2_splat(lr), WD = wasm_f64x2_splat(wd);
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    v128_t gf = wasm_v128_load(g + i);
    if (g2) {
      v128_t g2f = wasm_v128_load(g2 + i);
      gf = pack(wasm_f64x2_add(lo(gf), lo(g2f)), wasm_f64x2_add(hi(gf), hi(g2f)));
    }
    v128_t gd[2] = {lo(gf), hi(gf)};
    v128_t mf = wasm_v128_load(m + i), vf = wasm_v128_load(v + i), pf = wasm_v128_load(p + i);
    v128_t md[2] = {lo(mf), hi(mf)}, vd[2] = {lo(vf), hi(vf)}, pd[2] = {lo(pf), hi(pf)};
    for (int k = 0; k < 2; k++) {
      md[k] = wasm_f64x2_add(wasm_f64x2_mul(B1, md[k]), wasm_f64x2_mul(OMB1, gd[k]));
      vd[k] = wasm_f64x2_add(wasm_f64x2_mul(B2, vd[k]), wasm_f64x2_mul(wasm_f64x2_mul(OMB2, gd[k]), gd[k]));
    }
    /* The parameter's step reads m and v as stored (rounded to float32), as the JavaScript loop does. */
    mf = pack(md[0], md[1]);
    vf = pack(vd[0], vd[1]);
    wasm_v128_store(m + i, mf);
    wasm_v128_store(v + i, vf);
    v128_t mr[2] = {lo(mf), hi(mf)}, vr[2] = {lo(vf), hi(vf)};
    for (int k = 0; k < 2; k++) {
      v128_t den = wasm_f64x2_add(wasm_f64x2_sqrt(wasm_f64x2_div(vr[k], C2)), EPS);
      v128_t step = wasm_f64x2_add(wasm_f64x2_div(wasm_f64x2_div(mr[k], C1), den), wasm_f64x2_mul(WD, pd[k]));
      pd[k] = wasm_f64x2_sub(pd[k], wasm_f64x2_mul(LR, step));
    }
    wasm_v128_store(p + i, pack(pd[0], pd[1]));
  }
  for (; i < n; i++) {
    double gi = g2 ? (double)(float)((double)g[i] + (double)g2[i]) : (double)g[i];
    m[i] = (float)(b1 * (double)m[i] + omb1 * gi);
    v[i] = (float)(b2 * (double)v[i] + omb2 * gi * gi);
    p[i] = (float)((double)p[i] - lr * ((double)m[i] / c1 / (__builtin_sqrt((double)v[i] / c2) + eps) + wd * (double)p[i]));
  }
}
