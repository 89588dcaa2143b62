// The floor of a ping-pong by rendezvous with a single copy: two processes on the two
// cores, each message an RTS cache line (the buffer's address), one process_vm_readv
// of the sender's buffer by the receiver and a FIN line back; nothing else.
// Prints the half round trip in us. Buffers start OFF bytes into a page (default 16:
// malloc's buffers are not page-aligned, and one more page is pinned).
// Build: cc -O2 -o rendezvous_floor rendezvous_floor.c; usage: rendezvous_floor SIZE ITERS
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
#include <stdatomic.h>
#ifndef OFF
#define OFF 16
#endif
struct line { _Atomic unsigned long seq; void *addr; pid_t pid; char pad[40]; };
struct shared { struct line rts[2]; struct line fin[2]; };
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int main(int argc,char**argv){
  size_t n=atol(argv[1]); int iters=atoi(argv[2]);
  struct shared *s=mmap(0,4096,PROT_READ|PROT_WRITE,MAP_SHARED|MAP_ANONYMOUS,-1,0);
  memset(s,0,4096);
  int me = fork()==0 ? 1 : 0;
  cpu_set_t c; CPU_ZERO(&c); CPU_SET(me,&c); sched_setaffinity(0,sizeof c,&c);
  char *sb=(char*)aligned_alloc(4096,n+8192)+OFF, *rb=(char*)aligned_alloc(4096,n+8192)+OFF;
  memset(sb,me,n); memset(rb,0,n);
  double t0=0;
  for(int i=0;i<iters+100;i++){
    if(i==100) t0=now();
    unsigned long q=i+1;
    if(me==0){
      // send: RTS, wait FIN
      s->rts[0].addr=sb; s->rts[0].pid=getpid(); atomic_store_explicit(&s->rts[0].seq,q,memory_order_release);
      while(atomic_load_explicit(&s->fin[1].seq,memory_order_acquire)!=q);
      // recv
      while(atomic_load_explicit(&s->rts[1].seq,memory_order_acquire)!=q);
      struct iovec l={rb,n}, r={s->rts[1].addr,n};
      if(process_vm_readv(s->rts[1].pid,&l,1,&r,1,0)!=(ssize_t)n){perror("readv");return 1;}
      atomic_store_explicit(&s->fin[0].seq,q,memory_order_release);
    } else {
      while(atomic_load_explicit(&s->rts[0].seq,memory_order_acquire)!=q);
      struct iovec l={rb,n}, r={s->rts[0].addr,n};
      if(process_vm_readv(s->rts[0].pid,&l,1,&r,1,0)!=(ssize_t)n){perror("readv");return 1;}
      atomic_store_explicit(&s->fin[1].seq,q,memory_order_release);
      s->rts[1].addr=sb; s->rts[1].pid=getpid(); atomic_store_explicit(&s->rts[1].seq,q,memory_order_release);
      while(atomic_load_explicit(&s->fin[0].seq,memory_order_acquire)!=q);
    }
  }
  if(me==0){ double t=now()-t0; printf("%zu %.3f\n",n,t/iters/2*1e6); wait(0);} 
  return 0;
}
