// The first translation unit of the C++ test program: static objects,
// exceptions, RTTI, virtual calls, the STL and iostreams. Its entry points
// are extern "C" so a host can find them.
#include "cxx_shared.h"

#include <iomanip>
#include <sstream>
#include <typeinfo>

static Tracer a_static("a-static");
Tracer a_global("a-global");

static int ctor_order[4];
static int ctor_count;
__attribute__((constructor(201))) static void prio_201() { ctor_order[ctor_count++] = 201; }
__attribute__((constructor(101))) static void prio_101() { ctor_order[ctor_count++] = 101; }
__attribute__((constructor)) static void prio_default() { ctor_order[ctor_count++] = 65535; }
__attribute__((constructor(150))) static void prio_150() { ctor_order[ctor_count++] = 150; }

static void run_exceptions(std::ostringstream &out) {
  // Thrown and caught in the same function.
  try {
    throw std::runtime_error("local");
  } catch (const std::exception &e) {
    out << "caught " << e.what() << "\n";
  }
  // Thrown in the other object, caught here by a base class.
  try {
    b_throws(42);
  } catch (const AppError &e) {
    out << "caught AppError " << e.what() << " code " << e.code << "\n";
  }
  // Rethrown through a frame with a destructor to run.
  try {
    try {
      Tracer t("unwound");
      b_throws(7);
    } catch (...) {
      out << "rethrowing\n";
      throw;
    }
  } catch (const std::runtime_error &e) {
    out << "caught rethrown " << e.what() << "\n";
  }
  // The STL throws from the host library through JIT frames.
  try {
    std::vector<int> v(3);
    (void)v.at(10);
  } catch (const std::out_of_range &) {
    out << "caught out_of_range\n";
  }
  // A non-class exception.
  try {
    throw 17;
  } catch (int x) {
    out << "caught int " << x << "\n";
  }
}

static void run_rtti(std::ostringstream &out) {
  Shape *s = make_square(3.0);
  out << "virtual area " << s->area() << " name " << s->name() << "\n";
  Square *sq = dynamic_cast<Square *>(s);
  out << "dynamic_cast " << (sq ? "ok" : "null") << " side " << (sq ? sq->side : 0) << "\n";
  out << "typeid " << (typeid(*s) == typeid(Square) ? "Square" : "other") << "\n";
  struct Other : Shape {
    double area() const override { return 1; }
  };
  Shape *o = new Other;
  out << "dynamic_cast other " << (dynamic_cast<Square *>(o) ? "wrong" : "null") << "\n";
  delete o;
  delete s;
}

static void run_stl(std::ostringstream &out) {
  std::map<std::string, int> m;
  for (const char *w : {"pear", "apple", "fig", "apple", "pear", "apple"})
    m[w]++;
  for (const auto &kv : m)
    out << kv.first << "=" << kv.second << " ";
  out << "\n";
  std::vector<int> v;
  for (int i = 0; i < 10; i++)
    v.push_back(i * i);
  out << b_describe(v) << "\n";
  std::function<int(int)> add5 = b_adder(5);
  std::function<int(int)> sq = [](int x) { return x * x; };
  out << "function " << add5(10) << " " << sq(add5(1)) << "\n";
  std::string s = "jit";
  for (int i = 0; i < 3; i++)
    s += s;
  out << "string " << s.size() << " " << s.substr(0, 7) << "\n";
  out << std::fixed << std::setprecision(3) << "float " << 3.14159265 << " hex " << std::hex
      << 255 << std::dec << "\n";
  Registry<int>::get()["a"] = 1;
}

extern "C" int_fn cxx_a_counter_addr() { return &shared_counter; }
extern "C" int (*cxx_a_twice_addr())(int) { return &twice<int>; }

extern "C" int cxx_run(void) {
  std::ostringstream out;
  out << "priorities";
  for (int i = 0; i < ctor_count; i++)
    out << " " << ctor_order[i];
  out << "\n";
  run_exceptions(out);
  run_rtti(out);
  run_stl(out);
  out << "counter " << shared_counter() << " " << b_bump_counter() << " " << shared_counter()
      << "\n";
  out << "same inline copy " << (cxx_a_counter_addr() == cxx_b_counter_addr() ? "yes" : "no")
      << "\n";
  out << "same template copy " << (cxx_a_twice_addr() == cxx_b_twice_addr() ? "yes" : "no")
      << " " << twice(21) << "\n";
  out << "registry " << Registry<int>::get().size() << "\n";
  shared_tracer();
  std::istringstream lines(out.str());
  std::string line;
  while (std::getline(lines, line))
    logs(line);
  return 0;
}

// Throws into the caller (a host frame catches it).
extern "C" void cxx_throw(int code) {
  Tracer t("throw-frame");
  if (code == 0)
    throw std::logic_error("from jit");
  b_throws(code);
}
