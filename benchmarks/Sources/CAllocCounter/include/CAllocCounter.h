#ifndef C_ALLOC_COUNTER_H
#define C_ALLOC_COUNTER_H

#include <stdint.h>

/// Number of allocation calls (malloc, calloc, realloc, the aligned variants) made by this
/// process so far, over all threads. Monotonic; take differences around a measured interval.
///
/// The counting versions of malloc & co. live in this target and, linked into the executable,
/// take precedence over the C library's for every shared library of the process (ELF symbol
/// interposition); they forward to glibc's own allocator, so the allocator itself is unchanged.
/// Each thread increments its own cache-line-sized slot, so counting adds no contention.
uint64_t alloc_counter_total(void);

/// 1 if the counting malloc is the one the process actually calls (checked by allocating).
int alloc_counter_is_active(void);

#endif
