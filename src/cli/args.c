/* args.c: the option parser of the `cnf` tool (cli.h).
 *
 * Table-driven and strict: every option is named in the command's table,
 * given at most once, and its value is checked in full ("1e-5x", "abc",
 * "-1", "0" where zero is not allowed and out-of-range integers are all
 * rejected, naming the option and the text).  No positional words, no
 * option bundling, no abbreviations.  The usage text is generated from
 * the same table, so the two cannot drift apart. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

void cnf__cli_error(const char *cmd, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, cmd ? "cnf %s: " : "cnf: ", cmd);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

/* Parse an unsigned decimal integer: digits only, no sign, no space. */
static int parse_digits(const char *s, unsigned long long *out) {
  if (s == NULL || !isdigit((unsigned char)s[0])) return -1;
  char *end = NULL;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno != 0 || *end != '\0') return -1;
  *out = v;
  return 0;
}

/* Parse a finite, strictly positive number, the whole text. */
/* A finite number > 0 (or >= 0 with allow_zero). */
static int parse_number(const char *s, double *out, int allow_zero) {
  if (s == NULL || s[0] == '\0' || isspace((unsigned char)s[0])) return -1;
  char *end = NULL;
  errno = 0;
  double v = strtod(s, &end);
  if (errno != 0 || *end != '\0' || !isfinite(v) || !(v > 0.0 || (allow_zero && v == 0.0)))
    return -1;
  *out = v;
  return 0;
}

int cnf__cli_parse_threads(const char *s, size_t *out) {
  unsigned long long v = 0;
  if (parse_digits(s, &v) != 0 || v < 1 || v > 64) return -1;
  *out = (size_t)v;
  return 0;
}

/* Store the value text v of option o, spelled `as` on the command line
 * ("-n" or "--samples"); print the reason and return CNF_CLI_EUSAGE when the
 * value is not acceptable. */
static int store(const char *cmd, const cnf_cli_opt *o, const char *as, const char *v) {
  unsigned long long u = 0;
  switch (o->kind) {
    case CNF_CLI_FLAG:
      *(int *)o->dest = 1;
      return CNF_CLI_OK;
    case CNF_CLI_STR:
      if (v[0] == '\0') {
        cnf__cli_error(cmd, "%s: expected a non-empty value", as);
        return CNF_CLI_EUSAGE;
      }
      *(const char **)o->dest = v;
      return CNF_CLI_OK;
    case CNF_CLI_POS:
    case CNF_CLI_NONNEG:
      if (parse_number(v, (double *)o->dest, o->kind == CNF_CLI_NONNEG) != 0) {
        cnf__cli_error(cmd, "%s: expected a %s finite number, found '%s'", as,
                       o->kind == CNF_CLI_NONNEG ? "non-negative" : "positive", v);
        return CNF_CLI_EUSAGE;
      }
      return CNF_CLI_OK;
    case CNF_CLI_SIZE:
    case CNF_CLI_LONG:
      if (parse_digits(v, &u) != 0 || u < o->min || u > o->max) {
        if (o->max >= (size_t)LONG_MAX)
          cnf__cli_error(cmd, "%s: expected a whole number of at least %zu, found '%s'", as, o->min,
                         v);
        else
          cnf__cli_error(cmd, "%s: expected a whole number from %zu to %zu, found '%s'", as, o->min,
                         o->max, v);
        return CNF_CLI_EUSAGE;
      }
      if (o->kind == CNF_CLI_SIZE)
        *(size_t *)o->dest = (size_t)u;
      else
        *(long *)o->dest = (long)u;
      return CNF_CLI_OK;
    case CNF_CLI_U64:
      if (parse_digits(v, &u) != 0) {
        cnf__cli_error(cmd, "%s: expected a whole number from 0 to %llu, found '%s'", as,
                       (unsigned long long)UINT64_MAX, v);
        return CNF_CLI_EUSAGE;
      }
      *(uint64_t *)o->dest = (uint64_t)u;
      return CNF_CLI_OK;
    case CNF_CLI_CHOICE:
      if (o->conv(v, o->dest) != 0) {
        cnf__cli_error(cmd, "%s: expected one of %s, found '%s'", as, o->meta, v);
        return CNF_CLI_EUSAGE;
      }
      return CNF_CLI_OK;
  }
  return CNF_CLI_EUSAGE;
}

/* The row for the word w ("--name", "--name=value" or "-c"); *val is set
 * to the text after '=' if any. */
static const cnf_cli_opt *lookup(const cnf_cli_opt *opts, const char *w, const char **val) {
  *val = NULL;
  if (w[0] == '-' && w[1] == '-' && w[2] != '\0') {
    const char *name = w + 2;
    const char *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    for (const cnf_cli_opt *o = opts; o->name != NULL; o++)
      if (strlen(o->name) == len && strncmp(o->name, name, len) == 0) {
        if (eq) *val = eq + 1;
        return o;
      }
    return NULL;
  }
  if (w[0] == '-' && w[1] != '\0' && w[2] == '\0')
    for (const cnf_cli_opt *o = opts; o->name != NULL; o++)
      if (o->short_name != 0 && o->short_name == w[1]) return o;
  return NULL;
}

int cnf__cli_parse(const char *cmd, const cnf_cli_opt *opts, int argc, char **argv, int *help) {
  *help = 0;
  size_t n = 0;
  while (opts[n].name != NULL) n++;
  unsigned char seen[64] = {0};
  if (n > sizeof seen) {
    cnf__cli_error(cmd, "internal error: option table too long");
    return CNF_CLI_EFAIL;
  }
  for (int i = 0; i < argc; i++) {
    const char *w = argv[i];
    if (strcmp(w, "--help") == 0 || strcmp(w, "-h") == 0) {
      *help = 1;
      return CNF_CLI_OK;
    }
    const char *val = NULL;
    const cnf_cli_opt *o = lookup(opts, w, &val);
    if (o == NULL) {
      if (w[0] == '-' && w[1] != '\0')
        cnf__cli_error(cmd, "unknown option '%s' (see 'cnf %s --help')", w, cmd);
      else
        cnf__cli_error(cmd, "unexpected argument '%s' (see 'cnf %s --help')", w, cmd);
      return CNF_CLI_EUSAGE;
    }
    const size_t k = (size_t)(o - opts);
    if (seen[k]) {
      cnf__cli_error(cmd, "option --%s given more than once", o->name);
      return CNF_CLI_EUSAGE;
    }
    seen[k] = 1;
    char as[64];
    snprintf(as, sizeof as, "%.*s", (int)(val ? strcspn(w, "=") : strlen(w)), w);
    if (o->kind == CNF_CLI_FLAG) {
      if (val != NULL) {
        cnf__cli_error(cmd, "option --%s takes no value, found '%s'", o->name, w);
        return CNF_CLI_EUSAGE;
      }
    } else if (val == NULL) {
      /* the next word is the value; a word starting with "--" is taken
       * for a forgotten value (use --name=--text for such a value) */
      if (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0) {
        cnf__cli_error(cmd, "option %s needs a value (%s)", as, o->meta);
        return CNF_CLI_EUSAGE;
      }
      val = argv[++i];
    }
    int rc = store(cmd, o, as, val);
    if (rc != CNF_CLI_OK) return rc;
  }
  for (size_t k = 0; k < n; k++)
    if (opts[k].required && !seen[k]) {
      if (opts[k].short_name)
        cnf__cli_error(cmd, "missing required option -%c (--%s) (see 'cnf %s --help')",
                       opts[k].short_name, opts[k].name, cmd);
      else
        cnf__cli_error(cmd, "missing required option --%s (see 'cnf %s --help')", opts[k].name,
                       cmd);
      return CNF_CLI_EUSAGE;
    }
  return CNF_CLI_OK;
}

void cnf__cli_print_usage(const cnf_cli_usage *u, const cnf_cli_opt *opts) {
  printf("usage: %s\n\n%s\n\noptions:\n", u->synopsis, u->about);
  for (const cnf_cli_opt *o = opts; o->name != NULL; o++) {
    char left[96];
    const char *meta = o->kind == CNF_CLI_FLAG ? "" : o->meta;
    const char *sep = o->kind == CNF_CLI_FLAG ? "" : " ";
    if (o->short_name)
      snprintf(left, sizeof left, "-%c, --%s%s%s", o->short_name, o->name, sep, meta);
    else
      snprintf(left, sizeof left, "    --%s%s%s", o->name, sep, meta);
    if (strlen(left) > 30)
      printf("  %s\n  %-30s  %s%s\n", left, "", o->help, o->required ? " (required)" : "");
    else
      printf("  %-30s  %s%s\n", left, o->help, o->required ? " (required)" : "");
  }
  printf("  %-30s  %s\n", "-h, --help", "print this help and exit");
}
