/*
 * Data movement for TF.js's WASM backend: the copies behind SplitV, Concat, 2-D Slice, GatherV2 and Transpose.
 *
 * Why this exists: tfjs-backend-wasm does SplitV, Concat and Slice in JavaScript, one `subarray` + `set` per row,
 * so splitting the packed q/k/v projection of an evaluation batch ([8704, 192] into three [8704, 64]) took 13 ms,
 * about 10% of the image encoder's forward pass; its Gather and Transpose walk a generic index per element (the
 * token-embedding lookup of a training batch, 1,920 rows of 64, took 8.7 ms; transposing a [2176, 256] activation
 * for a weight gradient 2.3 ms). A copy moves bits and computes nothing, so results cannot change.
 * Rows are copied with `memory.copy` (bulk memory, -mbulk-memory); element-wise transposes go by 16x16 tiles of
 * 4x4 blocks shuffled in SIMD registers.
 */
#include <wasm_simd128.h>

#define TILE 16

__attribute__((export_name("copy_rows"))) void copy_rows(const float *src, float *dst, int rows, int cols, int src_stride, int dst_stride) {
  for (int r = 0; r < rows; r++) __builtin_memcpy(dst + (long)r * dst_stride, src + (long)r * src_stride, (unsigned long)cols * 4);
}

/* out[i] = table[idx[i]] for rows of `len` elements. */
__attribute__((export_name("gather_rows"))) void gather_rows(const float *table, const int *idx, float *out, int n, int len) {
  for (int i = 0; i < n; i++) __builtin_memcpy(out + (long)i * len, table + (long)idx[i] * len, (unsigned long)len * 4);
}

/*
 * For each of `batch` matrices [rows, cols] whose elements are `item` contiguous floats: out = its transpose
 * [cols, rows] (items kept whole). Covers every permutation that swaps two adjacent groups of axes: [1, 0],
 * attention's [0, 2, 1, 3], and [0, 2, 3, 1].
 */
__attribute__((export_name("transpose_items"))) void transpose_items(const float *src, float *dst, int batch, int rows, int cols, int item) {
  const long plane = (long)rows * cols * item;
  for (int n = 0; n < batch; n++) {
    const float *s = src + n * plane;
    float *d = dst + n * plane;
    if (item > 1) {
      for (int c = 0; c < cols; c++)
        for (int r = 0; r < rows; r++) __builtin_memcpy(d + ((long)c * rows + r) * item, s + ((long)r * cols + c) * item, (unsigned long)item * 4);
      continue;
    }
    for (int r0 = 0; r0 < rows; r0 += TILE) {
      const int r1 = r0 + TILE < rows ? r0 + TILE : rows;
      for (int c0 = 0; c0 < cols; c0 += TILE) {
        const int c1 = c0 + TILE < cols ? c0 + TILE : cols;
        int r = r0;
        /* 4x4 blocks through SIMD registers, then the ragged edges one element at a time. */
        for (; r + 4 <= r1; r += 4) {
          int c = c0;
          for (; c + 4 <= c1; c += 4) {
            const v128_t a = wasm_v128_load(s + (long)(r + 0) * cols + c);
            const v128_t b = wasm_v128_load(s + (long)(r + 1) * cols + c);
            const v128_t e = wasm_v128_load(s + (long)(r + 2) * cols + c);
            const v128_t f = wasm_v128_load(s + (long)(r + 3) * cols + c);
            const v128_t ab0 = wasm_i32x4_shuffle(a, b, 0, 4, 1, 5), ab1 = wasm_i32x4_shuffle(a, b, 2, 6, 3, 7);
            const v128_t ef0 = wasm_i32x4_shuffle(e, f, 0, 4, 1, 5), ef1 = wasm_i32x4_shuffle(e, f, 2, 6, 3, 7);
            wasm_v128_store(d + (long)(c + 0) * rows + r, wasm_i64x2_shuffle(ab0, ef0, 0, 2));
            wasm_v128_store(d + (long)(c + 1) * rows + r, wasm_i64x2_shuffle(ab0, ef0, 1, 3));
            wasm_v128_store(d + (long)(c + 2) * rows + r, wasm_i64x2_shuffle(ab1, ef1, 0, 2));
            wasm_v128_store(d + (long)(c + 3) * rows + r, wasm_i64x2_shuffle(ab1, ef1, 1, 3));
          }
          for (; c < c1; c++)
            for (int i = 0; i < 4; i++) d[(long)c * rows + r + i] = s[(long)(r + i) * cols + c];
        }
        for (; r < r1; r++)
          for (int c = c0; c < c1; c++) d[(long)c * rows + r] = s[(long)r * cols + c];
      }
    }
  }
}
