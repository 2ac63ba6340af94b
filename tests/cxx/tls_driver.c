/* Native reference for the TLS test. */
#include "tls.h"
#include <stdio.h>

int main(void) {
  static char out[8192];
  int r = tls_run(out, sizeof out);
  fputs(out, stdout);
  return r;
}
