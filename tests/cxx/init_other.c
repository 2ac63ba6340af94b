/* Looked up by init_main.c's initializer while it runs. */
void cxx_log(const char *line);

static int value;
__attribute__((constructor)) static void other_ctor(void) {
  value = 42;
  cxx_log("ctor other");
}
int other_value(void) { return value; }
