/* rng.c: seeding helpers shared by every random stream of the library. */
#include "core.h"

unsigned long cnf__seed32(unsigned long long seed) {
  unsigned long long z = seed + 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  unsigned long s = (unsigned long)(z & 0xffffffffULL);
  return s ? s : 4357UL; /* mt19937 treats 0 as its default seed */
}
