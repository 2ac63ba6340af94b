#ifndef TLS_TEST_H
#define TLS_TEST_H
#include <stddef.h>

struct tls_rec {
  int n;
  char tag[12];
};

extern _Thread_local int tls_counter;
extern _Thread_local long tls_zero;
extern _Thread_local int *tls_ptr;
extern _Thread_local struct tls_rec tls_rec;
extern int tls_target;

int tls_bump(int k);
const void *tls_local_addr(void);
int tls_run(char *out, size_t n);
#endif
