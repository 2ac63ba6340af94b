-- Lua corpus workload: `lua workload.lua OUTFILE`.
--
-- Writes a deterministic report to OUTFILE (never stdout: the libjitrt tests
-- run the interpreter's main() inside the test process). Nothing printed may
-- depend on addresses, time or hash-table iteration order (string hashes are
-- seeded randomly in Lua 5.4), so keys are sorted before printing.

local outname = ... or arg[1]
assert(outname, "usage: lua workload.lua OUTFILE")
local out = assert(io.open(outname, "w"))

local function emit(fmt, ...)
  out:write(string.format(fmt, ...), "\n")
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  return keys
end

emit("== lua workload (%s)", _VERSION)

-- Closures and upvalues -----------------------------------------------------
do
  local function counter(start, step)
    local n = start
    return function() n = n + step; return n end
  end
  local a, b = counter(0, 1), counter(100, -7)
  local seq = {}
  for _ = 1, 5 do seq[#seq + 1] = a() .. "/" .. b() end
  emit("closures: %s", table.concat(seq, " "))

  local adders = {}
  for i = 1, 4 do adders[i] = function(x) return x + i * i end end
  local s = 0
  for i = 1, 4 do s = s + adders[i](i) end
  emit("closure loop vars: %d", s)

  local function compose(...)
    local fs = table.pack(...)
    return function(x)
      for i = fs.n, 1, -1 do x = fs[i](x) end
      return x
    end
  end
  local f = compose(function(x) return x * 2 end, function(x) return x + 3 end, math.abs)
  emit("compose: %d %d", f(-10), f(4))

  local function fib(n) if n < 2 then return n end return fib(n - 1) + fib(n - 2) end
  emit("fib(25) = %d", fib(25))
end

-- Coroutines ----------------------------------------------------------------
do
  local function gen(n)
    return coroutine.wrap(function()
      for i = 1, n do coroutine.yield(i, i * i) end
      return "done"
    end)
  end
  local g, parts = gen(6), {}
  for _ = 1, 6 do
    local i, sq = g()
    parts[#parts + 1] = i .. ":" .. sq
  end
  emit("generator: %s %s", table.concat(parts, ","), g())

  -- producer/consumer with values passed both ways
  local co = coroutine.create(function(a)
    local total = a
    while true do
      local v = coroutine.yield(total)
      if v == nil then break end
      total = total + v
    end
    return "final", total
  end)
  local log = {}
  local _, t = coroutine.resume(co, 10)
  log[#log + 1] = t
  for v = 1, 5 do
    _, t = coroutine.resume(co, v * 3)
    log[#log + 1] = t
  end
  local ok, tag, total = coroutine.resume(co, nil)
  emit("coroutine: %s | %s %s %d %s", table.concat(log, " "), tostring(ok), tag, total,
       coroutine.status(co))
  local ok2, err = coroutine.resume(co)
  emit("resume dead: %s %s", tostring(ok2), err)

  local errco = coroutine.create(function() coroutine.yield(1); error("boom in coroutine", 0) end)
  coroutine.resume(errco)
  local ok3, err3 = coroutine.resume(errco)
  emit("coroutine error: %s %s %s", tostring(ok3), err3, coroutine.status(errco))
  emit("isyieldable in main: %s", tostring(coroutine.isyieldable()))
end

-- Strings: format, gsub, patterns ---------------------------------------------
do
  emit("format: [%5d] [%-5s] [%05.1f] [%x] [%X] [%o] [%e] [%g] [%q]",
       42, "ab", 3.14159, 255, 3054, 8, 12345.678, 0.0001, "a\n\"b\"\0c")
  emit("format %%a-free floats: %.3f %.10g %g %g", 1 / 3, 2 ^ 0.5, 1e300 * 10, -(0 / 0) ~= -(0 / 0) and 0 or 1)
  local text = "The quick brown fox jumps over the lazy dog; the end."
  local words = {}
  for w in text:gmatch("%a+") do words[#words + 1] = w:lower() end
  emit("words: %d first=%s last=%s", #words, words[1], words[#words])
  local replaced, n = text:gsub("(%w+)", function(w)
    if #w > 4 then return w:upper() end
  end)
  emit("gsub fn: %s (%d)", replaced, n)
  emit("gsub table: %s", ("$name is $age"):gsub("%$(%w+)", { name = "lua", age = "31" }))
  emit("gsub captures: %s", ("hello world from lua"):gsub("(%w+) (%w+)", "%2 %1"))
  emit("find: %s %s", text:find("fox"), text:find("l(%a+)y"))
  emit("match: %s | %s | %s", ("key = value"):match("^(%w+)%s*=%s*(%w+)$"),
       ("2024-01-15"):match("(%d+)-(%d+)-(%d+)"), ("  trim me  "):match("^%s*(.-)%s*$"))
  emit("balanced: %s", ("f(a(b)c) g(d)"):match("%b()"))
  emit("frontier: %s", select(2, ("THE (quick) fox"):gsub("%f[%a]%a+", "W")))
  emit("rep/reverse/byte/char: %s %s %d %s", ("ab"):rep(3, "-"), ("stressed"):reverse(),
       ("A"):byte(), string.char(76, 117, 97))
  local csv = "alpha,beta,,delta"
  local fields = {}
  for field in (csv .. ","):gmatch("([^,]*),") do fields[#fields + 1] = "<" .. field .. ">" end
  emit("csv: %s", table.concat(fields))
  emit("utf8: %d %s %s", utf8.len("häßlich"), utf8.char(72, 228, 8364),
       table.concat({ utf8.codepoint("häß", 1, -1) }, ","))
end

-- Tables: sort with comparator, metatables -------------------------------------
do
  math.randomseed(42)
  local people = {}
  local names = { "ana", "bo", "cy", "dee", "eve", "flo", "gus", "hal", "ivy", "jo" }
  for i = 1, 200 do
    people[i] = { name = names[(i * 7) % #names + 1] .. i, age = (i * 37) % 90, score = math.random(1, 1000) }
  end
  table.sort(people, function(x, y)
    if x.age ~= y.age then return x.age > y.age end
    return x.name < y.name
  end)
  local top = {}
  for i = 1, 8 do top[i] = people[i].name .. "@" .. people[i].age end
  emit("sort comparator: %s", table.concat(top, " "))
  local scores = {}
  for i, p in ipairs(people) do scores[i] = p.score end
  table.sort(scores)
  emit("sorted scores: min=%d median=%d max=%d", scores[1], scores[100], scores[200])
  local rnd = {}
  for i = 1, 5 do rnd[i] = math.random(100) end
  emit("random after seed: %s %.6f", table.concat(rnd, ","), math.random())

  local t = { 5, 3, 8 }
  table.insert(t, 1, 0)
  table.insert(t, 9)
  emit("insert/remove: %d %s", table.remove(t, 2), table.concat(t, ","))
  emit("move/unpack: %s", table.concat(table.move({ 1, 2, 3 }, 1, 3, 2, { 9 }), ","))
  emit("select/pack: %d %s", select("#", nil, nil, 3), select(-1, "a", "b", "c"))

  local Vec = {}
  Vec.__index = Vec
  local function vec(x, y) return setmetatable({ x = x, y = y }, Vec) end
  Vec.__add = function(a, b) return vec(a.x + b.x, a.y + b.y) end
  Vec.__mul = function(a, k) return vec(a.x * k, a.y * k) end
  Vec.__eq = function(a, b) return a.x == b.x and a.y == b.y end
  Vec.__lt = function(a, b) return a:len2() < b:len2() end
  Vec.__le = function(a, b) return a:len2() <= b:len2() end
  Vec.__tostring = function(a) return "(" .. a.x .. "," .. a.y .. ")" end
  Vec.__len = function() return 2 end
  Vec.__call = function(a, k) return a.x * k + a.y end
  Vec.__concat = function(a, b) return tostring(a) .. "++" .. tostring(b) end
  function Vec:len2() return self.x * self.x + self.y * self.y end
  local p, q = vec(1, 2), vec(3, -4)
  emit("metatable: %s %s %s %s %s %d %d %s", tostring(p + q), tostring(p * 3), tostring(p == vec(1, 2)),
       tostring(p < q), tostring(q <= p), #p, p(10), p .. q)

  local defaults = setmetatable({}, { __index = function(_, k) return "default:" .. k end })
  defaults.set = "explicit"
  emit("__index fn: %s %s", defaults.set, defaults.missing)
  local log = {}
  local proxy = setmetatable({}, { __newindex = function(tt, k, v) log[#log + 1] = k; rawset(tt, k, v * 2) end })
  proxy.a = 1; proxy.b = 2; proxy.a = 5
  emit("__newindex: %s a=%d b=%d", table.concat(log, ","), proxy.a, proxy.b)

  local counts = {}
  for w in ("one two three two three three"):gmatch("%a+") do counts[w] = (counts[w] or 0) + 1 end
  local parts = {}
  for _, k in ipairs(sorted_keys(counts)) do parts[#parts + 1] = k .. "=" .. counts[k] end
  emit("word counts: %s", table.concat(parts, " "))

  local weak = setmetatable({}, { __mode = "k" })
  weak[{}] = 1
  collectgarbage()
  collectgarbage()
  local n = 0
  for _ in pairs(weak) do n = n + 1 end
  emit("weak table after gc: %d", n)

  local closed = {}
  do
    local res <close> = setmetatable({}, { __close = function() closed[#closed + 1] = "closed" end })
    closed[#closed + 1] = "using"
  end
  emit("to-be-closed: %s", table.concat(closed, ","))
end

-- Integer and float math ------------------------------------------------------
do
  emit("int: %d %d %d %d %d", 7 // 2, -7 // 2, 7 % -3, -7 % 3, 2 ^ 10 // 1 | 0)
  emit("int limits: %d %d %s", math.maxinteger, math.mininteger, tostring(math.maxinteger + 1 == math.mininteger))
  emit("bitwise: %d %d %d %d %d %d", 0xF0 & 0x3C, 0xF0 | 0x0F, 0xFF ~ 0x0F, ~0, 1 << 62, -1 >> 60)
  emit("float: %s %s %s %s", tostring(7 / 2), tostring(3.0), tostring(-0.0), tostring(1e100))
  emit("types: %s %s %s %s", math.type(1), math.type(1.0), math.type("1"), tostring(math.tointeger(3.0)))
  emit("conv: %s %s %s %s", tostring(10 // 3.0), tostring(2 ^ 53), tostring("10" + 5), tostring("0x10" * 1))
  emit("math: %.10f %.10f %.10f %.10f", math.sin(1), math.exp(1), math.log(10, 2), math.sqrt(2))
  emit("floor/ceil/fmod/modf: %d %d %.3f %s", math.floor(-3.5), math.ceil(-3.5), math.fmod(7.5, 2),
       table.concat({ math.modf(-3.25) }, ","))
  emit("huge/nan: %s %s %s", tostring(math.huge), tostring(-math.huge), tostring(0 / 0 ~= 0 / 0))
  emit("ult/abs/max: %s %d %d", tostring(math.ult(1, -1)), math.abs(math.mininteger + 1), math.max(3, 9, -2))
  local acc = 0
  for i = 1, 100000 do acc = (acc * 31 + i) % 1000000007 end
  emit("hash loop: %d", acc)
  local facc = 0.0
  for i = 1, 1000 do facc = facc + 1 / (i * i) end
  emit("basel partial: %.12f", facc)
  emit("tostring/tonumber: %s %s %s %s", tostring(tonumber("  0x1p4  ")), tostring(tonumber("z", 36)),
       tostring(tonumber("1e2")), tostring(tonumber("nope")))
end

-- Errors: pcall, error objects, xpcall ------------------------------------------
do
  local ok, err = pcall(error, "plain message", 0)
  emit("pcall string: %s %s", tostring(ok), err)
  ok, err = pcall(function() error("with position") end)
  emit("pcall position: %s %s", tostring(ok), (err:gsub("^.-:%d+: ", "<pos>: ")))
  local E = setmetatable({}, { __tostring = function(e) return "E(" .. e.code .. ")" end })
  E.__index = E
  ok, err = pcall(function() error(setmetatable({ code = 42, msg = "custom" }, getmetatable(E))) end)
  emit("pcall object: %s code=%d msg=%s str=%s", tostring(ok), err.code, err.msg, tostring(err))
  ok, err = pcall(function() local t = nil; return t.field end)
  emit("runtime error: %s %s", tostring(ok), (err:gsub("^.-:%d+: ", "<pos>: ")))
  ok, err = pcall(function() return 1 + {} end)
  emit("arith error: %s", (err:gsub("^.-:%d+: ", "<pos>: ")))
  ok, err = pcall(string.rep)
  emit("C error: %s", err)
  local trace = {}
  ok, err = xpcall(function() error({ level = "deep" }) end, function(e)
    trace[#trace + 1] = "handler"
    return "handled " .. e.level
  end)
  emit("xpcall: %s %s %s", tostring(ok), err, table.concat(trace))
  local function nested(n)
    if n == 0 then error("bottom", 0) end
    local ok2, e = pcall(nested, n - 1)
    error(e .. "<" .. n, 0)
  end
  ok, err = pcall(nested, 4)
  emit("nested rethrow: %s", err)
  emit("error(nil): %s", tostring(select(2, pcall(error))))
  emit("assert: %s", select(2, pcall(assert, false, "assert message")))
  local ok3, e3 = pcall(load, "return +")
  emit("load syntax error: %s %s", tostring(ok3), tostring(select(2, load("return +", "=chunk"))))
  emit("load ok: %d", load("local a, b = ... return a * b")(6, 7))
end

-- string.pack / unpack ---------------------------------------------------------
do
  local function hex(s) return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end)) end
  local packed = string.pack("<i4 >i4 <I2 z s1 d", -2, 258, 65535, "zs", "len", 1.5)
  emit("pack: %d %s", #packed, hex(packed))
  local a, b, c, d, e, f, nextpos = string.unpack("<i4 >i4 <I2 z s1 d", packed)
  emit("unpack: %d %d %d %s %s %.1f %d", a, b, c, d, e, f, nextpos)
  emit("packsize: %d %d", string.packsize("i8 i2 !8 d"), string.packsize("<i3 B"))
  emit("pack j/n: %s", hex(string.pack(">j n", math.mininteger, -0.25)))
  local ok, err = pcall(string.pack, "i2", 1 << 20)
  emit("pack overflow: %s %s", tostring(ok), err)
end

-- Bigger computation: sieve and string building --------------------------------
do
  local N = 20000
  local sieve, primes = {}, 0
  for i = 2, N do
    if not sieve[i] then
      primes = primes + 1
      for j = i * i, N, i do sieve[j] = true end
    end
  end
  emit("primes below %d: %d", N, primes)
  local buf = {}
  for i = 1, 2000 do buf[#buf + 1] = string.format("%04x", (i * 2654435761) % 65536) end
  local s = table.concat(buf)
  local sum = 0
  for i = 1, #s, 97 do sum = sum + s:byte(i) end
  emit("string build: len=%d checksum=%d", #s, sum)
end

emit("LUA WORKLOAD OK")
out:close()
