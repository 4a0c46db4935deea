/*
 * Matrix products for TF.js's WASM backend, each bit-identical to what it replaces: the batched product (first,
 * below), the plain 2-D product at small shared dimensions (`gemm`) and a weight gradient without its transposed
 * copy (`gemm_tn`), both further down.
 *
 * Batched matrix product, bit-identical to TF.js's own kernel and about 10x faster.
 *
 * Why this exists: tfjs-backend-wasm sends every BatchMatMul with a batch above 1 or a transpose flag to
 * `slow_batch_matmul` (batch_mat_mul_impl.cc), a scalar triple loop that runs at ~0.7 GFLOP/s on this CPU.
 * Attention's per-head products ([B*H, T, dh] x [B*H, dh, T]) and their gradients all take that path; at the
 * `small` profile they were ~30% of a training step. XNNPACK (the fast path) only covers one 2-D product.
 *
 * What it computes, exactly as the slow kernel does, so that results do not move by a single bit:
 *   out[b, i, j] = sum over k-blocks of 48 (in order) of ( sum over k in the block (in order) of a*b ),
 *   each block sum starting from 0.0f and added as `(current + block) + 0.0f` (the kernel adds a zero bias).
 * Only the order in which independent outputs are computed changes: four columns j at a time in SIMD lanes,
 * each lane still accumulating its own k in sequence (wasm has no fused multiply-add, so each mul and add
 * rounds as the scalar code does).
 *
 * The module imports TF.js's own memory and touches nothing but `out` and `scratch` (no stack, no data).
 * Build: scripts/build-kernels.sh (clang --target=wasm32 -msimd128), which writes src/kernels/bmmWasm.ts.
 */
#include <wasm_simd128.h>

#define KBLOCK 48

/* dst[c * ldd + r] = src[r * lds + c] for a [rows, cols] block: 4 x 4 tiles transposed in SIMD registers, tails
 * element by element (a copy: the values do not change). */
static void transpose_s(const float *src, int lds, float *dst, int ldd, int rows, int cols) {
  int r = 0;
  for (; r + 4 <= rows; r += 4) {
    int c = 0;
    for (; c + 4 <= cols; c += 4) {
      const v128_t x0 = wasm_v128_load(src + (long)(r + 0) * lds + c), x1 = wasm_v128_load(src + (long)(r + 1) * lds + c);
      const v128_t x2 = wasm_v128_load(src + (long)(r + 2) * lds + c), x3 = wasm_v128_load(src + (long)(r + 3) * lds + c);
      const v128_t t0 = wasm_i32x4_shuffle(x0, x1, 0, 4, 1, 5), t1 = wasm_i32x4_shuffle(x2, x3, 0, 4, 1, 5);
      const v128_t t2 = wasm_i32x4_shuffle(x0, x1, 2, 6, 3, 7), t3 = wasm_i32x4_shuffle(x2, x3, 2, 6, 3, 7);
      wasm_v128_store(dst + (long)(c + 0) * ldd + r, wasm_i32x4_shuffle(t0, t1, 0, 1, 4, 5));
      wasm_v128_store(dst + (long)(c + 1) * ldd + r, wasm_i32x4_shuffle(t0, t1, 2, 3, 6, 7));
      wasm_v128_store(dst + (long)(c + 2) * ldd + r, wasm_i32x4_shuffle(t2, t3, 0, 1, 4, 5));
      wasm_v128_store(dst + (long)(c + 3) * ldd + r, wasm_i32x4_shuffle(t2, t3, 2, 3, 6, 7));
    }
    for (; c < cols; c++)
      for (int i = r; i < r + 4; i++) dst[(long)c * ldd + i] = src[(long)i * lds + c];
  }
  for (; r < rows; r++)
    for (int c = 0; c < cols; c++) dst[(long)c * ldd + r] = src[(long)r * lds + c];
}

/*
 * out [M, N] = a [M, K] @ b [K, N], row-major with row strides lda, ldb, ldc (attention reads and writes heads in
 * place in wider rows); each finished sum times `scale` when `scaled` (a separate float multiply, as a Mul after it).
 * noinline: inlined at attn_grad's call sites, clang's code ran its backward pass 1.7x slower in V8 (an A/B of the
 * two builds in one process).
 */
__attribute__((noinline)) static void matmul_s(const float *a, int lda, const float *b, int ldb, float *out, int ldc, int M, int N, int K, int scaled, float scale) {
  const v128_t zero = wasm_f32x4_splat(0.0f);
  const v128_t sv = wasm_f32x4_splat(scale);
#define STORE4(p, c) wasm_v128_store(p, scaled ? wasm_f32x4_mul(c, sv) : c)
  int j = 0;
  for (; j + 4 <= N; j += 4) {
    int i = 0;
    for (; i + 4 <= M; i += 4) {
      v128_t c0 = zero, c1 = zero, c2 = zero, c3 = zero;
      for (int k0 = 0; k0 < K; k0 += KBLOCK) {
        const int k1 = k0 + KBLOCK < K ? k0 + KBLOCK : K;
        v128_t s0 = zero, s1 = zero, s2 = zero, s3 = zero;
        for (int k = k0; k < k1; k++) {
          const v128_t bv = wasm_v128_load(b + (long)k * ldb + j);
          s0 = wasm_f32x4_add(s0, wasm_f32x4_mul(wasm_f32x4_splat(a[(long)(i + 0) * lda + k]), bv));
          s1 = wasm_f32x4_add(s1, wasm_f32x4_mul(wasm_f32x4_splat(a[(long)(i + 1) * lda + k]), bv));
          s2 = wasm_f32x4_add(s2, wasm_f32x4_mul(wasm_f32x4_splat(a[(long)(i + 2) * lda + k]), bv));
          s3 = wasm_f32x4_add(s3, wasm_f32x4_mul(wasm_f32x4_splat(a[(long)(i + 3) * lda + k]), bv));
        }
        c0 = wasm_f32x4_add(wasm_f32x4_add(c0, s0), zero);
        c1 = wasm_f32x4_add(wasm_f32x4_add(c1, s1), zero);
        c2 = wasm_f32x4_add(wasm_f32x4_add(c2, s2), zero);
        c3 = wasm_f32x4_add(wasm_f32x4_add(c3, s3), zero);
      }
      STORE4(out + (long)(i + 0) * ldc + j, c0);
      STORE4(out + (long)(i + 1) * ldc + j, c1);
      STORE4(out + (long)(i + 2) * ldc + j, c2);
      STORE4(out + (long)(i + 3) * ldc + j, c3);
    }
    for (; i < M; i++) {
      v128_t c = zero;
      for (int k0 = 0; k0 < K; k0 += KBLOCK) {
        const int k1 = k0 + KBLOCK < K ? k0 + KBLOCK : K;
        v128_t s = zero;
        for (int k = k0; k < k1; k++) s = wasm_f32x4_add(s, wasm_f32x4_mul(wasm_f32x4_splat(a[(long)i * lda + k]), wasm_v128_load(b + (long)k * ldb + j)));
        c = wasm_f32x4_add(wasm_f32x4_add(c, s), zero);
      }
      STORE4(out + (long)i * ldc + j, c);
    }
  }
#undef STORE4
  for (; j < N; j++) {
    for (int i = 0; i < M; i++) {
      float c = 0.0f;
      for (int k0 = 0; k0 < K; k0 += KBLOCK) {
        const int k1 = k0 + KBLOCK < K ? k0 + KBLOCK : K;
        float s = 0.0f;
        for (int k = k0; k < k1; k++) s += a[(long)i * lda + k] * b[(long)k * ldb + j];
        c = (c + s) + 0.0f;
      }
      out[(long)i * ldc + j] = scaled ? c * scale : c;
    }
  }
}

/* out [M, N] = a [M, K] @ b [K, N], all row-major and contiguous. */
static void matmul(const float *a, const float *b, float *out, int M, int N, int K) { matmul_s(a, K, b, N, out, N, M, N, K, 0, 0.0f); }

/*
 * out[b] = op(a[b]) @ op(b[b]) for b < batch, op transposing when ta / tb is set; a[b] is [M, K] ([K, M] when
 * ta), b[b] is [K, N] ([N, K] when tb). `scratch` holds M*K + K*N floats (transposed operands are copied there).
 */
__attribute__((export_name("bmm"))) void bmm(const float *a, const float *b, float *out, float *scratch, int batch, int M, int N, int K, int ta, int tb) {
  for (int n = 0; n < batch; n++) {
    const float *an = a + (long)n * M * K;
    const float *bn = b + (long)n * K * N;
    if (ta) {
      transpose_s(an, M, scratch, K, K, M);
      an = scratch;
    }
    if (tb) {
      transpose_s(bn, K, scratch + M * K, N, N, K);
      bn = scratch + M * K;
    }
    matmul(an, bn, out + (long)n * M * N, M, N, K);
  }
}

/*
 * The plain 2-D product, out [M, N] = a [M, K] @ b [K, N], with XNNPACK's bits, faster at this model's shapes.
 *
 * Why: TF.js sends the plain product to XNNPACK, which at MiniCLIP's shapes (thousands of rows, K = 64-256) runs
 * at ~60-75% of its own speed on a 1024^3 product. XNNPACK's f32 GEMM on WASM sums each output in k order,
 * starting from a zero bias, with a separate multiply and add (WASM SIMD has no fused multiply-add): out[i, j] =
 * ((0 + a[i,0] b[0,j]) + a[i,1] b[1,j]) + ... Any kernel that keeps that order per output gives the same bits
 * (test/kernels.test.ts checks it against TF.js). This one skips XNNPACK's packing of b and walks 64-row blocks of
 * a against 8-column strips of b (4 x 8 outputs in registers), which keeps both operands in L1 at these K.
 * batchMatMul.ts sends only small K here; the 1024^3 yardstick of `rvpt bench` stays with XNNPACK.
 */
#define GEMM_ROWS 64

/* R rows x V vectors of 4 columns, starting at out[0, 0]; a and b already offset to the tile's row and column. */
#define GEMM_TILE(R, V)                                                                              \
  do {                                                                                                 \
    v128_t c[R][V];                                                                                    \
    for (int r = 0; r < R; r++)                                                                        \
      for (int v = 0; v < V; v++) c[r][v] = wasm_f32x4_splat(0.0f);                                    \
    for (int k = 0; k < K; k++) {                                                                      \
      v128_t bv[V];                                                                                    \
      for (int v = 0; v < V; v++) bv[v] = wasm_v128_load(b + (long)k * N + 4 * v);                     \
      for (int r = 0; r < R; r++) {                                                                    \
        const v128_t av = wasm_f32x4_splat(a[(long)r * K + k]);                                        \
        for (int v = 0; v < V; v++) c[r][v] = wasm_f32x4_add(c[r][v], wasm_f32x4_mul(av, bv[v]));       \
      }                                                                                                \
    }                                                                                                  \
    for (int v = 0; v < V; v++) {                                                                      \
      const v128_t bias_v = bias ? wasm_v128_load(bias + 4 * v) : wasm_f32x4_splat(0.0f);              \
      for (int r = 0; r < R; r++) wasm_v128_store(out + (long)r * N + 4 * v, bias ? wasm_f32x4_add(c[r][v], bias_v) : c[r][v]); \
    }                                                                                                  \
  } while (0)

typedef void (*gemm_tile)(const float *, const float *, const float *, float *, int, int);
static void gemm_4x8(const float *a, const float *b, const float *bias, float *out, int N, int K) { GEMM_TILE(4, 2); }
static void gemm_1x8(const float *a, const float *b, const float *bias, float *out, int N, int K) { GEMM_TILE(1, 2); }
static void gemm_4x4(const float *a, const float *b, const float *bias, float *out, int N, int K) { GEMM_TILE(4, 1); }
static void gemm_1x4(const float *a, const float *b, const float *bias, float *out, int N, int K) { GEMM_TILE(1, 1); }

/* Rows [i0, i1) of out, columns from j on (the tiles' width). */
static void gemm_strip(const float *a, const float *b, const float *bias, float *out, int i0, int i1, int j, int N, int K, gemm_tile four, gemm_tile one) {
  const float *bj = bias ? bias + j : 0;
  int i = i0;
  for (; i + 4 <= i1; i += 4) four(a + (long)i * K, b + j, bj, out + (long)i * N + j, N, K);
  for (; i < i1; i++) one(a + (long)i * K, b + j, bj, out + (long)i * N + j, N, K);
}

/* Rows [i0, i1) of out, all columns. */
static void gemm_rows(const float *a, const float *b, const float *bias, float *out, int i0, int i1, int N, int K) {
  int j = 0;
  for (; j + 8 <= N; j += 8) gemm_strip(a, b, bias, out, i0, i1, j, N, K, gemm_4x8, gemm_1x8);
  for (; j + 4 <= N; j += 4) gemm_strip(a, b, bias, out, i0, i1, j, N, K, gemm_4x4, gemm_1x4);
  for (; j < N; j++)
    for (int i = i0; i < i1; i++) {
      float c = 0.0f;
      for (int k = 0; k < K; k++) c = c + a[(long)i * K + k] * b[(long)k * N + j];
      out[(long)i * N + j] = bias ? c + bias[j] : c;
    }
}

/*
 * out = a @ b, or a @ b + bias (bias [N] or null) with the bias added to the finished sum, which gives the bits of
 * a product followed by a broadcast add (a dense layer's forward pass in one write of its output).
 */
__attribute__((export_name("gemm"))) void gemm(const float *a, const float *b, const float *bias, float *out, int M, int N, int K) {
  for (int i0 = 0; i0 < M; i0 += GEMM_ROWS) gemm_rows(a, b, bias, out, i0, i0 + GEMM_ROWS < M ? i0 + GEMM_ROWS : M, N, K);
}

/*
 * out [M, N] = a^T @ b for a [K, M] and b [K, N]: a dense layer's weight gradient, x^T @ dy. Each output is summed in
 * k order from 0.0f, so it gives the bits of an explicit transpose followed by the plain product (ours above or
 * XNNPACK's), without writing the transposed copy (at the `small` profile those copies were ~5% of a training
 * step). K is walked in blocks of GEMM_TN_K rows, each block's partial sums kept in `out` between blocks (a float
 * stored and reloaded is the same float), so that the strips of a and b a tile reads stay in cache.
 */
#define GEMM_TN_K 128

/* R columns of a (R = 4: one vector load, lanes broadcast by shuffles; R = 1: a scalar) x V vectors of b's columns. */
#define GEMM_TN_TILE(R, V)                                                                           \
  do {                                                                                                 \
    v128_t c[R][V];                                                                                    \
    for (int r = 0; r < R; r++)                                                                        \
      for (int v = 0; v < V; v++) c[r][v] = k0 == 0 ? wasm_f32x4_splat(0.0f) : wasm_v128_load(out + (long)r * N + 4 * v); \
    for (int k = k0; k < k1; k++) {                                                                    \
      v128_t bv[V];                                                                                    \
      for (int v = 0; v < V; v++) bv[v] = wasm_v128_load(b + (long)k * N + 4 * v);                     \
      const v128_t a4 = R == 4 ? wasm_v128_load(a + (long)k * M) : wasm_f32x4_splat(a[(long)k * M]);  \
      for (int r = 0; r < R; r++) {                                                                    \
        const v128_t av = r == 0 ? wasm_i32x4_shuffle(a4, a4, 0, 0, 0, 0)                              \
                        : r == 1 ? wasm_i32x4_shuffle(a4, a4, 1, 1, 1, 1)                              \
                        : r == 2 ? wasm_i32x4_shuffle(a4, a4, 2, 2, 2, 2)                              \
                                 : wasm_i32x4_shuffle(a4, a4, 3, 3, 3, 3);                             \
        for (int v = 0; v < V; v++) c[r][v] = wasm_f32x4_add(c[r][v], wasm_f32x4_mul(av, bv[v]));       \
      }                                                                                                \
    }                                                                                                  \
    for (int r = 0; r < R; r++)                                                                        \
      for (int v = 0; v < V; v++) wasm_v128_store(out + (long)r * N + 4 * v, c[r][v]);                 \
  } while (0)

typedef void (*tn_tile)(const float *, const float *, float *, int, int, int, int);
static void tn_4x8(const float *a, const float *b, float *out, int M, int N, int k0, int k1) { GEMM_TN_TILE(4, 2); }
static void tn_1x8(const float *a, const float *b, float *out, int M, int N, int k0, int k1) { GEMM_TN_TILE(1, 2); }
static void tn_4x4(const float *a, const float *b, float *out, int M, int N, int k0, int k1) { GEMM_TN_TILE(4, 1); }
static void tn_1x4(const float *a, const float *b, float *out, int M, int N, int k0, int k1) { GEMM_TN_TILE(1, 1); }

/* Columns [j, j + width) of out for every row, over k in [k0, k1). */
static void tn_strip(const float *a, const float *b, float *out, int M, int N, int j, int k0, int k1, tn_tile four, tn_tile one) {
  int i = 0;
  for (; i + 4 <= M; i += 4) four(a + i, b + j, out + (long)i * N + j, M, N, k0, k1);
  for (; i < M; i++) one(a + i, b + j, out + (long)i * N + j, M, N, k0, k1);
}

__attribute__((export_name("gemm_tn"))) void gemm_tn(const float *a, const float *b, float *out, int M, int N, int K) {
  if (K == 0)
    for (long i = 0; i < (long)M * N; i++) out[i] = 0.0f;
  for (int k0 = 0; k0 < K; k0 += GEMM_TN_K) {
    const int k1 = k0 + GEMM_TN_K < K ? k0 + GEMM_TN_K : K;
    int j = 0;
    for (; j + 8 <= N; j += 8) tn_strip(a, b, out, M, N, j, k0, k1, tn_4x8, tn_1x8);
    for (; j + 4 <= N; j += 4) tn_strip(a, b, out, M, N, j, k0, k1, tn_4x4, tn_1x4);
    for (; j < N; j++)
      for (int i = 0; i < M; i++) {
        float c = k0 == 0 ? 0.0f : out[(long)i * N + j];
        for (int k = k0; k < k1; k++) c = c + a[(long)k * M + i] * b[(long)k * N + j];
        out[(long)i * N + j] = c;
      }
  }
}

/*
 * Attention's core, from the packed projection qkv [B*T, 3C] (each row [q | k | v], head h in columns
 * h*dh .. h*dh+dh-1 of each third) to the merged heads [B*T, C], with the bits of the TF.js ops it stands for in
 * transformer.ts: the q/k/v split, q * scale, the head transposes, scores = q k^T (a bmm) + mask, ctx = attn v
 * (a bmm) and the merge transpose; the softmax between the two stays TF.js's kernel. `attn_grad` is the backward
 * pass as TF.js's autodiff composes it: BatchMatMul's gradient (dy @ b^T and a^T @ dy, each a bmm with a transpose
 * flag), Softmax's (dy*y - sum(dy*y) * y, the sum in order from 0, as WASM's Sum) and Mul's (dq = dy * scale).
 *
 * Deep prompts (VPT-deep, as RVPT tunes them): P shared rows pkv [P, 3C] (the prompts' own projection) whose keys
 * and values every image attends to after its own T, so each head has S = T + P keys. Their gradient is the sum
 * over the images, added in image order from 0 (as WASM's Sum over the batch axis of the broadcast it replaces);
 * its q third is zero (a prompt's query is never used).
 *
 * Why: those ops are ~30 kernels per block and half of them only move data; at the `small` profile they were about
 * a tenth of a training step. Each product here is the same `matmul` as bmm's above on the same operands, gathered
 * per head into scratch in the layout bmm would have built (the transposes are copies), so each output is the same
 * sequence of float operations: test/kernels.test.ts checks outputs and gradients bit for bit against the ops.
 */

/* n rows of a head's dh columns, rows `stride` floats apart (src at the head's first column), into dst [n, dh], each
 * value times `scale` when `scaled` (q * scale: a float multiply, as TF.js's Mul). */
static void gather_head(const float *src, float *dst, int n, int dh, int stride, int scaled, float scale) {
  const v128_t sv = wasm_f32x4_splat(scale);
  for (int i = 0; i < n; i++) {
    const float *r = src + (long)i * stride;
    float *o = dst + i * dh;
    int d = 0;
    for (; d + 4 <= dh; d += 4) {
      const v128_t x = wasm_v128_load(r + d);
      wasm_v128_store(o + d, scaled ? wasm_f32x4_mul(x, sv) : x);
    }
    for (; d < dh; d++) o[d] = scaled ? r[d] * scale : r[d];
  }
}

/* acc [P, dh] (rows `stride` apart) += g [P, dh]: one image's share of a shared row's gradient. */
static void accumulate(float *acc, int stride, const float *g, int P, int dh) {
  for (int p = 0; p < P; p++)
    for (int d = 0; d < dh; d++) acc[(long)p * stride + d] = acc[(long)p * stride + d] + g[p * dh + d];
}

/* scores [B*H, T, S] = (q * scale) k^T (+ mask [T, T], only without prompts) per head. scratch: (T + S)*dh floats. */
__attribute__((export_name("attn_scores"))) void attn_scores(const float *qkv, const float *pkv, int P, const float *mask, float *scores, float *scratch, int B, int T, int H, int dh, float scale) {
  const int C = H * dh, S = T + P;
  float *qs = scratch, *kt = scratch + T * dh;
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++) {
      const float *rows = qkv + (long)b * T * 3 * C;
      float *out = scores + ((long)b * H + h) * T * S;
      gather_head(rows + h * dh, qs, T, dh, 3 * C, 1, scale);
      transpose_s(rows + C + h * dh, 3 * C, kt, S, T, dh);
      if (P) transpose_s(pkv + C + h * dh, 3 * C, kt + T, S, P, dh);
      matmul(qs, kt, out, T, S, dh);
      if (mask)
        for (int e = 0; e < T * T; e++) out[e] = out[e] + mask[e];
    }
}

/* out [B*T, C] = attn v per head, written in place as the merged heads (without prompts, v read in place from qkv).
 * scratch: S*dh floats when P > 0. */
__attribute__((export_name("attn_context"))) void attn_context(const float *attn, const float *qkv, const float *pkv, int P, float *out, float *scratch, int B, int T, int H, int dh) {
  const int C = H * dh, S = T + P;
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++) {
      const float *v = qkv + (long)b * T * 3 * C + 2 * C + h * dh;
      int ldv = 3 * C;
      if (P) {
        gather_head(v, scratch, T, dh, 3 * C, 0, 0.0f);
        gather_head(pkv + 2 * C + h * dh, scratch + T * dh, P, dh, 3 * C, 0, 0.0f);
        v = scratch;
        ldv = dh;
      }
      matmul_s(attn + ((long)b * H + h) * T * S, S, v, ldv, out + (long)b * T * C + h * dh, C, T, dh, S, 0, 0.0f);
    }
}

/* Row r of S: d = d - s * y, one float multiply and one subtraction per element. */
static void softmax_grad_row(float *d, const float *y, int S, float s) {
  const v128_t sv = wasm_f32x4_splat(s);
  int j = 0;
  for (; j + 4 <= S; j += 4) wasm_v128_store(d + j, wasm_f32x4_sub(wasm_v128_load(d + j), wasm_f32x4_mul(sv, wasm_v128_load(y + j))));
  for (; j < S; j++) d[j] = d[j] - s * y[j];
}

/*
 * Softmax's gradient in place, d [T, S] = d attn on entry and d scores on return: t = d * y, then t - (sum of the
 * row's t) * y. Each row's sum runs in order from 0, as WASM's Sum; four rows' sums run side by side (independent
 * chains, interleaved). Products and differences are one float operation per element, four lanes at a time.
 */
static void softmax_grad(float *d, const float *y, int T, int S) {
  const long n = (long)T * S;
  long e = 0;
  for (; e + 4 <= n; e += 4) wasm_v128_store(d + e, wasm_f32x4_mul(wasm_v128_load(d + e), wasm_v128_load(y + e)));
  for (; e < n; e++) d[e] = d[e] * y[e];
  int i = 0;
  for (; i + 4 <= T; i += 4) {
    float *r = d + (long)i * S;
    float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
    for (int j = 0; j < S; j++) {
      s0 += r[j];
      s1 += r[S + j];
      s2 += r[2 * S + j];
      s3 += r[3 * S + j];
    }
    softmax_grad_row(r, y + (long)i * S, S, s0);
    softmax_grad_row(r + S, y + (long)(i + 1) * S, S, s1);
    softmax_grad_row(r + 2 * S, y + (long)(i + 2) * S, S, s2);
    softmax_grad_row(r + 3 * S, y + (long)(i + 3) * S, S, s3);
  }
  for (; i < T; i++) {
    float s = 0.0f;
    for (int j = 0; j < S; j++) s += d[(long)i * S + j];
    softmax_grad_row(d + (long)i * S, y + (long)i * S, S, s);
  }
}

/*
 * dqkv [B*T, 3C] (and dpkv [P, 3C]) from dout [B*T, C], the softmax output attn [B*H, T, S], qkv (and pkv).
 * scratch: 2*S*dh + T*dh + 2*T*S + P*dh floats.
 */
__attribute__((export_name("attn_grad"))) void attn_grad(const float *dout, const float *attn, const float *qkv, const float *pkv, int P, float *dqkv, float *dpkv, float *scratch, int B, int T, int H, int dh, float scale) {
  const int C = H * dh, S = T + P;
  float *vt = scratch, *kx = vt + S * dh, *qs = kx + S * dh, *ds = qs + T * dh, *tt = ds + T * S, *g = tt + T * S;
  for (long e = 0; e < (long)P * 3 * C; e++) dpkv[e] = 0.0f;
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++) {
      const float *rows = qkv + (long)b * T * 3 * C + h * dh;
      const float *prow = pkv + h * dh;
      const float *dctx = dout + (long)b * T * C + h * dh;
      const float *a = attn + ((long)b * H + h) * T * S;
      float *drows = dqkv + (long)b * T * 3 * C + h * dh;
      float *dprow = dpkv + h * dh;
      /* ctx = attn @ v: d attn = dctx @ v^T, d v = attn^T @ dctx (the prompts' rows summed over the images). */
      transpose_s(rows + 2 * C, 3 * C, vt, S, T, dh);
      if (P) transpose_s(prow + 2 * C, 3 * C, vt + T, S, P, dh);
      matmul_s(dctx, C, vt, S, ds, S, T, S, dh, 0, 0.0f);
      transpose_s(a, S, tt, T, T, S);
      matmul_s(tt, T, dctx, C, drows + 2 * C, 3 * C, T, dh, T, 0, 0.0f);
      if (P) {
        matmul_s(tt + T * T, T, dctx, C, g, dh, P, dh, T, 0, 0.0f);
        accumulate(dprow + 2 * C, 3 * C, g, P, dh);
      }
      softmax_grad(ds, a, T, S);
      /* scores = qs @ k^T: d q = (d scores @ k) * scale; d k = (qs^T @ d scores)^T, summed as d scores^T @ qs (the
       * same products in the same order). */
      const float *k = rows + C;
      int ldk = 3 * C;
      if (P) {
        gather_head(rows + C, kx, T, dh, 3 * C, 0, 0.0f);
        gather_head(prow + C, kx + T * dh, P, dh, 3 * C, 0, 0.0f);
        k = kx;
        ldk = dh;
      }
      matmul_s(ds, S, k, ldk, drows, 3 * C, T, dh, S, 1, scale);
      transpose_s(ds, S, tt, T, T, S);
      gather_head(rows, qs, T, dh, 3 * C, 1, scale);
      matmul_s(tt, T, qs, dh, drows + C, 3 * C, T, dh, T, 0, 0.0f);
      if (P) {
        matmul_s(tt + T * T, T, qs, dh, g, dh, P, dh, T, 0, 0.0f);
        accumulate(dprow + C, 3 * C, g, P, dh);
      }
    }
}
