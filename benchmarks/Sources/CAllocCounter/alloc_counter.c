// Counting malloc for RPCBench: see include/CAllocCounter.h.
//
// glibc exports its allocator under __libc_* names; the functions below count, then forward.
// Only allocation calls are counted (free is forwarded uncounted).
#include "CAllocCounter.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *pointer, size_t size);
extern void __libc_free(void *pointer);
extern void *__libc_memalign(size_t alignment, size_t size);
extern void *__libc_valloc(size_t size);
extern void *__libc_pvalloc(size_t size);

#define SLOT_COUNT 1024

/// One thread's counter, alone on its cache line so that threads never share a line.
typedef struct {
    _Alignas(64) uint64_t count;
} counter_slot;

static counter_slot slots[SLOT_COUNT];
/// Allocations by threads that arrived after every slot was taken (shared, atomic).
static uint64_t overflow_count;
static uint32_t next_slot;
/// This thread's slot index + 1; 0 = not assigned yet. Static TLS: no allocation to reach it.
static __thread uint32_t thread_slot;

static inline void count_one(void) {
    uint32_t slot = thread_slot;
    if (__builtin_expect(slot == 0, 0)) {
        slot = __atomic_fetch_add(&next_slot, 1, __ATOMIC_RELAXED) + 1;
        thread_slot = slot;
    }
    if (__builtin_expect(slot <= SLOT_COUNT, 1)) {
        // Only this thread writes its slot; readers load it atomically.
        uint64_t *counter = &slots[slot - 1].count;
        __atomic_store_n(counter, __atomic_load_n(counter, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
    } else {
        __atomic_fetch_add(&overflow_count, 1, __ATOMIC_RELAXED);
    }
}

uint64_t alloc_counter_total(void) {
    uint64_t total = __atomic_load_n(&overflow_count, __ATOMIC_RELAXED);
    uint32_t used = __atomic_load_n(&next_slot, __ATOMIC_RELAXED);
    if (used > SLOT_COUNT) used = SLOT_COUNT;
    for (uint32_t index = 0; index < used; index++) {
        total += __atomic_load_n(&slots[index].count, __ATOMIC_RELAXED);
    }
    return total;
}

int alloc_counter_is_active(void) {
    uint64_t before = alloc_counter_total();
    // volatile: the compiler may not elide the allocation.
    void *volatile pointer = __builtin_malloc(16);
    __builtin_free(pointer);
    return alloc_counter_total() > before;
}

void *malloc(size_t size) {
    count_one();
    return __libc_malloc(size);
}

void *calloc(size_t count, size_t size) {
    count_one();
    return __libc_calloc(count, size);
}

void *realloc(void *pointer, size_t size) {
    count_one();
    return __libc_realloc(pointer, size);
}

void free(void *pointer) {
    __libc_free(pointer);
}

void *memalign(size_t alignment, size_t size) {
    count_one();
    return __libc_memalign(alignment, size);
}

void *aligned_alloc(size_t alignment, size_t size) {
    count_one();
    return __libc_memalign(alignment, size);
}

int posix_memalign(void **result, size_t alignment, size_t size) {
    if (alignment < sizeof(void *) || (alignment & (alignment - 1)) != 0) return EINVAL;
    count_one();
    void *pointer = __libc_memalign(alignment, size);
    if (pointer == NULL) return ENOMEM;
    *result = pointer;
    return 0;
}

void *valloc(size_t size) {
    count_one();
    return __libc_valloc(size);
}

void *pvalloc(size_t size) {
    count_one();
    return __libc_pvalloc(size);
}
