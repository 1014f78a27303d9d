/* draw.h: the drawing layer of src/plot, on cairo: one figure drawn once and
 * written as PNG, SVG or PDF (chosen by the path's extension), through
 * memory and the library's atomic writer, with the pieces every figure
 * shares: anchored text, "nice" axis ticks in data units, legends, a
 * viridis colour bar.
 *
 * Units are cairo user units: pixels in a PNG, points in SVG and PDF, so a
 * figure has the same layout in every format.  Every string drawn is also
 * kept, so the SVG carries the figure's text as <title> and <desc> (cairo
 * draws SVG text as glyph outlines, which no reader or search finds) and
 * the PDF its title as metadata. */
#ifndef CNF_PLOT_DRAW_H
#define CNF_PLOT_DRAW_H

#include <cairo.h>
#include <stddef.h>

#include "cnf.h"
#include "core.h"

#define CNF__PI 3.14159265358979323846

typedef enum { CNF__FIG_PNG, CNF__FIG_SVG, CNF__FIG_PDF } cnf__fig_format;

typedef struct cnf__fig {
  cnf_ctx *ctx;
  const char *path;
  cnf__fig_format format;
  double W, H;   /* size in user units */
  double fs;     /* the base font size */
  double ink[3]; /* the colour of text */
  int tight;     /* panels abut: tick numbers stay within their axis */
  cairo_surface_t *surf;
  cairo_t *cr;
  unsigned char *buf; /* the encoded file, grown by the stream writer */
  size_t n, cap;
  char *text; /* every string drawn, one per line */
  size_t tn, tcap;
  int oom;
} cnf__fig;

/* Start a W x H figure (rounded up to whole pixels) for path, white, with
 * base font size fs.  CNF_EINVAL for an extension other than .png, .svg,
 * .pdf (none: PNG); CNF_ENOMEM or CNF_EIO if cairo cannot start.  On error
 * nothing is left to free. */
int cnf__fig_begin(cnf_ctx *ctx, cnf__fig *f, const char *path, double W, double H, double fs);
/* Finish the drawing, encode it and write it to the path atomically
 * (cnf_file_write), titled title; frees f either way.  A cairo error
 * leaves no file and says what cairo reported. */
int cnf__fig_end(cnf__fig *f, const char *title);
/* Free f without writing anything. */
void cnf__fig_abort(cnf__fig *f);

/* Text s at (x, y) in size fs * scale, anchored at the fraction (ax, ay)
 * of its box (0, 0: top left; 0.5, 0.5: centre), rotated by angle radians
 * (-pi/2: reading upwards).  Returns its width. */
double cnf__fig_text(cnf__fig *f, double x, double y, double ax, double ay, double angle,
                     double scale, int bold, const char *s);
/* The width of s in size fs * scale. */
double cnf__fig_text_width(cnf__fig *f, double scale, int bold, const char *s);

/* Ticks of [lo, hi]: multiples of 1, 2 or 5 times a power of ten, about
 * `want` of them; at most 16 values into t, their labels (with the decimals
 * the step needs) into lab.  Returns the count. */
size_t cnf__fig_ticks(double lo, double hi, size_t want, double *t, char (*lab)[32]);

/* A horizontal axis under [x0, x1] at height y for data [lo, hi]: ticks,
 * numbers below, label (may be NULL) under them. */
void cnf__fig_xaxis(cnf__fig *f, double x0, double x1, double y, double lo, double hi,
                    const char *label);
/* A vertical axis left of [y0 (bottom), y1 (top)] at x for data [lo, hi];
 * the label reads upwards left of the numbers. */
void cnf__fig_yaxis(cnf__fig *f, double x, double y0, double y1, double lo, double hi,
                    const char *label);

/* viridis at u in [0, 1] (values outside are clamped) */
void cnf__fig_viridis(double u, double rgb[3]);
/* The viridis image of the values v (rows, cols) mapped from [lo, hi], row
 * 0 on top, painted into the rectangle (x, y, w, h) without smoothing. */
int cnf__fig_raster(cnf__fig *f, const double *v, size_t rows, size_t cols, double lo, double hi,
                    double x, double y, double w, double h);
/* A vertical viridis colour bar in (x, y, w, h) for [lo, hi], numbers on
 * its right and label (reading upwards) right of them. */
int cnf__fig_colourbar(cnf__fig *f, double x, double y, double w, double h, double lo, double hi,
                       const char *label);

/* Legend entries: a line (solid or dashed), a point set or a filled box. */
typedef enum { CNF__KEY_LINE, CNF__KEY_DASHED, CNF__KEY_POINT, CNF__KEY_BOX } cnf__key_kind;
typedef struct cnf__key {
  const char *name;
  double rgb[3];
  cnf__key_kind kind;
} cnf__key;
/* Size of the legend box of n entries. */
void cnf__fig_legend_size(cnf__fig *f, const cnf__key *keys, size_t n, double *w, double *h);
/* The legend with its top-left corner at (x, y), on a box of the given
 * background (alpha 0: none); entries whose name is NULL are skipped. */
void cnf__fig_legend(cnf__fig *f, double x, double y, const cnf__key *keys, size_t n,
                     const double bg[3], double alpha);

/* The legend as one row of entries centred on xc, its top at y; returns
 * its height. */
double cnf__fig_legend_row(cnf__fig *f, double xc, double y, const cnf__key *keys, size_t n);

/* A panel's frame (thin, dark grey). */
void cnf__fig_frame(cnf__fig *f, double x, double y, double w, double h);

/* The base font size of panels `size` a side: size / 28, within 9 .. 40. */
double cnf__fig_font(size_t size);

#endif /* CNF_PLOT_DRAW_H */
