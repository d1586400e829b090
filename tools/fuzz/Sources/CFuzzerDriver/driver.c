/* Declarations only: LLVMFuzzerRunDriver comes from the libFuzzer runtime. */
