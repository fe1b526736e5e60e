/*
 * runtime/threads.c - the thread pool behind fnn_parallel_for, the one
 * parallel-for every kernel uses, and the floating-point environment kernels
 * run in.
 *
 * A job is [0, n) cut into chunks of `grain` elements rounded up to `align`:
 * the boundaries depend on the problem only, never on the thread count, and
 * every chunk is computed the same way whoever runs it, so results are
 * bitwise identical for any number of threads (reductions write one partial
 * per chunk and their caller adds them in chunk order).
 *
 * The calling thread publishes the job and claims chunks from one atomic
 * counter like any helper. Helpers join a job only while it is open: the
 * caller closes it once every chunk is claimed and then waits only for the
 * helpers that joined, each finishing the chunk it holds. A helper that is
 * descheduled (another process on its core) never joined, so it costs
 * nothing; that is the design of google/pthreadpool. Idle helpers spin
 * FNN_SPIN_ITERS pauses, then sleep on a futex (a condition variable off
 * Linux).
 *
 * Concurrent callers: one job at a time owns the pool; a call that finds it
 * busy (another Python thread, or a kernel nested in a chunk) runs its chunks
 * on its own thread, with the same results. fork(): the child gets an empty
 * pool and starts its helpers at its first threaded call (pthread_atfork).
 * Helpers are started lazily, up to FNN_MAX_THREADS - 1, and live until the
 * process exits; if the system refuses a thread the pool uses those it has.
 *
 * Every thread that runs chunks sets MXCSR's flush-to-zero and
 * denormals-are-zero bits on entry (unless fnn_set_flush_denormal(0)) and
 * restores the caller's bits on exit, so NumPy outside fastnn still sees
 * denormals.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <unistd.h>

#include "../fastnn.h"
#include "../kernels.h"

/* pauses (~10 ns each on current x86) an idle thread spins before it sleeps */
#define FNN_SPIN_ITERS 2000

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FNN_HAVE_MXCSR 1
#define FNN_MXCSR_FLUSH 0x8040u /* FTZ (bit 15) | DAZ (bit 6) */
#define FNN_PAUSE() _mm_pause()
#else
#define FNN_PAUSE() ((void)0)
#endif

#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#endif

/* ---- sleeping on a 32-bit word: futex on Linux, a condition variable elsewhere */

#ifdef __linux__
static void word_wait(atomic_uint *word, unsigned seen) {
    syscall(SYS_futex, (unsigned *)word, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
}
static void word_wake(atomic_uint *word, int count) {
    syscall(SYS_futex, (unsigned *)word, FUTEX_WAKE_PRIVATE, count, NULL, NULL, 0);
}
static void word_reset_after_fork(void) {}
#else
static pthread_mutex_t word_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t word_cond = PTHREAD_COND_INITIALIZER;
static void word_wait(atomic_uint *word, unsigned seen) {
    pthread_mutex_lock(&word_lock);
    while (atomic_load(word) == seen) pthread_cond_wait(&word_cond, &word_lock);
    pthread_mutex_unlock(&word_lock);
}
static void word_wake(atomic_uint *word, int count) {
    (void)word, (void)count;
    pthread_mutex_lock(&word_lock);
    pthread_cond_broadcast(&word_cond);
    pthread_mutex_unlock(&word_lock);
}
static void word_reset_after_fork(void) {
    pthread_mutex_init(&word_lock, NULL);
    pthread_cond_init(&word_cond, NULL);
}
#endif

/* ---- the floating-point environment of kernel code --------------------------- */

static atomic_int flush_denormal = 1;

void fnn_set_flush_denormal(int on) { atomic_store(&flush_denormal, on != 0); }
int fnn_get_flush_denormal(void) { return atomic_load(&flush_denormal); }

/* set FTZ/DAZ as `flush` asks; returns the bits to restore */
static unsigned fp_enter(int flush) {
#ifdef FNN_HAVE_MXCSR
    unsigned saved = _mm_getcsr();
    unsigned want = flush ? saved | FNN_MXCSR_FLUSH : saved & ~FNN_MXCSR_FLUSH;
    if (want != saved) _mm_setcsr(want);
    return saved;
#else
    (void)flush;
    return 0;
#endif
}

static void fp_exit(unsigned saved) {
#ifdef FNN_HAVE_MXCSR
    if (_mm_getcsr() != saved) _mm_setcsr(saved);
#else
    (void)saved;
#endif
}

/* ---- thread count -------------------------------------------------------------- */

static atomic_int requested_threads = 0; /* 0: the default, CPUs this process may use */
static atomic_int default_threads = 0;   /* 0: not read yet */

int fnn_default_num_threads(void) {
    int n = atomic_load(&default_threads);
    if (n > 0) return n;
#ifdef __linux__
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) n = CPU_COUNT(&set);
#endif
    if (n < 1) n = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    if (n > FNN_MAX_THREADS) n = FNN_MAX_THREADS;
    atomic_store(&default_threads, n);
    return n;
}

fnn_status fnn_set_num_threads(int n) {
    if (n < 1 || n > FNN_MAX_THREADS) return FNN_ERR_ARG;
    atomic_store(&requested_threads, n);
    return FNN_OK;
}

int fnn_get_num_threads(void) {
    int n = atomic_load(&requested_threads);
    return n > 0 ? n : fnn_default_num_threads();
}

int fnn_spin_iterations(void) { return FNN_SPIN_ITERS; }

/* ---- the pool ------------------------------------------------------------------- */

typedef struct {
    /* the job: written by its caller before `open` is set, read by helpers after */
    fnn_range_body body;
    void *ctx;
    int64_t n, chunk, nchunks;
    int helpers_wanted; /* helpers that may join (threads - 1) */
    int flush;          /* the caller's flush_denormal, for every thread of the job */
    atomic_llong next;  /* next unclaimed chunk */
    atomic_int joined;  /* helpers that have joined this job */

    atomic_int busy;            /* 1 while a caller owns the job slot */
    atomic_int open;            /* helpers may join */
    atomic_uint active;         /* helpers inside the job; the caller sleeps on it */
    atomic_int caller_sleeping; /* the caller waits in word_wait(&active) */
    atomic_uint epoch;          /* +1 per job; idle helpers sleep on it */
    atomic_int sleepers;        /* helpers in word_wait(&epoch) */

    pthread_mutex_t grow_lock; /* held while starting helpers */
    int nhelpers;              /* helpers started */
} fnn_pool;

static fnn_pool pool = {.grow_lock = PTHREAD_MUTEX_INITIALIZER};
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void run_chunks(void) {
    for (;;) {
        int64_t c = atomic_fetch_add(&pool.next, 1);
        if (c >= pool.nchunks) return;
        int64_t begin = c * pool.chunk;
        int64_t end = begin + pool.chunk < pool.n ? begin + pool.chunk : pool.n;
        pool.body(pool.ctx, begin, end);
    }
}

/* a helper woke for a new epoch: join the open job, if any, and leave */
static void helper_join(void) {
    atomic_fetch_add(&pool.active, 1);
    /* `open` is read after `active` is raised, and the caller closes before it
     * reads `active` (both seq_cst): either the caller waits for us or we see
     * the job closed and touch nothing */
    if (atomic_load(&pool.open) && atomic_fetch_add(&pool.joined, 1) < pool.helpers_wanted) {
        unsigned saved = fp_enter(pool.flush);
        run_chunks();
        fp_exit(saved);
    }
    if (atomic_fetch_sub(&pool.active, 1) == 1 && atomic_load(&pool.caller_sleeping))
        word_wake(&pool.active, 1);
}

static void *helper_main(void *arg) {
    (void)arg;
    unsigned seen = atomic_load(&pool.epoch);
    for (;;) {
        int spins = 0;
        while (atomic_load(&pool.epoch) == seen) {
            if (spins++ < FNN_SPIN_ITERS) {
                FNN_PAUSE();
                continue;
            }
            atomic_fetch_add(&pool.sleepers, 1);
            if (atomic_load(&pool.epoch) == seen) word_wait(&pool.epoch, seen);
            atomic_fetch_sub(&pool.sleepers, 1);
        }
        seen = atomic_load(&pool.epoch);
        helper_join();
    }
    return NULL;
}

/* fork: keep the helper list consistent across it; the child has no helpers */
static void lock_for_fork(void) { pthread_mutex_lock(&pool.grow_lock); }
static void unlock_in_parent(void) { pthread_mutex_unlock(&pool.grow_lock); }
static void reset_in_child(void) {
    pthread_mutex_init(&pool.grow_lock, NULL);
    word_reset_after_fork();
    pool.nhelpers = 0;
    atomic_store(&pool.busy, 0);
    atomic_store(&pool.open, 0);
    atomic_store(&pool.active, 0);
    atomic_store(&pool.caller_sleeping, 0);
    atomic_store(&pool.sleepers, 0);
    atomic_store(&default_threads, 0); /* the child may be pinned elsewhere */
}
static void register_atfork(void) { pthread_atfork(lock_for_fork, unlock_in_parent, reset_in_child); }

/* start helpers until there are `want` (or the system refuses); returns how many exist */
static int ensure_helpers(int want) {
    if (pool.nhelpers >= want) return pool.nhelpers; /* only grows; read under busy */
    pthread_once(&atfork_once, register_atfork);
    pthread_mutex_lock(&pool.grow_lock);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* signals stay with the caller's threads */
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    while (pool.nhelpers < want) {
        pthread_t thread;
        if (pthread_create(&thread, &attr, helper_main, NULL) != 0) break;
        pool.nhelpers++;
    }
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    int have = pool.nhelpers;
    pthread_mutex_unlock(&pool.grow_lock);
    return have;
}

static void wait_for_helpers(void) {
    for (int spins = 0; atomic_load(&pool.active) != 0;) {
        if (spins++ < FNN_SPIN_ITERS) {
            FNN_PAUSE();
            continue;
        }
        atomic_store(&pool.caller_sleeping, 1);
        unsigned active = atomic_load(&pool.active);
        if (active != 0) word_wait(&pool.active, active);
        atomic_store(&pool.caller_sleeping, 0);
    }
}

static void run_serial(int64_t n, int64_t chunk, void *ctx, fnn_range_body body) {
    for (int64_t begin = 0; begin < n; begin += chunk)
        body(ctx, begin, begin + chunk < n ? begin + chunk : n);
}

void fnn_parallel_for(int64_t n, int64_t grain, int64_t align, void *ctx, fnn_range_body body) {
    if (n <= 0) return;
    if (align < 1) align = 1;
    int64_t chunk = grain > align ? (grain + align - 1) / align * align : align;
    int flush = atomic_load_explicit(&flush_denormal, memory_order_relaxed);
    unsigned saved = fp_enter(flush);
    if (n <= chunk) { /* one chunk: the common small call, on this thread */
        body(ctx, 0, n);
        fp_exit(saved);
        return;
    }
    int64_t nchunks = (n + chunk - 1) / chunk;
    int64_t helpers = (int64_t)fnn_get_num_threads() - 1;
    if (helpers > nchunks - 1) helpers = nchunks - 1;
    int expected = 0;
    if (helpers < 1 || !atomic_compare_exchange_strong(&pool.busy, &expected, 1)) {
        run_serial(n, chunk, ctx, body);
        fp_exit(saved);
        return;
    }
    int have = ensure_helpers((int)helpers);
    if (have < helpers) helpers = have;
    if (helpers < 1) {
        atomic_store(&pool.busy, 0);
        run_serial(n, chunk, ctx, body);
        fp_exit(saved);
        return;
    }
    pool.body = body, pool.ctx = ctx, pool.n = n, pool.chunk = chunk, pool.nchunks = nchunks;
    pool.helpers_wanted = (int)helpers, pool.flush = flush;
    atomic_store(&pool.next, 0);
    atomic_store(&pool.joined, 0);
    atomic_store(&pool.open, 1);
    atomic_fetch_add(&pool.epoch, 1);
    if (atomic_load(&pool.sleepers) > 0) word_wake(&pool.epoch, (int)helpers);
    run_chunks();
    atomic_store(&pool.open, 0);
    wait_for_helpers();
    atomic_store(&pool.busy, 0);
    fp_exit(saved);
}

/* ---- phases: items claimed in one global order, a wait at each phase boundary ----
 * Item g = phase * items + item comes from one counter, so every item before g was
 * claimed earlier by a thread that is running it: waiting for them cannot deadlock,
 * whichever threads join. */
typedef struct {
    fnn_phase_body body;
    void *ctx;
    int64_t items, total;
    _Alignas(64) atomic_llong next; /* the next unclaimed item */
    _Alignas(64) atomic_llong done; /* items finished */
} phase_job;

static void run_phases(void *ctx, int64_t begin, int64_t end) {
    (void)begin, (void)end;
    phase_job *pj = ctx;
    for (;;) {
        int64_t g = atomic_fetch_add_explicit(&pj->next, 1, memory_order_relaxed);
        if (g >= pj->total) return;
        int64_t phase = g / pj->items, first = phase * pj->items;
        while (atomic_load_explicit(&pj->done, memory_order_acquire) < first) FNN_PAUSE();
        pj->body(pj->ctx, phase, g - first);
        atomic_fetch_add_explicit(&pj->done, 1, memory_order_release);
    }
}

void fnn_parallel_phases(int64_t phases, int64_t items, void *ctx, fnn_phase_body body) {
    if (phases <= 0 || items <= 0) return;
    phase_job pj = {.body = body, .ctx = ctx, .items = items, .total = phases * items};
    atomic_init(&pj.next, 0);
    atomic_init(&pj.done, 0);
    int64_t threads = fnn_get_num_threads();
    fnn_parallel_for(threads < items ? threads : items, 1, 1, &pj, run_phases);
}
