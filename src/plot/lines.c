/* lines.c: line plots as PNG files (libpng), written atomically (a
 * temporary file renamed over the target), for curves such as a learned
 * density against a reference one (cnf_pde.h: cnf_plot_lines).  Curves are
 * drawn 2 pixels wide by dense sampling of each segment; no text. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <string.h>

#include <png.h>

#include "cnf_pde.h"
#include "io.h"

static void dot(unsigned char *rgb, size_t W, size_t H, double px, double py,
                const unsigned char c[3]) {
  for (int dy = 0; dy < 2; dy++)
    for (int dx = 0; dx < 2; dx++) {
      const long x = lround(px - 0.5) + dx, y = lround(py - 0.5) + dy;
      if (x < 0 || y < 0 || (size_t)x >= W || (size_t)y >= H) continue;
      memcpy(rgb + ((size_t)y * W + (size_t)x) * 3, c, 3);
    }
}

static void png_fail(png_structp png, png_const_charp msg) {
  (void)msg;
  png_longjmp(png, 1);
}

/* The one PNG writer of the library (plot.c uses it too). */
int cnf__png_write(cnf_ctx *ctx, const unsigned char *rgb, size_t W, size_t H, const char *path) {
  cnf_atomic a;
  int rc = cnf__atomic_open(ctx, &a, path);
  if (rc != 0) return rc;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, png_fail, NULL);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  if (png == NULL || info == NULL) {
    png_destroy_write_struct(&png, &info);
    cnf__atomic_abort(&a);
    return CNF_ERROR(ctx, CNF_ENOMEM, "%s: libpng could not start", path);
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    cnf__atomic_abort(&a);
    return CNF_ERROR(ctx, CNF_EIO, "%s: libpng failed while writing", path);
  }
  png_init_io(png, a.fp);
  png_set_IHDR(png, info, (png_uint_32)W, (png_uint_32)H, 8, PNG_COLOR_TYPE_RGB,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (size_t r = 0; r < H; r++) png_write_row(png, (png_bytep)(rgb + r * W * 3));
  png_write_end(png, NULL);
  png_destroy_write_struct(&png, &info);
  return cnf__atomic_commit(ctx, &a);
}

int cnf_plot_lines(cnf_ctx *ctx, const char *path, size_t W, size_t H, size_t G, const double *x,
                   size_t S, const double *y, const unsigned char *rgb, const int *dashed) {
  static const unsigned char palette[6][3] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44},
                                              {214, 39, 40},  {148, 103, 189}, {140, 86, 75}};
  if (path == NULL || x == NULL || y == NULL || G < 2 || S == 0 || W < 32 || H < 32 ||
      W > 8192 || H > 8192)
    return CNF_ERROR(ctx, CNF_EINVAL, "line plot: bad arguments");
  double x0 = x[0], x1 = x[G - 1], y0 = INFINITY, y1 = -INFINITY;
  for (size_t i = 0; i < S * G; i++)
    if (isfinite(y[i])) y0 = fmin(y0, y[i]), y1 = fmax(y1, y[i]);
  if (!(x1 > x0) || !(y1 >= y0))
    return CNF_ERROR(ctx, CNF_EINVAL, "line plot: empty or non-increasing ranges");
  if (y0 >= 0) y0 = 0;
  if (y1 == y0) y1 = y0 + 1;
  const double pad = 0.05 * (y1 - y0);
  y1 += pad;
  if (y0 < 0) y0 -= pad;
  unsigned char *img = cnf__malloc(W * H * 3);
  if (img == NULL) return CNF_ERROR(ctx, CNF_ENOMEM, "line plot: out of memory");
  memset(img, 255, W * H * 3);
  const double m = 8.0; /* margin in pixels */
  const double sx = ((double)W - 2 * m) / (x1 - x0), sy = ((double)H - 2 * m) / (y1 - y0);
  const unsigned char grey[3] = {170, 170, 170}, black[3] = {0, 0, 0};
  for (double u = m; u <= (double)W - m; u += 0.5) { /* frame and y = 0 */
    dot(img, W, H, u, m, black);
    dot(img, W, H, u, (double)H - m, black);
    if (y0 < 0) dot(img, W, H, u, (double)H - m - (0 - y0) * sy, grey);
  }
  for (double v = m; v <= (double)H - m; v += 0.5) {
    dot(img, W, H, m, v, black);
    dot(img, W, H, (double)W - m, v, black);
  }
  for (size_t s = 0; s < S; s++) {
    const unsigned char *c = rgb != NULL ? rgb + 3 * s : palette[s % 6];
    double run = 0.0; /* arc length in pixels, for dashes */
    for (size_t g = 0; g + 1 < G; g++) {
      const double *ys = y + s * G;
      if (!isfinite(ys[g]) || !isfinite(ys[g + 1])) continue;
      const double ax = m + (x[g] - x0) * sx, ay = (double)H - m - (ys[g] - y0) * sy;
      const double bx = m + (x[g + 1] - x0) * sx, by = (double)H - m - (ys[g + 1] - y0) * sy;
      const double len = hypot(bx - ax, by - ay);
      const int n = (int)ceil(2 * len) + 1;
      for (int k = 0; k <= n; k++) {
        const double f = (double)k / n;
        const double at = run + f * len;
        if (dashed != NULL && dashed[s] && fmod(at, 12.0) >= 7.0) continue;
        dot(img, W, H, ax + f * (bx - ax), ay + f * (by - ay), c);
      }
      run += len;
    }
  }
  int rc = cnf__png_write(ctx, img, W, H, path);
  cnf__free(img);
  return rc;
}
