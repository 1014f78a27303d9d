/* numdiff.c: compare a program's output with a stored answer file,
 * token by token: words must match exactly, numbers within a relative
 * tolerance (floating-point output varies slightly between machines).
 *
 *   numdiff RTOL ATOL ANSWER -- PROGRAM [ARGS...]
 *
 * Runs PROGRAM, captures its standard output, compares, and exits 0 on a
 * match, 1 on a mismatch (printing the first one), 2 on usage errors. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char *read_all(FILE *fp) {
  size_t cap = 4096, n = 0;
  char *s = malloc(cap);
  int c;
  while (s && (c = fgetc(fp)) != EOF) {
    if (n + 1 >= cap) {
      char *t = realloc(s, cap *= 2);
      if (!t) { free(s); return NULL; }
      s = t;
    }
    s[n++] = (char)c;
  }
  if (s) s[n] = '\0';
  return s;
}

static int compare(char *want, char *got, double rtol, double atol, const char *prog,
                   int status);

int main(int argc, char **argv) {
  if (argc < 6 || strcmp(argv[4], "--") != 0) {
    fprintf(stderr, "usage: numdiff RTOL ATOL ANSWER -- PROGRAM [ARGS...]\n");
    return 2;
  }
  double rtol = atof(argv[1]), atol = atof(argv[2]);
  FILE *af = fopen(argv[3], "r");
  if (!af) { perror(argv[3]); return 2; }
  char *want = read_all(af);
  fclose(af);
  int fd[2];
  if (pipe(fd) != 0) return 2;
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fd[1], 1);
    close(fd[0]);
    close(fd[1]);
    execv(argv[5], argv + 5);
    perror(argv[5]);
    _exit(127);
  }
  close(fd[1]);
  FILE *pf = fdopen(fd[0], "r");
  char *got = read_all(pf);
  fclose(pf);
  int status = 0;
  waitpid(pid, &status, 0);
  int rc = compare(want, got, rtol, atol, argv[5], status);
  free(want);
  free(got);
  return rc;
}

/* Token-by-token comparison of the program's output with the answer. */
static int compare(char *want, char *got, double rtol, double atol, const char *prog,
                   int status) {
  if (!want || !got) return 2;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fprintf(stderr, "numdiff: %s exited with status %d\n", prog, WEXITSTATUS(status));
    return 1;
  }
  char *sw = NULL, *sg = NULL;
  char *tw = strtok_r(want, " \t\n", &sw), *tg = strtok_r(got, " \t\n", &sg);
  int ntok = 0;
  for (; tw && tg; tw = strtok_r(NULL, " \t\n", &sw), tg = strtok_r(NULL, " \t\n", &sg), ntok++) {
    char *ew, *eg;
    double a = strtod(tw, &ew), b = strtod(tg, &eg);
    int nw = *ew == '\0' && ew != tw, ng = *eg == '\0' && eg != tg;
    if (nw && ng) {
      if (!(fabs(a - b) <= atol + rtol * fabs(a))) {
        printf("numdiff: token %d: expected %s, got %s\n", ntok + 1, tw, tg);
        return 1;
      }
    } else if (strcmp(tw, tg) != 0) {
      printf("numdiff: token %d: expected '%s', got '%s'\n", ntok + 1, tw, tg);
      return 1;
    }
  }
  if (tw || tg) {
    printf("numdiff: output has %s tokens than the answer\n", tw ? "fewer" : "more");
    return 1;
  }
  printf("numdiff: %d tokens match\n", ntok);
  return 0;
}
