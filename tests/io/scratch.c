/* scratch.c: see scratch.h. */
#define _POSIX_C_SOURCE 200809L
#include "scratch.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int scratch_dir(char *dir, size_t n, const char *tag) {
  const char *base = getenv("TMPDIR");
  if (base == NULL || base[0] == '\0') base = "/tmp";
  int w = snprintf(dir, n, "%s/cnf-%s-XXXXXX", base, tag);
  if (w < 0 || (size_t)w >= n || mkdtemp(dir) == NULL) {
    perror("scratch_dir");
    return -1;
  }
  return 0;
}

char *scratch_path(char *out, size_t n, const char *dir, const char *name) {
  snprintf(out, n, "%s/%s", dir, name);
  return out;
}

void scratch_rmdir(const char *dir) {
  DIR *d = opendir(dir);
  if (d != NULL) {
    struct dirent *e;
    char p[4096];
    while ((e = readdir(d)) != NULL) {
      if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
      unlink(scratch_path(p, sizeof p, dir, e->d_name));
    }
    closedir(d);
  }
  rmdir(dir);
}

int scratch_write(const char *path, const void *data, size_t n) {
  FILE *fp = fopen(path, "wb");
  if (fp == NULL) return -1;
  size_t w = n ? fwrite(data, 1, n, fp) : 0;
  int bad = fclose(fp) != 0 || w != n;
  return bad ? -1 : 0;
}

unsigned char *scratch_read(const char *path, size_t *n) {
  FILE *fp = fopen(path, "rb");
  if (fp == NULL) return NULL;
  size_t cap = 4096, len = 0;
  unsigned char *buf = malloc(cap + 1);
  while (buf != NULL) {
    size_t got = fread(buf + len, 1, cap - len, fp);
    len += got;
    if (len < cap) break;
    unsigned char *nb = realloc(buf, 2 * cap + 1);
    if (nb == NULL) {
      free(buf);
      buf = NULL;
    } else {
      buf = nb;
      cap *= 2;
    }
  }
  fclose(fp);
  if (buf == NULL) return NULL;
  buf[len] = '\0';
  *n = len;
  return buf;
}

int scratch_count(const char *dir, char *first, size_t cap) {
  DIR *d = opendir(dir);
  if (d == NULL) return -1;
  int count = 0;
  struct dirent *e;
  if (first != NULL && cap > 0) first[0] = '\0';
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    if (count == 0 && first != NULL && cap > 0) snprintf(first, cap, "%s", e->d_name);
    count++;
  }
  closedir(d);
  return count;
}
