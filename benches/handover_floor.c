// The floor of a short collective among ranks that share a core: every rank must run
// once per call, so each core hands itself over between its ranks at least once per
// call. Two processes pinned to core 0 take turns through a shared word, each
// yielding the core (sched_yield) until it is its turn; prints the median time of one
// hand-over in us over ROUNDS rounds of ITERS turns each.
// Build and run: cc -O2 -o /tmp/handover benches/handover_floor.c && /tmp/handover 20 20000
#define _GNU_SOURCE
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 20, iters = argc > 2 ? atoi(argv[2]) : 20000;
    if (rounds < 1 || iters < 1) {
        fprintf(stderr, "usage: %s [ROUNDS [ITERS]] (both at least 1)\n", argv[0]);
        return 2;
    }
    atomic_int *turn = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (turn == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    pid_t kid = fork();
    int me = kid == 0;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(0, &set);
    sched_setaffinity(0, sizeof set, &set);
    double *took = malloc(sizeof(double) * rounds);
    for (int r = 0; r < rounds; r++) {
        double t0 = now_us();
        for (int i = 0; i < iters; i++) {
            while (atomic_load(turn) != me)
                sched_yield();
            atomic_store(turn, !me);
        }
        // Both turned `iters` times: 2 * iters hand-overs.
        took[r] = (now_us() - t0) / (2.0 * iters);
    }
    if (me)
        _exit(0);
    waitpid(kid, 0, 0);
    qsort(took, rounds, sizeof(double), by_value);
    printf("one hand-over of a core: %.3f us (median of %d rounds, %.3f-%.3f)\n",
           took[rounds / 2], rounds, took[0], took[rounds - 1]);
    return 0;
}
