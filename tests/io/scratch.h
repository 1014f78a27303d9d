/* scratch.h: file helpers for the suites of tests/core, tests/io and
 * tests/flow: a private temporary directory, whole-file reads and writes,
 * and a count of a directory's entries (to catch leftover temporary
 * files). */
#ifndef CNF_TESTS_SCRATCH_H
#define CNF_TESTS_SCRATCH_H

#include <stddef.h>

/* A new empty directory under $TMPDIR (or /tmp), e.g. "/tmp/cnf-io-Ab12Cd",
 * written into dir (n bytes).  Returns 0, or -1 (with a message printed). */
int scratch_dir(char *dir, size_t n, const char *tag);
/* Remove every entry of dir, then dir itself (one level: no recursion). */
void scratch_rmdir(const char *dir);
/* dir/name into out (n bytes); returns out. */
char *scratch_path(char *out, size_t n, const char *dir, const char *name);
/* Write n bytes to path (created or truncated).  Returns 0 or -1. */
int scratch_write(const char *path, const void *data, size_t n);
/* The whole file at path in a malloc'd buffer (NUL-terminated beyond *n),
 * or NULL. */
unsigned char *scratch_read(const char *path, size_t *n);
/* Number of entries of dir other than "." and "..", or -1.  If first is
 * not NULL, the first entry's name is copied there (cap bytes). */
int scratch_count(const char *dir, char *first, size_t cap);

#endif
