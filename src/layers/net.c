/* net.c: the conditioner MLP of the discrete flows (layers_impl.h).
 *
 * Forward, per linear layer l with input h_l (B, w[l]):
 *     u = h_l W_l^T + b_l,  h_{l+1} = tanh(u) (hidden) or u (the output),
 * W_l replaced by W_l * M_l (elementwise) when the network is masked.
 * Reverse sweep with seed g = dS/dy at the output, for l = nl-1 .. 0:
 *     dW_l += (g^T h_l) * M_l,  db_l += sum_rows g,  g <- (g W_l) * (1 - h_l^2)
 * (the last factor only below a hidden layer).  BLAS does the products. */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "layers_impl.h"

int cnf__net_init(cnf__net *n, cnf_ctx *ctx, size_t in, size_t n_hidden, const size_t *hidden,
                  size_t out, int mask) {
  memset(n, 0, sizeof *n);
  n->nl = n_hidden + 1;
  n->w[0] = in;
  for (size_t l = 0; l < n_hidden; l++) n->w[l + 1] = hidden[l];
  n->w[n->nl] = out;
  size_t P = 0, nw = 0, na = 0;
  n->maxw = 0;
  for (size_t l = 0; l <= n->nl; l++) n->maxw = n->w[l] > n->maxw ? n->w[l] : n->maxw;
  for (size_t l = 0; l < n->nl; l++) {
    n->off[l] = P;
    P += n->w[l + 1] * n->w[l] + n->w[l + 1];
    nw += n->w[l + 1] * n->w[l];
  }
  for (size_t l = 1; l < n->nl; l++) {
    n->act_off[l] = na;
    na += CNF_TF_CHUNK * n->w[l];
  }
  n->P = P;
  n->act = cnf__dalloc(ctx, na ? na : 1);
  n->out = cnf__dalloc(ctx, CNF_TF_CHUNK * out);
  n->g1 = cnf__dalloc(ctx, CNF_TF_CHUNK * n->maxw);
  n->g2 = cnf__dalloc(ctx, CNF_TF_CHUNK * n->maxw);
  if (mask) {
    n->mask = cnf__dalloc(ctx, nw);
    n->weff = cnf__dalloc(ctx, nw);
    if (n->mask)
      for (size_t i = 0; i < nw; i++) n->mask[i] = 1.0;
  }
  if (!n->act || !n->out || !n->g1 || !n->g2 || (mask && (!n->mask || !n->weff))) {
    cnf__net_free(n);
    return CNF_ENOMEM;
  }
  return 0;
}

void cnf__net_free(cnf__net *n) {
  cnf__free(n->act), cnf__free(n->out), cnf__free(n->g1), cnf__free(n->g2);
  cnf__free(n->mask), cnf__free(n->weff);
  memset(n, 0, sizeof *n);
}

/* offset of layer l's weights inside the mask / weff arrays */
static size_t wpos(const cnf__net *n, size_t l) {
  size_t p = 0;
  for (size_t k = 0; k < l; k++) p += n->w[k + 1] * n->w[k];
  return p;
}

double *cnf__net_mask(cnf__net *n, size_t l) {
  return n->mask + wpos(n, l);
}

/* sqrt(3 / fan) for unit o of layer l, fan the inputs it sees: its mask's
 * ones, in_used for the first layer of an unmasked net (when given), or
 * the layer's width */
static double unit_bound(const cnf__net *n, size_t l, size_t o, size_t in_used) {
  const size_t in = n->w[l];
  size_t fan = l == 0 && in_used > 0 && in_used < in ? in_used : in;
  if (n->mask != NULL) {
    const double *M = n->mask + wpos(n, l) + o * in;
    fan = 0;
    for (size_t i = 0; i < in; i++) fan += M[i] != 0.0;
  }
  return sqrt(3.0 / (double)(fan > 0 ? fan : 1));
}

void cnf__net_init_params(const cnf__net *n, double *theta, gsl_rng *rng, size_t in_used,
                          double last_scale) {
  for (size_t l = 0; l < n->nl; l++) {
    const size_t in = n->w[l], out = n->w[l + 1];
    const double scale = l + 1 == n->nl ? last_scale : 1.0;
    double *W = theta + n->off[l], *b = W + out * in;
    for (size_t o = 0; o < out; o++) {
      const double bound = scale * unit_bound(n, l, o, in_used);
      for (size_t i = 0; i < in; i++) W[o * in + i] = bound * (2.0 * gsl_rng_uniform(rng) - 1.0);
    }
    for (size_t o = 0; o < out; o++)
      b[o] = scale * unit_bound(n, l, o, in_used) * (2.0 * gsl_rng_uniform(rng) - 1.0);
  }
}

/* the weights layer l uses: theta's W, or W * M in n->weff */
static const double *weights(cnf__net *n, const double *theta, size_t l) {
  const double *W = theta + n->off[l];
  if (n->mask == NULL) return W;
  size_t p = wpos(n, l), cnt = n->w[l + 1] * n->w[l];
  for (size_t i = 0; i < cnt; i++) n->weff[p + i] = W[i] * n->mask[p + i];
  return n->weff + p;
}

static const double *layer_in(const cnf__net *n, size_t l, const double *x) {
  return l == 0 ? x : n->act + n->act_off[l];
}

void cnf__net_forward(cnf__net *n, const double *theta, size_t B, const double *x) {
  for (size_t l = 0; l < n->nl; l++) {
    const size_t in = n->w[l], out = n->w[l + 1];
    const double *W = weights(n, theta, l), *b = theta + n->off[l] + out * in;
    const double *h = layer_in(n, l, x);
    double *u = l + 1 == n->nl ? n->out : n->act + n->act_off[l + 1];
    for (size_t r = 0; r < B; r++) memcpy(u + r * out, b, out * sizeof(double));
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, (int)out, (int)in, 1.0, h, (int)in,
                W, (int)in, 1.0, u, (int)out);
    if (l + 1 < n->nl)
      for (size_t i = 0; i < B * out; i++) u[i] = tanh(u[i]);
  }
}

void cnf__net_backward(cnf__net *n, const double *theta, size_t B, const double *x,
                       const double *gy, double *gx, double *gth) {
  const double *g = gy;
  double *buf[2] = {n->g1, n->g2};
  int which = 0;
  for (size_t l = n->nl; l-- > 0;) {
    const size_t in = n->w[l], out = n->w[l + 1];
    const double *h = layer_in(n, l, x);
    const double *W = n->mask ? n->weff + wpos(n, l) : theta + n->off[l];
    if (gth != NULL) {
      double *gW = gth + n->off[l], *gb = gW + out * in;
      if (n->mask == NULL) {
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)out, (int)in, (int)B, 1.0, g,
                    (int)out, h, (int)in, 1.0, gW, (int)in);
      } else {
        /* only the unmasked entries of g^T h */
        const double *M = n->mask + wpos(n, l);
        for (size_t o = 0; o < out; o++)
          for (size_t i = 0; i < in; i++) {
            if (M[o * in + i] == 0.0) continue;
            double s = 0.0;
            for (size_t r = 0; r < B; r++) s += g[r * out + o] * h[r * in + i];
            gW[o * in + i] += s;
          }
      }
      for (size_t r = 0; r < B; r++)
        for (size_t o = 0; o < out; o++) gb[o] += g[r * out + o];
    }
    if (l == 0 && gx == NULL) break;
    double *gh = l == 0 ? gx : buf[which];
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)B, (int)in, (int)out, 1.0, g,
                (int)out, W, (int)in, 0.0, gh, (int)in);
    if (l > 0) {
      for (size_t i = 0; i < B * in; i++) gh[i] *= 1.0 - h[i] * h[i];
      g = gh;
      which ^= 1;
    }
  }
}
