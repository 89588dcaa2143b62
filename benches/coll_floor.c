// The floor of an alltoall of P ranks on a 2-core machine: every block copied once
// with memcpy, straight from its sender's send buffer into its receiver's receive
// buffer (all buffers in one shared mapping, touched beforehand), by 2 processes
// pinned to cores 0 and 1 that each do the copies of P/2 ranks, with a spin barrier
// (not timed) between iterations. No library can move the data with fewer copies.
// Prints, per block size from 8 KiB to 1 MiB, the median microseconds of the slower
// process. Build and run: cc -O2 -o /tmp/floor benches/alltoall_floor.c && /tmp/floor 4
// (docs/collectives.md compares it with Open MPI's alltoall).
#define _GNU_SOURCE
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    int ranks = argc > 1 ? atoi(argv[1]) : 4;
    size_t max_block = 1 << 20;
    size_t region = (size_t)ranks * ranks * max_block;
    // Send buffers, receive buffers, then a page for the barrier and the result.
    char *mem = mmap(0, 2 * region + 4096, PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    memset(mem, 1, 2 * region + 4096);
    atomic_int *arrived = (atomic_int *)(mem + 2 * region);
    double *child_median = (double *)(mem + 2 * region + 64);
    for (size_t block = 8192; block <= max_block; block *= 2) {
        int iters = block <= 65536 ? 400 : 60, warmup = 5;
        atomic_store(arrived, 0);
        pid_t kid = fork();
        int me = kid == 0;
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(me, &set);
        sched_setaffinity(0, sizeof set, &set);
        double *took = malloc(sizeof(double) * iters);
        for (int it = 0; it < iters + warmup; it++) {
            atomic_fetch_add(arrived, 1);
            while (atomic_load(arrived) < 2 * (it + 1))
                ;
            double t0 = now_us();
            for (int r = me; r < ranks; r += 2) {
                char *recv = mem + region + (size_t)r * ranks * block;
                for (int j = 0; j < ranks; j++) {
                    char *send = mem + (size_t)j * ranks * block;
                    memcpy(recv + (size_t)j * block, send + (size_t)r * block, block);
                }
            }
            if (it >= warmup)
                took[it - warmup] = now_us() - t0;
        }
        qsort(took, iters, sizeof(double), by_value);
        if (me) {
            *child_median = took[iters / 2];
            _exit(0);
        }
        waitpid(kid, 0, 0);
        double median = took[iters / 2];
        printf("%zu %.1f\n", block, median > *child_median ? median : *child_median);
        free(took);
    }
    return 0;
}
