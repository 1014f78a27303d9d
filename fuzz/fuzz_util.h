/* fuzz_util.h: what the libFuzzer targets share (docs/fuzzing.md).
 *
 * The library reads files by path, so each input is written to one
 * in-memory file (memfd_create) and opened as /proc/self/fd/N: no disk
 * traffic, nothing left behind.  Model inputs get their crc32 field
 * recomputed first, so that mutations reach the checks behind the
 * checksum instead of stopping at it. */
#ifndef CNF_FUZZ_UTIL_H
#define CNF_FUZZ_UTIL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cnf.h"
#include "io.h" /* cnf__crc32 */

/* The input as the content of one in-memory file; its path, valid until
 * the next call. */
static inline const char *fuzz_file(const uint8_t *data, size_t size) {
  static int fd = -1;
  static char path[64];
  if (fd < 0) {
    fd = memfd_create("cnf-fuzz", 0);
    if (fd < 0) abort();
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  }
  if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size) abort();
  return path;
}

/* A copy of a model file input whose " crc32=XXXXXXXX" field (8 bytes
 * after the '=', on the first line) holds the checksum of what it covers:
 * the header before " crc32=" and every byte after the first newline.
 * Inputs without the field are copied unchanged.  Free the result. */
static inline uint8_t *fuzz_fix_crc(const uint8_t *data, size_t size) {
  uint8_t *b = malloc(size + 1);
  if (b == NULL) abort();
  memcpy(b, data, size);
  const uint8_t *nl = memchr(b, '\n', size);
  if (nl == NULL) return b;
  const size_t hl = (size_t)(nl - b) + 1;
  for (size_t i = 0; i + 15 < hl; i++)
    if (memcmp(b + i, " crc32=", 7) == 0) {
      uint32_t crc = cnf__crc32(0, b, i);
      crc = cnf__crc32(crc, b + hl, size - hl);
      char hex[9];
      snprintf(hex, sizeof hex, "%08x", (unsigned)crc);
      memcpy(b + i + 7, hex, 8);
      break;
    }
  return b;
}

/* The input as a model file with its checksum fixed (above); its path. */
static inline const char *fuzz_model_file(const uint8_t *data, size_t size) {
  uint8_t *b = fuzz_fix_crc(data, size);
  const char *path = fuzz_file(b, size);
  free(b);
  return path;
}

/* A failed read must leave nothing (obj NULL) and name the file in its
 * message (out of memory aside); abort, which libFuzzer reports, if not. */
static inline void fuzz_expect_named(const cnf_ctx *ctx, int rc, const char *path,
                                     const void *obj) {
  if (obj != NULL) abort();
  if (rc != CNF_ENOMEM && strncmp(cnf_ctx_errmsg(ctx), path, strlen(path)) != 0) abort();
}

#endif /* CNF_FUZZ_UTIL_H */
