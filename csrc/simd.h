/*
 * simd.h - one small vector vocabulary over three instruction sets.
 *
 * The per-ISA kernel files (each csrc/<family>.c, gemm/kernel.c, gemm/pack.c) are written
 * once against this header and compiled three times by setup.py, with
 * FNN_TARGET = FNN_TARGET_GENERIC (no ISA flags), FNN_TARGET_AVX2 (-mavx2
 * -mfma) or FNN_TARGET_AVX512 (-mavx512f/bw/dq/vl). FNN_K(name) gives each
 * copy's symbols a suffix, so the three coexist in one library and
 * dispatch.c chooses between them at run time.
 *
 *   vf    FNN_VW floats        vm   a lane mask (result of a comparison)
 *   vf_max(a, b), vf_min(a, b) follow x86: if either lane is NaN the result
 *   is b. Kernels put the input second to let NaN through.
 *   vf_sqrt is correctly rounded on every ISA (IEEE sqrt; NaN for a < 0).
 *   vf_fmadd(a, b, c) = a*b + c, fused where the ISA has FMA; vf_fma_exact
 *   is fused everywhere (slow on generic; use it only where exactness matters).
 *   vf_loadn / vf_storen move the first n < FNN_VW lanes (tails); vf_loadn
 *   zero-fills the other lanes, vf_loadn_or fills them with a given value;
 *   vm_first(n) is the mask of the first n lanes (0 <= n <= FNN_VW); vm_all(m)
 *   says whether every lane of a mask is set (for a branch that skips work);
 *   vf_load_masked reads the lanes of a mask, zero elsewhere, touching no
 *   memory for the others; vf_store_masked writes only the lanes of a mask.
 *   vf_transpose_block transposes `rows` <= FNN_VW rows of FNN_VW floats into
 *   FNN_VW rows of `rows` floats (for packing); other memory is not touched.
 */
#ifndef FNN_SIMD_H
#define FNN_SIMD_H

#include <stdint.h>
#include <string.h>
#include <math.h>

#define FNN_TARGET_GENERIC 0
#define FNN_TARGET_AVX2 1
#define FNN_TARGET_AVX512 2

#ifndef FNN_TARGET
#error "FNN_TARGET must be set by the build (see setup.py)"
#endif

#define FNN_CAT_(a, b) a##_##b
#define FNN_CAT(a, b) FNN_CAT_(a, b)

#define FNN_INLINE static inline __attribute__((always_inline))

/* ------------------------------------------------------------------------ */
#if FNN_TARGET == FNN_TARGET_AVX512
#include <immintrin.h>
#define FNN_K(name) FNN_CAT(name, avx512)
#define FNN_VW 16
typedef __m512 vf;
typedef __m512i vi;
typedef __mmask16 vm;

FNN_INLINE vf vf_set1(float a) { return _mm512_set1_ps(a); }
FNN_INLINE vf vf_load(const float *p) { return _mm512_loadu_ps(p); }
FNN_INLINE void vf_store(float *p, vf a) { _mm512_storeu_ps(p, a); }
FNN_INLINE vf vf_loadn(const float *p, int64_t n) {
    return _mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1u), p);
}
FNN_INLINE void vf_storen(float *p, vf a, int64_t n) {
    _mm512_mask_storeu_ps(p, (__mmask16)((1u << n) - 1u), a);
}
FNN_INLINE vm vm_first(int64_t n) { return (__mmask16)((1u << n) - 1u); }
FNN_INLINE vf vf_load_masked(const float *p, vm m) { return _mm512_maskz_loadu_ps(m, p); }
FNN_INLINE void vf_store_masked(float *p, vf a, vm m) { _mm512_mask_storeu_ps(p, m, a); }
FNN_INLINE vf vf_loadn_or(const float *p, int64_t n, float fill) {
    return _mm512_mask_loadu_ps(_mm512_set1_ps(fill), (__mmask16)((1u << n) - 1u), p);
}
FNN_INLINE vf vf_add(vf a, vf b) { return _mm512_add_ps(a, b); }
FNN_INLINE vf vf_sub(vf a, vf b) { return _mm512_sub_ps(a, b); }
FNN_INLINE vf vf_mul(vf a, vf b) { return _mm512_mul_ps(a, b); }
FNN_INLINE vf vf_div(vf a, vf b) { return _mm512_div_ps(a, b); }
FNN_INLINE vf vf_sqrt(vf a) { return _mm512_sqrt_ps(a); }
FNN_INLINE vf vf_fmadd(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
FNN_INLINE vf vf_fma_exact(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
FNN_INLINE vf vf_max(vf a, vf b) { return _mm512_max_ps(a, b); }
FNN_INLINE vf vf_min(vf a, vf b) { return _mm512_min_ps(a, b); }
FNN_INLINE vf vf_round(vf a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
FNN_INLINE vf vf_and(vf a, vf b) { return _mm512_and_ps(a, b); }
FNN_INLINE vf vf_or(vf a, vf b) { return _mm512_or_ps(a, b); }
FNN_INLINE vf vf_xor(vf a, vf b) { return _mm512_xor_ps(a, b); }
FNN_INLINE vm vf_lt(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
FNN_INLINE vm vf_gt(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
FNN_INLINE vm vf_isnan(vf a) { return _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q); }
FNN_INLINE vf vf_select(vm m, vf if_true, vf if_false) { return _mm512_mask_blend_ps(m, if_false, if_true); }
FNN_INLINE int vm_all(vm m) { return m == (__mmask16)0xFFFF; }
/* 2^n for integral-valued float n in [-126, 127] */
FNN_INLINE vf vf_pow2i(vf n) {
    vi e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_castsi512_ps(e);
}
/* a * 2^n for integral-valued n, one rounding, overflow and subnormals right */
FNN_INLINE vf vf_ldexp(vf a, vf n) { return _mm512_scalef_ps(a, n); }
/* the unbiased exponent floor(log2 x) of a positive normal x, as a float */
FNN_INLINE vf vf_exponent(vf x) { return _mm512_getexp_ps(x); }
FNN_INLINE float vf_reduce_add(vf a) { return _mm512_reduce_add_ps(a); }
/* dst[c*ldd + r] = src[r*lds + c] for the FNN_VW x FNN_VW block */
FNN_INLINE void vf_transpose_block(float *dst, int64_t ldd, const float *src, int64_t lds,
                                   int64_t rows) {
    __m512 r[16], t[16];
    for (int i = 0; i < 16; i++) r[i] = i < rows ? _mm512_loadu_ps(src + i * lds) : _mm512_setzero_ps();
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
        r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
        r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
        r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
    }
    /* r[4q + p] now holds, in each 128-bit lane L, column 4L + p of rows 4q..4q+3 */
    for (int p = 0; p < 4; p++) {
        __m512 a = r[p], b = r[4 + p], c = r[8 + p], d = r[12 + p];
        __m512 ab_lo = _mm512_shuffle_f32x4(a, b, 0x44), ab_hi = _mm512_shuffle_f32x4(a, b, 0xee);
        __m512 cd_lo = _mm512_shuffle_f32x4(c, d, 0x44), cd_hi = _mm512_shuffle_f32x4(c, d, 0xee);
        t[p] = _mm512_shuffle_f32x4(ab_lo, cd_lo, 0x88);      /* lane 0: column p */
        t[4 + p] = _mm512_shuffle_f32x4(ab_lo, cd_lo, 0xdd);  /* lane 1: column 4 + p */
        t[8 + p] = _mm512_shuffle_f32x4(ab_hi, cd_hi, 0x88);  /* lane 2: column 8 + p */
        t[12 + p] = _mm512_shuffle_f32x4(ab_hi, cd_hi, 0xdd); /* lane 3: column 12 + p */
    }
    for (int i = 0; i < 16; i++) {
        if (rows == 16) _mm512_storeu_ps(dst + i * ldd, t[i]);
        else _mm512_mask_storeu_ps(dst + i * ldd, (__mmask16)((1u << rows) - 1u), t[i]);
    }
}
FNN_INLINE float vf_reduce_max(vf a) { return _mm512_reduce_max_ps(a); }

/* ------------------------------------------------------------------------ */
#elif FNN_TARGET == FNN_TARGET_AVX2
#include <immintrin.h>
#define FNN_K(name) FNN_CAT(name, avx2)
#define FNN_VW 8
typedef __m256 vf;
typedef __m256i vi;
typedef __m256 vm;

FNN_INLINE __m256i fnn_tail_mask_avx2(int64_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
FNN_INLINE vf vf_set1(float a) { return _mm256_set1_ps(a); }
FNN_INLINE vf vf_load(const float *p) { return _mm256_loadu_ps(p); }
FNN_INLINE void vf_store(float *p, vf a) { _mm256_storeu_ps(p, a); }
FNN_INLINE vf vf_loadn(const float *p, int64_t n) { return _mm256_maskload_ps(p, fnn_tail_mask_avx2(n)); }
FNN_INLINE void vf_storen(float *p, vf a, int64_t n) { _mm256_maskstore_ps(p, fnn_tail_mask_avx2(n), a); }
FNN_INLINE vm vm_first(int64_t n) { return _mm256_castsi256_ps(fnn_tail_mask_avx2(n)); }
FNN_INLINE vf vf_load_masked(const float *p, vm m) { return _mm256_maskload_ps(p, _mm256_castps_si256(m)); }
FNN_INLINE void vf_store_masked(float *p, vf a, vm m) { _mm256_maskstore_ps(p, _mm256_castps_si256(m), a); }
FNN_INLINE vf vf_loadn_or(const float *p, int64_t n, float fill) {
    __m256i m = fnn_tail_mask_avx2(n);
    return _mm256_blendv_ps(_mm256_set1_ps(fill), _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m));
}
FNN_INLINE vf vf_add(vf a, vf b) { return _mm256_add_ps(a, b); }
FNN_INLINE vf vf_sub(vf a, vf b) { return _mm256_sub_ps(a, b); }
FNN_INLINE vf vf_mul(vf a, vf b) { return _mm256_mul_ps(a, b); }
FNN_INLINE vf vf_div(vf a, vf b) { return _mm256_div_ps(a, b); }
FNN_INLINE vf vf_sqrt(vf a) { return _mm256_sqrt_ps(a); }
FNN_INLINE vf vf_fmadd(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
FNN_INLINE vf vf_fma_exact(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
FNN_INLINE vf vf_max(vf a, vf b) { return _mm256_max_ps(a, b); }
FNN_INLINE vf vf_min(vf a, vf b) { return _mm256_min_ps(a, b); }
FNN_INLINE vf vf_round(vf a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
FNN_INLINE vf vf_and(vf a, vf b) { return _mm256_and_ps(a, b); }
FNN_INLINE vf vf_or(vf a, vf b) { return _mm256_or_ps(a, b); }
FNN_INLINE vf vf_xor(vf a, vf b) { return _mm256_xor_ps(a, b); }
FNN_INLINE vm vf_lt(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
FNN_INLINE vm vf_gt(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
FNN_INLINE vm vf_isnan(vf a) { return _mm256_cmp_ps(a, a, _CMP_UNORD_Q); }
FNN_INLINE vf vf_select(vm m, vf if_true, vf if_false) { return _mm256_blendv_ps(if_false, if_true, m); }
FNN_INLINE int vm_all(vm m) { return _mm256_movemask_ps(m) == 0xFF; }
FNN_INLINE vf vf_pow2i(vf n) {
    vi e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_castsi256_ps(e);
}
FNN_INLINE vf vf_exponent(vf x) {
    vi biased = _mm256_srli_epi32(_mm256_castps_si256(x), 23);
    return _mm256_sub_ps(_mm256_cvtepi32_ps(biased), _mm256_set1_ps(127.0f));
}
FNN_INLINE void vf_transpose_block(float *dst, int64_t ldd, const float *src, int64_t lds,
                                   int64_t rows) {
    __m256 r[8], t[8];
    for (int i = 0; i < 8; i++) r[i] = i < rows ? _mm256_loadu_ps(src + i * lds) : _mm256_setzero_ps();
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        r[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xee);
        r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xee);
    }
    /* r[4q + p] holds, in lane L, column 4L + p of rows 4q..4q+3 */
    for (int p = 0; p < 4; p++) {
        t[p] = _mm256_permute2f128_ps(r[p], r[4 + p], 0x20);
        t[4 + p] = _mm256_permute2f128_ps(r[p], r[4 + p], 0x31);
    }
    for (int i = 0; i < 8; i++) {
        if (rows == 8) _mm256_storeu_ps(dst + i * ldd, t[i]);
        else _mm256_maskstore_ps(dst + i * ldd, fnn_tail_mask_avx2(rows), t[i]);
    }
}
FNN_INLINE float vf_reduce_add(vf a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
FNN_INLINE float vf_reduce_max(vf a) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* ------------------------------------------------------------------------ */
#elif FNN_TARGET == FNN_TARGET_GENERIC
#define FNN_K(name) FNN_CAT(name, generic)
#define FNN_VW 1
typedef float vf;
typedef int vm;

FNN_INLINE uint32_t fnn_bits(float a) { uint32_t u; memcpy(&u, &a, 4); return u; }
FNN_INLINE float fnn_float(uint32_t u) { float a; memcpy(&a, &u, 4); return a; }

FNN_INLINE vf vf_set1(float a) { return a; }
FNN_INLINE vf vf_load(const float *p) { return *p; }
FNN_INLINE void vf_store(float *p, vf a) { *p = a; }
FNN_INLINE vf vf_loadn(const float *p, int64_t n) { return n > 0 ? *p : 0.0f; }
FNN_INLINE void vf_storen(float *p, vf a, int64_t n) { if (n > 0) *p = a; }
FNN_INLINE vm vm_first(int64_t n) { return n > 0; }
FNN_INLINE vf vf_load_masked(const float *p, vm m) { return m ? *p : 0.0f; }
FNN_INLINE void vf_store_masked(float *p, vf a, vm m) { if (m) *p = a; }
FNN_INLINE vf vf_loadn_or(const float *p, int64_t n, float fill) { return n > 0 ? *p : fill; }
FNN_INLINE vf vf_add(vf a, vf b) { return a + b; }
FNN_INLINE vf vf_sub(vf a, vf b) { return a - b; }
FNN_INLINE vf vf_mul(vf a, vf b) { return a * b; }
FNN_INLINE vf vf_div(vf a, vf b) { return a / b; }
FNN_INLINE vf vf_sqrt(vf a) { return sqrtf(a); }
FNN_INLINE vf vf_fmadd(vf a, vf b, vf c) { return a * b + c; }
FNN_INLINE vf vf_fma_exact(vf a, vf b, vf c) { return fmaf(a, b, c); }
FNN_INLINE vf vf_max(vf a, vf b) { return a > b ? a : b; }
FNN_INLINE vf vf_min(vf a, vf b) { return a < b ? a : b; }
FNN_INLINE vf vf_round(vf a) { return nearbyintf(a); }
FNN_INLINE vf vf_and(vf a, vf b) { return fnn_float(fnn_bits(a) & fnn_bits(b)); }
FNN_INLINE vf vf_or(vf a, vf b) { return fnn_float(fnn_bits(a) | fnn_bits(b)); }
FNN_INLINE vf vf_xor(vf a, vf b) { return fnn_float(fnn_bits(a) ^ fnn_bits(b)); }
FNN_INLINE vm vf_lt(vf a, vf b) { return a < b; }
FNN_INLINE vm vf_gt(vf a, vf b) { return a > b; }
FNN_INLINE vm vf_isnan(vf a) { return a != a; }
FNN_INLINE vf vf_select(vm m, vf if_true, vf if_false) { return m ? if_true : if_false; }
FNN_INLINE int vm_all(vm m) { return m != 0; }
FNN_INLINE vf vf_pow2i(vf n) {
    int32_t i = n == n ? (int32_t)n : 0; /* NaN -> int is undefined in C */
    return fnn_float((uint32_t)(i + 127) << 23);
}
FNN_INLINE vf vf_exponent(vf x) { return (float)(int32_t)(fnn_bits(x) >> 23) - 127.0f; }
FNN_INLINE float vf_reduce_add(vf a) { return a; }
FNN_INLINE void vf_transpose_block(float *dst, int64_t ldd, const float *src, int64_t lds,
                                   int64_t rows) {
    (void)ldd, (void)lds;
    if (rows > 0) *dst = *src;
}
FNN_INLINE float vf_reduce_max(vf a) { return a; }

#else
#error "unknown FNN_TARGET"
#endif

/* ---- shared helpers, the same on every ISA ------------------------------ */
#if FNN_TARGET != FNN_TARGET_AVX512
/* a * 2^n for integral-valued n in [-252, 254]: two exact power-of-two
 * factors, so only the last multiply rounds (subnormal results included) */
FNN_INLINE vf vf_ldexp(vf a, vf n) {
    vf n1 = vf_round(vf_mul(n, vf_set1(0.5f)));
    return vf_mul(vf_mul(a, vf_pow2i(n1)), vf_pow2i(vf_sub(n, n1)));
}
#endif
FNN_INLINE vf vf_zero(void) { return vf_set1(0.0f); }
FNN_INLINE vf vf_sign_bit(void) { return vf_set1(-0.0f); }
FNN_INLINE vf vf_abs(vf a) { return vf_xor(a, vf_and(a, vf_sign_bit())); }
FNN_INLINE vf vf_neg(vf a) { return vf_xor(a, vf_sign_bit()); }
/* c - a*b */
FNN_INLINE vf vf_fnmadd(vf a, vf b, vf c) { return vf_fmadd(vf_neg(a), b, c); }
/* lanes of a vector that `rest` remaining floats fill */
FNN_INLINE int64_t vf_lanes(int64_t rest) { return rest < FNN_VW ? rest : FNN_VW; }
/* w <= FNN_VW floats at p (the other lanes `fill`), and the matching store */
FNN_INLINE vf vf_load_w(const float *p, int64_t w, float fill) {
    return w == FNN_VW ? vf_load(p) : vf_loadn_or(p, w, fill);
}
FNN_INLINE void vf_store_w(float *p, vf a, int64_t w) {
    if (w == FNN_VW) vf_store(p, a); else vf_storen(p, a, w);
}

#endif /* FNN_SIMD_H */
