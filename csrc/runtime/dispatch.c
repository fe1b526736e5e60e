/*
 * runtime/dispatch.c - detect the CPU once and choose the ISA's set of
 * family sub-tables (fnn_isa_tables, generated from FNN_FAMILIES in kernels.h).
 *
 * AVX2 needs the AVX2 and FMA cpuid bits and the OS saving YMM state; AVX-512
 * needs F, BW, DQ and VL and the OS saving ZMM and opmask state (xgetbv).
 * A path is offered only if this build compiled it (FNN_BUILD_AVX2/512).
 */
#include "../fastnn.h"
#include "../kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define FNN_X86 1
#endif

/* each ISA's sub-tables, one per family of FNN_FAMILIES */
#define FNN_AT_GENERIC_(type, family) .family = &type##_generic,
static const fnn_isa_tables tables_generic = {FNN_FAMILIES(FNN_AT_GENERIC_)};
#ifdef FNN_BUILD_AVX2
#define FNN_AT_AVX2_(type, family) .family = &type##_avx2,
static const fnn_isa_tables tables_avx2 = {FNN_FAMILIES(FNN_AT_AVX2_)};
#endif
#ifdef FNN_BUILD_AVX512
#define FNN_AT_AVX512_(type, family) .family = &type##_avx512,
static const fnn_isa_tables tables_avx512 = {FNN_FAMILIES(FNN_AT_AVX512_)};
#endif

_Atomic(const fnn_isa_tables *) fnn_active_tables = &tables_generic;
static fnn_isa fnn_active = FNN_ISA_GENERIC;

#ifdef FNN_X86
static uint64_t xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static fnn_isa detect_cpu(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return FNN_ISA_GENERIC;
    int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
    if (!(fma && osxsave && avx)) return FNN_ISA_GENERIC;
    uint64_t xcr0 = xgetbv0();
    if ((xcr0 & 0x6) != 0x6) return FNN_ISA_GENERIC;          /* XMM and YMM state */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return FNN_ISA_GENERIC;
    int avx2 = (b >> 5) & 1;
    if (!avx2) return FNN_ISA_GENERIC;
    int avx512 = ((b >> 16) & 1) && ((b >> 17) & 1) && ((b >> 30) & 1) && ((b >> 31) & 1);
    if (avx512 && (xcr0 & 0xe6) == 0xe6) return FNN_ISA_AVX512; /* + opmask, ZMM state */
    return FNN_ISA_AVX2;
}
#else
static fnn_isa detect_cpu(void) { return FNN_ISA_GENERIC; }
#endif

int fnn_isa_compiled(fnn_isa isa) {
    switch (isa) {
    case FNN_ISA_GENERIC: return 1;
#ifdef FNN_BUILD_AVX2
    case FNN_ISA_AVX2: return 1;
#endif
#ifdef FNN_BUILD_AVX512
    case FNN_ISA_AVX512: return 1;
#endif
    default: return 0;
    }
}

fnn_isa fnn_best_isa(void) {
    fnn_isa isa = detect_cpu();
    while (isa > FNN_ISA_GENERIC && !fnn_isa_compiled(isa)) isa = (fnn_isa)(isa - 1);
    return isa;
}

/* the ISA names: the one list Python reads (fastnn._C.ISA_NAMES) */
static const char *const isa_names[FNN_ISA_COUNT] = {
    [FNN_ISA_GENERIC] = "generic",
    [FNN_ISA_AVX2] = "avx2",
    [FNN_ISA_AVX512] = "avx512",
};

const char *fnn_isa_name(fnn_isa isa) {
    return (int)isa >= 0 && isa < FNN_ISA_COUNT ? isa_names[isa] : "unknown";
}

static const fnn_isa_tables *tables_for(fnn_isa isa) {
    switch (isa) {
#ifdef FNN_BUILD_AVX2
    case FNN_ISA_AVX2: return &tables_avx2;
#endif
#ifdef FNN_BUILD_AVX512
    case FNN_ISA_AVX512: return &tables_avx512;
#endif
    default: return &tables_generic;
    }
}

fnn_status fnn_init(int requested) {
    fnn_isa best = fnn_best_isa();
    fnn_isa isa = requested < 0 ? best : (fnn_isa)requested;
    if (requested < -1 || requested >= (int)FNN_ISA_COUNT || isa > best) return FNN_ERR_ISA;
    fnn_active = isa;
    atomic_store(&fnn_active_tables, tables_for(isa));
    return FNN_OK;
}

fnn_isa fnn_active_isa(void) { return fnn_active; }
