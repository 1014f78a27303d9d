/* crc32.c: CRC-32 (reflected polynomial 0xEDB88320, as zlib and PNG), the
 * model file's integrity check; and atomic output files: a new or regular
 * file is replaced by renaming a synced temporary file over it, anything
 * else (a symbolic link, a device, a pipe) is written through in place. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
  int fd = mkstemp(a->tmp);
  if (fd < 0)
    return CNF_ERROR(ctx, CNF_EIO, "%s: cannot create a file there: %s", path, strerror(errno));
  /* mkstemp makes the file 0600; give it the mode a plain fopen would */
  mode_t mask = umask(0);
  umask(mask);
  (void)fchmod(fd, 0666 & ~mask);
  a->fp = fdopen(fd, "wb");
  if (a->fp == NULL) {
    close(fd);
    unlink(a->tmp);
    return CNF_ERROR(ctx, CNF_EIO, "%s: %s", path, strerror(errno));
  }
  return 0;
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
  if (fclose(a->fp) != 0 && !err) err = errno ? errno : EIO;
  a->fp = NULL;
  if (!err && rename(a->tmp, a->path) != 0) err = errno;
  if (err) {
    unlink(a->tmp);
    return CNF_ERROR(ctx, CNF_EIO, "%s: writing failed: %s", a->path, strerror(err));
  }
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
  if (a->tmp[0] && !a->direct) unlink(a->tmp);
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
