/* plot.c: pictures of a flow, drawn with cairo (draw.h) as PNG, SVG or PDF.
 *
 *   density   2-D flows: a heat map of p(x) = exp(log p(x)) (or of log p)
 *             on a G x G grid over the data-unit extent [-L, L]^2 or
 *             xlim x ylim, viridis on one colour scale with a colour bar,
 *             data points optionally overlaid in white; several panels
 *             side by side (cnf_plot_heatmaps) share the scale, so equal
 *             colours are equal densities.
 *   pairs     any dimension: a grid of pairwise scatter plots of samples
 *             (orange) over data (grey), histograms of each coordinate on
 *             the diagonal (fractions per bin, data and samples on one
 *             height scale), for the first min(D, max_dims) coordinates,
 *             named along the axes.
 * Layout in units of the font size fs = size / 28 (at least 9): title band
 * 2.8 fs, left margin 5.5 fs (pairs 6), bottom margin 3.8 fs (pairs 4),
 * colour bar column 8 fs, panel titles 1.6 fs, gaps between heat maps
 * 1.2 fs and between pair tiles 0.25 fs, the pairs legend row 1.8 fs.
 * Up to 4 heat maps go in one row, more in rows of ceil(sqrt(n)).  A pairs
 * grid of k > 3 coordinates has text k / 3 times larger. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "draw.h"
#include "flow_impl.h"

void cnf_plot_options_default(cnf_plot_options *po) {
  memset(po, 0, sizeof *po);
  po->size = 400;
}

/* po with its defaults filled in (NULL: all defaults) */
static cnf_plot_options resolve(const cnf_plot_options *po) {
  cnf_plot_options o;
  cnf_plot_options_default(&o);
  if (po != NULL) o = *po;
  if (o.size == 0) o.size = 400;
  if (o.data_name == NULL) o.data_name = "data";
  if (o.sample_name == NULL) o.sample_name = "samples";
  return o;
}

static int check_size(cnf_ctx *ctx, const cnf_plot_options *o, const char *path) {
  if (path == NULL) return CNF_ERROR(ctx, CNF_EINVAL, "plot: NULL path");
  if (o->size < 64 || o->size > 4096)
    return CNF_ERROR(ctx, CNF_EINVAL, "%s: panel size %zu is outside 64 .. 4096", path, o->size);
  return 0;
}

/* the G x G grid over [x0, x1] x [y0, y1], row 0 on top */
static void grid_over(const double xl[2], const double yl[2], size_t G, double *x) {
  for (size_t r = 0; r < G; r++)
    for (size_t c = 0; c < G; c++) {
      x[2 * (r * G + c)] = xl[0] + (xl[1] - xl[0]) * ((double)c + 0.5) / (double)G;
      x[2 * (r * G + c) + 1] = yl[1] - (yl[1] - yl[0]) * ((double)r + 0.5) / (double)G;
    }
}

void cnf_plot_grid(double L, size_t G, double *x) {
  const double lim[2] = {-L, L};
  grid_over(lim, lim, G, x);
}

void cnf_grid_points(double L, size_t G, double *x) {
  for (size_t j = 0; j < G; j++)
    for (size_t i = 0; i < G; i++) {
      double *p = x + 2 * (j * G + i);
      p[0] = i == G - 1 ? L : -L + 2.0 * L * (double)i / (double)(G - 1);
      p[1] = j == G - 1 ? L : -L + 2.0 * L * (double)j / (double)(G - 1);
    }
}

/* the extent of a heat map: xlim, ylim if given, else [-L, L] */
static void extent(const cnf_plot_options *o, double L, double xl[2], double yl[2]) {
  const int given = o->xlim[1] > o->xlim[0] && o->ylim[1] > o->ylim[0];
  xl[0] = given ? o->xlim[0] : -L, xl[1] = given ? o->xlim[1] : L;
  yl[0] = given ? o->ylim[0] : -L, yl[1] = given ? o->ylim[1] : L;
}

/* ---- heat maps --------------------------------------------------------- */

static void points(cnf__fig *f, const double *a, size_t n, size_t D, size_t j, size_t i,
                   const double xl[2], const double yl[2], double x, double y, double w, double h,
                   double r, const double rgb[3], double alpha, int round) {
  cairo_t *cr = f->cr;
  cairo_save(cr);
  cairo_rectangle(cr, x, y, w, h);
  cairo_clip(cr);
  cairo_new_path(cr);
  for (size_t b = 0; b < n; b++) {
    const double u = (a[b * D + j] - xl[0]) / (xl[1] - xl[0]);
    const double v = (a[b * D + i] - yl[0]) / (yl[1] - yl[0]);
    if (!(u >= -0.01 && u <= 1.01 && v >= -0.01 && v <= 1.01)) continue;
    const double px = x + u * w, py = y + (1 - v) * h;
    if (round) {
      cairo_new_sub_path(cr);
      cairo_arc(cr, px, py, r, 0, 2 * CNF__PI);
    } else {
      cairo_rectangle(cr, px - r, py - r, 2 * r, 2 * r);
    }
  }
  cairo_set_source_rgba(cr, rgb[0], rgb[1], rgb[2], alpha);
  if (!round) /* squares of thousands of points: crisp, and a PNG a third the size */
    cairo_set_antialias(cr, CAIRO_ANTIALIAS_NONE);
  cairo_fill(cr);
  cairo_restore(cr);
}

static int heatmaps(cnf_ctx *ctx, const cnf_plot_options *po, size_t n, size_t G,
                    const double *logp, double L, const double *data, size_t nd, const char *path,
                    const char *title) {
  const cnf_plot_options o = resolve(po);
  int rc = check_size(ctx, &o, path);
  if (rc != 0) return rc;
  if (n == 0 || n > 64 || logp == NULL || G < 2 || G > 4096 || !(L > 0) || !isfinite(L))
    return CNF_ERROR(ctx, CNF_EINVAL,
                     "%s: a heat map needs 1 .. 64 panels, 2 <= grid <= 4096 and L > 0", path);
  double xl[2], yl[2];
  extent(&o, L, xl, yl);
  /* one colour scale over every panel */
  double mx = -INFINITY;
  for (size_t i = 0; i < n * G * G; i++)
    if (isfinite(logp[i])) mx = fmax(mx, logp[i]);
  if (!isfinite(mx))
    return CNF_ERROR(ctx, CNF_ENONFINITE, "%s: no finite log-density on the grid", path);
  double *v = cnf__dalloc(ctx, G * G);
  if (v == NULL) return CNF_ENOMEM;
  /* up to 4 panels in a row, more in a near-square grid */
  const size_t cols = n <= 4 ? n : (size_t)ceil(sqrt((double)n)), rows = (n + cols - 1) / cols;
  const double S = (double)o.size, fs = cnf__fig_font(o.size);
  const double T = 2.8 * fs, PT = o.names != NULL ? 1.6 * fs : 0, Lm = 5.5 * fs, Bm = 3.8 * fs;
  const double gap = 1.2 * fs, R = 8 * fs, rowh = PT + S + Bm;
  const double W = Lm + (double)cols * S + (double)(cols - 1) * gap + R,
               H = T + (double)rows * rowh;
  cnf__fig f;
  rc = cnf__fig_begin(ctx, &f, path, W, H, fs);
  if (rc != 0) {
    cnf__free(v);
    return rc;
  }
  const char *ttl = o.title != NULL ? o.title : title;
  cnf__fig_text(&f, 0.5 * (Lm + W - R), 0.7 * fs, 0.5, 0, 0, 1.25, 1, ttl);
  /* p itself unless asked for log p, or unless exp(max log p) is not a
   * positive finite number */
  const int logd = o.log_density || !(exp(mx) > 0 && isfinite(exp(mx)));
  const double lo = logd ? mx - 10 : 0, hi = logd ? mx : exp(mx);
  const double white[3] = {1, 1, 1}, black[3] = {0, 0, 0};
  char key[160];
  snprintf(key, sizeof key, "%s (n = %zu)", o.data_name, nd);
  const cnf__key keys[1] = {{key, {1, 1, 1}, CNF__KEY_POINT}};
  for (size_t k = 0; k < n && rc == 0; k++) {
    const double *lp = logp + k * G * G, x0 = Lm + (double)(k % cols) * (S + gap);
    const double y0 = T + (double)(k / cols) * rowh + PT;
    for (size_t i = 0; i < G * G; i++) v[i] = logd ? lp[i] : exp(lp[i]);
    rc = cnf__fig_raster(&f, v, G, G, lo, hi, x0, y0, S, S);
    if (rc != 0) break;
    if (data != NULL && nd > 0) {
      points(&f, data, nd, 2, 0, 1, xl, yl, x0, y0, S, S, fmax(1.0, S / 320), white, 0.6, 1);
      if (k == 0) cnf__fig_legend(&f, x0 + 0.4 * fs, y0 + 0.4 * fs, keys, 1, black, 0.45);
    }
    cnf__fig_frame(&f, x0, y0, S, S);
    if (o.names != NULL && o.names[k] != NULL)
      cnf__fig_text(&f, x0 + 0.5 * S, y0 - PT + 0.15 * fs, 0.5, 0, 0, 1, 0, o.names[k]);
    cnf__fig_xaxis(&f, x0, x0 + S, y0 + S, xl[0], xl[1], o.xlabel ? o.xlabel : "x1");
    if (k % cols == 0) cnf__fig_yaxis(&f, x0, y0 + S, y0, yl[0], yl[1], o.ylabel ? o.ylabel : "x2");
  }
  const double bx = W - R + 1.2 * fs;
  if (rc == 0)
    rc = cnf__fig_colourbar(&f, bx, T + PT, 1.0 * fs, (double)(rows - 1) * rowh + S, lo, hi,
                            logd ? "log density log p(x)" : "density p(x)");
  cnf__free(v);
  if (rc != 0) {
    cnf__fig_abort(&f);
    return rc;
  }
  return cnf__fig_end(&f, ttl);
}

int cnf_plot_heatmaps_with(cnf_ctx *ctx, const cnf_plot_options *po, size_t n, size_t G,
                           const double *logp, double L, const double *data, size_t nd,
                           const char *path) {
  return heatmaps(ctx, po, n, G, logp, L, data, nd, path, "Densities");
}

int cnf_plot_heatmaps(cnf_ctx *ctx, size_t n, size_t G, const double *logp, double L,
                      const double *data, size_t nd, const char *path) {
  return heatmaps(ctx, NULL, n, G, logp, L, data, nd, path, "Densities");
}

int cnf_plot_density_with(cnf_flow *f, const cnf_options *opt, const cnf_plot_options *po, double L,
                          size_t G, const double *data, size_t n, const char *path) {
  if (f == NULL) return CNF_EINVAL;
  cnf_ctx *ctx = f->ctx;
  if (path == NULL) return CNF_ERROR(ctx, CNF_EINVAL, "plot: no output path");
  cnf_options oo;
  int rc = cnf__options_read(ctx, opt, &oo);
  if (rc != 0) return rc;
  if (f->cfg.dim != 2)
    return CNF_ERROR(ctx, CNF_EDIM, "plot: a density heat map needs a 2-D flow (this one is %zu-D)",
                     f->cfg.dim);
  if (!(L > 0) || !isfinite(L) || G < 2 || G > 4096)
    return CNF_ERROR(ctx, CNF_EINVAL, "plot: need range L > 0 and 2 <= grid <= 4096");
  const cnf_plot_options o = resolve(po);
  rc = check_size(ctx, &o, path);
  if (rc != 0) return rc;
  double xl[2], yl[2];
  extent(&o, L, xl, yl);
  double *x = cnf__dalloc(ctx, 2 * G * G), *lp = cnf__dalloc(ctx, G * G);
  if (x == NULL || lp == NULL) CNF_TRY(CNF_ENOMEM);
  grid_over(xl, yl, G, x);
  if (oo.batch == 0 || oo.batch > 4096) oo.batch = 4096;
  CNF_TRY(cnf_flow_logp(f, &oo, G * G, x, lp, NULL));
  rc = heatmaps(ctx, &o, 1, G, lp, L, data, n, path,
                o.log_density ? "Log-density of the flow" : "Density of the flow");
cleanup:
  cnf__free(x);
  cnf__free(lp);
  return rc;
}

int cnf_plot_density(cnf_flow *f, const cnf_options *opt, double L, size_t G, const double *data,
                     size_t n, const char *path) {
  return cnf_plot_density_with(f, opt, NULL, L, G, data, n, path);
}

/* ---- pairs ------------------------------------------------------------- */

/* robust range of coordinate i over the rows of a (n, D): mean +- 4 sd,
 * clipped to the observed extremes */
static void coord_range(const double *a, size_t n, size_t D, size_t i, double r[2]) {
  double s = 0, s2 = 0, mn = INFINITY, mxv = -INFINITY;
  for (size_t b = 0; b < n; b++) {
    double v = a[b * D + i];
    s += v, s2 += v * v;
    mn = fmin(mn, v), mxv = fmax(mxv, v);
  }
  double m = s / (double)n, sd = sqrt(fmax(s2 / (double)n - m * m, 0));
  r[0] = fmax(mn, m - 4 * sd);
  r[1] = fmin(mxv, m + 4 * sd);
  if (!(r[1] > r[0])) r[0] -= 1, r[1] += 1;
}

enum { BINS = 40 };

/* histograms of coordinate i as fractions per bin, data grey and samples
 * orange, on one common height scale so that they compare */
static void histograms(cnf__fig *f, const double *data, size_t n, const double *xs, size_t ns,
                       size_t D, size_t i, const double r[2], double x0, double y0, double S,
                       const double col[2][3]) {
  double frac[2][BINS] = {{0}}, top = 0.0;
  for (int pass = 0; pass < 2; pass++) {
    const double *a = pass == 0 ? data : xs;
    const size_t na = pass == 0 ? n : ns;
    for (size_t b = 0; a != NULL && b < na; b++) {
      const double u = (a[b * D + i] - r[0]) / (r[1] - r[0]);
      if (u >= 0 && u < 1) frac[pass][(size_t)(u * BINS)] += 1.0 / (double)na;
    }
    for (size_t q = 0; q < BINS; q++) top = fmax(top, frac[pass][q]);
  }
  const double bw = S / BINS, hmax = 0.85 * S;
  for (int pass = 0; pass < 2 && top > 0; pass++) {
    for (size_t q = 0; q < BINS; q++) {
      const double hq = frac[pass][q] / top * hmax;
      if (hq > 0) cairo_rectangle(f->cr, x0 + (double)q * bw, y0 + S - hq, bw, hq);
    }
    cairo_set_source_rgba(f->cr, col[pass][0], col[pass][1], col[pass][2], 0.55);
    cairo_fill(f->cr);
  }
}

static int pairs(cnf_ctx *ctx, const cnf_plot_options *po, const double *xs, size_t ns, size_t D,
                 size_t max_dims, const double *data, size_t n, const char *path) {
  const size_t k = max_dims < D ? max_dims : D;
  if (xs == NULL || path == NULL || k == 0 || ns == 0)
    return CNF_ERROR(ctx, CNF_EINVAL, "plot: need at least one coordinate and one sample");
  const cnf_plot_options o = resolve(po);
  int rc = check_size(ctx, &o, path);
  if (rc != 0) return rc;
  /* text grows with the grid beyond 3 x 3 (k S / 84), so that it stays
   * legible when the whole grid is scaled to a page */
  const double S = (double)o.size, fs = cnf__fig_font(o.size) * (k > 3 ? (double)k / 3 : 1);
  const double g = 0.25 * fs;
  const double T = 2.8 * fs + 1.8 * fs, Lm = 6 * fs, Bm = 4 * fs, R = 1.0 * fs;
  const double side = (double)k * S + (double)(k - 1) * g;
  cnf__fig f;
  rc = cnf__fig_begin(ctx, &f, path, Lm + side + R, T + side + Bm, fs);
  if (rc != 0) return rc;
  f.tight = 1; /* the tiles are 0.25 fs apart */
  const char *ttl = o.title != NULL ? o.title : "Samples of the flow against the data";
  cnf__fig_text(&f, Lm + 0.5 * side, 0.7 * fs, 0.5, 0, 0, 1.25, 1, ttl);
  const double col[2][3] = {{0.45, 0.45, 0.45}, {0.90, 0.43, 0.08}};
  char kd[160], ks[160];
  snprintf(kd, sizeof kd, "%s (n = %zu)", o.data_name, n);
  snprintf(ks, sizeof ks, "%s (n = %zu)", o.sample_name, ns);
  const cnf__key keys[2] = {{data != NULL ? kd : NULL, {0.45, 0.45, 0.45}, CNF__KEY_BOX},
                            {ks, {0.90, 0.43, 0.08}, CNF__KEY_BOX}};
  cnf__fig_legend_row(&f, Lm + 0.5 * side, 2.6 * fs, keys, 2);
  const double *ref = data != NULL ? data : xs;
  const size_t nref = data != NULL ? n : ns;
  char name[16][32];
  const char *names[16];
  for (size_t i = 0; i < k && i < 16; i++) {
    snprintf(name[i], sizeof name[i], "x%zu", i + 1);
    names[i] = o.names != NULL && o.names[i] != NULL ? o.names[i] : name[i];
  }
  const double r_pt = fmax(0.8, S / 320);
  for (size_t i = 0; i < k; i++)
    for (size_t j = 0; j < k; j++) {
      const double x0 = Lm + (double)j * (S + g), y0 = T + (double)i * (S + g);
      double rx[2], ry[2];
      coord_range(ref, nref, D, j, rx);
      coord_range(ref, nref, D, i, ry);
      const char *ni = i < 16 ? names[i] : "", *nj = j < 16 ? names[j] : "";
      if (i == j) {
        histograms(&f, data, n, xs, ns, D, i, rx, x0, y0, S, col);
        cnf__fig_text(&f, x0 + 0.4 * fs, y0 + 0.3 * fs, 0, 0, 0, 1, 1, ni);
      } else {
        if (data != NULL) points(&f, data, n, D, j, i, rx, ry, x0, y0, S, S, r_pt, col[0], 0.35, 0);
        points(&f, xs, ns, D, j, i, rx, ry, x0, y0, S, S, r_pt, col[1], 0.35, 0);
      }
      cnf__fig_frame(&f, x0, y0, S, S);
      if (i + 1 == k) cnf__fig_xaxis(&f, x0, x0 + S, y0 + S, rx[0], rx[1], nj);
      if (j == 0 && k > 1) cnf__fig_yaxis(&f, x0, y0 + S, y0, ry[0], ry[1], ni);
    }
  return cnf__fig_end(&f, ttl);
}

int cnf_plot_pairs_of_with(cnf_ctx *ctx, const cnf_plot_options *po, const double *xs,
                           size_t n_samples, size_t D, size_t max_dims, const double *data,
                           size_t n, const char *path) {
  return pairs(ctx, po, xs, n_samples, D, max_dims, data, n, path);
}

int cnf_plot_pairs_of(cnf_ctx *ctx, const double *xs, size_t n_samples, size_t D, size_t max_dims,
                      const double *data, size_t n, const char *path) {
  return pairs(ctx, NULL, xs, n_samples, D, max_dims, data, n, path);
}

int cnf_plot_pairs_with(cnf_flow *f, const cnf_options *opt, const cnf_plot_options *po,
                        size_t n_samples, size_t max_dims, const double *data, size_t n,
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
  rc = pairs(ctx, po, xs, n_samples, D, max_dims, data, n, path);
cleanup:
  cnf__free(xs);
  cnf__free(lp);
  return rc;
}

int cnf_plot_pairs(cnf_flow *f, const cnf_options *opt, size_t n_samples, size_t max_dims,
                   const double *data, size_t n, const char *path) {
  return cnf_plot_pairs_with(f, opt, NULL, n_samples, max_dims, data, n, path);
}

/* ---- trajectories ---------------------------------------------------------- */

/* The extent of all states: the bounding box grown to a square (one scale
 * on both axes) with a 5% margin. */
static void paths_extent(const double *p, size_t rows, size_t D, double xl[2], double yl[2]) {
  double lo[2] = {INFINITY, INFINITY}, hi[2] = {-INFINITY, -INFINITY};
  for (size_t r = 0; r < rows; r++)
    for (size_t i = 0; i < 2; i++)
      if (isfinite(p[r * D + i]))
        lo[i] = fmin(lo[i], p[r * D + i]), hi[i] = fmax(hi[i], p[r * D + i]);
  double half = 0;
  for (size_t i = 0; i < 2; i++) {
    if (!(hi[i] >= lo[i])) lo[i] = hi[i] = 0;
    half = fmax(half, 0.5 * (hi[i] - lo[i]));
  }
  half = half > 0 ? 1.05 * half : 1;
  const double cx = 0.5 * (lo[0] + hi[0]), cy = 0.5 * (lo[1] + hi[1]);
  xl[0] = cx - half, xl[1] = cx + half, yl[0] = cy - half, yl[1] = cy + half;
}

int cnf_plot_paths_with(cnf_ctx *ctx, const cnf_plot_options *po, size_t panels, size_t n, size_t B,
                        size_t D, const double *paths, const char *path) {
  cnf_plot_options o = resolve(po);
  o.data_name = po != NULL && po->data_name != NULL ? po->data_name : "data (t = 0)";
  o.sample_name = po != NULL && po->sample_name != NULL ? po->sample_name : "latent (t = T)";
  int rc = check_size(ctx, &o, path);
  if (rc != 0) return rc;
  if (paths == NULL || panels == 0 || panels > 64 || n < 2 || B == 0 || D < 2)
    return CNF_ERROR(ctx, CNF_EINVAL,
                     "%s: trajectories need 1 .. 64 panels, 2+ times, 1+ points and D >= 2", path);
  double xl[2], yl[2];
  extent(&o, 1, xl, yl);
  if (!(o.xlim[1] > o.xlim[0] && o.ylim[1] > o.ylim[0]))
    paths_extent(paths, panels * n * B, D, xl, yl);
  const size_t cols = panels <= 4 ? panels : (size_t)ceil(sqrt((double)panels));
  const size_t rows = (panels + cols - 1) / cols;
  const double S = (double)o.size, fs = cnf__fig_font(o.size);
  const double T = 2.8 * fs + 1.8 * fs, PT = o.names != NULL ? 1.6 * fs : 0, Lm = 5.5 * fs;
  const double Bm = 3.8 * fs, gap = 1.2 * fs, R = 1.5 * fs, rowh = PT + S + Bm;
  const char *ttl = o.title != NULL ? o.title : "Trajectories from data to latent";
  char kp[64];
  snprintf(kp, sizeof kp, "paths (n = %zu)", B);
  /* wide enough for the title and the legend row (glyphs of DejaVu Sans
   * are at most 0.65 em wide on average) */
  const double wtext =
      fmax(0.65 * 1.25 * fs * (double)strlen(ttl),
           0.6 * 0.9 * fs * (double)(strlen(kp) + strlen(o.data_name) + strlen(o.sample_name)) +
               3 * 3.8 * fs) +
      2 * fs;
  const double W = fmax(Lm + (double)cols * S + (double)(cols - 1) * gap + R, wtext);
  const double H = T + (double)rows * rowh, xc = 0.5 * (Lm + W - R);
  cnf__fig f;
  rc = cnf__fig_begin(ctx, &f, path, W, H, fs);
  if (rc != 0) return rc;
  cnf__fig_text(&f, xc, 0.7 * fs, 0.5, 0, 0, 1.25, 1, ttl);
  const double line[3] = {0.25, 0.30, 0.40}, start[3] = {0.12, 0.47, 0.71},
               end[3] = {0.90, 0.43, 0.08};
  char kd[160], kl[160];
  snprintf(kd, sizeof kd, "%s", o.data_name);
  snprintf(kl, sizeof kl, "%s", o.sample_name);
  const cnf__key keys[3] = {{kp, {line[0], line[1], line[2]}, CNF__KEY_LINE},
                            {kd, {start[0], start[1], start[2]}, CNF__KEY_POINT},
                            {kl, {end[0], end[1], end[2]}, CNF__KEY_POINT}};
  cnf__fig_legend_row(&f, xc, 2.6 * fs, keys, 3);
  /* the panels centred in a figure widened for its text */
  const double x_off = 0.5 * (W - (Lm + (double)cols * S + (double)(cols - 1) * gap + R));
  cairo_t *cr = f.cr;
  const double r_pt = fmax(1.0, S / 250), alpha = B > 400 ? 0.2 : 0.4;
  for (size_t k = 0; k < panels; k++) {
    const double *pk = paths + k * n * B * D, x0 = x_off + Lm + (double)(k % cols) * (S + gap);
    const double y0 = T + (double)(k / cols) * rowh + PT;
    const double sx = S / (xl[1] - xl[0]), sy = S / (yl[1] - yl[0]);
    cairo_save(cr);
    cairo_rectangle(cr, x0, y0, S, S);
    cairo_clip(cr);
    cairo_set_line_width(cr, fmax(0.5, 0.05 * fs));
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    cairo_set_source_rgba(cr, line[0], line[1], line[2], alpha);
    for (size_t b = 0; b < B; b++) {
      int pen = 0;
      for (size_t j = 0; j < n; j++) {
        const double *q = pk + (j * B + b) * D;
        if (!isfinite(q[0]) || !isfinite(q[1])) {
          pen = 0;
          continue;
        }
        const double px = x0 + (q[0] - xl[0]) * sx, py = y0 + S - (q[1] - yl[0]) * sy;
        if (pen)
          cairo_line_to(cr, px, py);
        else
          cairo_move_to(cr, px, py);
        pen = 1;
      }
      cairo_stroke(cr); /* one stroke per path: overlaps darken where paths crowd */
    }
    cairo_restore(cr);
    points(&f, pk, B, D, 0, 1, xl, yl, x0, y0, S, S, r_pt, start, 0.8, 1);
    points(&f, pk + (n - 1) * B * D, B, D, 0, 1, xl, yl, x0, y0, S, S, r_pt, end, 0.8, 1);
    cnf__fig_frame(&f, x0, y0, S, S);
    if (o.names != NULL && o.names[k] != NULL)
      cnf__fig_text(&f, x0 + 0.5 * S, y0 - PT + 0.15 * fs, 0.5, 0, 0, 1, 0, o.names[k]);
    cnf__fig_xaxis(&f, x0, x0 + S, y0 + S, xl[0], xl[1], o.xlabel ? o.xlabel : "x1");
    if (k % cols == 0) cnf__fig_yaxis(&f, x0, y0 + S, y0, yl[0], yl[1], o.ylabel ? o.ylabel : "x2");
  }
  return cnf__fig_end(&f, ttl);
}
