/* hidden.c: the "64-64-64" notation for hidden layer widths. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

int cnf_mlp_parse_hidden(cnf_mlp_config *cfg, const char *s) {
  if (cfg == NULL || s == NULL) return CNF_EINVAL;
  size_t n = 0, widths[CNF_MAX_HIDDEN];
  if (strcmp(s, "") == 0 || strcmp(s, "0") == 0) {
    cfg->n_hidden = 0;
    return 0;
  }
  const char *p = s;
  for (;;) {
    if (*p < '0' || *p > '9') return CNF_EINVAL;
    errno = 0;
    char *end = NULL;
    unsigned long long w = strtoull(p, &end, 10);
    if (errno != 0 || w == 0 || w > 1000000 || n == CNF_MAX_HIDDEN)
      return CNF_EINVAL;
    widths[n++] = (size_t)w;
    if (*end == '\0') break;
    if (*end != '-') return CNF_EINVAL;
    p = end + 1;
  }
  cfg->n_hidden = n;
  for (size_t i = 0; i < n; i++) cfg->hidden[i] = widths[i];
  return 0;
}

char *cnf_mlp_format_hidden(const cnf_mlp_config *cfg, char *buf, size_t n) {
  if (buf == NULL || n == 0) return buf;
  buf[0] = '\0';
  size_t used = 0;
  if (cfg->n_hidden == 0) {
    snprintf(buf, n, "0");
    return buf;
  }
  for (size_t i = 0; i < cfg->n_hidden && used < n; i++) {
    int w = snprintf(buf + used, n - used, i ? "-%zu" : "%zu", cfg->hidden[i]);
    if (w < 0) break;
    used += (size_t)w;
  }
  return buf;
}
