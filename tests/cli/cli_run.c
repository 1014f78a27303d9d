/* cli_run.c: the helpers of cli_run.h, shared by the end-to-end suites of
 * the `cnf` tool. */
#define _XOPEN_SOURCE 700
#include "cli_run.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cnf.h"
#include "test_util.h"

extern char **environ;

char tmpdir[256];
char out_path[512], err_path[512];
char last_out[1 << 16];
char last_err[1 << 16];

/* ---- the temporary directory --------------------------------------------- */

int cli_setup(const char *prefix) {
  const char *base = getenv("TMPDIR");
  snprintf(tmpdir, sizeof tmpdir, "%s/%s_XXXXXX", base && *base ? base : "/tmp", prefix);
  if (mkdtemp(tmpdir) == NULL) {
    perror("mkdtemp");
    return -1;
  }
  snprintf(out_path, sizeof out_path, "%s/run.stdout", tmpdir);
  snprintf(err_path, sizeof err_path, "%s/run.stderr", tmpdir);
  return 0;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  return remove(path);
}

void cli_teardown(void) {
  nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *P(const char *name) {
  static char bufs[64][512];
  static unsigned k = 0;
  char *b = bufs[k++ % 64];
  snprintf(b, 512, "%s/%s", tmpdir, name);
  return b;
}

double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- files ----------------------------------------------------------------- */

char *read_all(const char *path, size_t *len) {
  FILE *fp = fopen(path, "rb");
  if (fp == NULL) return NULL;
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  for (;;) {
    if (n + 1 >= cap) buf = realloc(buf, cap *= 2);
    size_t got = fread(buf + n, 1, cap - n - 1, fp);
    if (got == 0) break;
    n += got;
  }
  fclose(fp);
  buf[n] = '\0';
  if (len) *len = n;
  return buf;
}

void write_bytes(const char *path, const void *data, size_t n) {
  FILE *fp = fopen(path, "wb");
  CU_ASSERT_FATAL(fp != NULL);
  CU_ASSERT_FATAL(fwrite(data, 1, n, fp) == n);
  CU_ASSERT_FATAL(fclose(fp) == 0);
}

void write_text(const char *path, const char *text) {
  write_bytes(path, text, strlen(text));
}

int starts_with(const char *s, const char *prefix) {
  return s != NULL && strncmp(s, prefix, strlen(prefix)) == 0;
}

int exists(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0;
}

int same_file(const char *a, const char *b) {
  size_t na = 0, nb = 0;
  char *x = read_all(a, &na), *y = read_all(b, &nb);
  int same = x != NULL && y != NULL && na == nb && memcmp(x, y, na) == 0;
  free(x);
  free(y);
  return same;
}

void copy_file(const char *from, const char *to) {
  size_t n = 0;
  char *s = read_all(from, &n);
  CU_ASSERT_FATAL(s != NULL);
  write_bytes(to, s, n);
  free(s);
}

/* ---- running the tool ------------------------------------------------------ */

/* Start the tool with stdin from in_path (NULL: /dev/null). */
static pid_t spawn_from(const char *in_path, const char *const *args, const char *out,
                        const char *err) {
  const char *argv[64];
  size_t n = 0;
  argv[n++] = CNF_CLI_PATH;
  for (; args[n - 1] != NULL && n < 63; n++) argv[n] = args[n - 1];
  argv[n] = NULL;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, in_path ? in_path : "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid;
  int rc = posix_spawn(&pid, CNF_CLI_PATH, &fa, NULL, (char *const *)argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    printf("\n  posix_spawn(%s) failed: %s\n", CNF_CLI_PATH, strerror(rc));
    return -1;
  }
  return pid;
}

pid_t spawn(const char *const *args, const char *out, const char *err) {
  return spawn_from(NULL, args, out, err);
}

int finish(pid_t pid, const char *out, const char *err) {
  int ws = 0;
  while (waitpid(pid, &ws, 0) < 0) {
  }
  const char *files[2] = {out, err};
  char *dst[2] = {last_out, last_err};
  size_t cap[2] = {sizeof last_out, sizeof last_err};
  for (int k = 0; k < 2; k++) {
    char *s = read_all(files[k], NULL);
    snprintf(dst[k], cap[k], "%s", s ? s : "");
    free(s);
  }
  return ws;
}

int run_argv(const char *in_path, const char *const *args) {
  pid_t pid = spawn_from(in_path, args, out_path, err_path);
  if (pid < 0) return -1;
  int ws = finish(pid, out_path, err_path);
  if (!WIFEXITED(ws)) {
    printf("\n  cnf %s ... did not exit normally (signal %d); stderr:\n%s\n", args[0],
           WIFSIGNALED(ws) ? WTERMSIG(ws) : 0, last_err);
    return -1;
  }
  return WEXITSTATUS(ws);
}

/* ---- checks ---------------------------------------------------------------- */

int count_temporaries(void) {
  DIR *d = opendir(tmpdir);
  if (d == NULL) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (strstr(e->d_name, ".tmp") != NULL) {
      printf("\n  leftover temporary file %s\n", e->d_name);
      n++;
    }
  closedir(d);
  return n;
}

void expect_failure(const char *label, int got, int want, const char *cmd, const char *s1,
                    const char *s2, const char *out) {
  char prefix[64];
  snprintf(prefix, sizeof prefix, "cnf %s: ", cmd);
  int ok_status = got == want;
  int ok_prefix = strncmp(last_err, prefix, strlen(prefix)) == 0;
  int ok_s1 = s1 == NULL || strstr(last_err, s1) != NULL;
  int ok_s2 = s2 == NULL || strstr(last_err, s2) != NULL;
  int ok_out = out == NULL || !exists(out);
  int ok_tmp = count_temporaries() == 0;
  CU_ASSERT_TRUE(ok_status && ok_prefix && ok_s1 && ok_s2 && ok_out && ok_tmp);
  if (!(ok_status && ok_prefix && ok_s1 && ok_s2 && ok_out && ok_tmp))
    printf("\n  %s: exit %d (want %d), stderr '%s' (want '%s' ... '%s' ... '%s')%s%s\n", label, got,
           want, last_err, prefix, s1 ? s1 : "", s2 ? s2 : "", out == NULL ? "" : ", output ",
           out == NULL ? ""
           : ok_out    ? "absent"
                       : "PRESENT");
}

double *read_csv(const char *path, const char *header, size_t *rows, size_t *cols) {
  if (header != NULL) {
    char *text = read_all(path, NULL);
    CU_ASSERT_FATAL(text != NULL);
    size_t hl = strlen(header);
    int ok = strncmp(text, header, hl) == 0 && text[hl] == '\n';
    CU_ASSERT_TRUE(ok);
    if (!ok) printf("\n  %s: header is not '%s'\n", path, header);
    free(text);
  }
  cnf_ctx *ctx = NULL;
  CU_ASSERT_FATAL(cnf_ctx_create(&ctx) == 0);
  double *data = NULL;
  int rc = cnf_csv_read(ctx, path, &data, rows, cols);
  if (rc != 0) printf("\n  %s: %s\n", path, cnf_ctx_errmsg(ctx));
  cnf_ctx_free(ctx);
  CU_ASSERT_FATAL(rc == 0);
  return data;
}

int all_finite(const double *x, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!isfinite(x[i])) return 0;
  return 1;
}

double value_of(const char *text, const char *key) {
  size_t kl = strlen(key);
  for (const char *line = text; line != NULL && *line;) {
    if (strncmp(line, key, kl) == 0 && line[kl] == ' ') {
      char *end = NULL;
      double v = strtod(line + kl + 1, &end);
      if (end != line + kl + 1 && (*end == '\n' || *end == '\0' || *end == ' ')) return v;
      return NAN;
    }
    line = strchr(line, '\n');
    if (line) line++;
  }
  return NAN;
}
