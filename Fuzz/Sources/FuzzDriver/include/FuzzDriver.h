#ifndef CNN_FUZZ_DRIVER_H
#define CNN_FUZZ_DRIVER_H
#include <stddef.h>
#include <stdint.h>

/// Runs libFuzzer's driver (command-line options, corpus, mutation loop) on `test_one_input`.
///
/// SwiftPM renames an executable's Swift entry point and links it as `main`, so the fuzz targets
/// cannot use libFuzzer's own `main`; they call this from their top-level code instead.
int cnn_fuzz_run(int argc, char **argv, int (*test_one_input)(const uint8_t *data, size_t size));

#endif
