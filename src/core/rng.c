/* rng.c: seeding helpers shared by every random stream of the library.
 *
 * Every random stream of a run derives from (seed, stream name, index)
 * through cnf_seed_derive (docs/design.md, "Seeding"): the name is hashed
 * (FNV-1a, 64 bits) and mixed into the seed with splitmix64's finaliser,
 * then the index is added on the golden-ratio increment and mixed again.
 * Nearby seeds and indices give unrelated streams, and no caller needs a
 * salt of its own. */
#include "core.h"

static uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t cnf_seed_derive(uint64_t seed, const char *stream, uint64_t index) {
  uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a offset basis */
  for (const unsigned char *p = (const unsigned char *)(stream ? stream : ""); *p; p++)
    h = (h ^ *p) * 0x100000001b3ULL;
  uint64_t z = mix64(seed ^ mix64(h));
  return mix64(z + (index + 1) * 0x9e3779b97f4a7c15ULL);
}

unsigned long cnf__seed32(unsigned long long seed) {
  unsigned long long z = mix64(seed + 0x9e3779b97f4a7c15ULL);
  unsigned long s = (unsigned long)(z & 0xffffffffULL);
  return s ? s : 4357UL; /* mt19937 treats 0 as its default seed */
}
