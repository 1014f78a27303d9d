/* plot_time.c: the pictures of `cnf plot` that need time, for continuous
 * models (cnf_model.h, "the flow in time"):
 *
 *   paths   trajectories from data (t = 0) to latent (t = S), PATH_STATES
 *           equally spaced states per path (cnf_model_trajectories), drawn
 *           by cnf_plot_paths_with; the points are the first -n rows of
 *           --data, else a grid of about n points over [-L, L]^2 (2-D),
 *           else n samples of the model;
 *   times   2-D: K heat maps of log p_t at t = k S / (K - 1), k = 0 .. K-1
 *           (cnf_model_logp_at), titled "t = ...", on one colour scale
 *           (cnf_plot_heatmaps_with).
 * A discrete stack has no time: the library's CNF_EINVAL, exit 2. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define PATH_STATES 41

static int paths(const char *cmd, cnf_ctx *ctx, cnf_model *m, const run_args *a,
                 cnf_plot_options *po, const double *data, size_t nd, const char *model, double S) {
  const size_t D = cnf_model_dim(m);
  int status = CNF_CLI_OK, rc = 0;
  size_t B = a->n, g = 0; /* g: the side of the 2-D grid of start points */
  double *x = NULL, *p = NULL;
  if (D < 2) {
    cnf__cli_error(cmd, "paths: the model is %zu-D; trajectories need 2 or more coordinates", D);
    return CNF_CLI_EUSAGE;
  }
  if (po->names != NULL) /* a CSV header names the axes */
    po->xlabel = po->names[0], po->ylabel = po->names[1], po->names = NULL;
  if (data != NULL) {
    B = nd < B ? nd : B;
  } else if (D == 2) { /* a g x g grid over [-L, L]^2 with g^2 <= n */
    g = (size_t)floor(sqrt((double)a->n));
    g = g < 2 ? 2 : g;
    B = g * g;
  }
  if ((x = cnf__cli_alloc(cmd, B, D, "points", &status)) == NULL ||
      (p = cnf__cli_alloc(cmd, PATH_STATES * B, D, "trajectories", &status)) == NULL)
    goto cleanup;
  if (data != NULL)
    memcpy(x, data, B * D * sizeof(double));
  else if (D == 2)
    cnf_plot_grid(a->range, g, x);
  else
    rc = cnf_model_sample(m, &a->opt, B, x, NULL, NULL);
  if (rc == 0) rc = cnf_model_trajectories(m, &a->opt, +1, B, x, PATH_STATES, p, NULL);
  char title[512], latent[64];
  snprintf(title, sizeof title, "Trajectories of %s from data (t = 0) to latent (t = %.3g)", model,
           S);
  snprintf(latent, sizeof latent, "latent (t = %.3g)", S);
  po->title = title, po->sample_name = latent;
  po->data_name = data != NULL ? "data (t = 0)"
                  : D == 2     ? "grid points (t = 0)"
                               : "samples (t = 0)";
  if (rc == 0) rc = cnf_plot_paths_with(ctx, po, 1, PATH_STATES, B, D, p, a->out);
  if (rc != 0) status = cnf__cli_lib_fail(cmd, ctx, rc, 0);
cleanup:
  free(x), free(p);
  return status;
}

static int strip(const char *cmd, cnf_ctx *ctx, cnf_model *m, const run_args *a,
                 cnf_plot_options *po, size_t K, const double *data, size_t nd, const char *model,
                 double S) {
  const size_t D = cnf_model_dim(m), G = a->size;
  int status = CNF_CLI_OK, rc = 0;
  if (D != 2) {
    cnf__cli_error(cmd, "times: the model is %zu-D; a strip of heat maps needs a 2-D model", D);
    return CNF_CLI_EUSAGE;
  }
  double *x = NULL, *lp = NULL;
  char(*names)[48] = calloc(K, sizeof *names);
  const char **np = calloc(K, sizeof *np);
  if (names == NULL || np == NULL) {
    cnf__cli_error(cmd, "out of memory");
    status = CNF_CLI_EFAIL;
    goto cleanup;
  }
  if ((x = cnf__cli_alloc(cmd, G * G, 2, "grid", &status)) == NULL ||
      (lp = cnf__cli_alloc(cmd, K * G * G, 1, "grid", &status)) == NULL)
    goto cleanup;
  cnf_plot_grid(a->range, G, x);
  for (size_t k = 0; k < K && rc == 0; k++) {
    const double t = k + 1 == K ? S : S * (double)k / (double)(K - 1);
    snprintf(names[k], sizeof names[k], "t = %.3g%s", t,
             k == 0       ? " (data)"
             : k + 1 == K ? " (latent)"
                          : "");
    np[k] = names[k];
    rc = cnf_model_logp_at(m, &a->opt, t, G * G, x, lp + k * G * G, NULL);
  }
  char title[512];
  snprintf(title, sizeof title, "%s of %s in time, from the data (t = 0) to N(0, I) (t = %.3g)",
           po->log_density ? "Log-density" : "Density", model, S);
  po->title = title, po->names = np;
  if (rc == 0) rc = cnf_plot_heatmaps_with(ctx, po, K, G, lp, a->range, data, nd, a->out);
  if (rc != 0) status = cnf__cli_lib_fail(cmd, ctx, rc, 0);
cleanup:
  free(x), free(lp), free(names), free(np);
  return status;
}

int cnf__cli_plot_time(const char *cmd, cnf_ctx *ctx, cnf_model *m, const run_args *a,
                       cnf_plot_options *po, const char *kind, size_t times, const double *data,
                       size_t nd, const char *model) {
  if (strcmp(kind, "paths") != 0 && strcmp(kind, "times") != 0) {
    cnf__cli_error(cmd, "--kind: expected density, paths or times, found '%s'", kind);
    return CNF_CLI_EUSAGE;
  }
  double S = 0;
  int rc = cnf_model_total_time(m, &S);
  if (rc != 0) return cnf__cli_lib_fail(cmd, ctx, rc, 0);
  if (strcmp(kind, "paths") == 0) return paths(cmd, ctx, m, a, po, data, nd, model, S);
  return strip(cmd, ctx, m, a, po, times, data, nd, model, S);
}
