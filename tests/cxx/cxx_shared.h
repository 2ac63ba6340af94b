// Shared by cxx_a.cpp and cxx_b.cpp: inline functions, templates and
// classes that both translation units instantiate, so both objects carry
// the same COMDAT groups and the linker must keep one copy.
#ifndef CXX_SHARED_H
#define CXX_SHARED_H

#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

extern "C" void cxx_log(const char *line);

inline void logs(const std::string &s) { cxx_log(s.c_str()); }

struct Tracer {
  std::string name;
  explicit Tracer(const char *n) : name(n) { logs("ctor " + name); }
  ~Tracer() { logs("dtor " + name); }
};

// An inline function with a static local (its guard and storage are COMDAT
// too): both objects must see one counter.
inline int shared_counter() {
  static int n = 0;
  return ++n;
}

// A static local with a destructor inside a COMDAT function.
inline Tracer &shared_tracer() {
  static Tracer t("shared-static-local");
  return t;
}

template <typename T> T twice(T x) { return x + x; }

template <typename T> struct Registry {
  static std::map<std::string, T> &get() {
    static std::map<std::string, T> m;
    return m;
  }
};

struct Shape {
  virtual ~Shape() {}
  virtual double area() const = 0;
  virtual std::string name() const { return "shape"; }
};

struct Square : Shape {
  double side;
  explicit Square(double s) : side(s) {}
  double area() const override;
  std::string name() const override;
};

struct AppError : std::runtime_error {
  int code;
  AppError(const std::string &what, int c) : std::runtime_error(what), code(c) {}
};

typedef int (*int_fn)();
extern "C" int_fn cxx_a_counter_addr();
extern "C" int_fn cxx_b_counter_addr();
extern "C" int (*cxx_b_twice_addr())(int);
extern "C" int (*cxx_a_twice_addr())(int);

Shape *make_square(double side);
void b_throws(int code);
int b_bump_counter();
std::string b_describe(const std::vector<int> &v);
std::function<int(int)> b_adder(int k);

#endif
