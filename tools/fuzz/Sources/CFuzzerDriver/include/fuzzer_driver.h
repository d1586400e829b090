#pragma once
#include <stddef.h>
#include <stdint.h>
/* libFuzzer's documented driver entry point (provided by -sanitize=fuzzer's runtime). */
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
