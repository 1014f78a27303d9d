/* npy.c: numpy's .npy files of one kind: a 2-D array of little-endian
 * float64 in C order, the layout of every table the library reads and
 * writes (rows are samples).
 *
 * The format (numpy's format.py, version 1.0; 2.0 and 3.0 only widen the
 * header length to 4 bytes, and 3.0 allows UTF-8 in the header):
 *
 *     "\x93NUMPY" major minor   6 + 2 bytes
 *     HEADER_LEN                2 bytes (1.0) or 4 bytes (2.0, 3.0), LE
 *     header                    a Python dict literal, padded with spaces
 *                               and ended by '\n' so that the data starts
 *                               at a multiple of 64 (16 in old files):
 *                               {'descr': '<f8', 'fortran_order': False,
 *                                'shape': (N, D), }
 *     data                      N * D * 8 bytes, row-major
 *
 * Read accepts versions 1.0 to 3.0, the keys in any order, and spaces
 * where Python allows them; it refuses with a message naming the file and
 * what was expected: another dtype ('<f4', '>f8', '|O' object arrays, a
 * structured dtype), Fortran order, another rank (1-D, 3-D), no rows, a
 * data part shorter or longer than the shape says, non-finite values (as
 * the CSV reader does).  Write produces version 1.0 with a 64-byte
 * aligned header, atomically. */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io.h"

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_LEN 6
#define NPY_MAX_HEADER 65536

/* ---- header parsing ---------------------------------------------------- */

typedef struct npy_header {
  int have_descr, have_order, have_shape;
  char descr[64];
  int fortran;
  size_t rank;
  size_t shape[8];
} npy_header;

static const char *skip_ws(const char *s, const char *e) {
  while (s < e && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')) s++;
  return s;
}

/* A quoted Python string at s into out (cap bytes); returns the position
 * after it, or NULL. */
static const char *parse_str(const char *s, const char *e, char *out, size_t cap) {
  if (s >= e || (*s != '\'' && *s != '"')) return NULL;
  char q = *s++;
  size_t n = 0;
  while (s < e && *s != q) {
    if (*s == '\\' || n + 1 >= cap) return NULL;
    out[n++] = *s++;
  }
  if (s >= e) return NULL;
  out[n] = '\0';
  return s + 1;
}

/* A tuple of non-negative integers "(3, 2)", "(3,)", "()". */
static const char *parse_shape(const char *s, const char *e, npy_header *h) {
  if (s >= e || *s != '(') return NULL;
  s = skip_ws(s + 1, e);
  h->rank = 0;
  while (s < e && *s != ')') {
    if (!isdigit((unsigned char)*s) || h->rank == sizeof h->shape / sizeof h->shape[0]) return NULL;
    size_t v = 0;
    while (s < e && isdigit((unsigned char)*s)) {
      size_t d = (size_t)(*s - '0');
      if (v > (SIZE_MAX - d) / 10) return NULL;
      v = v * 10 + d;
      s++;
    }
    if (s < e && *s == 'L') s++; /* Python 2's long suffix */
    h->shape[h->rank++] = v;
    s = skip_ws(s, e);
    if (s < e && *s == ',')
      s = skip_ws(s + 1, e);
    else if (s < e && *s != ')')
      return NULL;
  }
  return s < e ? s + 1 : NULL;
}

/* The dict literal [s, e).  Returns NULL on success or what is wrong. */
static const char *parse_header(const char *s, const char *e, npy_header *h) {
  memset(h, 0, sizeof *h);
  s = skip_ws(s, e);
  if (s >= e || *s != '{') return "the header is not a Python dict";
  s = skip_ws(s + 1, e);
  while (s < e && *s != '}') {
    char key[32];
    s = parse_str(s, e, key, sizeof key);
    if (s == NULL) return "a key of the header dict is not a short string";
    s = skip_ws(s, e);
    if (s >= e || *s != ':') return "expected ':' after a key of the header dict";
    s = skip_ws(s + 1, e);
    if (strcmp(key, "descr") == 0) {
      s = parse_str(s, e, h->descr, sizeof h->descr);
      if (s == NULL) return "'descr' is not a simple dtype string (a structured dtype?)";
      h->have_descr = 1;
    } else if (strcmp(key, "fortran_order") == 0) {
      if ((size_t)(e - s) >= 4 && memcmp(s, "True", 4) == 0)
        h->fortran = 1, s += 4;
      else if ((size_t)(e - s) >= 5 && memcmp(s, "False", 5) == 0)
        h->fortran = 0, s += 5;
      else
        return "'fortran_order' is neither True nor False";
      h->have_order = 1;
    } else if (strcmp(key, "shape") == 0) {
      s = parse_shape(s, e, h);
      if (s == NULL) return "'shape' is not a tuple of integers";
      h->have_shape = 1;
    } else {
      return "the header dict has a key other than 'descr', 'fortran_order' and 'shape'";
    }
    s = skip_ws(s, e);
    if (s < e && *s == ',')
      s = skip_ws(s + 1, e);
    else if (s < e && *s != '}')
      return "expected ',' or '}' in the header dict";
  }
  if (s >= e) return "the header dict is not closed";
  if (!h->have_descr || !h->have_order || !h->have_shape)
    return "the header lacks one of 'descr', 'fortran_order' and 'shape'";
  return NULL;
}

/* ---- reading ------------------------------------------------------------- */

static uint32_t le32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int cnf_npy_read(cnf_ctx *ctx, const char *path, double **data, size_t *rows, size_t *cols) {
  if (path == NULL || data == NULL || rows == NULL || cols == NULL)
    return CNF_ERROR(ctx, CNF_EINVAL, "npy: NULL argument");
  *data = NULL;
  *rows = *cols = 0;
  FILE *fp = fopen(path, "rb");
  if (fp == NULL) return CNF_ERROR(ctx, CNF_EIO, "%s: cannot open: %s", path, strerror(errno));
  int rc = 0;
  char *text = NULL;
  double *x = NULL;
  unsigned char pre[12];
  if (fread(pre, 1, 8, fp) != 8 || memcmp(pre, NPY_MAGIC, NPY_MAGIC_LEN) != 0) {
    rc = CNF_ERROR(ctx, CNF_EFORMAT, "%s: not a .npy file (expected the magic \\x93NUMPY)", path);
    goto done;
  }
  const int major = pre[6];
  size_t hlen = 0;
  if (major == 1) {
    if (fread(pre + 8, 1, 2, fp) != 2) goto truncated;
    hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
  } else if (major == 2 || major == 3) {
    if (fread(pre + 8, 1, 4, fp) != 4) goto truncated;
    hlen = le32(pre + 8);
  } else {
    rc = CNF_ERROR(ctx, CNF_EVERSION, "%s: .npy format version %d.%d, expected 1.0 to 3.0", path,
                   major, pre[7]);
    goto done;
  }
  if (hlen > NPY_MAX_HEADER) {
    rc = CNF_ERROR(ctx, CNF_EFORMAT, "%s: .npy header of %zu bytes, expected at most %d", path,
                   hlen, NPY_MAX_HEADER);
    goto done;
  }
  if ((text = cnf__malloc(hlen + 1)) == NULL) {
    rc = CNF_ERROR(ctx, CNF_ENOMEM, "%s: out of memory", path);
    goto done;
  }
  if (fread(text, 1, hlen, fp) != hlen) goto truncated;
  text[hlen] = '\0';
  npy_header h;
  const char *why = parse_header(text, text + hlen, &h);
  if (why != NULL) {
    rc = CNF_ERROR(ctx, CNF_EFORMAT, "%s: bad .npy header: %s", path, why);
    goto done;
  }
  if (strcmp(h.descr, "<f8") != 0) {
    rc = CNF_ERROR(ctx, CNF_EFORMAT,
                   "%s: dtype '%s', expected '<f8' (little-endian float64; convert with "
                   "x.astype('<f8'))",
                   path, h.descr);
    goto done;
  }
  if (h.rank != 2) {
    rc = CNF_ERROR(ctx, CNF_EFORMAT, "%s: a %zu-D array, expected 2-D (rows, columns)%s", path,
                   h.rank, h.rank == 1 ? "; reshape a single column with x.reshape(-1, 1)" : "");
    goto done;
  }
  if (h.fortran) {
    rc = CNF_ERROR(ctx, CNF_EFORMAT,
                   "%s: Fortran (column-major) order, expected C order (save "
                   "numpy.ascontiguousarray(x))",
                   path);
    goto done;
  }
  const size_t N = h.shape[0], D = h.shape[1];
  if (N == 0 || D == 0) {
    rc = CNF_ERROR(ctx, CNF_EFORMAT, "%s: shape (%zu, %zu), expected at least one row and column",
                   path, N, D);
    goto done;
  }
  if (N > SIZE_MAX / sizeof(double) / D) {
    rc = CNF_ERROR(ctx, CNF_EFORMAT, "%s: shape (%zu, %zu) is too large", path, N, D);
    goto done;
  }
  /* the data in pieces of at most 1 MiB, the buffer grown as they come:
   * a header that claims more rows than the file holds is found before
   * anything near its size is allocated */
  const size_t need = N * D, piece = (size_t)1 << 17;
  size_t got = 0, cap = 0;
  while (got < need) {
    if (got == cap) {
      size_t ncap = cap == 0 ? piece : 2 * cap;
      if (ncap > need || ncap < cap) ncap = need;
      double *nx = cnf__malloc(ncap * sizeof(double));
      if (nx == NULL) {
        rc = CNF_ERROR(ctx, CNF_ENOMEM, "%s: out of memory for %zu x %zu values", path, N, D);
        goto done;
      }
      if (got > 0) memcpy(nx, x, got * sizeof(double));
      cnf__free(x);
      x = nx, cap = ncap;
    }
    const size_t want = cap - got < piece ? cap - got : piece;
    const size_t n = fread(x + got, sizeof(double), want, fp);
    got += n;
    if (n < want) break;
  }
  if (got != need) {
    rc = CNF_ERROR(ctx, CNF_ECORRUPT,
                   "%s: truncated: the header's shape (%zu, %zu) needs %zu data bytes, the "
                   "file has %zu",
                   path, N, D, N * D * sizeof(double), got * sizeof(double));
    goto done;
  }
  if (fgetc(fp) != EOF) {
    rc = CNF_ERROR(ctx, CNF_EFORMAT, "%s: data beyond the %zu x %zu values of the header's shape",
                   path, N, D);
    goto done;
  }
  if (ferror(fp)) {
    rc = CNF_ERROR(ctx, CNF_EIO, "%s: read error", path);
    goto done;
  }
  cnf__to_le(x, N * D);
  for (size_t i = 0; i < N * D; i++)
    if (!isfinite(x[i])) {
      rc =
          CNF_ERROR(ctx, CNF_ENONFINITE, "%s: row %zu, column %zu: a non-finite value (NaN or Inf)",
                    path, i / D + 1, i % D + 1);
      goto done;
    }
  *data = x;
  *rows = N;
  *cols = D;
  x = NULL;
  goto done;
truncated:
  rc = CNF_ERROR(ctx, CNF_ECORRUPT, "%s: truncated .npy header", path);
done:
  fclose(fp);
  cnf__free(text);
  cnf__free(x);
  return rc;
}

/* ---- writing ------------------------------------------------------------- */

/* The version 1.0 preamble and header of a (rows, cols) array into buf;
 * returns its length (a multiple of 64), or 0 if it does not fit. */
static size_t format_header(char *buf, size_t cap, size_t rows, size_t cols) {
  char dict[160];
  int n = snprintf(dict, sizeof dict,
                   "{'descr': '<f8', 'fortran_order': False, 'shape': (%zu, %zu), }", rows, cols);
  if (n < 0 || (size_t)n >= sizeof dict) return 0;
  size_t total = NPY_MAGIC_LEN + 2 + 2 + (size_t)n + 1;
  total = (total + 63) / 64 * 64;
  if (total > cap) return 0;
  const size_t hlen = total - (NPY_MAGIC_LEN + 2 + 2);
  memcpy(buf, NPY_MAGIC, NPY_MAGIC_LEN);
  buf[6] = 1, buf[7] = 0;
  buf[8] = (char)(hlen & 0xff), buf[9] = (char)(hlen >> 8);
  memcpy(buf + 10, dict, (size_t)n);
  memset(buf + 10 + n, ' ', hlen - (size_t)n - 1);
  buf[total - 1] = '\n';
  return total;
}

static int write_all(FILE *fp, const char *head, size_t nh, size_t n, const double *data) {
  if (fwrite(head, 1, nh, fp) != nh) return -1;
  double chunk[512];
  for (size_t i = 0; i < n; i += 512) {
    size_t k = n - i < 512 ? n - i : 512;
    memcpy(chunk, data + i, k * sizeof(double));
    cnf__to_le(chunk, k);
    if (fwrite(chunk, sizeof(double), k, fp) != k) return -1;
  }
  return 0;
}

int cnf_npy_write(cnf_ctx *ctx, const char *path, size_t rows, size_t cols, const double *data) {
  if (path == NULL || (rows > 0 && data == NULL) || cols == 0)
    return CNF_ERROR(ctx, CNF_EINVAL, "npy: bad arguments");
  if (rows > SIZE_MAX / sizeof(double) / cols)
    return CNF_ERROR(ctx, CNF_EINVAL, "%s: %zu x %zu values is too large", path, rows, cols);
  char head[256];
  size_t nh = format_header(head, sizeof head, rows, cols);
  if (nh == 0) return CNF_ERROR(ctx, CNF_EINVAL, "%s: shape too large for a header", path);
  if (strcmp(path, "-") == 0) {
    if (write_all(stdout, head, nh, rows * cols, data) != 0 || fflush(stdout) != 0)
      return CNF_ERROR(ctx, CNF_EIO, "<stdout>: write error");
    return 0;
  }
  cnf_atomic a;
  int rc = cnf__atomic_open(ctx, &a, path);
  if (rc != 0) return rc;
  if (write_all(a.fp, head, nh, rows * cols, data) != 0) {
    cnf__atomic_abort(&a);
    return CNF_ERROR(ctx, CNF_EIO, "%s: write error", path);
  }
  return cnf__atomic_commit(ctx, &a);
}

int cnf_npy_path(const char *path) {
  if (path == NULL) return 0;
  size_t n = strlen(path);
  return n > 4 && (path[n - 4] == '.') && tolower((unsigned char)path[n - 3]) == 'n' &&
         tolower((unsigned char)path[n - 2]) == 'p' && tolower((unsigned char)path[n - 1]) == 'y';
}
