/* The TLS test: threads that each update thread-local variables (their own
   and another object's), checked against what each thread should see. */
#define _POSIX_C_SOURCE 200809L
#include "tls.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define THREADS 8
#define ROUNDS 1000

struct result {
  long counter, zero, bump, ptr_value, rec_n;
  char tag[12];
  const void *addr, *local_addr;
};

static struct result results[THREADS + 1];
/* Every worker stays alive until all have recorded their addresses, so
   distinct threads must show distinct blocks. */
static pthread_barrier_t all_done;

static void *worker(void *arg) {
  int id = (int)(long)arg;
  struct result *r = &results[id];
  int bump = 0;
  for (int i = 0; i < ROUNDS; i++) {
    tls_counter += id + 1;
    bump = tls_bump(id + i % 3);
  }
  tls_rec.n += id;
  snprintf(tls_rec.tag, sizeof tls_rec.tag, "t%d", id);
  r->counter = tls_counter;
  r->zero = tls_zero;
  r->bump = bump;
  r->ptr_value = *tls_ptr;
  r->rec_n = tls_rec.n;
  memcpy(r->tag, tls_rec.tag, sizeof r->tag);
  r->addr = &tls_counter;
  r->local_addr = tls_local_addr();
  if (id < THREADS)
    pthread_barrier_wait(&all_done);
  return 0;
}

int tls_run(char *out, size_t n) {
  pthread_t t[THREADS];
  pthread_barrier_init(&all_done, 0, THREADS);
  for (long i = 0; i < THREADS; i++)
    if (pthread_create(&t[i], 0, worker, (void *)i) != 0)
      return 1;
  for (int i = 0; i < THREADS; i++)
    pthread_join(t[i], 0);
  pthread_barrier_destroy(&all_done);
  worker((void *)(long)THREADS); /* and the calling thread */
  size_t at = 0;
  int distinct = 1;
  for (int i = 0; i <= THREADS; i++) {
    struct result *r = &results[i];
    at += snprintf(out + at, n - at, "thread %d: counter %ld zero %ld bump %ld ptr %ld rec %ld %s\n", i,
                   r->counter, r->zero, r->bump, r->ptr_value, r->rec_n, r->tag);
    for (int j = 0; j < i; j++)
      if (results[j].addr == r->addr || results[j].local_addr == r->local_addr)
        distinct = 0;
    if (at >= n)
      return 2;
  }
  snprintf(out + at, n - at, "distinct blocks %s\n", distinct ? "yes" : "no");
  return 0;
}
