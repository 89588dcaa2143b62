// The floors under a mid-size message between the two cores of this machine.
//
//   gcc -O2 -o copy_floor benches/copy_floor.c && ./copy_floor 8192 3000
//
// Two processes, pinned to cores 0 and 1 (or both to core 0 with a third argument):
//   - eager: the first writes BYTES into a shared buffer, the second copies them out,
//     in turn (the two copies of a message through a ring); medians of each copy;
//   - read: the second reads BYTES of the first's private buffer with
//     process_vm_readv (the single copy of a rendezvous); median of the call.
// The buffers are touched before timing; the read's source is never written again,
// as a benchmark's send buffer is not.
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static void pin(int cpu) {
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    sched_setaffinity(0, sizeof s, &s);
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *t, int n) {
    qsort(t, n, sizeof *t, cmp);
    return t[n / 2];
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s BYTES ITERS [same-core]\n", argv[0]);
        return 2;
    }
    size_t n = strtoul(argv[1], 0, 10);
    int iters = atoi(argv[2]);
    int other = argc > 3 ? 0 : 1;
    char *shared = mmap(0, n + 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    volatile long *turn = (volatile long *)(shared + n);
    double *tw = mmap(0, iters * sizeof(double), PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    char *src = malloc(n), *dst = malloc(n);
    memset(src, 1, n);
    memset(dst, 0, n);
    memset(shared, 0, n);
    pid_t parent = getpid();
    pid_t child = fork();
    if (child == 0) {
        pin(other);
        double *tr = malloc(iters * sizeof(double));
        for (int i = 0; i < iters; i++) {
            while (__atomic_load_n(turn, __ATOMIC_ACQUIRE) != 2 * i + 1)
                __builtin_ia32_pause();
            double a = now_us();
            memcpy(dst, shared, n);
            tr[i] = now_us() - a;
            __atomic_store_n(turn, 2 * i + 2, __ATOMIC_RELEASE);
        }
        printf("%zu B eager: receiver copies out in %.3f us\n", n, median(tr, iters));
        struct iovec local = {dst, n}, remote = {src, n};
        for (int i = 0; i < iters; i++) {
            double a = now_us();
            if (process_vm_readv(parent, &local, 1, &remote, 1, 0) != (ssize_t)n) {
                perror("process_vm_readv");
                return 1;
            }
            tr[i] = now_us() - a;
        }
        printf("%zu B read: process_vm_readv in %.3f us\n", n, median(tr, iters));
        return 0;
    }
    pin(0);
    for (int i = 0; i < iters; i++) {
        if (i > 0)
            while (__atomic_load_n(turn, __ATOMIC_ACQUIRE) != 2 * i)
                __builtin_ia32_pause();
        src[0] = (char)i;
        double a = now_us();
        memcpy(shared, src, n);
        tw[i] = now_us() - a;
        __atomic_store_n(turn, 2 * i + 1, __ATOMIC_RELEASE);
    }
    printf("%zu B eager: sender writes in %.3f us\n", n, median(tw, iters));
    int status;
    waitpid(child, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
