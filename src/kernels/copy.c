/*
 * Strided row copies for TF.js's WASM backend: the data movement of SplitV, Concat and 2-D Slice.
 *
 * Why this exists: tfjs-backend-wasm does these in JavaScript, one `subarray` + `set` per row, so splitting the
 * packed q/k/v projection of an evaluation batch ([8704, 192] into three [8704, 64]) took 13 ms, about 10% of
 * the image encoder's forward pass. A copy moves bits and computes nothing, so results cannot change.
 * Each row becomes one `memory.copy` (bulk memory, -mbulk-memory).
 */
__attribute__((export_name("copy_rows"))) void copy_rows(const float *src, float *dst, int rows, int cols, int src_stride, int dst_stride) {
  for (int r = 0; r < rows; r++) __builtin_memcpy(dst + (long)r * dst_stride, src + (long)r * src_stride, (unsigned long)cols * 4);
}
