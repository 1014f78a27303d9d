/* io.h: internal file helpers of the io layer. */
#ifndef CNF_IO_H
#define CNF_IO_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

#include "core.h"

/* CRC-32 (IEEE 802.3, the polynomial of zlib's crc32), continued from crc
 * (start with 0). */
uint32_t cnf__crc32(uint32_t crc, const void *buf, size_t n);

/* Swap the bytes of n doubles in place on a big-endian host (model files
 * store little-endian float64); a no-op on little-endian hosts.  Its own
 * inverse. */
void cnf__to_le(double *x, size_t n);

/* Atomic output: open a temporary file beside `path` (nameless where the
 * system allows, crc32.c); commit flushes, syncs, closes and renames it
 * over `path`; abort closes and removes it.  Every open is followed by
 * exactly one commit or abort, in the same thread (signals held back by
 * open are released there). */
typedef struct cnf_atomic {
  FILE *fp;
  char tmp[4096];
  const char *path;
  int direct;  /* the target is not a regular file (a device, a pipe):
                  written in place, never renamed over */
  int nameless; /* fp is an O_TMPFILE file, named only at commit */
  int held;     /* SIGINT, SIGTERM, SIGHUP held back; mask is the old mask */
  sigset_t mask;
} cnf_atomic;

int cnf__atomic_open(cnf_ctx *ctx, cnf_atomic *a, const char *path);
int cnf__atomic_commit(cnf_ctx *ctx, cnf_atomic *a);
void cnf__atomic_abort(cnf_atomic *a);

/* The model container's tail, for flow and stack files alike: payload
 * (total doubles, made little-endian in place; a non-finite value is refused
 * with CNF_ENONFINITE naming path, its place and the value, and nothing is
 * written), the CRC-32 of head (n bytes)
 * and payload, then the line "head crc32=" with that checksum as 8 lower-case
 * hex digits, and the payload, atomically. */
int cnf__model_write(cnf_ctx *ctx, const char *path, const char *head, size_t n,
                     double *payload, size_t total);

#endif /* CNF_IO_H */
