/* stack_io.c: stacks in the model file container (docs/model-format.md,
 * section 8).  One ASCII header line, then little-endian float64 values:
 *
 *   CNF-MODEL 1 flow=realnvp dim=2 layers=coupling:64-64:0,actnorm:0:0 params=P
 *       [std=1] [train=1 updates=U [iter=N seed=S]] crc32=<8 hex digits>\n
 *   theta (P), then shift (D) and scale (D) with std=1, then Adam's m (P)
 *   and v (P) with train=1.
 *
 * Each layer is kind:H:arg, H the conditioner's widths ("0" for none).  The
 * flow= key tells a stack from a CNF; older readers reject it as an unknown
 * key rather than misread the file.  The checksum covers the header before
 * " crc32=" and the payload, as for CNF files. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io.h"
#include "stack_impl.h"

#define HEADER_MAX 4096

/* "kind:H1-H2:arg" of one layer appended to buf at *n */
static int put_layer(char *buf, size_t cap, size_t *n, const cnf_tf_config *c, int first) {
  int k = snprintf(buf + *n, cap - *n, "%s%s:", first ? "" : ",", cnf_tf_kind_name(c->kind));
  if (k < 0 || (size_t)k >= cap - *n) return -1;
  *n += (size_t)k;
  if (c->n_hidden == 0) {
    k = snprintf(buf + *n, cap - *n, "0");
    if (k < 0 || (size_t)k >= cap - *n) return -1;
    *n += (size_t)k;
  }
  for (size_t l = 0; l < c->n_hidden; l++) {
    k = snprintf(buf + *n, cap - *n, "%s%zu", l ? "-" : "", c->hidden[l]);
    if (k < 0 || (size_t)k >= cap - *n) return -1;
    *n += (size_t)k;
  }
  k = snprintf(buf + *n, cap - *n, ":%lu", c->arg);
  if (k < 0 || (size_t)k >= cap - *n) return -1;
  *n += (size_t)k;
  return 0;
}

int cnf_stack_save(const cnf_stack *s, const char *path) {
  if (s == NULL || path == NULL) return CNF_EINVAL;
  cnf_ctx *ctx = s->ctx;
  char head[HEADER_MAX];
  size_t n = 0;
  int k = snprintf(head, sizeof head, "CNF-MODEL 1 flow=%s dim=%zu layers=", s->name, s->D);
  if (k < 0) return CNF_EINVAL;
  n = (size_t)k;
  for (size_t l = 0; l < s->L; l++)
    if (put_layer(head, sizeof head - 64, &n, cnf_tf_get_config(s->tf[l]), l == 0) != 0)
      return CNF_ERROR(ctx, CNF_EINVAL, "%s: model header too long (%zu layers)", path, s->L);
  k = snprintf(head + n, sizeof head - n, " params=%zu%s", s->P, s->shift ? " std=1" : "");
  n += (size_t)k;
  if (s->m != NULL) {
    k = snprintf(head + n, sizeof head - n, " train=1 updates=%ld iter=%ld seed=%llu", s->updates,
                 s->iter, (unsigned long long)s->seed);
    n += (size_t)k;
  }
  if (n >= sizeof head - 32) return CNF_ERROR(ctx, CNF_EINVAL, "%s: model header too long", path);
  const size_t D = s->D, nstd = s->shift ? 2 * D : 0, ntr = s->m ? 2 * s->P : 0;
  const size_t total = s->P + nstd + ntr;
  double *payload = cnf__dalloc(ctx, total + 1);
  if (payload == NULL) return CNF_ENOMEM;
  double *p = payload;
  memcpy(p, s->theta, s->P * sizeof(double)), p += s->P;
  if (nstd) {
    memcpy(p, s->shift, D * sizeof(double)), p += D;
    memcpy(p, s->scale, D * sizeof(double)), p += D;
  }
  if (ntr) {
    memcpy(p, s->m, s->P * sizeof(double)), p += s->P;
    memcpy(p, s->v, s->P * sizeof(double));
  }
  int rc = cnf__model_write(ctx, path, head, (size_t)n, payload, total);
  cnf__free(payload);
  return rc;
}

static int parse_size(const char *v, size_t *out) {
  char *end = NULL;
  errno = 0;
  if (v[0] < '0' || v[0] > '9') return -1;
  unsigned long long x = strtoull(v, &end, 10);
  if (errno || end == v || *end != '\0') return -1;
  *out = (size_t)x;
  return 0;
}

/* "kind:H:arg,..." into cfgs (allocated, *L of them) */
static int parse_layers(char *spec, size_t D, cnf_tf_config **cfgs, size_t *L) {
  size_t cnt = 1;
  for (const char *q = spec; *q; q++) cnt += *q == ',';
  if (cnt > 10000) return -1;
  cnf_tf_config *c = cnf__calloc(cnt, sizeof *c);
  if (c == NULL) return -1;
  char *save = NULL, *tok = strtok_r(spec, ",", &save);
  size_t n = 0;
  for (; tok != NULL && n < cnt; tok = strtok_r(NULL, ",", &save), n++) {
    char *c1 = strchr(tok, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (c1 == NULL || c2 == NULL) goto bad;
    *c1 = *c2 = '\0';
    c[n].dim = D;
    size_t arg = 0;
    if (cnf_tf_kind_parse(tok, &c[n].kind) != 0 || parse_size(c2 + 1, &arg) != 0) goto bad;
    if (c[n].kind == CNF_TF_CNF && arg > 100000000000UL) goto bad; /* T = arg / 1000 <= 1e8 */
    c[n].arg = (unsigned long)arg;
    if (strcmp(c1 + 1, "0") != 0) {
      char *s2 = NULL, *w = strtok_r(c1 + 1, "-", &s2);
      for (; w != NULL; w = strtok_r(NULL, "-", &s2)) {
        size_t h = 0;
        if (c[n].n_hidden >= CNF_MAX_HIDDEN || parse_size(w, &h) != 0 || h == 0 || h > 100000)
          goto bad;
        c[n].hidden[c[n].n_hidden++] = h;
      }
    }
  }
  if (n != cnt || tok != NULL) goto bad;
  *cfgs = c, *L = cnt;
  return 0;
bad:
  cnf__free(c);
  return -1;
}

int cnf_model_file_is_stack(const char *path) {
  FILE *fp = fopen(path, "rb");
  if (fp == NULL) return CNF_EIO;
  char line[HEADER_MAX];
  int r = 0;
  if (fgets(line, sizeof line, fp) != NULL && strncmp(line, "CNF-MODEL ", 10) == 0) {
    char *nl = strchr(line, '\n');
    if (nl) *nl = '\0';
    r = strstr(line, " flow=") != NULL;
  }
  fclose(fp);
  return r;
}

int cnf_stack_load(cnf_stack **out, cnf_ctx *ctx, const char *path) {
  if (out == NULL || path == NULL) return CNF_ERROR(ctx, CNF_EINVAL, "load: NULL argument");
  *out = NULL;
  FILE *fp = fopen(path, "rb");
  if (fp == NULL) return CNF_ERROR(ctx, CNF_EIO, "%s: cannot open: %s", path, strerror(errno));
  char line[HEADER_MAX], copy[HEADER_MAX], name[64] = "", spec[HEADER_MAX] = "";
  int rc = 0, have_std = 0, have_train = 0, seen = 0;
  size_t D = 0, P = 0, upd = 0, crc_pos = 0, L = 0, iter = 0, seed = 0;
  unsigned long crc_file = 0;
  double *payload = NULL;
  cnf_tf_config *cfgs = NULL;
  cnf_stack *s = NULL;
  if (fgets(line, sizeof line, fp) == NULL || strchr(line, '\n') == NULL) {
    rc = CNF_ERROR(ctx, CNF_ECORRUPT, "%s: not a cnf model file (no header line)", path);
    goto cleanup;
  }
  *strchr(line, '\n') = '\0';
  memcpy(copy, line, sizeof line);
  char *save = NULL, *tok = strtok_r(line, " ", &save);
  if (tok == NULL || strcmp(tok, "CNF-MODEL") != 0) {
    rc = CNF_ERROR(ctx, CNF_ECORRUPT, "%s: not a cnf model file (no 'CNF-MODEL' header)", path);
    goto cleanup;
  }
  tok = strtok_r(NULL, " ", &save);
  size_t ver = 0;
  if (tok == NULL || parse_size(tok, &ver) != 0 || ver == 0) {
    rc = CNF_ERROR(ctx, CNF_ECORRUPT, "%s: bad version field in the header", path);
    goto cleanup;
  }
  if (ver > 1) {
    rc = CNF_ERROR(ctx, CNF_EVERSION,
                   "%s: model file version %zu, this cnf reads version 1 or older", path, ver);
    goto cleanup;
  }
  while ((tok = strtok_r(NULL, " ", &save)) != NULL) {
    char *eq = strchr(tok, '=');
    if (eq == NULL || (seen & 64)) {
      rc = CNF_ERROR(ctx, CNF_ECORRUPT, "%s: bad header field '%s'", path, tok);
      goto cleanup;
    }
    *eq = '\0';
    const char *k = tok, *v = eq + 1;
    int bad = 0, bit = 0;
    if (strcmp(k, "flow") == 0)
      bad = snprintf(name, sizeof name, "%s", v) >= (int)sizeof name, bit = 1;
    else if (strcmp(k, "dim") == 0)
      bad = parse_size(v, &D) || D == 0 || D > 100000, bit = 2;
    else if (strcmp(k, "layers") == 0)
      bad = snprintf(spec, sizeof spec, "%s", v) >= (int)sizeof spec, bit = 4;
    else if (strcmp(k, "params") == 0)
      bad = parse_size(v, &P), bit = 8;
    else if (strcmp(k, "std") == 0)
      bad = strcmp(v, "1") != 0, have_std = 1, bit = 16;
    else if (strcmp(k, "train") == 0)
      bad = strcmp(v, "1") != 0, have_train = 1, bit = 32;
    else if (strcmp(k, "updates") == 0)
      bad = parse_size(v, &upd) || upd > 1000000000000UL, bit = 128;
    else if (strcmp(k, "iter") == 0) /* optional with train=1: steps taken */
      bad = parse_size(v, &iter) || iter > 1000000000000UL, bit = 256;
    else if (strcmp(k, "seed") == 0) /* optional with train=1: the run's seed */
      bad = parse_size(v, &seed), bit = 512;
    else if (strcmp(k, "crc32") == 0) {
      bad = strlen(v) != 8 || strspn(v, "0123456789abcdef") != 8;
      crc_file = bad ? 0 : strtoul(v, NULL, 16);
      crc_pos = (size_t)(tok - line) - 1, bit = 64;
    } else {
      rc = CNF_ERROR(ctx, CNF_ECORRUPT, "%s: unknown header field '%s'", path, k);
      goto cleanup;
    }
    if (bad || (seen & bit)) {
      rc = CNF_ERROR(ctx, CNF_ECORRUPT, "%s: bad or repeated value '%s' for header field '%s'",
                     path, v, k);
      goto cleanup;
    }
    seen |= bit;
  }
  if ((seen & 79) != 79 || have_train != ((seen & 128) != 0) ||
      (!have_train && (seen & (256 | 512))) || ((seen & 256) && iter < upd)) {
    rc = CNF_ERROR(ctx, CNF_ECORRUPT,
                   "%s: header lacks a field (flow, dim, layers, params, crc32; train=1 with "
                   "updates)",
                   path);
    goto cleanup;
  }
  if (parse_layers(spec, D, &cfgs, &L) != 0) {
    rc = CNF_ERROR(ctx, CNF_ECORRUPT, "%s: bad layer list in the header", path);
    goto cleanup;
  }
  /* Check the header against the file before allocating what it claims.
   * P follows from the layers alone, and the data after the header must
   * hold exactly n values (below), which bounds P by the file's size.  The
   * layers' row workspaces, about (15 L + 3) CNF_TF_CHUNK D doubles, do not
   * grow with P (a permutation has none); a header asking for more than
   * 64 MiB of them, plus 16384 bytes per stored byte (far above what any
   * layer with parameters needs), is refused as implausible. */
  size_t P_layers = 0;
  for (size_t l = 0; l < L; l++) P_layers += cnf__tf_config_param_count(&cfgs[l]);
  if (P_layers != P) {
    rc = CNF_ERROR(ctx, CNF_ECORRUPT, "%s: inconsistent header: params=%zu, the layers have %zu",
                   path, P, P_layers);
    goto cleanup;
  }
  const size_t n = P + (have_std ? 2 * D : 0) + (have_train ? 2 * P : 0);
  long here = ftell(fp);
  if (here < 0 || fseek(fp, 0, SEEK_END) != 0)
    CNF_TRY(CNF_ERROR(ctx, CNF_EIO, "%s: cannot seek", path));
  long size = ftell(fp);
  if (size < 0 || fseek(fp, here, SEEK_SET) != 0)
    CNF_TRY(CNF_ERROR(ctx, CNF_EIO, "%s: cannot seek", path));
  if ((unsigned long)(size - here) != n * sizeof(double)) {
    rc = CNF_ERROR(ctx, CNF_ECORRUPT,
                   "%s: %s: the header describes %zu bytes of data, the file holds %ld", path,
                   (unsigned long)(size - here) < n * sizeof(double)
                       ? "truncated"
                       : "unexpected bytes after the data",
                   n * sizeof(double), size - here);
    goto cleanup;
  }
  const double work = (15.0 * (double)L + 3.0) * CNF_TF_CHUNK * (double)D * sizeof(double);
  if (work > 67108864.0 + 16384.0 * (double)(n * sizeof(double))) {
    rc = CNF_ERROR(ctx, CNF_ECORRUPT,
                   "%s: implausible header: %zu layers of dimension %zu would need %.3g bytes of "
                   "workspace for %zu stored values",
                   path, L, D, work, n);
    goto cleanup;
  }
  rc = cnf__stack_alloc(&s, ctx, name, D, L, cfgs);
  if (rc != 0) {
    rc = CNF_ERROR(ctx, CNF_ECORRUPT, "%s: inconsistent header: %s", path, cnf_ctx_errmsg(ctx));
    goto cleanup;
  }
  payload = cnf__dalloc(ctx, n + 1);
  if (payload == NULL) CNF_TRY(CNF_ENOMEM);
  if (fread(payload, sizeof(double), n, fp) != n) {
    rc = CNF_ERROR(ctx, CNF_ECORRUPT, "%s: truncated", path);
    goto cleanup;
  }
  uint32_t crc = cnf__crc32(0, copy, crc_pos);
  crc = cnf__crc32(crc, payload, n * sizeof(double));
  if (crc != (uint32_t)crc_file) {
    rc = CNF_ERROR(ctx, CNF_ECORRUPT, "%s: damaged: checksum %08x, the header says %08lx", path,
                   (unsigned)crc, crc_file);
    goto cleanup;
  }
  cnf__to_le(payload, n);
  for (size_t i = 0; i < n; i++)
    if (!isfinite(payload[i]) || (have_train && i >= n - P && payload[i] < 0)) {
      rc = CNF_ERROR(ctx, CNF_ECORRUPT, "%s: stored value %zu of %zu is %g, need a finite number%s",
                     path, i + 1, n, payload[i],
                     have_train && i >= n - P ? " >= 0 (Adam's second moment)" : "");
      goto cleanup;
    }
  memcpy(s->theta, payload, P * sizeof(double));
  const double *p = payload + P;
  if (have_std) {
    if (cnf_stack_set_standardization(s, p, p + D) != 0) {
      rc = CNF_ERROR(ctx, CNF_ECORRUPT, "%s: bad standardization: %s", path, cnf_ctx_errmsg(ctx));
      goto cleanup;
    }
    p += 2 * D;
  }
  if (have_train) {
    CNF_TRY(cnf__stack_train_state(s));
    memcpy(s->m, p, P * sizeof(double));
    memcpy(s->v, p + P, P * sizeof(double));
    s->updates = (long)upd;
    s->iter = (seen & 256) ? (long)iter : (long)upd; /* older files: no failed steps known */
    s->seed = (uint64_t)seed;
  }
  *out = s;
  s = NULL;
cleanup:
  fclose(fp);
  cnf__free(payload);
  cnf__free(cfgs);
  cnf_stack_free(s);
  return rc;
}
