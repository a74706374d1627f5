/* hog BUSY_US IDLE_US: busy-loops BUSY_US, sleeps IDLE_US, forever: a stand-in for another process's work on the server's core (benches/BENCHMARKS.md, "Where the 50 k tail comes from") */
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
static long long now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1000000000LL + t.tv_nsec; }
int main(int c, char **v) { long b = atol(v[1]) * 1000, i = atol(v[2]); for (;;) { long long s = now(); while (now() - s < b); usleep(i); } }
