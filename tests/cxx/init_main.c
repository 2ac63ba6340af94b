/* Initializer and finalizer order: constructor priorities, an initializer
   that looks up another JIT symbol through the host, atexit from JIT code
   (registered with this object's own __dso_handle) and destructor
   priorities. */
#include <stdio.h>
#include <stdlib.h>

void cxx_log(const char *line);
void *host_lookup(const char *name);
int other_value(void);

static void at1(void) { cxx_log("atexit 1"); }
static void at2(void) { cxx_log("atexit 2"); }

__attribute__((constructor(300))) static void c300(void) {
  cxx_log("ctor 300");
  atexit(at1);
}
__attribute__((constructor(200))) static void c200(void) { cxx_log("ctor 200"); }
__attribute__((constructor)) static void c_default(void) {
  /* other_value's object is linked already (this one uses it); late_value's
     is not: the lookup links it from inside this initializer. */
  int (*f)(void) = (int (*)(void))host_lookup("other_value");
  int (*g)(void) = (int (*)(void))host_lookup("late_value");
  char buf[80];
  snprintf(buf, sizeof buf, "ctor default: other_value %d late_value %d", f ? f() : -1,
           g ? g() : -1);
  cxx_log(buf);
  atexit(at2);
}
__attribute__((constructor(101))) static void c101(void) { cxx_log("ctor 101"); }
__attribute__((destructor(200))) static void d200(void) { cxx_log("dtor 200"); }
__attribute__((destructor(300))) static void d300(void) { cxx_log("dtor 300"); }

int init_entry(void) { return other_value() + 1; }
