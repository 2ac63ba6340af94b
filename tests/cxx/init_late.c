/* Linked only when init_main.c's initializer looks it up. */
void cxx_log(const char *line);

__attribute__((constructor)) static void late_ctor(void) { cxx_log("ctor late"); }
int late_value(void) { return 7; }
