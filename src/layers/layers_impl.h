/* layers_impl.h: internals of the discrete flows (cnf_layers.h): the small
 * conditioner network, the ops table of a layer kind and the layer body.
 *
 * The network (net.c) is an MLP in -> H_1 -> ... -> H_n -> out with tanh
 * after every hidden layer and a linear output, optionally with 0/1 masks on
 * its weights (MADE).  Its parameters, layer after layer, are W (out x in,
 * row-major) then b (out).  Forward keeps the hidden activations of the
 * last call for the reverse sweep, in workspaces of CNF_TF_CHUNK rows. */
#ifndef CNF_LAYERS_IMPL_H
#define CNF_LAYERS_IMPL_H

#include <gsl/gsl_rng.h>

#include "cnf_dynamics.h"
#include "cnf_layers.h"
#include "core.h"

typedef struct cnf__net {
  size_t nl;                      /* number of linear layers, n + 1 */
  size_t w[CNF_MAX_HIDDEN + 2];   /* widths: w[0] = in, w[nl] = out */
  size_t off[CNF_MAX_HIDDEN + 2]; /* offset of layer l's W in theta */
  size_t P, maxw;
  double *mask; /* (sum of W sizes) 0/1, or NULL */
  double *weff; /* masked weights of the last forward */
  double *act;  /* hidden activations (CHUNK, w[l]) per l */
  size_t act_off[CNF_MAX_HIDDEN + 2];
  double *out;     /* (CHUNK, out) */
  double *g1, *g2; /* (CHUNK, maxw) reverse-sweep buffers */
} cnf__net;

/* Size the network and its workspaces; mask: 1 to allocate masks (all 1),
 * which the caller then fills.  Returns 0 or CNF_ENOMEM. */
int cnf__net_init(cnf__net *n, cnf_ctx *ctx, size_t in, size_t n_hidden, const size_t *hidden,
                  size_t out, int mask);
void cnf__net_free(cnf__net *n);
/* The mask of layer l's weights (w[l+1] x w[l]). */
double *cnf__net_mask(cnf__net *n, size_t l);
/* LeCun's initialisation for tanh: each unit's weights and bias uniform in
 * +-sqrt(3 / fan), fan the number of inputs the unit sees (variance 1 /
 * fan, so its pre-activation has the spread of its inputs and tanh bends).
 * fan counts a masked unit's kept weights; in_used (0: all) is the first
 * layer's fan of an unmasked net whose inputs are partly zero.  The output
 * layer is scaled by last_scale. */
void cnf__net_init_params(const cnf__net *n, double *theta, gsl_rng *rng, size_t in_used,
                          double last_scale);
/* y = n->out (B, out) from x (B, in), B <= CNF_TF_CHUNK. */
void cnf__net_forward(cnf__net *n, const double *theta, size_t B, const double *x);
/* The reverse sweep of the last forward (same theta and x): gx (B, in) =
 * gy . dy/dx (may be NULL), gth (P) += gy . dy/dtheta (may be NULL). */
void cnf__net_backward(cnf__net *n, const double *theta, size_t B, const double *x,
                       const double *gy, double *gx, double *gth);

typedef struct tf_ops tf_ops;

struct cnf_tf {
  cnf_ctx *ctx;
  cnf_tf_config cfg;
  const tf_ops *ops;
  size_t P;
  cnf__net net; /* conditioned kinds */
  int has_net;
  double *mask;   /* coupling: (D) 1 where the coordinate passes unchanged */
  size_t *perm;   /* permute: (D) */
  double *w[6];   /* (CHUNK, 2 D) scratch */
  double *zero;   /* (CHUNK, D) zeros: seeds given as NULL */
  double *ldbuf;  /* (CHUNK) */
  double *gxbuf;  /* (CHUNK, D) */
  double *gthbuf; /* (P) parameter gradients nobody asked for */
  cnf_dyn *dyn;   /* cnf: the MLP field */
  cnf_mlp_config mlp;
  cnf_options opt;
  double T;
};

/* P of a layer with configuration cfg, without creating it (0 for an
 * unknown kind): model loaders check a header before they allocate. */
size_t cnf__tf_config_param_count(const cnf_tf_config *cfg);

/* The ops of one kind, on at most CNF_TF_CHUNK rows; every pointer
 * argument is valid (the public wrappers supply zeros and scratch). */
struct tf_ops {
  size_t (*param_count)(const cnf_tf_config *cfg);
  void (*init)(const cnf_tf *tf, double *theta, gsl_rng *rng);
  int (*forward)(cnf_tf *tf, const double *th, size_t B, const double *x, double *z, double *ld);
  int (*inverse)(cnf_tf *tf, const double *th, size_t B, const double *z, double *x, double *ld);
  /* gx = dS/dx, gth += dS/dtheta */
  int (*backward)(cnf_tf *tf, const double *th, size_t B, const double *x, const double *a,
                  const double *c, double *gx, double *gth);
};

#endif /* CNF_LAYERS_IMPL_H */
