/*
 * runtime/alloc.c - the size-class block cache behind fastnn's fresh outputs.
 *
 * Why: a fresh 1 MiB temporary costs ~0.5 ms of page faults when the C
 * library hands memory back to the OS on free (glibc trims the heap top and
 * unmaps blocks above its mmap threshold) and faults it in again on the next
 * step. Here freed blocks are kept and handed out again, already faulted in.
 *
 * Layout: every block is one posix_memalign allocation: a page, whose last
 * 64 bytes are the header, then the caller's bytes, page-aligned. The header
 * records the usable capacity, which realloc and free read back. Page
 * alignment matters for speed, not just for vectors: an output at a small
 * positive offset from its input modulo 4 KiB (64-byte alignment put ours at
 * +128 against NumPy's +16) makes the CPU see false store-to-load
 * dependencies (4K aliasing); relu on 1 MiB ran ~15% slower that way. A page-
 * aligned output is never ahead of its input modulo 4 KiB. Blocks of 4 MiB or
 * more are madvise(MADV_HUGEPAGE)d, as NumPy's own allocator does for them.
 * Requests of at least FNN_CACHE_MIN_BYTES are rounded up to a size class,
 * four per power of two (capacity = q * 2^(e-2), q in 5..8, so at most 25%
 * waste); a freed block of a class goes on that class's free list unless the
 * cache would then hold more than the limit (fnn_cache_set_limit), in which
 * case it is freed. Smaller requests (a resize shrinking an array) get an
 * exact block that is freed, never cached. A block is on a free list only
 * after its owner freed it, so two live arrays never share memory.
 *
 * Threads: one mutex guards the lists and counters, so any thread may
 * allocate or free, with or without the GIL. fork(): an atfork handler holds
 * the mutex across fork(), so the child gets consistent lists (its copies of
 * the cached blocks are valid memory) and an unlocked mutex.
 *
 * The functions take the NumPy memory-handler signatures (a ctx pointer that
 * is unused, free with a size that is ignored in favour of the header), so
 * the Cython layer can put them straight into a PyDataMem_Handler.
 */
#define _DEFAULT_SOURCE /* posix_memalign, madvise under -std=c11 */
#include "../fastnn.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#define HEADER 64                 /* the header's bytes, just below the data */
#define PAGE 4096                 /* the data's alignment; the header sits in the page before */
#define HUGE_FROM ((size_t)4 << 20) /* NumPy madvises huge pages from 4 MiB */
#define MAGIC 0x66617374636163ULL /* "fastcac": a block of ours */
#define MIN_EXP 17                /* the smallest class is 2^18 = FNN_CACHE_MIN_BYTES */
#define MAX_EXP 47                /* classes up to 2^48 bytes; bigger blocks are never cached */
#define NCLASS ((MAX_EXP - MIN_EXP + 1) * 4)

typedef struct block {
    uint64_t magic;
    size_t capacity;    /* usable bytes after the header */
    int cls;            /* size class, -1 for an uncached exact block */
    struct block *next; /* free-list link while cached */
} block;

_Static_assert(sizeof(block) <= HEADER, "the block header must fit in HEADER bytes");

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static block *free_list[NCLASS];
static size_t cached_bytes, cached_blocks; /* on the free lists */
static size_t live_bytes, live_blocks;     /* handed out and not yet freed */
static size_t hits, misses;
static size_t limit = (size_t)1 << 30;     /* cap on cached_bytes: 1 GiB */

static void lock_for_fork(void) { pthread_mutex_lock(&lock); }
static void unlock_after_fork(void) { pthread_mutex_unlock(&lock); }
static void register_atfork(void) {
    pthread_atfork(lock_for_fork, unlock_after_fork, unlock_after_fork);
}

/* Size class of n bytes (n >= FNN_CACHE_MIN_BYTES) and its capacity; -1 if too big. */
static int size_class(size_t n, size_t *capacity) {
    size_t m = n - 1;
    int e = 63 - __builtin_clzll((unsigned long long)m); /* 2^e <= m < 2^(e+1) */
    if (e > MAX_EXP) return -1;
    size_t step = (size_t)1 << (e - 2);
    size_t q = m / step + 1; /* 5..8 */
    *capacity = q * step;
    return (e - MIN_EXP) * 4 + (int)(q - 5);
}

static inline void *data_of(block *b) { return (char *)b + HEADER; }
static inline block *block_of(void *p) { return (block *)((char *)p - HEADER); }
static inline void *memory_of(block *b) { return (char *)b + HEADER - PAGE; }

static block *new_block(size_t capacity, int cls) {
    void *mem = NULL;
    if (capacity > SIZE_MAX - PAGE || posix_memalign(&mem, PAGE, PAGE + capacity) != 0)
        return NULL;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (capacity >= HUGE_FROM) madvise((char *)mem + PAGE, capacity, MADV_HUGEPAGE);
#endif
    block *b = (block *)((char *)mem + PAGE - HEADER);
    b->magic = MAGIC;
    b->capacity = capacity;
    b->cls = cls;
    b->next = NULL;
    return b;
}

void fnn_cache_init(void) { pthread_once(&once, register_atfork); }

void *fnn_cache_malloc(void *ctx, size_t size) {
    (void)ctx;
    size_t capacity = (size + HEADER - 1) / HEADER * HEADER;
    int cls = -1;
    if (size >= FNN_CACHE_MIN_BYTES) cls = size_class(size, &capacity);
    if (capacity == 0) capacity = HEADER;
    block *b = NULL;
    pthread_mutex_lock(&lock);
    if (cls >= 0 && free_list[cls] != NULL) {
        b = free_list[cls];
        free_list[cls] = b->next;
        b->next = NULL;
        cached_bytes -= capacity;
        cached_blocks--;
        hits++;
    } else {
        misses += cls >= 0;
    }
    live_bytes += capacity;
    live_blocks++;
    pthread_mutex_unlock(&lock);
    if (b == NULL && (b = new_block(capacity, cls)) == NULL) {
        pthread_mutex_lock(&lock);
        live_bytes -= capacity;
        live_blocks--;
        pthread_mutex_unlock(&lock);
        return NULL;
    }
    return data_of(b);
}

void *fnn_cache_calloc(void *ctx, size_t nelem, size_t elsize) {
    if (elsize != 0 && nelem > SIZE_MAX / elsize) return NULL;
    size_t size = nelem * elsize;
    void *p = fnn_cache_malloc(ctx, size);
    if (p != NULL) memset(p, 0, size);
    return p;
}

void fnn_cache_free(void *ctx, void *ptr, size_t size) {
    (void)ctx;
    (void)size; /* the header knows (NumPy passes the array's size, not the capacity) */
    if (ptr == NULL) return;
    block *b = block_of(ptr);
    int keep;
    pthread_mutex_lock(&lock);
    live_bytes -= b->capacity;
    live_blocks--;
    keep = b->cls >= 0 && cached_bytes + b->capacity <= limit;
    if (keep) {
        b->next = free_list[b->cls];
        free_list[b->cls] = b;
        cached_bytes += b->capacity;
        cached_blocks++;
    }
    pthread_mutex_unlock(&lock);
    if (!keep) {
        b->magic = 0;
        free(memory_of(b));
    }
}

void *fnn_cache_realloc(void *ctx, void *ptr, size_t new_size) {
    if (ptr == NULL) return fnn_cache_malloc(ctx, new_size);
    block *b = block_of(ptr);
    size_t capacity = (new_size + HEADER - 1) / HEADER * HEADER;
    int cls = -1;
    if (new_size >= FNN_CACHE_MIN_BYTES) cls = size_class(new_size, &capacity);
    if (cls == b->cls && (cls >= 0 || capacity == b->capacity))
        return ptr; /* same class (or same exact size): nothing moves */
    void *p = fnn_cache_malloc(ctx, new_size);
    if (p == NULL) return NULL; /* the old block stays valid, as realloc promises */
    memcpy(p, ptr, new_size < b->capacity ? new_size : b->capacity);
    fnn_cache_free(ctx, ptr, 0);
    return p;
}

/* Free every cached block; returns the bytes given back. */
size_t fnn_cache_empty(void) {
    block *lists[NCLASS];
    size_t freed;
    pthread_mutex_lock(&lock);
    memcpy(lists, free_list, sizeof lists);
    memset(free_list, 0, sizeof free_list);
    freed = cached_bytes;
    cached_bytes = cached_blocks = 0;
    pthread_mutex_unlock(&lock);
    for (int c = 0; c < NCLASS; c++) {
        for (block *b = lists[c], *next; b != NULL; b = next) {
            next = b->next;
            b->magic = 0;
            free(memory_of(b));
        }
    }
    return freed;
}

/* Cap the cached bytes (frees cached blocks, largest classes first, down to it). */
void fnn_cache_set_limit(size_t bytes) {
    block *drop = NULL;
    pthread_mutex_lock(&lock);
    limit = bytes;
    for (int c = NCLASS - 1; c >= 0 && cached_bytes > limit; c--) {
        while (free_list[c] != NULL && cached_bytes > limit) {
            block *b = free_list[c];
            free_list[c] = b->next;
            cached_bytes -= b->capacity;
            cached_blocks--;
            b->next = drop;
            drop = b;
        }
    }
    pthread_mutex_unlock(&lock);
    for (block *next; drop != NULL; drop = next) {
        next = drop->next;
        drop->magic = 0;
        free(memory_of(drop));
    }
}

void fnn_cache_stats(fnn_cache_info *info) {
    pthread_mutex_lock(&lock);
    info->cached_bytes = cached_bytes;
    info->cached_blocks = cached_blocks;
    info->live_bytes = live_bytes;
    info->live_blocks = live_blocks;
    info->hits = hits;
    info->misses = misses;
    info->limit = limit;
    pthread_mutex_unlock(&lock);
}
