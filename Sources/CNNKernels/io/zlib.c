/* gzip / zlib inflate and deflate over the system zlib, for MNIST's .gz files and PNG. */
#include "../internal.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static void set_err(char *err, size_t err_len, const char *msg) {
    if (!err || err_len == 0) return;
    strncpy(err, msg ? msg : "unknown zlib error", err_len - 1);
    err[err_len - 1] = 0;
}

int cnn_inflate(const uint8_t *in, size_t in_len, size_t max_out, uint8_t **out, size_t *out_len,
                char *err, size_t err_len) {
    *out = NULL;
    *out_len = 0;
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    /* 15 + 32: detect zlib or gzip headers automatically. */
    if (inflateInit2(&zs, 15 + 32) != Z_OK) {
        set_err(err, err_len, "inflateInit2 failed");
        return -3;
    }
    /* Initial guess 4x the input, bounded by max_out + 1 (one byte over the limit is how an
     * oversized stream is detected). Saturating arithmetic: in_len and max_out come from callers
     * that may pass SIZE_MAX. */
    size_t limit = max_out == SIZE_MAX ? SIZE_MAX : max_out + 1;
    size_t cap = in_len > (SIZE_MAX - 1024) / 4 ? SIZE_MAX : in_len * 4 + 1024;
    if (cap > limit) cap = limit;
    uint8_t *buf = (uint8_t *)malloc(cap);
    if (!buf) {
        inflateEnd(&zs);
        return -3;
    }
    size_t produced = 0, consumed = 0;
    int rc = Z_OK;
    while (1) {
        if (produced == cap) {
            if (cap > max_out) {
                free(buf);
                inflateEnd(&zs);
                set_err(err, err_len, "output larger than the limit");
                return -2;
            }
            size_t ncap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
            if (ncap > limit) ncap = limit;
            if (ncap <= cap) { /* cannot grow further (limit is SIZE_MAX) */
                free(buf);
                inflateEnd(&zs);
                set_err(err, err_len, "output larger than the limit");
                return -2;
            }
            uint8_t *nb = (uint8_t *)realloc(buf, ncap);
            if (!nb) {
                free(buf);
                inflateEnd(&zs);
                return -3;
            }
            buf = nb;
            cap = ncap;
        }
        size_t in_chunk = in_len - consumed;
        if (in_chunk > (size_t)UINT32_MAX) in_chunk = UINT32_MAX;
        size_t out_chunk = cap - produced;
        if (out_chunk > (size_t)UINT32_MAX) out_chunk = UINT32_MAX;
        zs.next_in = in ? (Bytef *)(in + consumed) : Z_NULL; /* NULL + 0 is undefined in C */
        zs.avail_in = (uInt)in_chunk;
        zs.next_out = buf + produced;
        zs.avail_out = (uInt)out_chunk;
        rc = inflate(&zs, Z_NO_FLUSH);
        consumed += in_chunk - zs.avail_in;
        produced += out_chunk - zs.avail_out;
        if (rc == Z_STREAM_END) {
            /* Concatenated gzip members (allowed by the format): continue with the next one. */
            if (consumed < in_len && in[consumed] == 0x1f) {
                inflateReset(&zs);
                continue;
            }
            break;
        }
        if (rc == Z_BUF_ERROR && zs.avail_out != 0) {
            set_err(err, err_len, "truncated compressed stream");
            free(buf);
            inflateEnd(&zs);
            return -1;
        }
        if (rc != Z_OK && rc != Z_BUF_ERROR) {
            set_err(err, err_len, zs.msg ? zs.msg : "corrupt compressed stream");
            free(buf);
            inflateEnd(&zs);
            return -1;
        }
        if (consumed == in_len && zs.avail_out != 0) {
            set_err(err, err_len, "truncated compressed stream");
            free(buf);
            inflateEnd(&zs);
            return -1;
        }
    }
    inflateEnd(&zs);
    if (produced > max_out) {
        free(buf);
        set_err(err, err_len, "output larger than the limit");
        return -2;
    }
    *out = buf;
    *out_len = produced;
    return 0;
}

int cnn_deflate(const uint8_t *in, size_t in_len, int format, int level, uint8_t **out,
                size_t *out_len) {
    *out = NULL;
    *out_len = 0;
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    int wbits = format == 1 ? 15 + 16 : 15;
    if (deflateInit2(&zs, level, Z_DEFLATED, wbits, 8, Z_DEFAULT_STRATEGY) != Z_OK) return -3;
    if (in_len > (size_t)UINT32_MAX) { /* avail_in is 32-bit; larger inputs are not needed here */
        deflateEnd(&zs);
        return -1;
    }
    size_t cap = deflateBound(&zs, (uLong)in_len) + 64;
    uint8_t *buf = (uint8_t *)malloc(cap);
    if (!buf) {
        deflateEnd(&zs);
        return -3;
    }
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)in_len;
    zs.next_out = buf;
    zs.avail_out = (uInt)cap;
    int rc = deflate(&zs, Z_FINISH);
    if (rc != Z_STREAM_END) {
        free(buf);
        deflateEnd(&zs);
        return -1;
    }
    *out_len = cap - zs.avail_out;
    *out = buf;
    deflateEnd(&zs);
    return 0;
}

uint32_t cnn_crc32(uint32_t crc, const uint8_t *data, size_t len) {
    /* zlib takes a 32-bit length: feed larger buffers in chunks. */
    while (len > 0) {
        uInt chunk = len > (size_t)UINT32_MAX ? UINT32_MAX : (uInt)len;
        crc = (uint32_t)crc32((uLong)crc, data, chunk);
        data += chunk;
        len -= chunk;
    }
    return crc;
}
