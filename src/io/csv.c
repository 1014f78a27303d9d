/* csv.c: numeric CSV files: one sample per row, comma-separated, an
 * optional header row.  Every rejection names file, line and column. */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io.h"

void cnf_free(void *p) { cnf__free(p); }

/* Read all of fp into a NUL-terminated buffer. */
static char *slurp(FILE *fp, size_t *len) {
  size_t cap = 1 << 16, n = 0;
  char *buf = cnf__malloc(cap);
  if (buf == NULL) return NULL;
  for (;;) {
    if (cap - n < 2) {
      char *nb = cnf__malloc(cap * 2);
      if (nb == NULL) {
        cnf__free(buf);
        return NULL;
      }
      memcpy(nb, buf, n);
      cnf__free(buf);
      buf = nb;
      cap *= 2;
    }
    size_t got = fread(buf + n, 1, cap - n - 1, fp);
    n += got;
    if (got == 0) break;
  }
  buf[n] = '\0';
  *len = n;
  return buf;
}

typedef enum { FIELD_NUMBER, FIELD_TEXT, FIELD_NONFINITE, FIELD_EMPTY } field_kind;

/* Classify the field [s, e) and parse it into *v. */
static field_kind parse_field(const char *s, const char *e, double *v) {
  while (s < e && isspace((unsigned char)*s)) s++;
  while (e > s && isspace((unsigned char)e[-1])) e--;
  if (s == e) return FIELD_EMPTY;
  /* in place: strtod stops at the ',' or line end that follows the field
   * (neither can continue a number), so the field is a number exactly
   * when strtod ends at e */
  char *end = NULL;
  double x = strtod(s, &end);
  if (end != e) return FIELD_TEXT;
  *v = x;
  if (!isfinite(x)) return FIELD_NONFINITE;
  return FIELD_NUMBER;
}

static const char *kind_text(field_kind k) {
  return k == FIELD_EMPTY ? "an empty field" : k == FIELD_NONFINITE ? "a non-finite value (NaN or Inf)"
                                                                    : "text";
}

/* The row [p, end) of nf fields is a header if none of its fields is a
 * number. */
static int is_header(const char *p, const char *end, size_t nf) {
  const char *s = p;
  for (size_t j = 0; j < nf; j++) {
    const char *e = memchr(s, ',', (size_t)(end - s));
    if (e == NULL) e = end;
    double v;
    const field_kind k = parse_field(s, e, &v);
    if (k != FIELD_TEXT && k != FIELD_EMPTY) return 0;
    s = e + 1;
  }
  return 1;
}

int cnf_csv_read(cnf_ctx *ctx, const char *path, double **data, size_t *rows,
                 size_t *cols) {
  if (path == NULL || data == NULL || rows == NULL || cols == NULL)
    return CNF_ERROR(ctx, CNF_EINVAL, "csv: NULL argument");
  *data = NULL;
  *rows = *cols = 0;
  const int is_stdin = strcmp(path, "-") == 0;
  const char *name = is_stdin ? "<stdin>" : path;
  FILE *fp = is_stdin ? stdin : fopen(path, "rb");
  if (fp == NULL) return CNF_ERROR(ctx, CNF_EIO, "%s: cannot open: %s", name, strerror(errno));
  size_t len = 0;
  char *buf = slurp(fp, &len);
  int rerr = ferror(fp);
  if (!is_stdin) fclose(fp);
  if (buf == NULL) return CNF_ERROR(ctx, CNF_ENOMEM, "%s: out of memory", name);
  if (rerr) {
    cnf__free(buf);
    return CNF_ERROR(ctx, CNF_EIO, "%s: read error", name);
  }
  const unsigned char *u = (const unsigned char *)buf;
  if (len >= 2 && ((u[0] == 0xFF && u[1] == 0xFE) || (u[0] == 0xFE && u[1] == 0xFF))) {
    const unsigned b0 = u[0], b1 = u[1];
    cnf__free(buf);
    return CNF_ERROR(ctx, CNF_EFORMAT,
                     "%s:1:1: UTF-16 text (a byte-order mark %02X %02X), "
                     "expected CSV in ASCII or UTF-8",
                     name, b0, b1);
  }
  const char *nul = memchr(buf, '\0', len);
  if (nul != NULL) {
    /* line and column (the field, as below) of the first NUL byte */
    size_t nl = 1, col = 1, byte = 1;
    for (const char *c = buf; c < nul; c++) {
      if (*c == '\n')
        nl++, col = 1, byte = 1;
      else
        col += *c == ',', byte++;
    }
    cnf__free(buf);
    return CNF_ERROR(ctx, CNF_EFORMAT,
                     "%s:%zu:%zu: binary data (a NUL byte, byte %zu of the line), "
                     "expected CSV text",
                     name, nl, col, byte);
  }

  int rc = 0;
  size_t ncol = 0, nrow = 0, cap = 0, line = 0;
  double *out = NULL;
  int header_done = 0;
  char *p = buf;
  if (len >= 3 && u[0] == 0xEF && u[1] == 0xBB && u[2] == 0xBF) p += 3; /* UTF-8 byte-order mark */
  while (*p != '\0' && rc == 0) {
    line++;
    char *eol = strchr(p, '\n');
    char *next = eol ? eol + 1 : p + strlen(p);
    char *end = eol ? eol : next;
    if (end > p && end[-1] == '\r') end--;
    /* blank lines are allowed only at the end of the file */
    const char *q = p;
    while (q < end && isspace((unsigned char)*q)) q++;
    if (q == end) {
      const char *r = next;
      while (*r && isspace((unsigned char)*r)) r++;
      if (*r == '\0') break;
      rc = CNF_ERROR(ctx, CNF_EFORMAT, "%s:%zu: empty line inside the data", name, line);
      break;
    }
    /* count fields */
    size_t nf = 1;
    for (const char *c = p; c < end; c++) nf += *c == ',';
    if (!header_done) {
      /* the first row decides the column count, and may be a header */
      ncol = nf;
      header_done = 1;
      if (is_header(p, end, nf)) {
        p = next;
        continue;
      }
    }
    if (nf != ncol) {
      rc = CNF_ERROR(ctx, CNF_EFORMAT, "%s:%zu: expected %zu fields, found %zu (ragged row)",
                     name, line, ncol, nf);
      break;
    }
    if (nrow == cap) {
      size_t nc = cap ? 2 * cap : 1024;
      double *no = cnf__malloc(nc * ncol * sizeof(double));
      if (no == NULL) {
        rc = CNF_ERROR(ctx, CNF_ENOMEM, "%s: out of memory at line %zu", name, line);
        break;
      }
      if (out) memcpy(no, out, nrow * ncol * sizeof(double));
      cnf__free(out);
      out = no;
      cap = nc;
    }
    const char *s = p;
    for (size_t j = 0; j < ncol; j++) {
      const char *e = memchr(s, ',', (size_t)(end - s));
      if (e == NULL) e = end;
      double v = 0.0;
      field_kind k = parse_field(s, e, &v);
      if (k != FIELD_NUMBER) {
        int code = k == FIELD_NONFINITE ? CNF_ENONFINITE : CNF_EFORMAT;
        int w = (int)(e - s) > 40 ? 40 : (int)(e - s);
        rc = CNF_ERROR(ctx, code, "%s:%zu:%zu: expected a finite number, found %s '%.*s'",
                       name, line, j + 1, kind_text(k), w, s);
        break;
      }
      out[nrow * ncol + j] = v;
      s = e + 1;
    }
    nrow++;
    p = next;
  }
  cnf__free(buf);
  if (rc == 0 && nrow == 0)
    rc = header_done ? CNF_ERROR(ctx, CNF_EFORMAT, "%s:2: no data rows after the header on line 1", name)
                     : CNF_ERROR(ctx, CNF_EFORMAT, "%s:1: empty file, expected CSV rows of numbers", name);
  if (rc != 0) {
    cnf__free(out);
    return rc;
  }
  *data = out;
  *rows = nrow;
  *cols = ncol;
  return 0;
}

static int write_rows(FILE *fp, const char *const *names, size_t rows,
                      size_t cols, const double *data) {
  for (size_t j = 0; j < cols; j++)
    if (fprintf(fp, j ? ",%s" : "%s", names[j]) < 0) return -1;
  if (fputc('\n', fp) == EOF) return -1;
  for (size_t i = 0; i < rows; i++) {
    for (size_t j = 0; j < cols; j++)
      if (fprintf(fp, j ? ",%.17g" : "%.17g", data[i * cols + j]) < 0) return -1;
    if (fputc('\n', fp) == EOF) return -1;
  }
  return 0;
}

int cnf_csv_write(cnf_ctx *ctx, const char *path, const char *const *names,
                  size_t rows, size_t cols, const double *data) {
  if (names == NULL || (rows > 0 && data == NULL) || cols == 0)
    return CNF_ERROR(ctx, CNF_EINVAL, "csv: bad arguments");
  if (path == NULL || strcmp(path, "-") == 0) {
    if (write_rows(stdout, names, rows, cols, data) != 0 || fflush(stdout) != 0)
      return CNF_ERROR(ctx, CNF_EIO, "<stdout>: write error");
    return 0;
  }
  cnf_atomic a;
  int rc = cnf__atomic_open(ctx, &a, path);
  if (rc != 0) return rc;
  if (write_rows(a.fp, names, rows, cols, data) != 0) {
    cnf__atomic_abort(&a);
    return CNF_ERROR(ctx, CNF_EIO, "%s: write error", path);
  }
  return cnf__atomic_commit(ctx, &a);
}

int cnf_csv_header(cnf_ctx *ctx, const char *path, char ***names, size_t *cols) {
  if (path == NULL || names == NULL || cols == NULL)
    return CNF_ERROR(ctx, CNF_EINVAL, "csv: NULL argument");
  *names = NULL;
  *cols = 0;
  if (strcmp(path, "-") == 0) return 0;
  FILE *fp = fopen(path, "rb");
  if (fp == NULL) return CNF_ERROR(ctx, CNF_EIO, "%s: cannot open: %s", path, strerror(errno));
  char line[8192];
  const int got = fgets(line, sizeof line, fp) != NULL;
  fclose(fp);
  if (!got) return 0;
  size_t len = strcspn(line, "\r\n"), nf = 1;
  line[len] = '\0';
  for (size_t i = 0; i < len; i++) nf += line[i] == ',';
  if (!is_header(line, line + len, nf)) return 0; /* as cnf_csv_read decides */
  char **out = cnf__malloc((nf + 1) * sizeof(char *) + len + 1);
  if (out == NULL) return CNF_ERROR(ctx, CNF_ENOMEM, "%s: out of memory", path);
  char *text = (char *)(out + nf + 1);
  memcpy(text, line, len + 1);
  char *p = text;
  for (size_t j = 0; j < nf; j++) {
    char *e = strchr(p, ',');
    if (e == NULL) e = p + strlen(p);
    char *next = *e ? e + 1 : e;
    *e = '\0';
    while (isspace((unsigned char)*p)) p++;
    while (e > p && isspace((unsigned char)e[-1])) *--e = '\0';
    if (e - p >= 2 && *p == '"' && e[-1] == '"') p++, *--e = '\0';
    out[j] = p;
    p = next;
  }
  out[nf] = NULL;
  *names = out;
  *cols = nf;
  return 0;
}
