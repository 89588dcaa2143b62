// The floors of an alltoall, a bcast and an allreduce of P ranks on a 2-core machine,
// for any library: every buffer in one shared mapping (touched beforehand), two
// processes pinned to cores 0 and 1 that each do the work of half the ranks with
// plain loads and stores, a spin barrier (not timed) between iterations, nothing else
// timed. No library can move the data with fewer copies.
//   alltoall:  every block copied once with memcpy, straight from its sender's send
//              buffer into its receiver's receive buffer; process c does the copies
//              into ranks c, c + 2, ...
//   bcast:     rank 0's buffer copied once into every other rank's; process c does
//              the copies into ranks c, c + 2, ... (process 0, on the root's core,
//              one fewer). The root's buffer is not written between iterations, as a
//              benchmark's is not.
//   allreduce: (f32 sums) process c sums half c of the vector over every rank's input
//              into rank c's output, then copies that half into every other rank's
//              output.
// Prints, per size (the block, or the vector) from 8 KiB to 1 MiB, the median
// microseconds of the slower process. And the floor of a short collective among ranks
// that share a core, where every rank must run once per call, so each core hands
// itself over between its ranks at least once per call:
//   handover:  two processes pinned to core 0 take turns through a shared word, each
//              yielding the core (sched_yield) until it is its turn; prints the median
//              time of one hand-over over 20 rounds of 20000 turns each.
// Build and run:
//   cc -O3 -march=native -o /tmp/floor benches/coll_floor.c && /tmp/floor alltoall 4
// (docs/collectives.md compares it with Open MPI's times).
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

enum op { ALLTOALL, BCAST, ALLREDUCE };

// Process `me`'s share of one collective of `ranks` ranks of `size` bytes each
// (alltoall: per block), with the send buffers at `in` and the receive buffers at
// `out` (bcast: every rank's buffer at `in`).
static void share(enum op op, int me, int ranks, size_t size, char *in, char *out) {
    switch (op) {
    case ALLTOALL:
        for (int r = me; r < ranks; r += 2) {
            char *recv = out + (size_t)r * ranks * size;
            for (int j = 0; j < ranks; j++)
                memcpy(recv + (size_t)j * size, in + ((size_t)j * ranks + r) * size, size);
        }
        break;
    case BCAST:
        for (int r = me ? 1 : 2; r < ranks; r += 2)
            memcpy(in + (size_t)r * size, in, size);
        break;
    case ALLREDUCE: {
        size_t half = size / 2, n = half / sizeof(float);
        float *sum = (float *)(out + (size_t)me * size + me * half);
        const float *first = (const float *)(in + me * half);
        for (size_t i = 0; i < n; i++)
            sum[i] = first[i];
        for (int j = 1; j < ranks; j++) {
            const float *x = (const float *)(in + (size_t)j * size + me * half);
            for (size_t i = 0; i < n; i++)
                sum[i] += x[i];
        }
        for (int r = 0; r < ranks; r++)
            if (r != me)
                memcpy(out + (size_t)r * size + me * half, sum, half);
        break;
    }
    }
}

// Pins the calling process to `core`.
static void pin(int core) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(core, &set);
    sched_setaffinity(0, sizeof set, &set);
}

static int handover(void) {
    enum { ROUNDS = 20, TURNS = 20000 };
    atomic_int *turn = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (turn == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    pid_t kid = fork();
    int me = kid == 0;
    pin(0);
    double took[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        double t0 = now_us();
        for (int i = 0; i < TURNS; i++) {
            while (atomic_load(turn) != me)
                sched_yield();
            atomic_store(turn, !me);
        }
        // Both took TURNS turns: 2 * TURNS hand-overs.
        took[r] = (now_us() - t0) / (2.0 * TURNS);
    }
    if (me)
        _exit(0);
    waitpid(kid, 0, 0);
    qsort(took, ROUNDS, sizeof(double), by_value);
    printf("one hand-over of a core: %.3f us (median of %d rounds, %.3f-%.3f)\n",
           took[ROUNDS / 2], ROUNDS, took[0], took[ROUNDS - 1]);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "handover") == 0)
        return handover();
    static const char *names[] = {"alltoall", "bcast", "allreduce"};
    enum op op = ALLTOALL;
    while (argc > 1 && strcmp(argv[1], names[op]) != 0 && op < ALLREDUCE)
        op++;
    int ranks = argc > 2 ? atoi(argv[2]) : 0;
    if (argc != 3 || strcmp(argv[1], names[op]) != 0 || ranks < 2) {
        fprintf(stderr, "usage: %s alltoall|bcast|allreduce RANKS (at least 2), or %s handover\n",
                argv[0], argv[0]);
        return 2;
    }
    size_t max_size = 1 << 20;
    size_t region = (size_t)ranks * (op == ALLTOALL ? ranks : 1) * max_size;
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
    for (size_t size = 8192; size <= max_size; size *= 2) {
        int iters = size <= 65536 ? 400 : 60, warmup = 5;
        atomic_store(arrived, 0);
        pid_t kid = fork();
        int me = kid == 0;
        pin(me);
        double *took = malloc(sizeof(double) * iters);
        for (int it = 0; it < iters + warmup; it++) {
            atomic_fetch_add(arrived, 1);
            while (atomic_load(arrived) < 2 * (it + 1))
                ;
            double t0 = now_us();
            share(op, me, ranks, size, mem, mem + region);
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
        printf("%zu %.1f\n", size, median > *child_median ? median : *child_median);
        free(took);
    }
    return 0;
}
