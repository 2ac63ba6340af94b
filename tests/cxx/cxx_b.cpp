// The second translation unit: the other copies of the shared inline
// functions and templates, a class with its key function here, and a
// function that throws.
#include "cxx_shared.h"

#include <numeric>
#include <sstream>

Tracer b_global("b-global");

double Square::area() const { return side * side; }
std::string Square::name() const { return "square"; }

Shape *make_square(double side) { return new Square(side); }

void b_throws(int code) { throw AppError("b-error", code); }

int b_bump_counter() {
  Registry<int>::get()["b"] = 2;
  return shared_counter();
}

std::string b_describe(const std::vector<int> &v) {
  std::ostringstream o;
  o << "vector n=" << v.size() << " sum=" << std::accumulate(v.begin(), v.end(), 0)
    << " twice=" << twice(v.back());
  return o.str();
}

std::function<int(int)> b_adder(int k) {
  return [k](int x) { return x + k; };
}

extern "C" int_fn cxx_b_counter_addr() { return &shared_counter; }
extern "C" int (*cxx_b_twice_addr())(int) { return &twice<int>; }
