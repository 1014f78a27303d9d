/* test_plot.c: the figures of src/plot, read back.
 *
 * Every figure kind (a flow's density, a strip and a grid of heat maps,
 * pairs, lines) is written as PNG, SVG and PDF.  The PNG is read back with
 * cairo: its size is the documented layout's (plot.c, lines.c), it is not
 * blank, and the heat map's colours are viridis at the right places (the
 * top of the scale at the density's peak).  Cairo's SVG draws text as glyph
 * outlines, so the words are checked in the <title> and <desc> the layer
 * adds, which hold every string drawn (titles, legend entries, tick labels,
 * panel names); the PDF carries the title as metadata.  Failures (an
 * unknown extension, a directory that does not exist, memory running out
 * inside cairo) leave no file and name the path. */
#define _POSIX_C_SOURCE 200809L
#include <cairo.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cnf.h"
#include "cnf_model.h"
#include "cnf_pde.h"
#include "core.h"
#include "draw.h"
#include "scratch.h"
#include "test_util.h"

static char dir[256];

static const char *path_of(const char *name) {
  static char p[512];
  return scratch_path(p, sizeof p, dir, name);
}

/* the file's bytes as a string (NULL if absent) */
static char *slurp(const char *path) {
  size_t n = 0;
  return (char *)scratch_read(path, &n);
}

/* the <desc> of an SVG holds s on a line of its own */
static int svg_says(const char *svg, const char *s) {
  const char *d = strstr(svg, "<desc>"), *e = strstr(svg, "</desc>");
  const size_t k = strlen(s);
  for (const char *p = d ? d + 6 : NULL; p != NULL && p < e;) {
    const char *nl = strchr(p, '\n');
    if (nl == NULL || nl > e) nl = e;
    if ((size_t)(nl - p) == k && memcmp(p, s, k) == 0) return 1;
    p = nl + 1;
  }
  return 0;
}

/* PNG: width, height and the fraction of pixels that are not white */
static int png_read(const char *path, int *w, int *h, double *ink) {
  cairo_surface_t *s = cairo_image_surface_create_from_png(path);
  if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) {
    printf("\n  %s: not a PNG (%s)\n", path, cairo_status_to_string(cairo_surface_status(s)));
    cairo_surface_destroy(s);
    return 0;
  }
  *w = cairo_image_surface_get_width(s), *h = cairo_image_surface_get_height(s);
  const unsigned char *px = cairo_image_surface_get_data(s);
  const int stride = cairo_image_surface_get_stride(s);
  size_t dark = 0;
  for (int y = 0; y < *h; y++)
    for (int x = 0; x < *w; x++) {
      uint32_t v;
      memcpy(&v, px + (size_t)y * (size_t)stride + 4 * (size_t)x, 4);
      dark += (v & 0xFFFFFF) != 0xFFFFFF;
    }
  *ink = (double)dark / ((double)*w * *h);
  cairo_surface_destroy(s);
  return 1;
}

/* the RGB of pixel (x, y) of a PNG */
static void png_pixel(const char *path, int x, int y, int rgb[3]) {
  cairo_surface_t *s = cairo_image_surface_create_from_png(path);
  uint32_t v = 0;
  if (cairo_surface_status(s) == CAIRO_STATUS_SUCCESS)
    memcpy(&v,
           cairo_image_surface_get_data(s) + (size_t)y * (size_t)cairo_image_surface_get_stride(s) +
               4 * (size_t)x,
           4);
  cairo_surface_destroy(s);
  rgb[0] = (int)(v >> 16 & 255), rgb[1] = (int)(v >> 8 & 255), rgb[2] = (int)(v & 255);
}

/* a temporary file left in the scratch directory */
static int leftover_tmp(void) {
  DIR *d = opendir(dir);
  int found = 0;
  for (struct dirent *e; d != NULL && (e = readdir(d)) != NULL;)
    if (strstr(e->d_name, ".tmp") != NULL) found = 1, printf("\n  left over: %s\n", e->d_name);
  if (d != NULL) closedir(d);
  return found;
}

/* the three files of one figure: PNG of w x h with ink in [lo, hi], SVG
 * saying every string of says (NULL-terminated), PDF titled title; no
 * temporary file left beside them */
static void check_three(const char *base, int w, int h, double lo, double hi, const char *title,
                        const char *const *says) {
  char name[64];
  int pw = 0, ph = 0;
  double ink = 0;
  snprintf(name, sizeof name, "%s.png", base);
  CU_ASSERT_TRUE(png_read(path_of(name), &pw, &ph, &ink));
  CU_ASSERT_EQUAL(pw, w);
  CU_ASSERT_EQUAL(ph, h);
  CU_ASSERT_TRUE(ink >= lo && ink <= hi);
  if (pw != w || ph != h || !(ink >= lo && ink <= hi))
    printf("\n  %s: %d x %d (expected %d x %d), ink %.3f (expected %.3f .. %.3f)\n", name, pw, ph,
           w, h, ink, lo, hi);
  snprintf(name, sizeof name, "%s.svg", base);
  char *svg = slurp(path_of(name));
  CU_ASSERT_PTR_NOT_NULL_FATAL(svg);
  CU_ASSERT_PTR_NOT_NULL(strstr(svg, "<svg"));
  char t[256];
  snprintf(t, sizeof t, "<title>%s</title>", title);
  CU_ASSERT_PTR_NOT_NULL(strstr(svg, t));
  for (const char *const *s = says; *s != NULL; s++) {
    CU_ASSERT_TRUE(svg_says(svg, *s));
    if (!svg_says(svg, *s)) printf("\n  %s does not say '%s'\n", name, *s);
  }
  free(svg);
  snprintf(name, sizeof name, "%s.pdf", base);
  size_t n = 0;
  unsigned char *pdf = scratch_read(path_of(name), &n);
  CU_ASSERT_PTR_NOT_NULL_FATAL(pdf);
  CU_ASSERT_EQUAL(memcmp(pdf, "%PDF-", 5), 0);
  snprintf(t, sizeof t, "/Title (%s)", title);
  int titled = 0; /* a binary file: search every byte, past NULs */
  for (size_t i = 0; i + strlen(t) <= n && !titled; i++) titled = !memcmp(pdf + i, t, strlen(t));
  CU_ASSERT_TRUE(titled);
  free(pdf);
  CU_ASSERT_FALSE(leftover_tmp());
}

/* ---- ticks --------------------------------------------------------------- */

static void test_ticks(void) {
  double t[16];
  char lab[16][32];
  /* [-4, 4]: step 2 (8 / 5 = 1.6 rounds to 2) */
  size_t n = cnf__fig_ticks(-4, 4, 5, t, lab);
  CU_ASSERT_EQUAL_FATAL(n, 5);
  const double want[5] = {-4, -2, 0, 2, 4};
  CHECK_CLOSE(t, want, 5, 0, 1e-12, "ticks of [-4, 4]");
  CU_ASSERT_STRING_EQUAL(lab[0], "-4");
  CU_ASSERT_STRING_EQUAL(lab[2], "0");
  /* [0, 0.1585] (a standard normal's peak on a grid): step 0.02, two decimals */
  n = cnf__fig_ticks(0, 0.1585, 5, t, lab);
  CU_ASSERT_EQUAL(n, 8);
  CU_ASSERT_STRING_EQUAL(lab[7], "0.14");
  CHECK_NEAR(t[7], 0.14, 1e-12);
  /* [40, 100]: step 10 (12 rounds to 10), whole numbers */
  n = cnf__fig_ticks(40, 100, 5, t, lab);
  CU_ASSERT_EQUAL(n, 7);
  CU_ASSERT_STRING_EQUAL(lab[0], "40");
  CU_ASSERT_STRING_EQUAL(lab[6], "100");
  /* [-0.3, 0.7]: step 0.2 from -0.2; "0.0", never "-0.0" */
  n = cnf__fig_ticks(-0.3, 0.7, 5, t, lab);
  CU_ASSERT_EQUAL(n, 5);
  CU_ASSERT_STRING_EQUAL(lab[0], "-0.2");
  CU_ASSERT_STRING_EQUAL(lab[1], "0.0");
  /* [3.2, 3.7]: step 0.1 */
  n = cnf__fig_ticks(3.2, 3.7, 5, t, lab);
  CU_ASSERT_EQUAL(n, 6);
  CU_ASSERT_STRING_EQUAL(lab[5], "3.7");
  /* empty and non-finite ranges: none */
  CU_ASSERT_EQUAL(cnf__fig_ticks(1, 1, 5, t, lab), 0);
  CU_ASSERT_EQUAL(cnf__fig_ticks(0, INFINITY, 5, t, lab), 0);
}

/* ---- densities ----------------------------------------------------------- */

/* a 2-D flow with every parameter 0: f = 0, the identity map, so p is the
 * standard normal density, peak 1 / (2 pi) = 0.159 */
static cnf_flow *identity_flow(cnf_ctx *ctx) {
  cnf_mlp_config cfg;
  cnf_mlp_config_default(&cfg, 2);
  CU_ASSERT_EQUAL(cnf_mlp_parse_hidden(&cfg, "8"), 0);
  cnf_flow *f = NULL;
  CU_ASSERT_EQUAL(cnf_flow_create(&f, ctx, &cfg, 1, 0.5, 1), 0);
  if (f != NULL) memset(cnf_flow_params(f), 0, cnf_flow_param_count(f) * sizeof(double));
  return f;
}

static void test_density(void) {
  cnf_ctx *ctx = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_ctx_create(&ctx), 0);
  cnf_flow *f = identity_flow(ctx);
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  cnf_options opt;
  cnf_options_default(&opt);
  cnf_plot_options po;
  cnf_plot_options_default(&po);
  CU_ASSERT_EQUAL(po.size, 400);
  po.size = 280; /* fs = 10 */
  po.title = "Standard normal";
  po.data_name = "points";
  const double data[6] = {0.5, 0.5, -1, 2, 3, -3};
  const char *ext[3] = {"png", "svg", "pdf"};
  for (int e = 0; e < 3; e++) {
    char name[32];
    snprintf(name, sizeof name, "density.%s", ext[e]);
    CU_ASSERT_EQUAL(cnf_plot_density_with(f, &opt, &po, 4, 64, data, 3, path_of(name)), 0);
  }
  /* 5.5 fs + 280 + 8 fs wide, 2.8 fs + 280 + 3.8 fs high */
  const char *says[] = {"Standard normal",
                        "points (n = 3)",
                        "density p(x)",
                        "x1",
                        "x2",
                        "-4",
                        "-2",
                        "0",
                        "2",
                        "4",
                        "0.14",
                        "0.00",
                        NULL};
  check_three("density", 415, 346, 0.5, 0.9, "Standard normal", says);
  /* the peak is just below 1 / (2 pi) = 0.159 on a grid: no 0.16 tick */
  char *svg = slurp(path_of("density.svg"));
  CU_ASSERT_PTR_NULL(strstr(svg, "\n0.16\n"));
  free(svg);
  /* colours: the panel spans (55, 28) .. (335, 308); its centre, the
   * density's peak, is the top of viridis (253, 231, 37) and its corner,
   * p = 0.159 exp(-15.5) = 3e-8, the bottom (68, 1, 84) */
  int c[3];
  png_pixel(path_of("density.png"), 195 - 3, 168 + 3, c);
  CU_ASSERT_TRUE(abs(c[0] - 253) <= 12 && abs(c[1] - 231) <= 12 && abs(c[2] - 37) <= 12);
  png_pixel(path_of("density.png"), 58, 305, c);
  CU_ASSERT_TRUE(abs(c[0] - 68) <= 2 && abs(c[1] - 1) <= 2 && abs(c[2] - 84) <= 2);
  /* log-density: the colour bar says so and spans max - 10 .. max, with
   * max = -log(2 pi) - (small) = -1.84 */
  po.log_density = 1;
  po.title = NULL;
  CU_ASSERT_EQUAL(cnf_plot_density_with(f, &opt, &po, 4, 64, NULL, 0, path_of("logd.svg")), 0);
  svg = slurp(path_of("logd.svg"));
  CU_ASSERT_PTR_NOT_NULL(strstr(svg, "<title>Log-density of the flow</title>"));
  CU_ASSERT_TRUE(svg_says(svg, "log density log p(x)"));
  CU_ASSERT_TRUE(svg_says(svg, "-10") && svg_says(svg, "-4") && !svg_says(svg, "-12"));
  free(svg);
  /* the old signature still works: default size 400, fs = 400 / 28 */
  CU_ASSERT_EQUAL(cnf_plot_density(f, &opt, 4, 32, NULL, 0, path_of("old.png")), 0);
  int w = 0, h = 0;
  double ink = 0;
  CU_ASSERT_TRUE(png_read(path_of("old.png"), &w, &h, &ink));
  CU_ASSERT_EQUAL(w, 593); /* ceil(400 + 13.5 * 400 / 28) */
  CU_ASSERT_EQUAL(h, 495); /* ceil(400 + 6.6 * 400 / 28) */
  cnf_flow_free(f);
  cnf_ctx_free(ctx);
}

/* heat maps in data units (a standardization's extent), a strip of 3 and a
 * grid of 5 panels with titles */
static void test_heatmaps(void) {
  cnf_ctx *ctx = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_ctx_create(&ctx), 0);
  enum { G = 16 };
  double x[2 * G * G], lp[5 * G * G];
  cnf_plot_grid(1, G, x);
  for (size_t k = 0; k < 5; k++) /* panel k: a bump at (k - 2) / 2 */
    for (size_t i = 0; i < G * G; i++) {
      const double dx = x[2 * i] - ((double)k - 2) / 2, dy = x[2 * i + 1];
      lp[k * G * G + i] = -2 * (dx * dx + dy * dy) - (double)k;
    }
  cnf_plot_options po;
  cnf_plot_options_default(&po);
  po.size = 280;
  const char *names[5] = {"cnf: test NLL 2.922", "realnvp: test NLL 3.367", "third", "fourth",
                          "fifth"};
  po.names = names;
  po.title = "Three flows";
  po.xlim[0] = 3, po.xlim[1] = 7, po.ylim[0] = 40, po.ylim[1] = 100;
  const char *ext[3] = {"png", "svg", "pdf"};
  for (int e = 0; e < 3; e++) {
    char name[32];
    snprintf(name, sizeof name, "strip.%s", ext[e]);
    CU_ASSERT_EQUAL(cnf_plot_heatmaps_with(ctx, &po, 3, G, lp, 1, NULL, 0, path_of(name)), 0);
  }
  /* 5.5 fs + 3 * 280 + 2 * 1.2 fs + 8 fs = 999; 2.8 fs + 1.6 fs + 280 + 3.8 fs = 362 */
  const char *says[] = {"cnf: test NLL 2.922",
                        "realnvp: test NLL 3.367",
                        "third",
                        "3",
                        "5",
                        "7",
                        "40",
                        "70",
                        "100",
                        "density p(x)",
                        NULL};
  check_three("strip", 999, 362, 0.6, 0.95, "Three flows", says);
  /* five panels: 3 columns, 2 rows of 1.6 fs + 280 + 3.8 fs each */
  po.title = "Five";
  for (int e = 0; e < 3; e++) {
    char name[32];
    snprintf(name, sizeof name, "grid.%s", ext[e]);
    CU_ASSERT_EQUAL(cnf_plot_heatmaps_with(ctx, &po, 5, G, lp, 1, NULL, 0, path_of(name)), 0);
  }
  const char *says5[] = {"fourth", "fifth", NULL};
  check_three("grid", 999, 696, 0.4, 0.9, "Five", says5);
  /* log-densities whose exp overflows: drawn as log p, and the bar says so */
  for (size_t i = 0; i < 2 * G * G; i++) lp[i] += 1000;
  CU_ASSERT_EQUAL(cnf_plot_heatmaps(ctx, 2, G, lp, 1, NULL, 0, path_of("big.svg")), 0);
  char *big = slurp(path_of("big.svg"));
  CU_ASSERT_TRUE(big != NULL && svg_says(big, "log density log p(x)") && svg_says(big, "990"));
  free(big);
  for (size_t i = 0; i < 2 * G * G; i++) lp[i] -= 1000;
  /* the old signature: no names, [-L, L] */
  CU_ASSERT_EQUAL(cnf_plot_heatmaps(ctx, 2, G, lp, 1, NULL, 0, path_of("old2.svg")), 0);
  char *svg = slurp(path_of("old2.svg"));
  CU_ASSERT_TRUE(svg_says(svg, "-1.0") && svg_says(svg, "1.0") && svg_says(svg, "Densities"));
  free(svg);
  cnf_ctx_free(ctx);
}

static void test_pairs(void) {
  cnf_ctx *ctx = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_ctx_create(&ctx), 0);
  enum { N = 500, D = 3 };
  double xs[N * D], data[N * D];
  fill_gauss(xs, N * D, 7);
  fill_gauss(data, N * D, 8);
  for (size_t i = 0; i < N; i++) data[i * D + 2] = 100 + 10 * data[i * D + 2]; /* 70 .. 130 */
  cnf_plot_options po;
  cnf_plot_options_default(&po);
  po.size = 280;
  const char *names[D] = {"eruptions", "waiting", "height"};
  po.names = names;
  po.title = "Pairs";
  po.sample_name = "flow";
  const char *ext[3] = {"png", "svg", "pdf"};
  for (int e = 0; e < 3; e++) {
    char name[32];
    snprintf(name, sizeof name, "pairs.%s", ext[e]);
    CU_ASSERT_EQUAL(cnf_plot_pairs_of_with(ctx, &po, xs, N, D, 6, data, N, path_of(name)), 0);
  }
  /* 6 fs + 3 * 280 + 2 * 0.25 fs + 1 fs; 4.6 fs + 845 + 4 fs */
  const char *says[] = {"eruptions",      "waiting", "height", "data (n = 500)",
                        "flow (n = 500)", "100",     NULL};
  check_three("pairs", 915, 931, 0.02, 0.6, "Pairs", says);
  /* the old signature: 2 of the 3 coordinates, default names */
  CU_ASSERT_EQUAL(cnf_plot_pairs_of(ctx, xs, N, D, 2, NULL, 0, path_of("old.svg")), 0);
  char *svg = slurp(path_of("old.svg"));
  CU_ASSERT_TRUE(svg_says(svg, "x1") && svg_says(svg, "x2") && svg_says(svg, "samples (n = 500)"));
  CU_ASSERT_FALSE(svg_says(svg, "x3"));
  free(svg);
  cnf_ctx_free(ctx);
}

static void test_lines(void) {
  cnf_ctx *ctx = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_ctx_create(&ctx), 0);
  enum { G = 200 };
  double x[G], y[2 * G];
  for (size_t i = 0; i < G; i++) {
    x[i] = -3 + 6.0 * (double)i / (G - 1);
    y[i] = exp(-0.5 * x[i] * x[i]) / sqrt(2 * 3.141592653589793);
    y[G + i] = 0.5 * y[i];
  }
  const int dashed[2] = {0, 1};
  const char *names[2] = {"reference, t = 0.5", "CNF, t = 0.5"};
  cnf_plot_options po;
  cnf_plot_options_default(&po);
  po.title = "Two curves";
  po.xlabel = "position x";
  po.ylabel = "density p(t, x)";
  po.names = names;
  const char *ext[3] = {"png", "svg", "pdf"};
  for (int e = 0; e < 3; e++) {
    char name[32];
    snprintf(name, sizeof name, "lines.%s", ext[e]);
    CU_ASSERT_EQUAL(
        cnf_plot_lines_with(ctx, &po, path_of(name), 640, 400, G, x, 2, y, NULL, dashed), 0);
  }
  const char *says[] = {"reference, t = 0.5",
                        "CNF, t = 0.5",
                        "position x",
                        "density p(t, x)",
                        "-3",
                        "0",
                        "3",
                        "0.0",
                        "0.4",
                        NULL};
  check_three("lines", 640, 400, 0.01, 0.3, "Two curves", says);
  /* the old signature: no legend, default labels */
  CU_ASSERT_EQUAL(cnf_plot_lines(ctx, path_of("old.svg"), 640, 400, G, x, 2, y, NULL, NULL), 0);
  char *svg = slurp(path_of("old.svg"));
  CU_ASSERT_TRUE(svg_says(svg, "x") && svg_says(svg, "y"));
  CU_ASSERT_FALSE(svg_says(svg, "CNF, t = 0.5"));
  free(svg);
  cnf_ctx_free(ctx);
}

/* ---- trajectories --------------------------------------------------------- */

/* Two panels of B paths each, from a circle of radius 2 spiralling in to
 * radius 0.5 (panel 2: straight in): titled panels, the legend, axes. */
static void test_paths(void) {
  cnf_ctx *ctx = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_ctx_create(&ctx), 0);
  enum { B = 20, N = 11, D = 2 };
  static double p[2 * N * B * D];
  for (size_t k = 0; k < 2; k++)
    for (size_t j = 0; j < N; j++)
      for (size_t b = 0; b < B; b++) {
        const double s = (double)j / (N - 1), r = 2 - 1.5 * s;
        const double a = 2 * 3.141592653589793 * (double)b / B + (k == 0 ? 1.2 * s : 0);
        p[((k * N + j) * B + b) * D] = r * cos(a);
        p[((k * N + j) * B + b) * D + 1] = r * sin(a);
      }
  const char *names[2] = {"spiral", "straight"};
  cnf_plot_options po;
  cnf_plot_options_default(&po);
  po.title = "Two panels of paths";
  po.names = names;
  const char *ext[3] = {"png", "svg", "pdf"};
  for (int e = 0; e < 3; e++) {
    char name[32];
    snprintf(name, sizeof name, "paths.%s", ext[e]);
    CU_ASSERT_EQUAL(cnf_plot_paths_with(ctx, &po, 2, N, B, D, p, path_of(name)), 0);
  }
  const char *says[] = {
      "spiral", "straight", "paths (n = 20)", "data (t = 0)", "latent (t = T)", "x1", "x2", "-2",
      "2",      NULL};
  /* 2 panels of 400, font 400 / 28: margins 5.5 + 1.2 + 1.5 fs wide and
   * 2.8 + 1.8 + 1.6 + 3.8 fs high */
  const double fs = 400.0 / 28;
  check_three("paths", (int)ceil(800 + 8.2 * fs), (int)ceil(400 + 10.0 * fs), 0.01, 0.4,
              "Two panels of paths", says);
  /* a start point is blue, an end point orange: the first path's ends */
  int rgb[3];
  const double half = 2.1, x0 = 5.5 * fs, y0 = 2.8 * fs + 1.8 * fs + 1.6 * fs;
  png_pixel(path_of("paths.png"), (int)(x0 + (2 + half) / (2 * half) * 400), (int)(y0 + 200), rgb);
  CU_ASSERT_TRUE(rgb[2] > rgb[0] + 40); /* blue at (2, 0) */
  png_pixel(path_of("paths.png"), (int)(x0 + 400 + 1.2 * fs + (0.5 + half) / (2 * half) * 400),
            (int)(y0 + 200), rgb);
  CU_ASSERT_TRUE(rgb[0] > rgb[2] + 40); /* orange at (0.5, 0) in panel 2 */
  /* bad shapes: no file */
  CU_ASSERT_EQUAL(cnf_plot_paths_with(ctx, &po, 2, 1, B, D, p, path_of("bad.png")), CNF_EINVAL);
  CU_ASSERT_EQUAL(cnf_plot_paths_with(ctx, &po, 2, N, B, 1, p, path_of("bad.png")), CNF_EINVAL);
  CU_ASSERT_PTR_NULL(slurp(path_of("bad.png")));
  cnf_ctx_free(ctx);
}

/* The density in time: a 2-D CNF's log p_t at t = 0, T/2, T on one grid
 * (cnf_model_logp_at), drawn as a strip titled "t = ..." on one scale
 * in the three formats. */
static void test_time_strip(void) {
  cnf_ctx *ctx = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_ctx_create(&ctx), 0);
  cnf_model_spec sp;
  cnf_model_spec_default(&sp, "cnf", 2);
  sp.hidden = "8-8";
  cnf_model *m = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_model_create(&m, ctx, &sp, 1), 0);
  enum { G = 40 };
  static double x[G * G * 2], lp[3 * G * G];
  cnf_plot_grid(3, G, x);
  const char *names[3] = {"t = 0 (data)", "t = 0.25", "t = 0.5 (latent)"};
  for (size_t k = 0; k < 3; k++)
    CU_ASSERT_EQUAL_FATAL(
        cnf_model_logp_at(m, NULL, 0.25 * (double)k, G * G, x, lp + k * G * G, NULL), 0);
  cnf_plot_options po;
  cnf_plot_options_default(&po);
  po.title = "The density in time";
  po.names = names;
  po.size = 200;
  const char *ext[3] = {"png", "svg", "pdf"};
  for (int e = 0; e < 3; e++) {
    char name[32];
    snprintf(name, sizeof name, "times.%s", ext[e]);
    CU_ASSERT_EQUAL(cnf_plot_heatmaps_with(ctx, &po, 3, G, lp, 3, NULL, 0, path_of(name)), 0);
  }
  const char *says[] = {"t = 0 (data)", "t = 0.25", "t = 0.5 (latent)", "density p(x)", NULL};
  /* 3 panels of 200, font 9: 5.5 + 2 x 1.2 + 8 fs wide, 2.8 + 1.6 + 3.8 fs high */
  check_three("times", (int)ceil(600 + 15.9 * 9), (int)ceil(200 + 8.2 * 9), 0.5, 0.95,
              "The density in time", says);
  cnf_model_free(m);
  cnf_ctx_free(ctx);
}

/* ---- failures ------------------------------------------------------------ */

static void test_failures(void) {
  cnf_ctx *ctx = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_ctx_create(&ctx), 0);
  enum { G = 8 };
  double lp[G * G] = {0};
  char sub[512], bad[600];
  /* a directory that does not exist: CNF_EIO naming the path, no file */
  snprintf(sub, sizeof sub, "%s/missing", dir);
  for (int e = 0; e < 3; e++) {
    snprintf(bad, sizeof bad, "%s/fig.%s", sub, e == 0 ? "png" : e == 1 ? "svg" : "pdf");
    const int rc = cnf_plot_heatmaps(ctx, 1, G, lp, 1, NULL, 0, bad);
    CU_ASSERT_EQUAL(rc, CNF_EIO);
    CU_ASSERT_PTR_NOT_NULL(strstr(cnf_ctx_errmsg(ctx), bad));
  }
  /* an unknown extension: CNF_EINVAL, the formats named, no file */
  const int before = scratch_count(dir, NULL, 0);
  CU_ASSERT_EQUAL(cnf_plot_heatmaps(ctx, 1, G, lp, 1, NULL, 0, path_of("fig.jpg")), CNF_EINVAL);
  CU_ASSERT_PTR_NOT_NULL(strstr(cnf_ctx_errmsg(ctx), ".png, .svg or .pdf"));
  CU_ASSERT_EQUAL(scratch_count(dir, NULL, 0), before);
  /* memory running out at every allocation in turn, cairo's stream buffer
   * included: a clean CNF_ENOMEM and no file (and no temporary), until the
   * figure is written; an existing file is left as it was */
  CU_ASSERT_EQUAL_FATAL(scratch_write(path_of("keep.svg"), "old", 3), 0);
  int done = 0;
  for (long k = 0; k < 64 && !done; k++) {
    cnf__alloc_fail_after(k);
    const int rc = cnf_plot_heatmaps(ctx, 1, G, lp, 1, NULL, 0, path_of("keep.svg"));
    cnf__alloc_fail_after(-1);
    if (rc == 0) {
      done = 1;
      break;
    }
    CU_ASSERT_EQUAL(rc, CNF_ENOMEM);
    size_t n = 0;
    unsigned char *old = scratch_read(path_of("keep.svg"), &n);
    CU_ASSERT_TRUE(old != NULL && n == 3 && memcmp(old, "old", 3) == 0);
    free(old);
    CU_ASSERT_EQUAL(scratch_count(dir, NULL, 0), before + 1);
  }
  CU_ASSERT_TRUE(done);
  /* bad arguments */
  cnf_plot_options po;
  cnf_plot_options_default(&po);
  po.size = 10;
  CU_ASSERT_EQUAL(cnf_plot_heatmaps_with(ctx, &po, 1, G, lp, 1, NULL, 0, path_of("s.png")),
                  CNF_EINVAL);
  CU_ASSERT_EQUAL(cnf_plot_heatmaps(ctx, 0, G, lp, 1, NULL, 0, path_of("s.png")), CNF_EINVAL);
  double x[G] = {0, 1, 2, 3, 4, 5, 6, 7};
  CU_ASSERT_EQUAL(cnf_plot_lines(ctx, path_of("s.png"), 100, 100, G, x, 1, x, NULL, NULL),
                  CNF_EINVAL);
  CU_ASSERT_EQUAL(scratch_count(dir, NULL, 0), before + 1);
  cnf_ctx_free(ctx);
}

/* The header of a CSV file names a pairs plot's coordinates. */
static void test_csv_header(void) {
  cnf_ctx *ctx = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_ctx_create(&ctx), 0);
  char **names = NULL;
  size_t cols = 9;
  const char *h = " eruptions ,\"waiting\",z\r\n1,2,3\n";
  CU_ASSERT_EQUAL_FATAL(scratch_write(path_of("h.csv"), h, strlen(h)), 0);
  CU_ASSERT_EQUAL(cnf_csv_header(ctx, path_of("h.csv"), &names, &cols), 0);
  CU_ASSERT_EQUAL_FATAL(cols, 3);
  CU_ASSERT_STRING_EQUAL(names[0], "eruptions");
  CU_ASSERT_STRING_EQUAL(names[1], "waiting");
  CU_ASSERT_STRING_EQUAL(names[2], "z");
  CU_ASSERT_PTR_NULL(names[3]);
  cnf_free(names);
  /* no header: the first row has a number */
  CU_ASSERT_EQUAL_FATAL(scratch_write(path_of("n.csv"), "a,2\n1,2\n", 8), 0);
  CU_ASSERT_EQUAL(cnf_csv_header(ctx, path_of("n.csv"), &names, &cols), 0);
  CU_ASSERT_TRUE(names == NULL && cols == 0);
  CU_ASSERT_EQUAL(cnf_csv_header(ctx, "-", &names, &cols), 0);
  CU_ASSERT_TRUE(names == NULL && cols == 0);
  CU_ASSERT_EQUAL(cnf_csv_header(ctx, path_of("absent.csv"), &names, &cols), CNF_EIO);
  cnf_ctx_free(ctx);
}

/* cnf_grid_points: G x G points with the ends exactly -L and L, x1
 * fastest, spacing 2L/(G - 1); cnf_plot_grid: cell midpoints, x2 from the
 * top down */
static void test_grids(void) {
  const size_t G = 7;
  const double L = 3.3;
  double x[2 * 7 * 7], y[2 * 7 * 7];
  cnf_grid_points(L, G, x);
  CU_ASSERT_EQUAL(x[0], -L);
  CU_ASSERT_EQUAL(x[1], -L);
  CU_ASSERT_EQUAL(x[2 * (G - 1)], L);   /* the last of row 0: x1 = L */
  CU_ASSERT_EQUAL(x[2 * G * G - 1], L); /* the last row: x2 = L */
  double worst = 0.0;
  for (size_t j = 0; j < G; j++)
    for (size_t i = 0; i < G; i++) {
      worst = fmax(worst, fabs(x[2 * (j * G + i)] - (-L + 2 * L * (double)i / (double)(G - 1))));
      worst = fmax(worst, fabs(x[2 * (j * G + i) + 1] - (-L + 2 * L * (double)j / (double)(G - 1))));
    }
  CU_ASSERT_TRUE(worst <= 1e-15);
  cnf_plot_grid(L, G, y);
  CHECK_NEAR(y[0], -L + L / (double)G, 1e-15);
  CHECK_NEAR(y[1], L - L / (double)G, 1e-15);
}

static const test_entry plot_tests[] = {
    {"grids: cnf_grid_points (ends included) and cnf_plot_grid (midpoints)", test_grids},
    {"ticks: 1-2-5 steps, decimals, no -0", test_ticks},
    {"density: PNG, SVG, PDF; size, colours, text", test_density},
    {"heat maps: strip and grid in data units, panel titles", test_heatmaps},
    {"pairs: names, legend, size", test_pairs},
    {"lines: legend, axes, size", test_lines},
    {"trajectories: panels, legend, colours of the ends", test_paths},
    {"the density in time: a strip titled by its times", test_time_strip},
    {"failures: no file, clear errors", test_failures},
    {"CSV header for coordinate names", test_csv_header},
    {NULL, NULL},
};

int main(void) {
  if (scratch_dir(dir, sizeof dir, "plot") != 0) return 1;
  const char *const names[] = {"plot"};
  const test_entry *const tests[] = {plot_tests};
  const int rc = run_suites(names, tests, 1);
  if (getenv("CNF_KEEP_FIGURES") == NULL) scratch_rmdir(dir); /* to look at them */
  return rc;
}
