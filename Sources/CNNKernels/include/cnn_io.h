/* Small I/O helpers that need system C libraries (zlib). */
#ifndef CNN_IO_H
#define CNN_IO_H

#include "cnn_runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Inflates a gzip or zlib stream (auto-detected). On success *out is a malloc'd buffer of *out_len
 *  bytes (free with free()); returns 0. Returns -1 on corrupt or truncated data (the zlib message in
 *  err, up to err_len bytes), -2 if the output would exceed max_out bytes, -3 on allocation failure. */
int cnn_inflate(const uint8_t *in, size_t in_len, size_t max_out, uint8_t **out, size_t *out_len,
                char *err, size_t err_len);
/** Compresses with zlib (format 0: zlib stream, as PNG's IDAT needs; 1: gzip). Same return codes. */
int cnn_deflate(const uint8_t *in, size_t in_len, int format, int level, uint8_t **out,
                size_t *out_len);
/** CRC-32 (as PNG and gzip use), continuing from crc (start with 0). */
uint32_t cnn_crc32(uint32_t crc, const uint8_t *data, size_t len);
void cnn_free(void *p);

#ifdef __cplusplus
}
#endif
#endif
