/* test_files.c: the io layer's internal helpers: CRC-32 against its
 * standard check values and an independent table-driven implementation,
 * and atomic output files (commit renames, abort leaves nothing, nor does
 * a process killed mid-write). */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io.h"
#include "scratch.h"
#include "test_util.h"

extern const test_entry files_tests[];

/* Table-driven CRC-32 (reflected, polynomial 0xEDB88320, init and final
 * xor 0xFFFFFFFF), the textbook byte-at-a-time form: a second
 * implementation, different in shape from the library's bitwise loop. */
static uint32_t ref_crc32(const unsigned char *p, size_t n) {
  static uint32_t table[256];
  if (table[1] == 0)
    for (uint32_t i = 0; i < 256; i++) {
      uint32_t c = i;
      for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      table[i] = c;
    }
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; i++) c = table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

static void test_crc32(void) {
  /* the CRC-32 check value (the catalogue's "check" for CRC-32/ISO-HDLC) */
  CU_ASSERT_EQUAL(cnf__crc32(0, "123456789", 9), 0xCBF43926u);
  CU_ASSERT_EQUAL(ref_crc32((const unsigned char *)"123456789", 9), 0xCBF43926u);
  CU_ASSERT_EQUAL(cnf__crc32(0, "", 0), 0u);
  CU_ASSERT_EQUAL(cnf__crc32(0, "a", 1), 0xE8B7BE43u);
  CU_ASSERT_EQUAL(cnf__crc32(0, "The quick brown fox jumps over the lazy dog", 43),
                  0x414FA339u);
  /* random buffers of every length 0..300: library == reference, and
   * continuing over a split equals one pass */
  unsigned char buf[300];
  double r[300];
  fill_uniform(r, 300, 0, 256, 11);
  for (size_t i = 0; i < 300; i++) buf[i] = (unsigned char)r[i];
  size_t bad = 0;
  for (size_t n = 0; n <= 300; n++) {
    uint32_t whole = cnf__crc32(0, buf, n);
    if (whole != ref_crc32(buf, n)) bad++;
    size_t cut = n / 3;
    if (cnf__crc32(cnf__crc32(0, buf, cut), buf + cut, n - cut) != whole) bad++;
  }
  CU_ASSERT_EQUAL(bad, 0);
  /* any single flipped bit changes the checksum */
  uint32_t c0 = cnf__crc32(0, buf, 300);
  for (size_t i = 0; i < 300; i++)
    for (int b = 0; b < 8; b++) {
      buf[i] ^= (unsigned char)(1u << b);
      if (cnf__crc32(0, buf, 300) == c0) bad++;
      buf[i] ^= (unsigned char)(1u << b);
    }
  CU_ASSERT_EQUAL(bad, 0);
}

static void test_atomic(void) {
  char dir[1024], path[1200], first[256];
  cnf_ctx *ctx = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_ctx_create(&ctx), 0);
  CU_ASSERT_EQUAL_FATAL(scratch_dir(dir, sizeof dir, "io"), 0);
  scratch_path(path, sizeof path, dir, "f.txt");
  CU_ASSERT_EQUAL_FATAL(scratch_write(path, "old", 3), 0);

  /* while open, the target still holds the old content; the temporary
   * file has no name where the system allows it (O_TMPFILE), else it sits
   * beside the target */
  cnf_atomic a;
  CU_ASSERT_EQUAL_FATAL(cnf__atomic_open(ctx, &a, path), 0);
  fputs("new content", a.fp);
  CU_ASSERT_EQUAL(scratch_count(dir, NULL, 0), a.nameless ? 1 : 2);
  size_t n = 0;
  unsigned char *t = scratch_read(path, &n);
  CU_ASSERT_TRUE(t != NULL && n == 3 && memcmp(t, "old", 3) == 0);
  free(t);
  /* abort: the temporary disappears, the old content stays */
  cnf__atomic_abort(&a);
  CU_ASSERT_EQUAL(scratch_count(dir, first, sizeof first), 1);
  CU_ASSERT_STRING_EQUAL(first, "f.txt");
  t = scratch_read(path, &n);
  CU_ASSERT_TRUE(t != NULL && n == 3 && memcmp(t, "old", 3) == 0);
  free(t);

  /* commit: the new content replaces the old, nothing else is left */
  CU_ASSERT_EQUAL_FATAL(cnf__atomic_open(ctx, &a, path), 0);
  fputs("new content", a.fp);
  CU_ASSERT_EQUAL(cnf__atomic_commit(ctx, &a), 0);
  CU_ASSERT_PTR_NULL(a.fp);
  CU_ASSERT_EQUAL(scratch_count(dir, first, sizeof first), 1);
  CU_ASSERT_STRING_EQUAL(first, "f.txt");
  t = scratch_read(path, &n);
  CU_ASSERT_TRUE(t != NULL && n == 11 && memcmp(t, "new content", 11) == 0);
  free(t);

  /* a target in a missing directory: CNF_EIO at open */
  char bad[1300];
  snprintf(bad, sizeof bad, "%s/missing/f.txt", dir);
  CU_ASSERT_EQUAL(cnf__atomic_open(ctx, &a, bad), CNF_EIO);
  CU_ASSERT_PTR_NULL(a.fp);
  /* a path too long for the temporary name: CNF_EINVAL, nothing made */
  char *lng = malloc(5000);
  CU_ASSERT_PTR_NOT_NULL_FATAL(lng);
  memset(lng, 'a', 4999);
  lng[4999] = '\0';
  memcpy(lng, dir, strlen(dir));
  lng[strlen(dir)] = '/';
  CU_ASSERT_EQUAL(cnf__atomic_open(ctx, &a, lng), CNF_EINVAL);
  free(lng);
  /* a directory is refused at once with CNF_EIO, and nothing is left */
  char sub[1300], subfile[1400];
  snprintf(sub, sizeof sub, "%s/sub", dir);
  CU_ASSERT_EQUAL_FATAL(mkdir(sub, 0700), 0);
  snprintf(subfile, sizeof subfile, "%s/keep", sub);
  CU_ASSERT_EQUAL_FATAL(scratch_write(subfile, "k", 1), 0);
  CU_ASSERT_EQUAL(cnf__atomic_open(ctx, &a, sub), CNF_EIO);
  CU_ASSERT_EQUAL(scratch_count(dir, NULL, 0), 2); /* f.txt and sub */
  /* a symbolic link is written through, not replaced */
  char target[1400], link[1400];
  snprintf(target, sizeof target, "%s/target.txt", sub);
  snprintf(link, sizeof link, "%s/link.txt", sub);
  CU_ASSERT_EQUAL_FATAL(scratch_write(target, "old", 3), 0);
  CU_ASSERT_EQUAL_FATAL(symlink(target, link), 0);
  CU_ASSERT_EQUAL_FATAL(cnf__atomic_open(ctx, &a, link), 0);
  fputs("new", a.fp);
  CU_ASSERT_EQUAL(cnf__atomic_commit(ctx, &a), 0);
  struct stat lsb;
  CU_ASSERT_EQUAL(lstat(link, &lsb), 0);
  CU_ASSERT_TRUE(S_ISLNK(lsb.st_mode));
  FILE *tf = fopen(target, "r");
  char got[8] = {0};
  CU_ASSERT_PTR_NOT_NULL_FATAL(tf);
  CU_ASSERT_EQUAL(fread(got, 1, sizeof got - 1, tf), 3);
  fclose(tf);
  CU_ASSERT_STRING_EQUAL(got, "new");
  unlink(link);
  unlink(target);
  unlink(subfile);
  rmdir(sub);

  scratch_rmdir(dir);
  cnf_ctx_free(ctx);
}

/* A process killed while it writes (SIGTERM, SIGINT, SIGKILL after the
 * temporary file is open and holds data) leaves the target as it was and
 * no temporary file.  The child kills itself at a fixed point, so the test
 * is deterministic; before O_TMPFILE each case left f.txt.tmpXXXXXX. */
static void test_atomic_killed(void) {
  char dir[1024], path[1200], first[256];
  CU_ASSERT_EQUAL_FATAL(scratch_dir(dir, sizeof dir, "kill"), 0);
  scratch_path(path, sizeof path, dir, "f.txt");
  CU_ASSERT_EQUAL_FATAL(scratch_write(path, "old", 3), 0);
  const int sigs[] = {SIGTERM, SIGINT, SIGKILL};
  for (size_t k = 0; k < 3; k++) {
    fflush(NULL);
    pid_t pid = fork();
    CU_ASSERT_TRUE_FATAL(pid >= 0);
    if (pid == 0) {
      cnf_atomic a;
      if (cnf__atomic_open(NULL, &a, path) != 0) _exit(10);
      for (int i = 0; i < 100000; i++) fputs("a line of new content\n", a.fp);
      fflush(a.fp);
      raise(sigs[k]);
      _exit(11); /* not reached: the signal ends the process */
    }
    int status = 0;
    CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
    CU_ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == sigs[k]);
    CU_ASSERT_EQUAL(scratch_count(dir, first, sizeof first), 1);
    CU_ASSERT_STRING_EQUAL(first, "f.txt");
    size_t n = 0;
    unsigned char *t = scratch_read(path, &n);
    CU_ASSERT_TRUE(t != NULL && n == 3 && memcmp(t, "old", 3) == 0);
    free(t);
  }
  scratch_rmdir(dir);
}

const test_entry files_tests[] = {
    {"CRC-32: check values, table reference, continuation", test_crc32},
    {"atomic files: open, abort, commit, failures", test_atomic},
    {"atomic files: a process killed mid-write leaves no temporary", test_atomic_killed},
    {NULL, NULL},
};
