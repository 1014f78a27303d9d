/* toy.c: the ten 2-D toy densities of FFJORD (lib/toy_data.py), drawn from
 * a seeded GSL generator.  Each follows FFJORD's generator (and the
 * scikit-learn helpers it calls) in distribution, not in random stream:
 *
 *   swissroll     t = 1.5 pi (1 + 2u); (t cos t, t sin t) + N(0, 1) noise, / 5
 *   circles       two circles of radii 1 and 0.5 (n/2 each, evenly spaced
 *                 angles), + N(0, 0.08^2) noise, x 3
 *   rings         four circles of radii 1, .75, .5, .25 (n/4 each, evenly
 *                 spaced angles), x 3, + N(0, 0.08^2) noise
 *   moons         scikit-learn's two moons, noise 0.1, x 2 + (-1, -0.2)
 *   8gaussians    centres 4 (cos, sin)(k pi / 4), + N(0, 0.5^2), / 1.414
 *   pinwheel      5 arms: radial N(1, 0.3^2), tangential N(0, 0.1^2),
 *                 rotated by 2 pi c / 5 + 0.25 exp(radial), x 2
 *   2spirals      n = sqrt(u) 3 pi; (-cos(n) n + U(0, .5), sin(n) n +
 *                 U(0, .5)) and its negative, / 3, + N(0, 0.1^2)
 *   checkerboard  x1 ~ U(-2, 2), x2 ~ U(0, 1) - 2 Bernoulli + floor(x1) mod 2,
 *                 x 2
 *   line          x ~ U(-2.5, 2.5), y = x
 *   cos           x ~ U(-2.5, 2.5), y = 2.5 sin(x)
 *
 * Rows are shuffled where FFJORD's are (so any prefix is a fair sample). */
#include <math.h>
#include <string.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "core.h"

#define PI 3.14159265358979323846

static const char *const toy_names[] = {
    "swissroll", "circles",  "rings",        "moons", "8gaussians",
    "pinwheel",  "2spirals", "checkerboard", "line",  "cos",  NULL};

const char *const *cnf_toy_names(void) { return toy_names; }

static void shuffle_rows(gsl_rng *r, double *x, size_t n) {
  for (size_t i = n; i-- > 1;) {
    size_t j = gsl_rng_uniform_int(r, i + 1);
    double a = x[2 * i], b = x[2 * i + 1];
    x[2 * i] = x[2 * j], x[2 * i + 1] = x[2 * j + 1];
    x[2 * j] = a, x[2 * j + 1] = b;
  }
}

/* points on k circles with radii rad[c] and counts cnt[c], evenly spaced
 * angles over [0, 2 pi) (or [0, pi] for half circles) */
static void circle_points(double *x, size_t n, double radius, size_t *pos) {
  for (size_t i = 0; i < n; i++) {
    double a = 2.0 * PI * (double)i / (double)n;
    x[2 * *pos] = radius * cos(a);
    x[2 * *pos + 1] = radius * sin(a);
    (*pos)++;
  }
}

int cnf_toy_sample(const char *name, size_t n, uint64_t seed, double *x) {
  if (name == NULL || x == NULL) return CNF_EINVAL;
  int which = -1;
  for (int i = 0; toy_names[i] != NULL; i++)
    if (strcmp(name, toy_names[i]) == 0) which = i;
  if (which < 0) return CNF_EINVAL;
  if (n == 0) return 0;
  gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
  if (r == NULL) return CNF_ENOMEM;
  gsl_rng_set(r, cnf__seed32(cnf_seed_derive(seed, "toy", 0)));
  size_t pos = 0;
  switch (which) {
    case 0: /* swissroll */
      for (size_t i = 0; i < n; i++) {
        double t = 1.5 * PI * (1.0 + 2.0 * gsl_rng_uniform(r));
        double nx = gsl_ran_gaussian_ziggurat(r, 1.0);
        (void)gsl_ran_gaussian_ziggurat(r, 1.0); /* the dropped height axis */
        double nz = gsl_ran_gaussian_ziggurat(r, 1.0);
        x[2 * i] = (t * cos(t) + nx) / 5.0;
        x[2 * i + 1] = (t * sin(t) + nz) / 5.0;
      }
      break;
    case 1: { /* circles */
      size_t n_out = n / 2, n_in = n - n_out;
      circle_points(x, n_out, 1.0, &pos);
      circle_points(x, n_in, 0.5, &pos);
      for (size_t i = 0; i < 2 * n; i++) x[i] = 3.0 * (x[i] + gsl_ran_gaussian_ziggurat(r, 0.08));
      shuffle_rows(r, x, n);
      break;
    }
    case 2: { /* rings */
      size_t q = n / 4, n1 = n - 3 * q;
      circle_points(x, q, 1.0, &pos);
      circle_points(x, q, 0.75, &pos);
      circle_points(x, q, 0.5, &pos);
      circle_points(x, n1, 0.25, &pos);
      for (size_t i = 0; i < 2 * n; i++) x[i] *= 3.0;
      shuffle_rows(r, x, n);
      for (size_t i = 0; i < 2 * n; i++) x[i] += gsl_ran_gaussian_ziggurat(r, 0.08);
      break;
    }
    case 3: { /* moons */
      size_t n_out = n / 2, n_in = n - n_out;
      for (size_t i = 0; i < n_out; i++) {
        double a = n_out > 1 ? PI * (double)i / (double)(n_out - 1) : 0.0;
        x[2 * pos] = cos(a), x[2 * pos + 1] = sin(a), pos++;
      }
      for (size_t i = 0; i < n_in; i++) {
        double a = n_in > 1 ? PI * (double)i / (double)(n_in - 1) : 0.0;
        x[2 * pos] = 1.0 - cos(a), x[2 * pos + 1] = 1.0 - sin(a) - 0.5, pos++;
      }
      shuffle_rows(r, x, n);
      for (size_t i = 0; i < n; i++) {
        x[2 * i] = 2.0 * (x[2 * i] + gsl_ran_gaussian_ziggurat(r, 0.1)) - 1.0;
        x[2 * i + 1] = 2.0 * (x[2 * i + 1] + gsl_ran_gaussian_ziggurat(r, 0.1)) - 0.2;
      }
      break;
    }
    case 4: /* 8gaussians */
      for (size_t i = 0; i < n; i++) {
        double px = 0.5 * gsl_ran_gaussian_ziggurat(r, 1.0);
        double py = 0.5 * gsl_ran_gaussian_ziggurat(r, 1.0);
        double a = PI / 4.0 * (double)gsl_rng_uniform_int(r, 8);
        x[2 * i] = (px + 4.0 * cos(a)) / 1.414;
        x[2 * i + 1] = (py + 4.0 * sin(a)) / 1.414;
      }
      break;
    case 5: { /* pinwheel */
      size_t per = n / 5, m = 5 * per;
      for (size_t i = 0; i < n; i++) {
        size_t c = i < m ? i / (per ? per : 1) : gsl_rng_uniform_int(r, 5);
        double f0 = 1.0 + 0.3 * gsl_ran_gaussian_ziggurat(r, 1.0);
        double f1 = 0.1 * gsl_ran_gaussian_ziggurat(r, 1.0);
        double ang = 2.0 * PI * (double)c / 5.0 + 0.25 * exp(f0);
        double co = cos(ang), si = sin(ang);
        x[2 * i] = 2.0 * (f0 * co + f1 * si);
        x[2 * i + 1] = 2.0 * (-f0 * si + f1 * co);
      }
      shuffle_rows(r, x, n);
      break;
    }
    case 6: { /* 2spirals */
      size_t h = (n + 1) / 2;
      for (size_t i = 0; i < h; i++) {
        double t = sqrt(gsl_rng_uniform(r)) * 540.0 * (2.0 * PI) / 360.0;
        double dx = -cos(t) * t + 0.5 * gsl_rng_uniform(r);
        double dy = sin(t) * t + 0.5 * gsl_rng_uniform(r);
        x[2 * i] = dx / 3.0, x[2 * i + 1] = dy / 3.0;
        if (h + i < n) x[2 * (h + i)] = -dx / 3.0, x[2 * (h + i) + 1] = -dy / 3.0;
      }
      for (size_t i = 0; i < 2 * n; i++) x[i] += gsl_ran_gaussian_ziggurat(r, 0.1);
      shuffle_rows(r, x, n);
      break;
    }
    case 7: /* checkerboard */
      for (size_t i = 0; i < n; i++) {
        double x1 = 4.0 * gsl_rng_uniform(r) - 2.0;
        double x2 = gsl_rng_uniform(r) - 2.0 * (double)gsl_rng_uniform_int(r, 2);
        x2 += fmod(floor(x1), 2.0) != 0.0 ? 1.0 : 0.0;
        x[2 * i] = 2.0 * x1, x[2 * i + 1] = 2.0 * x2;
      }
      break;
    case 8: /* line */
    case 9: /* cos */
      for (size_t i = 0; i < n; i++) {
        double u = 5.0 * gsl_rng_uniform(r) - 2.5;
        x[2 * i] = u;
        x[2 * i + 1] = which == 8 ? u : 2.5 * sin(u);
      }
      break;
  }
  gsl_rng_free(r);
  return 0;
}
