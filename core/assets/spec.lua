-- The plugin spec runner: a small busted-like framework (describe, it,
-- before_each, after_each, pending) with assertions, run by
-- `rapport plugin test` inside an operator sandbox. Each `it` gets a fresh
-- scratch database with the plugin enabled and the clock frozen at
-- test.START (move it with test.advance). `test` holds the C primitives.
local test = ...

local root = { name = nil, before = {}, after = {}, items = {} }
local current = root

function describe(name, fn)
  local suite = { name = name, before = {}, after = {}, items = {}, parent = current }
  table.insert(current.items, { suite = suite })
  local saved = current
  current = suite
  fn()
  current = saved
end

function it(name, fn)
  table.insert(current.items, { test = { name = name, fn = fn, suite = current } })
end

function pending(name)
  table.insert(current.items, { test = { name = name, suite = current, pending = true } })
end

function before_each(fn) table.insert(current.before, fn) end
function after_each(fn) table.insert(current.after, fn) end

-- ---- assertions ---------------------------------------------------------------

local function show(v)
  if type(v) == "string" then return string.format("%q", v) end
  if type(v) == "table" then
    local ok, s = pcall(crm.json.encode, v)
    if ok then return s end
  end
  return tostring(v)
end

local function deep_equal(a, b)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then return false end
  for k, v in pairs(a) do
    if not deep_equal(v, b[k]) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end

local function fail(msg, level) error(msg, (level or 1) + 2) end

assert = setmetatable({}, { __call = function(_, v, msg, ...)
  if not v then fail(msg or "assertion failed", 0) end
  return v, msg, ...
end })

function assert.equals(expected, actual, msg)
  if expected ~= actual then
    fail((msg and msg .. ": " or "") .. "expected " .. show(expected) .. ", got " .. show(actual))
  end
end

function assert.same(expected, actual, msg)
  if not deep_equal(expected, actual) then
    fail((msg and msg .. ": " or "") .. "expected " .. show(expected) .. ", got " .. show(actual))
  end
end

function assert.is_true(v, msg) if v ~= true then fail(msg or ("expected true, got " .. show(v))) end end
function assert.is_false(v, msg) if v ~= false then fail(msg or ("expected false, got " .. show(v))) end end
function assert.is_nil(v, msg) if v ~= nil then fail(msg or ("expected nil, got " .. show(v))) end end
function assert.is_not_nil(v, msg) if v == nil then fail(msg or "expected a value, got nil") end end

function assert.matches(pattern, s, msg)
  if type(s) ~= "string" or not s:find(pattern) then
    fail((msg and msg .. ": " or "") .. show(s) .. " does not match " .. show(pattern))
  end
end

-- assert.has_error(fn [, pattern]): fn must raise, with a message matching
-- pattern (a plain substring) when given. Returns the message.
function assert.has_error(fn, pattern)
  local ok, err = pcall(fn)
  if ok then fail("expected an error, none was raised") end
  err = tostring(err)
  if pattern and not err:find(pattern, 1, true) then
    fail("error " .. show(err) .. " does not contain " .. show(pattern))
  end
  return err
end

-- ---- running --------------------------------------------------------------------

local function chain(suite, field, out)
  if suite.parent then chain(suite.parent, field, out) end
  for _, fn in ipairs(suite[field]) do table.insert(out, fn) end
  return out
end

local function full_name(t)
  local parts, s = { t.name }, t.suite
  while s and s.name do
    table.insert(parts, 1, s.name)
    s = s.parent
  end
  return table.concat(parts, " ")
end

local function collect(suite, out)
  for _, item in ipairs(suite.items) do
    if item.suite then collect(item.suite, out) else table.insert(out, item.test) end
  end
  return out
end

-- test.emit(event) -> id, duplicate: emits through the log and dispatches.
function test.emit(ev)
  local id, dup = crm.events.emit(ev)
  test.dispatch()
  return id, dup
end

local runner = {}

-- Loads one spec file's registrations (chunk already compiled by the host).
function runner.load(chunk, file)
  local before = #root.items
  current = root
  chunk()
  for i = before + 1, #root.items do root.items[i].file = file end
end

function runner.run()
  local passed, failed, skipped = 0, 0, 0
  for _, t in ipairs(collect(root, {})) do
    local name = full_name(t)
    if t.pending then
      skipped = skipped + 1
      test.write("  - " .. name .. " (pending)\n")
    else
      local ok, err = xpcall(function()
        test.reset()
        for _, fn in ipairs(chain(t.suite, "before", {})) do fn() end
        t.fn()
      end, test.traceback)
      for _, fn in ipairs(chain(t.suite, "after", {})) do
        local aok, aerr = xpcall(fn, test.traceback)
        if ok and not aok then ok, err = false, aerr end
      end
      if ok then
        passed = passed + 1
        test.write("  ok " .. name .. "\n")
      else
        failed = failed + 1
        test.write("  FAIL " .. name .. "\n    " .. tostring(err):gsub("\n", "\n    ") .. "\n")
      end
    end
  end
  return passed, failed, skipped
end

return runner
