/* lines.c: line plots drawn with cairo (draw.h) as PNG, SVG or PDF, for
 * curves such as a learned density against a reference one (cnf_pde.h:
 * cnf_plot_lines).  The figure is W x H; the font size is min(W, H) / 34
 * (at least 9); the plot area leaves a title band of 2.8 fs, 6 fs on the
 * left for the y axis, 3.8 fs below for the x axis and, on the right, the
 * legend's width plus 1.5 fs. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <string.h>

#include "cnf_pde.h"
#include "draw.h"

int cnf_plot_lines_with(cnf_ctx *ctx, const cnf_plot_options *po, const char *path, size_t W,
                        size_t H, size_t G, const double *x, size_t S, const double *y,
                        const unsigned char *rgb, const int *dashed) {
  static const unsigned char palette[6][3] = {{31, 119, 180}, {255, 127, 14},  {44, 160, 44},
                                              {214, 39, 40},  {148, 103, 189}, {140, 86, 75}};
  if (path == NULL || x == NULL || y == NULL || G < 2 || S == 0 || S > 256 || W < 160 || H < 120 ||
      W > 8192 || H > 8192)
    return CNF_ERROR(ctx, CNF_EINVAL,
                     "line plot: need a path, 2+ abscissae, 1 .. 256 curves and 160 x 120 .. "
                     "8192 x 8192 units");
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

  cnf__key keys[256];
  for (size_t s = 0; s < S; s++) {
    const unsigned char *c = rgb != NULL ? rgb + 3 * s : palette[s % 6];
    for (int k = 0; k < 3; k++) keys[s].rgb[k] = c[k] / 255.0;
    keys[s].kind = dashed != NULL && dashed[s] ? CNF__KEY_DASHED : CNF__KEY_LINE;
    keys[s].name = po != NULL && po->names != NULL ? po->names[s] : NULL;
  }
  const double fs = fmax(9, (double)(W < H ? W : H) / 34);
  cnf__fig f;
  int rc = cnf__fig_begin(ctx, &f, path, (double)W, (double)H, fs);
  if (rc != 0) return rc;
  double lw, lh;
  cnf__fig_legend_size(&f, keys, S, &lw, &lh);
  const double px0 = 6 * fs, px1 = (double)W - lw - 1.5 * fs, py0 = 2.8 * fs,
               py1 = (double)H - 3.8 * fs;
  if (!(px1 - px0 > 4 * fs && py1 - py0 > 4 * fs)) {
    cnf__fig_abort(&f);
    return CNF_ERROR(ctx, CNF_EINVAL, "%s: a %zu x %zu figure leaves no room for the plot", path, W,
                     H);
  }
  const char *title = po != NULL && po->title != NULL ? po->title : "Curves";
  cnf__fig_text(&f, 0.5 * (px0 + px1), 0.7 * fs, 0.5, 0, 0, 1.25, 1, title);
  const double sx = (px1 - px0) / (x1 - x0), sy = (py1 - py0) / (y1 - y0);
  cairo_t *cr = f.cr;
  if (y0 < 0) { /* y = 0 */
    cairo_set_source_rgb(cr, 0.7, 0.7, 0.7);
    cairo_set_line_width(cr, 1);
    cairo_move_to(cr, px0, py1 - (0 - y0) * sy);
    cairo_line_to(cr, px1, py1 - (0 - y0) * sy);
    cairo_stroke(cr);
  }
  cairo_save(cr);
  cairo_rectangle(cr, px0, py0, px1 - px0, py1 - py0);
  cairo_clip(cr);
  cairo_set_line_width(cr, 0.16 * fs);
  cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
  const double dash[2] = {0.6 * fs, 0.35 * fs};
  for (size_t s = 0; s < S; s++) {
    const double *ys = y + s * G;
    cairo_set_source_rgb(cr, keys[s].rgb[0], keys[s].rgb[1], keys[s].rgb[2]);
    cairo_set_dash(cr, dash, keys[s].kind == CNF__KEY_DASHED ? 2 : 0, 0);
    int pen = 0; /* a non-finite value breaks the curve */
    for (size_t g = 0; g < G; g++) {
      if (!isfinite(ys[g])) {
        pen = 0;
        continue;
      }
      const double px = px0 + (x[g] - x0) * sx, py = py1 - (ys[g] - y0) * sy;
      if (pen)
        cairo_line_to(cr, px, py);
      else
        cairo_move_to(cr, px, py);
      pen = 1;
    }
    cairo_stroke(cr);
  }
  cairo_restore(cr);
  cnf__fig_frame(&f, px0, py0, px1 - px0, py1 - py0);
  cnf__fig_xaxis(&f, px0, px1, py1, x0, x1, po != NULL && po->xlabel ? po->xlabel : "x");
  cnf__fig_yaxis(&f, px0, py1, py0, y0, y1, po != NULL && po->ylabel ? po->ylabel : "y");
  const double white[3] = {1, 1, 1};
  cnf__fig_legend(&f, px1 + 0.75 * fs, py0, keys, S, white, 0);
  return cnf__fig_end(&f, title);
}

int cnf_plot_lines(cnf_ctx *ctx, const char *path, size_t W, size_t H, size_t G, const double *x,
                   size_t S, const double *y, const unsigned char *rgb, const int *dashed) {
  return cnf_plot_lines_with(ctx, NULL, path, W, H, G, x, S, y, rgb, dashed);
}
