/* crc32.c: CRC-32 (reflected polynomial 0xEDB88320, as zlib and PNG), the
 * model file's integrity check; and atomic output files: a new or regular
 * file is replaced by renaming a synced temporary file over it, anything
 * else (a symbolic link, a device, a pipe) is written through in place.
 *
 * The temporary file has no name while it is written where the system
 * allows it (Linux's O_TMPFILE): a process killed mid-write (Ctrl-C,
 * SIGTERM, SIGKILL) leaves nothing behind, as the kernel frees a nameless
 * file on exit.  At commit it gets a name (linkat) and is renamed over the
 * target at once, with SIGINT, SIGTERM and SIGHUP held back in between.
 * Elsewhere a named temporary file (mkstemp) is used, and those signals are
 * held back in the calling thread from its creation to the rename: a Ctrl-C
 * then takes effect once the file is complete, never leaving OUT.tmpXXXXXX.
 * (In a multi-threaded process another thread may still take the signal;
 * O_TMPFILE does not depend on that.) */
#define _GNU_SOURCE /* O_TMPFILE, AT_SYMLINK_FOLLOW */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "io.h"

uint32_t cnf__crc32(uint32_t crc, const void *buf, size_t n) {
  const unsigned char *p = buf;
  crc = ~crc;
  for (size_t i = 0; i < n; i++) {
    crc ^= p[i];
    for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

/* Hold back the signals that would stop the process, saving the mask. */
static void hold_signals(cnf_atomic *a) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  a->held = pthread_sigmask(SIG_BLOCK, &set, &a->mask) == 0;
}
static void release_signals(cnf_atomic *a) {
  if (a->held) pthread_sigmask(SIG_SETMASK, &a->mask, NULL);
  a->held = 0;
}

/* A nameless file in path's directory, or -1 (then mkstemp is used). */
static int open_nameless(const char *path) {
#ifdef O_TMPFILE
  if (access("/proc/self/fd", X_OK) != 0) return -1; /* needed to name it at commit */
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", path);
  return open(dirname(dir), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
#else
  (void)path;
  return -1;
#endif
}

int cnf__atomic_open(cnf_ctx *ctx, cnf_atomic *a, const char *path) {
  memset(a, 0, sizeof *a);
  a->path = path;
  struct stat sb;
  if (lstat(path, &sb) == 0 && !S_ISREG(sb.st_mode)) {
    if (S_ISDIR(sb.st_mode))
      return CNF_ERROR(ctx, CNF_EIO, "%s: is a directory", path);
    /* a symbolic link (/dev/stdout), a device, a pipe: write through it;
     * renaming over it would replace the link or the device node */
    a->direct = 1;
    a->fp = fopen(path, "wb");
    if (a->fp == NULL)
      return CNF_ERROR(ctx, CNF_EIO, "%s: cannot open for writing: %s", path, strerror(errno));
    return 0;
  }
  int n = snprintf(a->tmp, sizeof a->tmp, "%s.tmpXXXXXX", path);
  if (n < 0 || (size_t)n >= sizeof a->tmp)
    return CNF_ERROR(ctx, CNF_EINVAL, "%s: path too long", path);
  int fd = open_nameless(path);
  if (fd >= 0) {
    a->nameless = 1;
  } else {
    hold_signals(a);
    fd = mkstemp(a->tmp);
    if (fd < 0) {
      int e = errno;
      release_signals(a);
      return CNF_ERROR(ctx, CNF_EIO, "%s: cannot create a file there: %s", path, strerror(e));
    }
    /* mkstemp makes the file 0600; give it the mode a plain fopen would */
    mode_t mask = umask(0);
    umask(mask);
    (void)fchmod(fd, 0666 & ~mask);
  }
  a->fp = fdopen(fd, "wb");
  if (a->fp == NULL) {
    int e = errno;
    close(fd);
    cnf__atomic_abort(a);
    return CNF_ERROR(ctx, CNF_EIO, "%s: %s", path, strerror(e));
  }
  return 0;
}

/* Give the nameless file a fresh name "path.tmpXXXXXX" in a->tmp. */
static int name_nameless(cnf_atomic *a) {
  char proc[64];
  snprintf(proc, sizeof proc, "/proc/self/fd/%d", fileno(a->fp));
  const size_t stem = strlen(a->tmp) - 6;
  static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  unsigned long long r = (unsigned long long)ts.tv_nsec ^ ((unsigned long long)getpid() << 32);
  for (int attempt = 0; attempt < 100; attempt++) {
    r = r * 6364136223846793005ULL + 1442695040888963407ULL;
    for (int k = 0; k < 6; k++) a->tmp[stem + (size_t)k] = digits[(r >> (8 * k + 16)) % 36];
    if (linkat(AT_FDCWD, proc, AT_FDCWD, a->tmp, AT_SYMLINK_FOLLOW) == 0) return 0;
    if (errno != EEXIST) return errno;
  }
  return EEXIST;
}

int cnf__atomic_commit(cnf_ctx *ctx, cnf_atomic *a) {
  int err = 0;
  if (a->direct) {
    if (fflush(a->fp) != 0 || ferror(a->fp)) err = errno ? errno : EIO;
    if (fclose(a->fp) != 0 && !err) err = errno ? errno : EIO;
    a->fp = NULL;
    return err ? CNF_ERROR(ctx, CNF_EIO, "%s: writing failed: %s", a->path, strerror(err)) : 0;
  }
  if (fflush(a->fp) != 0 || ferror(a->fp)) err = errno ? errno : EIO;
  if (!err && fsync(fileno(a->fp)) != 0) err = errno;
  int named = !a->nameless;
  if (!err && a->nameless) {
    hold_signals(a);
    err = name_nameless(a);
    named = err == 0;
  }
  if (fclose(a->fp) != 0 && !err) err = errno ? errno : EIO;
  a->fp = NULL;
  if (!err && rename(a->tmp, a->path) != 0) err = errno;
  if (err && named) unlink(a->tmp);
  release_signals(a);
  if (err) return CNF_ERROR(ctx, CNF_EIO, "%s: writing failed: %s", a->path, strerror(err));
  /* make the rename itself durable: sync the directory (best effort) */
  char dir[sizeof a->tmp];
  snprintf(dir, sizeof dir, "%s", a->tmp);
  int dfd = open(dirname(dir), O_RDONLY);
  if (dfd >= 0) {
    (void)fsync(dfd);
    close(dfd);
  }
  return 0;
}

void cnf__atomic_abort(cnf_atomic *a) {
  if (a->fp != NULL) fclose(a->fp);
  a->fp = NULL;
  if (a->tmp[0] && !a->direct && !a->nameless) unlink(a->tmp);
  release_signals(a);
}

int cnf_file_write(cnf_ctx *ctx, const char *path, const void *data, size_t n) {
  if (path == NULL || (data == NULL && n > 0))
    return CNF_ERROR(ctx, CNF_EINVAL, "file_write: NULL path or data");
  cnf_atomic a;
  int rc = cnf__atomic_open(ctx, &a, path);
  if (rc != 0) return rc;
  if (n > 0 && fwrite(data, 1, n, a.fp) != n) {
    cnf__atomic_abort(&a);
    return CNF_ERROR(ctx, CNF_EIO, "%s: write error", path);
  }
  return cnf__atomic_commit(ctx, &a);
}
