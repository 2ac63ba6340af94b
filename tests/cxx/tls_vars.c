/* Thread-local variables of the TLS test: initialized (.tdata), zeroed
   (.tbss), file-local (local-dynamic model under -fPIC -O2) and one whose
   initial value is an address (a relocation in .tdata). */
#include "tls.h"

int tls_target = 5;
_Thread_local int tls_counter = 100;
_Thread_local long tls_zero;
_Thread_local int *tls_ptr = &tls_target;
_Thread_local struct tls_rec tls_rec = {3, "init"};
static _Thread_local int tls_local_init = 7;
static _Thread_local char tls_local_buf[256];

int tls_bump(int k) {
  tls_local_init += k;
  tls_local_buf[k % 256] += 1;
  tls_zero += k;
  return tls_local_init * 1000 + tls_local_buf[k % 256];
}

const void *tls_local_addr(void) { return &tls_local_init; }
