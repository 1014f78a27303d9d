/* cli_run.h: what the end-to-end suites of the `cnf` tool (test_cli.c,
 * test_train_cli.c) share: one fresh temporary directory made by mkdtemp
 * and removed at the end, paths inside it, small file helpers, and running
 * the built binary (CNF_CLI_PATH) with posix_spawn, its standard output and
 * error captured to files and loaded into last_out / last_err. */
#ifndef CNF_TEST_CLI_RUN_H
#define CNF_TEST_CLI_RUN_H

#include <stddef.h>
#include <sys/types.h>

extern char tmpdir[256];
extern char out_path[512], err_path[512]; /* where runs' stdout/stderr go */
extern char last_out[1 << 16];            /* stdout of the last run (truncated) */
extern char last_err[1 << 16];            /* stderr of the last run (truncated) */

/* Make the temporary directory $TMPDIR/<prefix>_XXXXXX (TMPDIR unset or
 * empty: /tmp) and the run output paths in it; 0, or -1 (printed). */
int cli_setup(const char *prefix);
/* Remove the temporary directory and everything in it. */
void cli_teardown(void);

/* A path inside the temporary directory; 64 rotating buffers, so a test
 * can hold a few while making others. */
const char *P(const char *name);

/* Monotonic wall time in seconds. */
double now(void);

/* The whole file, NUL-terminated, or NULL if it cannot be read. */
char *read_all(const char *path, size_t *len);
void write_bytes(const char *path, const void *data, size_t n);
void write_text(const char *path, const char *text);
int starts_with(const char *s, const char *prefix);
int exists(const char *path);
/* 1 if both files exist and hold the same bytes. */
int same_file(const char *a, const char *b);
void copy_file(const char *from, const char *to);

/* Start the tool with args (NULL-terminated, without the program name),
 * stdin from /dev/null and stdout/stderr to the given files; returns the
 * pid, or -1. */
pid_t spawn(const char *const *args, const char *out, const char *err);
/* Wait for pid, load its output files into last_out/last_err; returns the
 * raw wait status. */
int finish(pid_t pid, const char *out, const char *err);

/* Run the tool with args (NULL-terminated, without the program name),
 * stdin from in_path (NULL: /dev/null).  Returns the exit status, or -1
 * (printed) if the process did not exit normally: a crash. */
int run_argv(const char *in_path, const char *const *args);

#define CNF(...) run_argv(NULL, (const char *const[]){__VA_ARGS__, NULL})
#define CNF_STDIN(in, ...) run_argv((in), (const char *const[]){__VA_ARGS__, NULL})

/* Leftover temporary files ("*.tmp*") in the directory: count. */
int count_temporaries(void);

/* Assert a failed run: status `want`, stderr starting "cnf <cmd>: " and
 * containing s1 and s2 (either may be NULL), no file at out (may be NULL)
 * and no temporary left behind. */
void expect_failure(const char *label, int got, int want, const char *cmd, const char *s1,
                    const char *s2, const char *out);

/* Read a CSV the tool wrote, through the library; checks the header line
 * first unless header is NULL. */
double *read_csv(const char *path, const char *header, size_t *rows, size_t *cols);

int all_finite(const double *x, size_t n);

/* The number after `key ` on a line of text ("name value" output), or NAN
 * when the key is absent or not followed by a number. */
double value_of(const char *text, const char *key);

#endif /* CNF_TEST_CLI_RUN_H */
