/* draw.c: the drawing layer of src/plot on cairo (draw.h).
 *
 * A figure is drawn once on a cairo surface of the format the path asks
 * for: an image surface for PNG, an SVG or a PDF surface writing into
 * memory through cairo's stream functions.  The finished bytes go to disk
 * through cnf_file_write (a temporary file beside the path, renamed), so a
 * figure is never half-written and a failure of cairo leaves no file.
 *
 * Text is cairo's "toy" API in DejaVu Sans (any sans-serif font fontconfig
 * offers if that is missing).  Cairo's SVG writer turns text into glyph
 * outlines; so that the figure's words can still be found, read aloud and
 * tested, the SVG gets <title> (the figure title) and <desc> (every string
 * drawn, one per line) as its first children, and the PDF the title as
 * metadata. */
#define _POSIX_C_SOURCE 200809L
#include "draw.h"

#include <cairo-pdf.h>
#include <cairo-svg.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *const FONT = "DejaVu Sans";

/* ---- output ------------------------------------------------------------ */

static int grow(cnf__fig *f, unsigned char **buf, size_t *cap, size_t need) {
  if (need <= *cap) return 0;
  size_t nc = *cap ? *cap : 4096;
  while (nc < need) nc *= 2;
  unsigned char *nb = cnf__malloc(nc);
  if (nb == NULL) return f->oom = 1, -1;
  if (*buf != NULL) memcpy(nb, *buf, *cap);
  cnf__free(*buf);
  *buf = nb, *cap = nc;
  return 0;
}

static cairo_status_t stream_write(void *closure, const unsigned char *data, unsigned int len) {
  cnf__fig *f = closure;
  if (grow(f, &f->buf, &f->cap, f->n + len) != 0) return CAIRO_STATUS_NO_MEMORY;
  memcpy(f->buf + f->n, data, len);
  f->n += len;
  return CAIRO_STATUS_SUCCESS;
}

static int format_of(const char *path, cnf__fig_format *fmt) {
  const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
  if (dot == NULL || (slash != NULL && dot < slash)) return *fmt = CNF__FIG_PNG, 0;
  if (strcasecmp(dot, ".png") == 0) return *fmt = CNF__FIG_PNG, 0;
  if (strcasecmp(dot, ".svg") == 0) return *fmt = CNF__FIG_SVG, 0;
  if (strcasecmp(dot, ".pdf") == 0) return *fmt = CNF__FIG_PDF, 0;
  return -1;
}

static int cairo_fail(cnf__fig *f, cairo_status_t st) {
  if (st == CAIRO_STATUS_NO_MEMORY || f->oom)
    return CNF_ERROR(f->ctx, CNF_ENOMEM, "%s: out of memory while drawing", f->path);
  return CNF_ERROR(f->ctx, CNF_EIO, "%s: cairo could not draw the figure: %s", f->path,
                   cairo_status_to_string(st));
}

void cnf__fig_abort(cnf__fig *f) {
  if (f->cr != NULL) cairo_destroy(f->cr);
  if (f->surf != NULL) cairo_surface_destroy(f->surf);
  cnf__free(f->buf);
  cnf__free(f->text);
  f->cr = NULL, f->surf = NULL, f->buf = NULL, f->text = NULL;
}

int cnf__fig_begin(cnf_ctx *ctx, cnf__fig *f, const char *path, double W, double H, double fs) {
  memset(f, 0, sizeof *f);
  f->ctx = ctx, f->path = path, f->fs = fs;
  f->ink[0] = f->ink[1] = f->ink[2] = 0.1;
  if (format_of(path, &f->format) != 0)
    return CNF_ERROR(ctx, CNF_EINVAL,
                     "%s: unknown figure format '%s' (expected .png, .svg or .pdf)", path,
                     strrchr(path, '.'));
  f->W = ceil(W - 1e-6), f->H = ceil(H - 1e-6); /* whole pixels, no round-off pixel */
  if (!(f->W >= 16 && f->H >= 16 && f->W <= 16384 && f->H <= 16384))
    return CNF_ERROR(ctx, CNF_EINVAL, "%s: a %g x %g figure is outside 16 .. 16384 units a side",
                     path, f->W, f->H);
  switch (f->format) {
    case CNF__FIG_PNG:
      f->surf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, (int)f->W, (int)f->H);
      break;
    case CNF__FIG_SVG:
      f->surf = cairo_svg_surface_create_for_stream(stream_write, f, f->W, f->H);
      break;
    case CNF__FIG_PDF:
      f->surf = cairo_pdf_surface_create_for_stream(stream_write, f, f->W, f->H);
      break;
  }
  f->cr = cairo_create(f->surf);
  cairo_status_t st = cairo_status(f->cr);
  if (st != CAIRO_STATUS_SUCCESS) {
    int rc = cairo_fail(f, st);
    cnf__fig_abort(f);
    return rc;
  }
  cairo_set_source_rgb(f->cr, 1, 1, 1);
  cairo_paint(f->cr);
  return 0;
}

/* s with &, <, > escaped, appended to the buffer at *n */
static int put_escaped(cnf__fig *f, unsigned char **b, size_t *n, size_t *cap, const char *s,
                       size_t len) {
  for (size_t i = 0; i < len; i++) {
    const char *e = s[i] == '&' ? "&amp;" : s[i] == '<' ? "&lt;" : s[i] == '>' ? "&gt;" : NULL;
    const size_t k = e ? strlen(e) : 1;
    if (grow(f, b, cap, *n + k) != 0) return -1;
    memcpy(*b + *n, e ? e : s + i, k);
    *n += k;
  }
  return 0;
}

/* The SVG with <title> and <desc> inserted after the opening <svg ...> tag. */
static int svg_with_text(cnf__fig *f, const char *title, unsigned char **out, size_t *len) {
  *out = NULL, *len = 0;
  size_t cap = 0, n = 0;
  unsigned char *b = NULL;
  const char *svg = NULL;
  for (size_t i = 0; svg == NULL && i + 4 <= f->n; i++)
    if (memcmp(f->buf + i, "<svg", 4) == 0) svg = (const char *)f->buf + i;
  const char *gt = svg ? memchr(svg, '>', f->n - (size_t)(svg - (const char *)f->buf)) : NULL;
  if (gt == NULL) return -1;
  const size_t head = (size_t)(gt + 1 - (const char *)f->buf);
  const char *parts[] = {"\n<title>", "</title>\n<desc>", "</desc>\n"};
  int bad = grow(f, &b, &cap, f->n + 64) != 0;
  if (!bad) memcpy(b, f->buf, head), n = head;
  for (int p = 0; p < 3 && !bad; p++) {
    const size_t k = strlen(parts[p]);
    bad = grow(f, &b, &cap, n + k) != 0;
    if (!bad) memcpy(b + n, parts[p], k), n += k;
    if (!bad && p == 0) bad = put_escaped(f, &b, &n, &cap, title, strlen(title)) != 0;
    if (!bad && p == 1 && f->text != NULL) bad = put_escaped(f, &b, &n, &cap, f->text, f->tn) != 0;
  }
  if (!bad) bad = grow(f, &b, &cap, n + f->n - head) != 0;
  if (bad) {
    cnf__free(b);
    return -1;
  }
  memcpy(b + n, f->buf + head, f->n - head);
  *out = b, *len = n + f->n - head;
  return 0;
}

int cnf__fig_end(cnf__fig *f, const char *title) {
  cairo_status_t st = cairo_status(f->cr);
  if (st == CAIRO_STATUS_SUCCESS && f->format == CNF__FIG_PDF && title != NULL) {
    cairo_pdf_surface_set_metadata(f->surf, CAIRO_PDF_METADATA_TITLE, title);
    cairo_pdf_surface_set_metadata(f->surf, CAIRO_PDF_METADATA_CREATOR, "cnf");
  }
  cairo_destroy(f->cr);
  f->cr = NULL;
  if (st == CAIRO_STATUS_SUCCESS && f->format == CNF__FIG_PNG)
    st = cairo_surface_write_to_png_stream(f->surf, stream_write, f);
  cairo_surface_finish(f->surf);
  if (st == CAIRO_STATUS_SUCCESS) st = cairo_surface_status(f->surf);
  int rc = 0;
  if (st != CAIRO_STATUS_SUCCESS || f->oom) {
    rc = cairo_fail(f, st);
  } else if (f->format == CNF__FIG_SVG) {
    unsigned char *svg = NULL;
    size_t len = 0;
    if (svg_with_text(f, title ? title : "", &svg, &len) != 0)
      rc = f->oom ? CNF_ERROR(f->ctx, CNF_ENOMEM, "%s: out of memory", f->path)
                  : CNF_ERROR(f->ctx, CNF_EIO, "%s: cairo wrote no <svg> element", f->path);
    else
      rc = cnf_file_write(f->ctx, f->path, svg, len);
    cnf__free(svg);
  } else {
    rc = cnf_file_write(f->ctx, f->path, f->buf, f->n);
  }
  cnf__fig_abort(f);
  return rc;
}

/* ---- text -------------------------------------------------------------- */

static void font(cnf__fig *f, double scale, int bold) {
  cairo_select_font_face(f->cr, FONT, CAIRO_FONT_SLANT_NORMAL,
                         bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size(f->cr, f->fs * scale);
}

double cnf__fig_text_width(cnf__fig *f, double scale, int bold, const char *s) {
  cairo_text_extents_t te;
  font(f, scale, bold);
  cairo_text_extents(f->cr, s, &te);
  return te.x_advance;
}

/* The height of a line of text (ascent + descent) in size fs * scale. */
static double text_height(cnf__fig *f, double scale) {
  cairo_font_extents_t fe;
  font(f, scale, 0);
  cairo_font_extents(f->cr, &fe);
  return fe.ascent + fe.descent;
}

static void log_text(cnf__fig *f, const char *s) {
  const size_t k = strlen(s);
  unsigned char *b = (unsigned char *)f->text;
  if (grow(f, &b, &f->tcap, f->tn + k + 2) != 0) return;
  f->text = (char *)b;
  memcpy(f->text + f->tn, s, k);
  f->tn += k;
  f->text[f->tn++] = '\n';
  f->text[f->tn] = '\0';
}

double cnf__fig_text(cnf__fig *f, double x, double y, double ax, double ay, double angle,
                     double scale, int bold, const char *s) {
  cairo_t *cr = f->cr;
  cairo_text_extents_t te;
  cairo_font_extents_t fe;
  font(f, scale, bold);
  cairo_text_extents(cr, s, &te);
  cairo_font_extents(cr, &fe);
  cairo_save(cr);
  cairo_translate(cr, x, y);
  cairo_rotate(cr, angle);
  cairo_move_to(cr, -ax * te.x_advance, -ay * (fe.ascent + fe.descent) + fe.ascent);
  cairo_set_source_rgb(cr, f->ink[0], f->ink[1], f->ink[2]);
  cairo_show_text(cr, s);
  cairo_restore(cr);
  log_text(f, s);
  return te.x_advance;
}

/* ---- axes -------------------------------------------------------------- */

size_t cnf__fig_ticks(double lo, double hi, size_t want, double *t, char (*lab)[32]) {
  if (!(hi > lo) || !isfinite(lo) || !isfinite(hi) || want == 0) return 0;
  const double raw = (hi - lo) / (double)want, p = pow(10, floor(log10(raw)));
  const double m = raw / p, step = (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
  int dec = (int)-floor(log10(step) + 1e-9);
  if (dec < 0) dec = 0;
  size_t n = 0;
  for (double k = ceil(lo / step - 1e-9); n < 16 && k * step <= hi + 1e-9 * step; k += 1) {
    double v = k * step;
    if (fabs(v) < 1e-12 * step) v = 0; /* no "-0" */
    t[n] = v;
    snprintf(lab[n], 32, "%.*f", dec, v);
    n++;
  }
  return n;
}

static void stroke_line(cnf__fig *f, double x0, double y0, double x1, double y1, double w) {
  cairo_set_line_width(f->cr, w);
  cairo_move_to(f->cr, x0, y0);
  cairo_line_to(f->cr, x1, y1);
  cairo_stroke(f->cr);
}

void cnf__fig_xaxis(cnf__fig *f, double x0, double x1, double y, double lo, double hi,
                    const char *label) {
  double t[16];
  char lab[16][32];
  const size_t n = cnf__fig_ticks(lo, hi, 5, t, lab);
  cairo_set_source_rgb(f->cr, 0.2, 0.2, 0.2);
  for (size_t i = 0; i < n; i++) {
    const double x = x0 + (t[i] - lo) / (hi - lo) * (x1 - x0);
    cairo_set_source_rgb(f->cr, 0.2, 0.2, 0.2);
    stroke_line(f, x, y, x, y + 0.35 * f->fs, 1);
    /* centred under its tick; with f->tight kept within the axis (+- 0.1
     * fs), so that the numbers of abutting panels never run together */
    const double w = cnf__fig_text_width(f, 0.85, 0, lab[i]);
    double left = x - 0.5 * w;
    if (f->tight) left = fmax(x0 - 0.1 * f->fs, fmin(left, x1 + 0.1 * f->fs - w));
    cnf__fig_text(f, left, y + 0.45 * f->fs, 0, 0, 0, 0.85, 0, lab[i]);
  }
  if (label != NULL) cnf__fig_text(f, 0.5 * (x0 + x1), y + 1.6 * f->fs, 0.5, 0, 0, 1, 0, label);
}

void cnf__fig_yaxis(cnf__fig *f, double x, double y0, double y1, double lo, double hi,
                    const char *label) {
  double t[16];
  char lab[16][32];
  const size_t n = cnf__fig_ticks(lo, hi, 5, t, lab);
  double wmax = 0;
  for (size_t i = 0; i < n; i++) {
    const double y = y0 + (t[i] - lo) / (hi - lo) * (y1 - y0);
    cairo_set_source_rgb(f->cr, 0.2, 0.2, 0.2);
    stroke_line(f, x - 0.35 * f->fs, y, x, y, 1);
    /* centred on its tick; with f->tight kept within the axis (y1 is the top) */
    const double h = text_height(f, 0.85);
    double top = y - 0.5 * h;
    if (f->tight) top = fmax(y1 - 0.1 * f->fs, fmin(top, y0 + 0.1 * f->fs - h));
    wmax = fmax(wmax, cnf__fig_text(f, x - 0.5 * f->fs, top, 1, 0, 0, 0.85, 0, lab[i]));
  }
  if (label != NULL)
    cnf__fig_text(f, x - 0.7 * f->fs - wmax, 0.5 * (y0 + y1), 0.5, 1, -CNF__PI / 2, 1, 0, label);
}

void cnf__fig_frame(cnf__fig *f, double x, double y, double w, double h) {
  cairo_set_source_rgb(f->cr, 0.25, 0.25, 0.25);
  cairo_set_line_width(f->cr, 1);
  cairo_rectangle(f->cr, x, y, w, h);
  cairo_stroke(f->cr);
}

double cnf__fig_font(size_t size) {
  const double fs = (double)size / 28.0;
  return fs < 9 ? 9 : fs > 40 ? 40 : fs;
}

/* ---- colour ------------------------------------------------------------ */

void cnf__fig_viridis(double u, double c[3]) {
  /* viridis, sampled at nine points and interpolated linearly */
  static const unsigned char pts[9][3] = {{68, 1, 84},    {71, 44, 122},  {59, 82, 139},
                                          {44, 113, 142}, {33, 145, 140}, {39, 173, 129},
                                          {92, 200, 99},  {170, 220, 50}, {253, 231, 37}};
  if (!(u > 0)) u = 0;
  if (u > 1) u = 1;
  const double s = u * 8.0;
  int i = (int)s;
  if (i >= 8) i = 7;
  const double w = s - i;
  for (int k = 0; k < 3; k++) c[k] = ((1 - w) * pts[i][k] + w * pts[i + 1][k]) / 255.0;
}

int cnf__fig_raster(cnf__fig *f, const double *v, size_t rows, size_t cols, double lo, double hi,
                    double x, double y, double w, double h) {
  cairo_surface_t *img = cairo_image_surface_create(CAIRO_FORMAT_RGB24, (int)cols, (int)rows);
  if (cairo_surface_status(img) != CAIRO_STATUS_SUCCESS) {
    cairo_surface_destroy(img);
    return CNF_ERROR(f->ctx, CNF_ENOMEM, "%s: no memory for a %zu x %zu image", f->path, cols,
                     rows);
  }
  cairo_surface_flush(img);
  unsigned char *px = cairo_image_surface_get_data(img);
  const size_t stride = (size_t)cairo_image_surface_get_stride(img);
  for (size_t r = 0; r < rows; r++)
    for (size_t c = 0; c < cols; c++) {
      double rgb[3];
      cnf__fig_viridis((v[r * cols + c] - lo) / (hi - lo), rgb);
      uint32_t word = (uint32_t)lround(255 * rgb[0]) << 16 | (uint32_t)lround(255 * rgb[1]) << 8 |
                      (uint32_t)lround(255 * rgb[2]);
      memcpy(px + r * stride + 4 * c, &word, 4);
    }
  cairo_surface_mark_dirty(img);
  cairo_save(f->cr);
  cairo_rectangle(f->cr, x, y, w, h);
  cairo_clip(f->cr);
  cairo_translate(f->cr, x, y);
  cairo_scale(f->cr, w / (double)cols, h / (double)rows);
  cairo_set_source_surface(f->cr, img, 0, 0);
  cairo_pattern_set_filter(cairo_get_source(f->cr), CAIRO_FILTER_NEAREST);
  cairo_paint(f->cr);
  cairo_restore(f->cr);
  cairo_surface_destroy(img);
  return 0;
}

int cnf__fig_colourbar(cnf__fig *f, double x, double y, double w, double h, double lo, double hi,
                       const char *label) {
  enum { N = 256 };
  double v[N];
  for (size_t i = 0; i < N; i++) v[i] = 1.0 - ((double)i + 0.5) / N; /* top: 1 */
  int rc = cnf__fig_raster(f, v, N, 1, 0, 1, x, y, w, h);
  if (rc != 0) return rc;
  cnf__fig_frame(f, x, y, w, h);
  double t[16];
  char lab[16][32];
  const size_t n = cnf__fig_ticks(lo, hi, 5, t, lab);
  double wmax = 0;
  for (size_t i = 0; i < n; i++) {
    const double yy = y + h - (t[i] - lo) / (hi - lo) * h;
    cairo_set_source_rgb(f->cr, 0.2, 0.2, 0.2);
    stroke_line(f, x + w, yy, x + w + 0.35 * f->fs, yy, 1);
    wmax = fmax(wmax, cnf__fig_text(f, x + w + 0.5 * f->fs, yy, 0, 0.5, 0, 0.85, 0, lab[i]));
  }
  if (label != NULL)
    cnf__fig_text(f, x + w + 0.8 * f->fs + wmax, y + 0.5 * h, 0.5, 0, -CNF__PI / 2, 1, 0, label);
  return 0;
}

/* ---- legends ----------------------------------------------------------- */

static void key_symbol(cnf__fig *f, const cnf__key *k, double kx, double yy);

void cnf__fig_legend_size(cnf__fig *f, const cnf__key *keys, size_t n, double *w, double *h) {
  double wmax = 0;
  size_t rows = 0;
  for (size_t i = 0; i < n; i++) {
    if (keys[i].name == NULL) continue;
    wmax = fmax(wmax, cnf__fig_text_width(f, 0.9, 0, keys[i].name));
    rows++;
  }
  *w = rows ? wmax + 3.4 * f->fs : 0;
  *h = rows ? (double)rows * 1.3 * f->fs + 0.6 * f->fs : 0;
}

void cnf__fig_legend(cnf__fig *f, double x, double y, const cnf__key *keys, size_t n,
                     const double bg[3], double alpha) {
  double w, h;
  cnf__fig_legend_size(f, keys, n, &w, &h);
  if (w == 0) return;
  cairo_t *cr = f->cr;
  if (alpha > 0) {
    cairo_set_source_rgba(cr, bg[0], bg[1], bg[2], alpha);
    cairo_rectangle(cr, x, y, w, h);
    cairo_fill(cr);
  }
  double yy = y + 0.3 * f->fs + 0.65 * f->fs;
  for (size_t i = 0; i < n; i++) {
    const cnf__key *k = keys + i;
    if (k->name == NULL) continue;
    const double kx = x + 0.5 * f->fs, kw = 1.8 * f->fs;
    key_symbol(f, k, kx, yy);
    /* the name: dark on a light box, white on a dark one */
    const double lum = alpha > 0 ? 0.3 * bg[0] + 0.6 * bg[1] + 0.1 * bg[2] : 1;
    const double ink = lum < 0.5 ? 1.0 : 0.1;
    f->ink[0] = f->ink[1] = f->ink[2] = ink;
    cnf__fig_text(f, kx + kw + 0.6 * f->fs, yy, 0, 0.5, 0, 0.9, 0, k->name);
    f->ink[0] = f->ink[1] = f->ink[2] = 0.1;
    yy += 1.3 * f->fs;
  }
}

/* the key's symbol in a box of 1.8 fs wide, centred vertically on yy */
static void key_symbol(cnf__fig *f, const cnf__key *k, double kx, double yy) {
  cairo_t *cr = f->cr;
  const double kw = 1.8 * f->fs;
  cairo_set_source_rgb(cr, k->rgb[0], k->rgb[1], k->rgb[2]);
  if (k->kind == CNF__KEY_LINE || k->kind == CNF__KEY_DASHED) {
    const double dash[2] = {0.6 * f->fs, 0.35 * f->fs}; /* as the curves of lines.c */
    cairo_set_dash(cr, dash, k->kind == CNF__KEY_DASHED ? 2 : 0, 0);
    stroke_line(f, kx, yy, kx + kw, yy, 0.16 * f->fs);
    cairo_set_dash(cr, NULL, 0, 0);
  } else if (k->kind == CNF__KEY_POINT) {
    for (int d = 0; d < 3; d++) {
      cairo_arc(cr, kx + (0.2 + 0.3 * d) * kw, yy + (d == 1 ? -0.2 : 0.15) * f->fs, 0.16 * f->fs, 0,
                2 * CNF__PI);
      cairo_fill(cr);
    }
  } else {
    cairo_rectangle(cr, kx + 0.2 * kw, yy - 0.4 * f->fs, 0.6 * kw, 0.8 * f->fs);
    cairo_fill(cr);
  }
}

double cnf__fig_legend_row(cnf__fig *f, double xc, double y, const cnf__key *keys, size_t n) {
  double total = 0;
  for (size_t i = 0; i < n; i++)
    if (keys[i].name != NULL)
      total +=
          1.8 * f->fs + 0.5 * f->fs + cnf__fig_text_width(f, 0.9, 0, keys[i].name) + 1.5 * f->fs;
  if (total == 0) return 0;
  double x = xc - 0.5 * (total - 1.5 * f->fs);
  const double yy = y + 0.65 * f->fs;
  for (size_t i = 0; i < n; i++) {
    if (keys[i].name == NULL) continue;
    key_symbol(f, keys + i, x, yy);
    x += 2.3 * f->fs;
    x += cnf__fig_text(f, x, yy, 0, 0.5, 0, 0.9, 0, keys[i].name) + 1.5 * f->fs;
  }
  return 1.3 * f->fs;
}
