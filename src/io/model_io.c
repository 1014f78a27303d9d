/* model_io.c: the model file (docs/model-format.md).
 *
 * One ASCII header line, then little-endian float64 arrays:
 *
 *   CNF-MODEL 1 dim=2 blocks=1 hidden=64-64-64 layer=concatsquash act=tanh params=9224 crc32=0123abcd\n
 *   T       (blocks)           end times
 *   theta   (blocks, params)   parameters, in the layout of cnf_dynamics.h
 *
 * and, when the header says so, optional sections in this order:
 *
 *   std=1                 shift (dim), scale (dim): the standardization
 *   train=1 iter=N updates=U seed=S
 *                         Adam's moments m (n), v (n), n = blocks * params
 *                         + blocks (the last blocks entries for sqrt(T_k))
 *
 * crc32 is the CRC-32 (zlib's) of the header up to but excluding
 * " crc32=", followed by the binary payload.  Readers reject a newer
 * version, a bad checksum, a short or long payload and non-finite values. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "flow_impl.h"
#include "io.h"

#define MODEL_MAGIC "CNF-MODEL"
#define MODEL_VERSION 1
#define HEADER_MAX 4096

static int little_endian(void) {
  const uint16_t one = 1;
  return *(const unsigned char *)&one == 1;
}

void cnf__to_le(double *x, size_t n) {
  if (little_endian()) return;
  for (size_t i = 0; i < n; i++) {
    unsigned char *b = (unsigned char *)&x[i];
    for (int k = 0; k < 4; k++) {
      unsigned char t = b[k];
      b[k] = b[7 - k];
      b[7 - k] = t;
    }
  }
}

int cnf_flow_save(const cnf_flow *f, const char *path) {
  if (f == NULL || path == NULL) return CNF_EINVAL;
  cnf_ctx *ctx = f->ctx;
  char hidden[256], head[HEADER_MAX];
  int n;
  if (f->field != NULL) /* blocks of a user field class (cnf_dynamics.h) */
    n = snprintf(head, sizeof head, "%s %d dim=%zu blocks=%zu field=%s%s%s params=%zu", MODEL_MAGIC,
                 MODEL_VERSION, f->cfg.dim, f->blocks, f->field->name,
                 f->field_config[0] ? " config=" : "", f->field_config, f->P);
  else
    n = snprintf(head, sizeof head, "%s %d dim=%zu blocks=%zu hidden=%s layer=%s act=%s params=%zu",
                 MODEL_MAGIC, MODEL_VERSION, f->cfg.dim, f->blocks,
                 cnf_mlp_format_hidden(&f->cfg, hidden, sizeof hidden),
                 cnf_layer_name(f->cfg.layer), cnf_act_name(f->cfg.act), f->P);
  if (n >= 0 && f->shift != NULL)
    n += snprintf(head + n, sizeof head - (size_t)n, " std=1");
  if (n >= 0 && f->train != NULL && (size_t)n < sizeof head)
    n += snprintf(head + n, sizeof head - (size_t)n, " train=1 iter=%ld updates=%ld seed=%llu",
                  f->train->iter, f->train->updates, (unsigned long long)f->train->seed);
  if (n < 0 || (size_t)n >= sizeof head - 32)
    return CNF_ERROR(ctx, CNF_EINVAL, "%s: model header too long", path);
  const size_t D = f->cfg.dim, nT = f->blocks, nth = f->blocks * f->P;
  const size_t nstd = f->shift != NULL ? 2 * D : 0;
  const size_t ntr = f->train != NULL ? 2 * f->train->n : 0;
  const size_t total = nT + nth + nstd + ntr;
  double *payload = cnf__dalloc(ctx, total);
  if (payload == NULL) return CNF_ENOMEM;
  double *p = payload;
  memcpy(p, f->T, nT * sizeof(double)), p += nT;
  memcpy(p, f->theta, nth * sizeof(double)), p += nth;
  if (nstd) {
    memcpy(p, f->shift, D * sizeof(double)), p += D;
    memcpy(p, f->scale, D * sizeof(double)), p += D;
  }
  if (ntr) {
    memcpy(p, f->train->m, f->train->n * sizeof(double)), p += f->train->n;
    memcpy(p, f->train->v, f->train->n * sizeof(double));
  }
  int rc = cnf__model_write(ctx, path, head, (size_t)n, payload, total);
  cnf__free(payload);
  return rc;
}

/* Parse "key=value" of the header into the fields below. */
typedef struct header {
  int version;
  size_t dim, blocks, params;
  char hidden[256], layer[64], act[64];
  char field[64], config[256]; /* user-field blocks instead of the MLP */
  unsigned long crc;
  int std, train;     /* optional sections */
  long iter, updates;
  unsigned long long seed;
  int have;  /* bit mask of the keys seen */
} header;

static int parse_size(const char *v, size_t *out) {
  char *end = NULL;
  errno = 0;
  unsigned long long x = strtoull(v, &end, 10);
  if (errno || end == v || *end != '\0' || v[0] == '-') return -1;
  *out = (size_t)x;
  return 0;
}

static int parse_header(cnf_ctx *ctx, const char *path, char *line, header *h,
                        size_t *crc_pos) {
  memset(h, 0, sizeof *h);
  char *save = NULL;
  char *tok = strtok_r(line, " ", &save);
  if (tok == NULL || strcmp(tok, MODEL_MAGIC) != 0)
    return CNF_ERROR(ctx, CNF_ECORRUPT, "%s: not a cnf model file (no '%s' header)", path, MODEL_MAGIC);
  tok = strtok_r(NULL, " ", &save);
  size_t ver = 0;
  if (tok == NULL || parse_size(tok, &ver) != 0 || ver == 0)
    return CNF_ERROR(ctx, CNF_ECORRUPT, "%s: bad version field in the header", path);
  h->version = (int)ver;
  if (h->version > MODEL_VERSION)
    return CNF_ERROR(ctx, CNF_EVERSION, "%s: model file version %d, this cnf reads version %d or older",
                     path, h->version, MODEL_VERSION);
  while ((tok = strtok_r(NULL, " ", &save)) != NULL) {
    if (h->have & 64)
      return CNF_ERROR(ctx, CNF_ECORRUPT, "%s: header field '%s' after crc32 (crc32 must be last)", path, tok);
    char *eq = strchr(tok, '=');
    if (eq == NULL) return CNF_ERROR(ctx, CNF_ECORRUPT, "%s: bad header field '%s'", path, tok);
    *eq = '\0';
    const char *k = tok, *v = eq + 1;
    int bad = 0, seen = h->have;
    if (strcmp(k, "dim") == 0) bad = parse_size(v, &h->dim), h->have |= 1;
    else if (strcmp(k, "blocks") == 0) bad = parse_size(v, &h->blocks), h->have |= 2;
    else if (strcmp(k, "params") == 0) bad = parse_size(v, &h->params), h->have |= 4;
    else if (strcmp(k, "hidden") == 0) bad = snprintf(h->hidden, sizeof h->hidden, "%s", v) >= (int)sizeof h->hidden, h->have |= 8;
    else if (strcmp(k, "layer") == 0) bad = snprintf(h->layer, sizeof h->layer, "%s", v) >= (int)sizeof h->layer, h->have |= 16;
    else if (strcmp(k, "act") == 0) bad = snprintf(h->act, sizeof h->act, "%s", v) >= (int)sizeof h->act, h->have |= 32;
    else if (strcmp(k, "field") == 0) bad = snprintf(h->field, sizeof h->field, "%s", v) >= (int)sizeof h->field || v[0] == '\0', h->have |= 4096;
    else if (strcmp(k, "config") == 0) bad = snprintf(h->config, sizeof h->config, "%s", v) >= (int)sizeof h->config, h->have |= 8192;
    else if (strcmp(k, "std") == 0) bad = strcmp(v, "1") != 0, h->std = 1, h->have |= 128;
    else if (strcmp(k, "train") == 0) bad = strcmp(v, "1") != 0, h->train = 1, h->have |= 256;
    else if (strcmp(k, "iter") == 0) {
      size_t it = 0;
      bad = parse_size(v, &it) != 0 || it > 1000000000000UL;
      h->iter = (long)it, h->have |= 512;
    } else if (strcmp(k, "updates") == 0) {
      size_t u = 0;
      bad = parse_size(v, &u) != 0 || u > 1000000000000UL;
      h->updates = (long)u, h->have |= 2048;
    } else if (strcmp(k, "seed") == 0) {
      size_t sd = 0;
      bad = parse_size(v, &sd);
      h->seed = (unsigned long long)sd, h->have |= 1024;
    } else if (strcmp(k, "crc32") == 0) {
      /* exactly the 8 lowercase hex digits save writes: strtoul alone
       * would also take "1C3175EC" or "+c3175ec", so a changed byte in
       * this field (which the checksum cannot cover) could go unnoticed */
      bad = strlen(v) != 8 || strspn(v, "0123456789abcdef") != 8;
      h->crc = bad ? 0 : strtoul(v, NULL, 16);
      h->have |= 64;
      *crc_pos = (size_t)(tok - line) - 1; /* the space before "crc32=" */
    } else if (strcmp(k, "flow") == 0) {
      return CNF_ERROR(ctx, CNF_EFORMAT, "%s: holds a discrete flow (flow=%s, cnf_layers.h), "
                       "not a continuous one", path, v);
    } else {
      return CNF_ERROR(ctx, CNF_ECORRUPT, "%s: unknown header field '%s'", path, k);
    }
    if (bad) return CNF_ERROR(ctx, CNF_ECORRUPT, "%s: bad value '%s' for header field '%s'", path, v, k);
    if (h->have == seen) return CNF_ERROR(ctx, CNF_ECORRUPT, "%s: header field '%s' repeated", path, k);
  }
  if (h->have & 4096) {
    if ((h->have & (1 | 2 | 4 | 64)) != (1 | 2 | 4 | 64) || (h->have & (8 | 16 | 32)))
      return CNF_ERROR(ctx, CNF_ECORRUPT, "%s: a field model's header needs dim, blocks, field, "
                       "params and crc32, and no hidden, layer or act", path);
  } else if ((h->have & 127) != 127 || (h->have & 8192)) {
    return CNF_ERROR(ctx, CNF_ECORRUPT, "%s: header lacks a field (dim, blocks, hidden, layer, act, params, crc32)", path);
  }
  if (h->train != ((h->have & 512) != 0) || h->train != ((h->have & 1024) != 0) ||
      h->train != ((h->have & 2048) != 0) || h->updates > h->iter)
    return CNF_ERROR(ctx, CNF_ECORRUPT, "%s: header has train=1 without iter, updates and seed "
                     "(updates <= iter), or the reverse", path);
  return 0;
}

int cnf_flow_load(cnf_flow **out, cnf_ctx *ctx, const char *path) {
  if (out == NULL || path == NULL) return CNF_ERROR(ctx, CNF_EINVAL, "load: NULL argument");
  *out = NULL;
  FILE *fp = fopen(path, "rb");
  if (fp == NULL) return CNF_ERROR(ctx, CNF_EIO, "%s: cannot open: %s", path, strerror(errno));
  char line[HEADER_MAX], copy[HEADER_MAX];
  int rc = 0;
  double *payload = NULL;
  cnf_flow *f = NULL;
  if (fgets(line, sizeof line, fp) == NULL || strchr(line, '\n') == NULL) {
    rc = CNF_ERROR(ctx, CNF_ECORRUPT, "%s: not a cnf model file (no header line)", path);
    goto cleanup;
  }
  *strchr(line, '\n') = '\0';
  memcpy(copy, line, sizeof line);
  header h;
  size_t crc_pos = 0;
  CNF_TRY(parse_header(ctx, path, line, &h, &crc_pos));

  cnf_mlp_config cfg;
  cnf_mlp_config_default(&cfg, h.dim);
  const cnf_field_class *cls = NULL;
  if (h.field[0] != '\0') {
    cls = cnf_ctx_find_field(ctx, h.field);
    if (cls == NULL) {
      rc = CNF_ERROR(ctx, CNF_EUNSUPPORTED, "%s: the model's blocks are of the field class '%s', "
                     "which this program has not registered (cnf_ctx_register_field)", path, h.field);
      goto cleanup;
    }
    if (h.dim == 0 || h.dim > 100000 || h.blocks == 0 || h.blocks > 1000 || h.params == 0 ||
        h.params > ((size_t)1 << 40)) {
      rc = CNF_ERROR(ctx, CNF_ECORRUPT, "%s: inconsistent header (dim=%zu blocks=%zu params=%zu)",
                     path, h.dim, h.blocks, h.params);
      goto cleanup;
    }
  } else if (cnf_mlp_parse_hidden(&cfg, h.hidden) != 0 ||
             cnf_layer_parse(h.layer, &cfg.layer) != 0 || cnf_act_parse(h.act, &cfg.act) != 0 ||
             h.dim == 0 || h.dim > 100000 || h.blocks == 0 || h.blocks > 1000 ||
             cnf_mlp_param_count(&cfg) != h.params) {
    rc = CNF_ERROR(ctx, CNF_ECORRUPT,
                   "%s: inconsistent header (dim=%zu blocks=%zu hidden=%s layer=%s act=%s params=%zu)",
                   path, h.dim, h.blocks, h.hidden, h.layer, h.act, h.params);
    goto cleanup;
  }
  const size_t ntr = h.blocks * h.params + h.blocks;
  const size_t n = h.blocks + h.blocks * h.params + (h.std ? 2 * h.dim : 0) + (h.train ? 2 * ntr : 0);
  /* the file must hold exactly n doubles after the header: check before
   * allocating what a damaged header claims (widths <= 10^6 and at most
   * 17 layers bound params by 2^45, blocks <= 1000: n * 8 cannot overflow) */
  long here = ftell(fp);
  if (here < 0 || fseek(fp, 0, SEEK_END) != 0) {
    rc = CNF_ERROR(ctx, CNF_EIO, "%s: cannot determine the file size", path);
    goto cleanup;
  }
  long size = ftell(fp);
  if (size < 0 || fseek(fp, here, SEEK_SET) != 0) {
    rc = CNF_ERROR(ctx, CNF_EIO, "%s: cannot determine the file size", path);
    goto cleanup;
  }
  if ((unsigned long)(size - here) != n * sizeof(double)) {
    rc = CNF_ERROR(ctx, CNF_ECORRUPT, "%s: %s: the header describes %zu bytes of data, the file holds %ld",
                   path, (unsigned long)(size - here) < n * sizeof(double) ? "truncated" : "unexpected bytes after the data",
                   n * sizeof(double), size - here);
    goto cleanup;
  }
  payload = cnf__dalloc(ctx, n);
  if (payload == NULL) CNF_TRY(CNF_ENOMEM);
  size_t got = fread(payload, sizeof(double), n, fp);
  if (got != n) {
    rc = CNF_ERROR(ctx, CNF_ECORRUPT, "%s: truncated: expected %zu bytes of data after the header, found %zu",
                   path, n * sizeof(double), got * sizeof(double));
    goto cleanup;
  }
  if (fgetc(fp) != EOF) {
    rc = CNF_ERROR(ctx, CNF_ECORRUPT, "%s: unexpected bytes after the %zu stored values", path, n);
    goto cleanup;
  }
  uint32_t crc = cnf__crc32(0, copy, crc_pos);
  crc = cnf__crc32(crc, payload, n * sizeof(double));
  if (crc != (uint32_t)h.crc) {
    rc = CNF_ERROR(ctx, CNF_ECORRUPT, "%s: damaged: checksum %08x, the header says %08lx", path,
                   (unsigned)crc, h.crc);
    goto cleanup;
  }
  cnf__to_le(payload, n);
  /* the end times in range, every value finite, Adam's second moments (the
   * last ntr values) non-negative; values numbered from 1 over the whole
   * payload, as cnf__model_write does */
  for (size_t k = 0; k < h.blocks; k++)
    if (!(payload[k] >= CNF__T_MIN && payload[k] <= CNF__T_MAX)) {
      rc = CNF_ERROR(ctx, CNF_ECORRUPT, "%s: end time %zu is %g, need %g <= T <= %g", path, k + 1,
                     payload[k], CNF__T_MIN, CNF__T_MAX);
      goto cleanup;
    }
  for (size_t i = h.blocks; i < n; i++)
    if (!isfinite(payload[i]) || (h.train && i >= n - ntr && payload[i] < 0)) {
      rc = CNF_ERROR(ctx, CNF_ECORRUPT, "%s: stored value %zu of %zu is %g, need a finite number%s",
                     path, i + 1, n, payload[i],
                     h.train && i >= n - ntr ? " >= 0 (Adam's second moment)" : "");
      goto cleanup;
    }
  if (cls != NULL) {
    CNF_TRY(cnf__flow_alloc_field(&f, ctx, cls, h.config, h.dim, h.blocks));
    if (f->P != h.params) {
      rc = CNF_ERROR(ctx, CNF_ECORRUPT, "%s: the header says %zu parameters per block, the field "
                     "'%s' (config '%s') has %zu", path, h.params, h.field, h.config, f->P);
      goto cleanup;
    }
  } else {
    CNF_TRY(cnf__flow_alloc(&f, ctx, &cfg, h.blocks));
  }
  const double *p = payload;
  memcpy(f->T, p, h.blocks * sizeof(double)), p += h.blocks;
  memcpy(f->theta, p, h.blocks * h.params * sizeof(double)), p += h.blocks * h.params;
  if (h.std) {
    rc = cnf_flow_set_standardization(f, p, p + h.dim);
    if (rc != 0) {
      rc = CNF_ERROR(ctx, CNF_ECORRUPT, "%s: bad standardization: %s", path, cnf_ctx_errmsg(ctx));
      goto cleanup;
    }
    p += 2 * h.dim;
  }
  if (h.train) {
    f->train = cnf__train_state_new(ntr);
    if (f->train == NULL) CNF_TRY(CNF_ERROR(ctx, CNF_ENOMEM, "%s: out of memory", path));
    f->train->iter = h.iter;
    f->train->updates = h.updates;
    f->train->seed = h.seed;
    memcpy(f->train->m, p, ntr * sizeof(double)), p += ntr;
    memcpy(f->train->v, p, ntr * sizeof(double));
  }
  *out = f;
  f = NULL;
cleanup:
  fclose(fp);
  cnf__free(payload);
  cnf_flow_free(f);
  return rc;
}


int cnf__model_write(cnf_ctx *ctx, const char *path, const char *head, size_t n,
                     double *payload, size_t total) {
  for (size_t i = 0; i < total; i++)
    if (!isfinite(payload[i]))
      return CNF_ERROR(ctx, CNF_ENONFINITE, "%s: not saved: stored value %zu of %zu is %g", path,
                       i + 1, total, payload[i]);
  cnf__to_le(payload, total);
  uint32_t crc = cnf__crc32(0, head, n);
  crc = cnf__crc32(crc, payload, total * sizeof(double));
  cnf_atomic a;
  int rc = cnf__atomic_open(ctx, &a, path);
  if (rc != 0) return rc;
  if (fprintf(a.fp, "%s crc32=%08x\n", head, (unsigned)crc) < 0 ||
      fwrite(payload, sizeof(double), total, a.fp) != total) {
    cnf__atomic_abort(&a);
    return CNF_ERROR(ctx, CNF_EIO, "%s: write error", path);
  }
  return cnf__atomic_commit(ctx, &a);
}
