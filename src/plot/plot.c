/* plot.c: pictures of a flow as PNG files (libpng), written atomically.
 *
 *   density  2-D flows: a heat map of p(x) = exp(log p(x)) on a G x G grid
 *            over [-L, L]^2 (viridis, scaled to the grid's maximum), with
 *            data points optionally overlaid in white.
 *   pairs    any dimension: a grid of pairwise scatter plots of samples
 *            (orange) over data (grey), histograms of each coordinate on the
 *            diagonal, for the first min(D, max_dims) coordinates.
 * No text is drawn: the ranges are reported by the caller. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "flow_impl.h"
#include "io.h"

typedef struct image {
  size_t w, h;
  unsigned char *rgb; /* (h, w, 3) */
} image;

static int image_new(cnf_ctx *ctx, image *im, size_t w, size_t h) {
  im->w = w, im->h = h;
  im->rgb = cnf__malloc(w * h * 3);
  if (im->rgb == NULL) return CNF_ERROR(ctx, CNF_ENOMEM, "plot: out of memory for a %zux%zu image", w, h);
  memset(im->rgb, 255, w * h * 3);
  return 0;
}

static void put(image *im, long x, long y, const unsigned char c[3], double alpha) {
  if (x < 0 || y < 0 || (size_t)x >= im->w || (size_t)y >= im->h) return;
  unsigned char *p = im->rgb + ((size_t)y * im->w + (size_t)x) * 3;
  for (int k = 0; k < 3; k++) p[k] = (unsigned char)lround((1 - alpha) * p[k] + alpha * c[k]);
}

/* viridis, sampled at nine points and interpolated linearly */
static void viridis(double u, unsigned char c[3]) {
  static const unsigned char pts[9][3] = {
      {68, 1, 84},    {71, 44, 122},  {59, 82, 139},  {44, 113, 142}, {33, 145, 140},
      {39, 173, 129}, {92, 200, 99},  {170, 220, 50}, {253, 231, 37}};
  if (!(u > 0)) u = 0;
  if (u > 1) u = 1;
  double s = u * 8.0;
  int i = (int)s;
  if (i >= 8) i = 7;
  double f = s - i;
  for (int k = 0; k < 3; k++) c[k] = (unsigned char)lround((1 - f) * pts[i][k] + f * pts[i + 1][k]);
}

void cnf_plot_grid(double L, size_t G, double *x) {
  /* row 0 of the image is the top: x2 = +L */
  for (size_t r = 0; r < G; r++)
    for (size_t c = 0; c < G; c++) {
      x[2 * (r * G + c)] = -L + 2 * L * ((double)c + 0.5) / (double)G;
      x[2 * (r * G + c) + 1] = L - 2 * L * ((double)r + 0.5) / (double)G;
    }
}

/* panel k of an image of n G x G panels side by side, 4 white pixels apart */
static void draw_panel(image *im, size_t k, size_t G, const double *lp, double L,
                       const double *data, size_t n) {
  const size_t x0 = k * (G + 4);
  double mx = -INFINITY;
  for (size_t i = 0; i < G * G; i++) mx = fmax(mx, lp[i]);
  for (size_t i = 0; i < G * G; i++) {
    unsigned char c[3];
    viridis(exp(lp[i] - mx), c);
    memcpy(im->rgb + 3 * ((i / G) * im->w + x0 + i % G), c, 3);
  }
  const unsigned char white[3] = {255, 255, 255};
  for (size_t i = 0; data != NULL && i < n; i++) {
    long px = lround((data[2 * i] + L) / (2 * L) * (double)G - 0.5);
    long py = lround((L - data[2 * i + 1]) / (2 * L) * (double)G - 0.5);
    if (px >= 0 && px < (long)G) put(im, (long)x0 + px, py, white, 0.6);
  }
}

int cnf_plot_heatmaps(cnf_ctx *ctx, size_t n, size_t G, const double *logp, double L,
                      const double *data, size_t nd, const char *path) {
  if (n == 0 || logp == NULL || path == NULL || G < 2 || G > 4096 || !(L > 0))
    return CNF_ERROR(ctx, CNF_EINVAL, "plot: need panels, 2 <= grid <= 4096 and L > 0");
  image im = {0, 0, NULL};
  int rc = image_new(ctx, &im, n * G + (n - 1) * 4, G);
  if (rc != 0) return rc;
  for (size_t k = 0; k < n; k++) draw_panel(&im, k, G, logp + k * G * G, L, data, nd);
  rc = cnf__png_write(ctx, im.rgb, im.w, im.h, path);
  cnf__free(im.rgb);
  return rc;
}

int cnf_plot_density(cnf_flow *f, const cnf_options *opt, double L, size_t G,
                     const double *data, size_t n, const char *path) {
  if (f == NULL) return CNF_EINVAL;
  cnf_ctx *ctx = f->ctx;
  if (path == NULL) return CNF_ERROR(ctx, CNF_EINVAL, "plot: no output path");
  cnf_options o;
  int rc = cnf__options_read(ctx, opt, &o);
  if (rc != 0) return rc;
  if (f->cfg.dim != 2)
    return CNF_ERROR(ctx, CNF_EDIM, "plot: a density heat map needs a 2-D flow (this one is %zu-D)",
                     f->cfg.dim);
  if (!(L > 0) || !isfinite(L) || G < 2 || G > 4096)
    return CNF_ERROR(ctx, CNF_EINVAL, "plot: need range L > 0 and 2 <= grid <= 4096");
  double *x = cnf__dalloc(ctx, 2 * G * G), *lp = cnf__dalloc(ctx, G * G);
  image im = {0, 0, NULL};
  if (x == NULL || lp == NULL) CNF_TRY(CNF_ENOMEM);
  cnf_plot_grid(L, G, x);
  if (o.batch == 0 || o.batch > 4096) o.batch = 4096;
  CNF_TRY(cnf_flow_logp(f, &o, G * G, x, lp, NULL));
  CNF_TRY(image_new(ctx, &im, G, G));
  draw_panel(&im, 0, G, lp, L, data, n);
  rc = cnf__png_write(ctx, im.rgb, im.w, im.h, path);
cleanup:
  cnf__free(x);
  cnf__free(lp);
  cnf__free(im.rgb);
  return rc;
}

/* robust range of coordinate i over the rows of a (n, D): mean +- 4 sd,
 * clipped to the observed extremes */
static void coord_range(const double *a, size_t n, size_t D, size_t i, double *lo, double *hi) {
  double s = 0, s2 = 0, mn = INFINITY, mxv = -INFINITY;
  for (size_t b = 0; b < n; b++) {
    double v = a[b * D + i];
    s += v, s2 += v * v;
    mn = fmin(mn, v), mxv = fmax(mxv, v);
  }
  double m = s / (double)n, sd = sqrt(fmax(s2 / (double)n - m * m, 0));
  *lo = fmax(mn, m - 4 * sd);
  *hi = fmin(mxv, m + 4 * sd);
  if (!(*hi > *lo)) *lo -= 1, *hi += 1;
}

int cnf_plot_pairs(cnf_flow *f, const cnf_options *opt, size_t n_samples,
                   size_t max_dims, const double *data, size_t n,
                   const char *path) {
  if (f == NULL) return CNF_EINVAL;
  cnf_ctx *ctx = f->ctx;
  if (path == NULL) return CNF_ERROR(ctx, CNF_EINVAL, "plot: no output path");
  cnf_options o;
  int rc = cnf__options_read(ctx, opt, &o);
  if (rc != 0) return rc;
  const size_t D = f->cfg.dim, k = max_dims < D ? max_dims : D;
  if (k == 0 || n_samples == 0)
    return CNF_ERROR(ctx, CNF_EINVAL, "plot: need at least one coordinate and one sample");
  double *xs = cnf__dalloc(ctx, n_samples * D), *lp = cnf__dalloc(ctx, n_samples);
  if (xs == NULL || lp == NULL) CNF_TRY(CNF_ENOMEM);
  if (o.batch == 0 || o.batch > 4096) o.batch = 4096;
  CNF_TRY(cnf_flow_sample(f, &o, n_samples, xs, lp, NULL));
  rc = cnf_plot_pairs_of(ctx, xs, n_samples, D, max_dims, data, n, path);
cleanup:
  cnf__free(xs);
  cnf__free(lp);
  return rc;
}

int cnf_plot_pairs_of(cnf_ctx *ctx, const double *xs, size_t n_samples, size_t D,
                      size_t max_dims, const double *data, size_t n, const char *path) {
  const size_t k = max_dims < D ? max_dims : D, tile = 160;
  if (xs == NULL || path == NULL || k == 0 || n_samples == 0)
    return CNF_ERROR(ctx, CNF_EINVAL, "plot: need at least one coordinate and one sample");
  image im = {0, 0, NULL};
  int rc = 0;
  CNF_TRY(image_new(ctx, &im, k * tile, k * tile));
  const unsigned char grey[3] = {120, 120, 120}, orange[3] = {230, 110, 20}, line[3] = {200, 200, 200};
  for (size_t i = 0; i < k; i++)
    for (size_t j = 0; j < k; j++) {
      long x0 = (long)(j * tile), y0 = (long)(i * tile);
      for (size_t t = 0; t < tile; t++) { /* tile frame */
        put(&im, x0 + (long)t, y0, line, 1), put(&im, x0, y0 + (long)t, line, 1);
      }
      const double *ref = data != NULL ? data : xs;
      size_t nref = data != NULL ? n : n_samples;
      double lx, hx, ly, hy;
      coord_range(ref, nref, D, j, &lx, &hx);
      coord_range(ref, nref, D, i, &ly, &hy);
      if (i == j) {
        /* histograms as densities (fractions per bin), data grey and
         * samples orange on one common height scale, so they compare */
        double frac[2][40] = {{0}}, top = 0.0;
        for (int pass = 0; pass < 2; pass++) {
          const double *a = pass == 0 ? data : xs;
          size_t na = pass == 0 ? n : n_samples;
          for (size_t b = 0; a != NULL && b < na; b++) {
            double u = (a[b * D + i] - lx) / (hx - lx);
            if (u >= 0 && u < 1) frac[pass][(size_t)(u * 40)] += 1.0 / (double)na;
          }
          for (size_t q = 0; q < 40; q++) top = fmax(top, frac[pass][q]);
        }
        for (int pass = 0; pass < 2 && top > 0; pass++)
          for (size_t q = 0; q < 40; q++) {
            long hgt = lround(frac[pass][q] / top * (double)(tile - 10));
            for (long yy = 0; yy < hgt; yy++)
              for (long xx = 0; xx < 4; xx++)
                put(&im, x0 + (long)q * 4 + xx, y0 + (long)tile - 1 - yy, pass ? orange : grey, 0.5);
          }
        continue;
      }
      for (int pass = 0; pass < 2; pass++) {
        const double *a = pass == 0 ? data : xs;
        size_t na = pass == 0 ? n : n_samples;
        for (size_t b = 0; a != NULL && b < na; b++) {
          double u = (a[b * D + j] - lx) / (hx - lx), v = (a[b * D + i] - ly) / (hy - ly);
          put(&im, x0 + lround(u * (double)(tile - 1)), y0 + lround((1 - v) * (double)(tile - 1)),
              pass ? orange : grey, 0.35);
        }
      }
    }
  rc = cnf__png_write(ctx, im.rgb, im.w, im.h, path);
cleanup:
  cnf__free(im.rgb);
  return rc;
}
