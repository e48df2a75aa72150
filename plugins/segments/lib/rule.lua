-- The rule language of segments: two ways to write a rule, one tree.
--
--   text:  country = "FR" and consent(email) and count(order.placed, 90d) >= 3
--   table: { all = { { attr = "country", eq = "FR" }, { consent = "email" },
--                    { count = "order.placed", within = "90d", gte = 3 } } }
--
-- Both become the same canonical tree (M.parse, M.from_table), which prints
-- back as text (M.text), compiles to one SQL expression over customers c
-- (M.compile) and says what it reads (deps) and when time alone can change
-- its answer (windows). docs/segments.md is the reference.
local M = {}

-- ---- the canonical tree ---------------------------------------------------------
--
--   {k = "and"|"or", args = {...}}       {k = "not", arg = node}
--   {k = "attr", name, op, value}        op: = != < <= > >= in exists
--   {k = "has", kind}                    an identity of that kind is present
--   {k = "consent", channel}             consent granted on that channel
--   {k = "count"|"sum", types = {...}, property?, within? (ms), where = {{name, value}...}, op, value}
--   {k = "rfm", field = r|f|m|group, op, value}
--   {k = "lifecycle"|"tier", op, value}  op: = != in
--   {k = "segment", name}
-- A value is a string, an integer, a boolean, a list (for in) or
-- {ago = ms} (now minus ms, for timestamp attributes).

local OPS = { ["="] = true, ["!="] = true, ["<"] = true, ["<="] = true, [">"] = true, [">="] = true, ["in"] = true }
local TABLE_OPS = { eq = "=", ne = "!=", lt = "<", lte = "<=", gt = ">", gte = ">=", ["in"] = "in" }
local RFM_FIELDS = { r = true, f = true, m = true, group = true }
M.RFM_GROUPS = { "champions", "loyal", "potential_loyalists", "new_customers", "promising", "need_attention",
                 "about_to_sleep", "at_risk", "cant_lose", "hibernating", "lost" }
M.STAGES = { "prospect", "new", "active", "at_risk", "lapsed", "churned" }
M.CHANNELS = { email = true, sms = true, push = true, phone = true }
local NAME = "^[%a_][%w_%-]*$"              -- attribute, identity kind, property, segment names
local EVENT_TYPE = "^[%w_][%w_%.%-]*%*?$"    -- order.placed, page-view, order.*
local MAX_NODES, MAX_DEPTH = 200, 32

local function fail(where, msg)
  error({ rule_error = true, message = (where and (where .. ": ") or "") .. msg }, 0)
end
M.fail = fail

-- "90d" -> ms (s, m, h, d, w), or nil. Text only: a bare number would be
-- ambiguous (90: days? ms?).
local UNIT = { s = 1000, m = 60000, h = 3600000, d = 86400000, w = 604800000 }
function M.duration(text)
  if type(text) ~= "string" then return nil end
  local n, u = text:match("^(%d+)([smhdw])$")
  n = n and math.tointeger(tonumber(n))
  if not n or n < 1 or n > 100000 then return nil end
  return n * UNIT[u]
end

local function duration_text(ms)
  for _, u in ipairs({ "w", "d", "h", "m", "s" }) do
    if ms % UNIT[u] == 0 then return (ms // UNIT[u]) .. u end
  end
  return ms .. "ms"
end

-- ---- text -> tree ------------------------------------------------------------------

-- Tokens: {t = kind, v = value, at = column}; kinds: name, str, int, dur, op,
-- "(", ")", ",", ":" , "|", eof.
local function lex(src)
  local toks, i, n = {}, 1, #src
  while i <= n do
    local c = src:sub(i, i)
    if c:match("%s") then
      i = i + 1
    elseif c == "-" and src:sub(i + 1, i + 1) == "-" then -- a comment to the end of the line
      i = (src:find("\n", i, true) or n) + 1
    elseif c == '"' or c == "'" then
      local j, buf = i + 1, {}
      while true do
        local d = src:sub(j, j)
        if d == "" then fail("column " .. i, "the string is never closed") end
        if d == c then
          if src:sub(j + 1, j + 1) == c then buf[#buf + 1] = c; j = j + 2 else break end
        else
          buf[#buf + 1] = d; j = j + 1
        end
      end
      toks[#toks + 1] = { t = "str", v = table.concat(buf), at = i }
      i = j + 1
    elseif c:match("[%d%-]") then
      local num = src:match("^%-?%d+", i)
      if not num then fail("column " .. i, "unexpected '" .. c .. "'") end
      local unit = src:match("^[smhdw]%f[^%w]", i + #num)
      if unit then
        local ms = M.duration(num .. unit)
        if not ms then fail("column " .. i, "bad duration '" .. num .. unit .. "'") end
        toks[#toks + 1] = { t = "dur", v = ms, at = i }
        i = i + #num + 1
      else
        if src:match("^[%a_]", i + #num) then fail("column " .. i, "bad number '" .. src:match("^%S+", i) .. "'") end
        local v = math.tointeger(tonumber(num))
        if not v then fail("column " .. i, "number out of range") end
        toks[#toks + 1] = { t = "int", v = v, at = i }
        i = i + #num
      end
    elseif c:match("[%a_]") then
      local w = src:match("^[%w_][%w_%.%-]*%*?", i)
      toks[#toks + 1] = { t = "name", v = w, at = i }
      i = i + #w
    else
      local two = src:sub(i, i + 1)
      if two == "<=" or two == ">=" or two == "!=" or two == "==" or two == "<>" then
        toks[#toks + 1] = { t = "op", v = (two == "==" and "=") or (two == "<>" and "!=") or two, at = i }
        i = i + 2
      elseif c == "=" or c == "<" or c == ">" then
        toks[#toks + 1] = { t = "op", v = c, at = i }
        i = i + 1
      elseif c == "(" or c == ")" or c == "," or c == ":" or c == "|" then
        toks[#toks + 1] = { t = c, at = i }
        i = i + 1
      else
        fail("column " .. i, "unexpected '" .. c .. "'")
      end
    end
  end
  toks[#toks + 1] = { t = "eof", at = n + 1 }
  return toks
end

local KEYWORDS = { ["and"] = true, ["or"] = true, ["not"] = true, ["in"] = true, ["ago"] = true,
                   ["true"] = true, ["false"] = true }

function M.parse(src)
  if type(src) ~= "string" or src:match("^%s*$") then fail(nil, "the rule is empty") end
  if #src > 16384 then fail(nil, "the rule is longer than 16384 characters") end
  local toks, pos, depth = lex(src), 1, 0
  local function peek() return toks[pos] end
  local function take() pos = pos + 1; return toks[pos - 1] end
  local function where(t) return "column " .. (t or peek()).at end
  local function expect(kind, what)
    local t = peek()
    if t.t ~= kind then fail(where(t), "expected " .. what) end
    return take()
  end
  local function is_word(w) local t = peek(); return t.t == "name" and t.v == w end

  local function literal()
    local t = take()
    if t.t == "str" or t.t == "int" then return t.v end
    if t.t == "name" and (t.v == "true" or t.v == "false") then return t.v == "true" end
    if t.t == "dur" then
      if not is_word("ago") then fail(where(), "a duration as a value must be followed by 'ago' (30d ago)") end
      take()
      return { ago = t.v }
    end
    fail(where(t), "expected a value (\"text\", a number, true, false or 30d ago)")
  end

  local function comparison()
    local t = peek()
    if t.t == "op" then
      take()
      return t.v, literal()
    end
    if is_word("in") then
      take()
      expect("(", "'(' after in")
      local list = { literal() }
      while peek().t == "," do take(); list[#list + 1] = literal() end
      expect(")", "')' closing the list")
      return "in", list
    end
    fail(where(t), "expected a comparison (=, !=, <, <=, >, >=, in)")
  end

  local function word_arg(what)
    local t = take()
    if (t.t == "name" and not KEYWORDS[t.v]) or t.t == "str" then return t.v end
    fail(where(t), "expected " .. what)
  end

  -- count(TYPE[|TYPE...][:PROPERTY] [, WINDOW] [, NAME = VALUE ...])
  local function aggregate(k)
    expect("(", "'(' after " .. k)
    local node = { k = k, types = { word_arg("an event type") }, where = {} }
    while peek().t == "|" do take(); node.types[#node.types + 1] = word_arg("an event type") end
    if peek().t == ":" then take(); node.property = word_arg("a property name") end
    while peek().t == "," do
      take()
      local t = peek()
      if t.t == "dur" then
        if node.within then fail(where(t), "two windows") end
        node.within = take().v
      else
        local name = word_arg("a window (90d) or a property filter (currency = \"EUR\")")
        local op = expect("op", "'=' after the property name")
        if op.v ~= "=" then fail(where(op), "property filters compare with '='") end
        node.where[#node.where + 1] = { name, literal() }
      end
    end
    expect(")", "')' closing " .. k .. "(...)")
    node.op, node.value = comparison()
    return node
  end

  local expr
  local function primary()
    local t = peek()
    if t.t == "(" then
      take()
      local e = expr()
      expect(")", "')'")
      return e
    end
    if t.t ~= "name" or KEYWORDS[t.v] then fail(where(t), "expected a condition") end
    take()
    local w = t.v
    local call = peek().t == "("
    if call and (w == "count" or w == "sum") then return aggregate(w) end
    if call and (w == "has" or w == "consent" or w == "segment" or w == "exists") then
      take()
      local arg = word_arg(w == "segment" and "a segment name" or w == "exists" and "an attribute name"
                           or w == "has" and "an identity kind (email, phone, ...)" or "a channel")
      expect(")", "')'")
      if w == "has" then return { k = "has", kind = arg } end
      if w == "consent" then return { k = "consent", channel = arg } end
      if w == "segment" then return { k = "segment", name = arg } end
      return { k = "attr", name = arg:gsub("^attr%.", ""), op = "exists" }
    end
    if call then fail(where(t), "unknown function '" .. w .. "' (count, sum, has, consent, segment, exists)") end
    local node
    if w == "lifecycle" or w == "tier" then
      node = { k = w }
    elseif w:match("^rfm%.") then
      node = { k = "rfm", field = w:sub(5) }
      if not RFM_FIELDS[node.field] then fail(where(t), "rfm has r, f, m and group, not '" .. node.field .. "'") end
    else
      node = { k = "attr", name = w:match("^attr%.(.+)$") or w }
    end
    node.op, node.value = comparison()
    return node
  end

  local function unary()
    if is_word("not") then
      take()
      depth = depth + 1
      if depth > MAX_DEPTH then fail(where(), "nested too deeply") end
      local e = { k = "not", arg = unary() }
      depth = depth - 1
      return e
    end
    return primary()
  end

  local function chain(word, sub, k)
    local first = sub()
    if not is_word(word) then return first end
    local args = { first }
    while is_word(word) do take(); args[#args + 1] = sub() end
    return { k = k, args = args }
  end
  local function conj() return chain("and", unary, "and") end
  expr = function()
    depth = depth + 1
    if depth > MAX_DEPTH then fail(where(), "nested too deeply") end
    local e = chain("or", conj, "or")
    depth = depth - 1
    return e
  end

  local tree = expr()
  if peek().t ~= "eof" then fail(where(), "unexpected '" .. tostring(peek().v or peek().t) .. "'") end
  return M.check(tree)
end

-- ---- table -> tree -----------------------------------------------------------------

local SUBJECTS = { "all", "any", "not", "attr", "has", "consent", "count", "sum", "rfm", "lifecycle", "tier", "segment" }

local function list_of(v)
  if type(v) == "table" then return v end
  return { v }
end

function M.from_table(t, path, depth)
  path, depth = path or "rule", depth or 1
  if depth > MAX_DEPTH then fail(path, "nested too deeply") end
  if type(t) ~= "table" then fail(path, "must be a table (or the rule as text)") end
  local subject
  for _, s in ipairs(SUBJECTS) do
    if t[s] ~= nil then
      if subject then fail(path, "has both '" .. subject .. "' and '" .. s .. "'") end
      subject = s
    end
  end
  if not subject then fail(path, "needs one of " .. table.concat(SUBJECTS, ", ")) end
  local known = { [subject] = true, within = true, where = true, property = true, exists = true }
  for k in pairs(TABLE_OPS) do known[k] = true end
  for k in pairs(t) do
    if not known[k] then fail(path, "unknown field '" .. tostring(k) .. "'") end
  end
  if subject == "all" or subject == "any" then
    if type(t[subject]) ~= "table" or #t[subject] == 0 then fail(path .. "." .. subject, "must be a non-empty list") end
    local args = {}
    if #t[subject] > MAX_NODES then fail(path .. "." .. subject, "more than " .. MAX_NODES .. " conditions") end
    for i, sub in ipairs(t[subject]) do args[i] = M.from_table(sub, path .. "." .. subject .. "[" .. i .. "]", depth + 1) end
    return { k = subject == "all" and "and" or "or", args = args }
  end
  if subject == "not" then return { k = "not", arg = M.from_table(t["not"], path .. ".not", depth + 1) } end

  local node = { k = subject }
  local op, value
  for k, o in pairs(TABLE_OPS) do
    if t[k] ~= nil then
      if op then fail(path, "has two comparisons") end
      op, value = o, t[k]
    end
  end
  if t.exists ~= nil then
    if op then fail(path, "has two comparisons") end
    if t.exists ~= true then fail(path .. ".exists", "must be true (use not for absent)") end
    op = "exists"
  end
  if type(value) == "table" and value.ago then
    value = { ago = M.duration(value.ago) or fail(path, "ago must be a duration such as \"30d\"") }
  end
  if subject == "attr" then
    node.name, node.op, node.value = t.attr, op, value
  elseif subject == "has" or subject == "consent" or subject == "segment" then
    if op then fail(path, subject .. " takes no comparison") end
    node[subject == "has" and "kind" or subject == "consent" and "channel" or "name"] = t[subject]
  elseif subject == "count" or subject == "sum" then
    node.types = list_of(t[subject])
    node.property = t.property
    if t.within ~= nil then
      node.within = M.duration(t.within) or fail(path .. ".within", "must be a duration such as \"90d\"")
    end
    node.where = {}
    if t.where ~= nil then
      if type(t.where) ~= "table" then fail(path .. ".where", "must be a table of property = value") end
      local names = {}
      for name in pairs(t.where) do names[#names + 1] = tostring(name) end
      table.sort(names)
      for _, name in ipairs(names) do node.where[#node.where + 1] = { name, t.where[name] } end
    end
    node.op, node.value = op, value
  elseif subject == "rfm" then
    node.field, node.op, node.value = t.rfm, op, value
  else -- lifecycle, tier: { lifecycle = "active" } or { lifecycle = {"at_risk", "lapsed"} } or with a comparison
    if t[subject] == true then
      node.op, node.value = op, value
    elseif op then
      fail(path, subject .. ": write either { " .. subject .. " = VALUE } or { " .. subject .. " = true, in = {...} }")
    else
      local v = t[subject]
      if type(v) == "table" then node.op, node.value = "in", v else node.op, node.value = "=", v end
    end
  end
  return M.check(node, path)
end

-- ---- checks (both forms) -----------------------------------------------------------

local function check_value(v, where, allow_ago)
  local ty = type(v)
  if ty == "string" then
    if #v > 1024 then fail(where, "a value is longer than 1024 characters") end
    return
  end
  if math.type(v) == "integer" or ty == "boolean" then return end
  if ty == "number" and v == math.floor(v) and math.abs(v) < 2 ^ 53 then return end
  if ty == "table" and allow_ago and math.type(v.ago) == "integer" then return end
  fail(where, "values are text, whole numbers (money in minor units), true or false" ..
               (allow_ago and ", or 30d ago" or ""))
end

local function check_cmp(node, where, ops, allow_ago)
  if not node.op then fail(where, "needs a comparison") end
  if not (ops or OPS)[node.op] then fail(where, "'" .. node.op .. "' is not allowed here") end
  if node.op == "exists" then return end
  if node.op == "in" then
    if type(node.value) ~= "table" or #node.value == 0 then fail(where, "in needs a non-empty list") end
    if #node.value > 1000 then fail(where, "in takes at most 1000 values") end
    for _, v in ipairs(node.value) do check_value(v, where, false) end
  else
    if node.value == nil then fail(where, "the comparison has no value") end
    check_value(node.value, where, allow_ago)
  end
end

local function check_name(v, where, what)
  if type(v) ~= "string" or not v:match(NAME) or #v > 64 then
    fail(where, what .. " must be a name ([A-Za-z_][A-Za-z0-9_-]*), got " .. tostring(v))
  end
end

-- Validates a tree (and normalises integers-as-floats from JSON); returns it.
function M.check(tree, path)
  local count = 0
  local function walk(n, where, depth)
    count = count + 1
    if count > MAX_NODES then fail(path, "more than " .. MAX_NODES .. " conditions") end
    if depth > MAX_DEPTH then fail(path, "nested too deeply") end
    local k = n.k
    if k == "and" or k == "or" then
      for i, a in ipairs(n.args) do walk(a, where .. "." .. k .. "[" .. i .. "]", depth + 1) end
    elseif k == "not" then
      walk(n.arg, where .. ".not", depth + 1)
    elseif k == "attr" then
      check_name(n.name, where, "the attribute")
      check_cmp(n, where .. " (" .. n.name .. ")", { ["="] = true, ["!="] = true, ["<"] = true, ["<="] = true,
                [">"] = true, [">="] = true, ["in"] = true, exists = true }, true)
      if n.op == "in" then
        local text = type(n.value[1]) == "string"
        for _, v in ipairs(n.value) do
          if (type(v) == "string") ~= text then fail(where .. " (" .. n.name .. ")", "an in list holds text or numbers, not both") end
        end
      end
    elseif k == "has" then
      check_name(n.kind, where, "the identity kind")
    elseif k == "consent" then
      if not M.CHANNELS[n.channel] then fail(where, "consent channels are email, sms, push and phone, not " .. tostring(n.channel)) end
    elseif k == "segment" then
      check_name(n.name, where, "the segment")
    elseif k == "count" or k == "sum" then
      if #n.types == 0 or #n.types > 20 then fail(where, k .. " needs 1 to 20 event types") end
      for _, ty in ipairs(n.types) do
        if type(ty) ~= "string" or not ty:match(EVENT_TYPE) or #ty > 128 then
          fail(where, "'" .. tostring(ty) .. "' is not an event type")
        end
        if ty:match("^segment%.") then fail(where, "segment events are not counted (use segment(NAME))") end
      end
      if n.property ~= nil then check_name(n.property, where, "the property") end
      if k == "count" and n.property then fail(where, "count takes no property (sum does)") end
      for _, w in ipairs(n.where) do
        check_name(w[1], where, "a filtered property")
        check_value(w[2], where .. " (" .. w[1] .. ")", false)
      end
      if #n.where > 8 then fail(where, "at most 8 property filters") end
      check_cmp(n, where, { ["="] = true, ["!="] = true, ["<"] = true, ["<="] = true, [">"] = true, [">="] = true })
      if type(n.value) ~= "number" then fail(where, k .. " compares with a number") end
      n.value = math.tointeger(n.value)
    elseif k == "rfm" then
      if not RFM_FIELDS[n.field] then fail(where, "rfm has r, f, m and group, not " .. tostring(n.field)) end
      check_cmp(n, where)
      if n.field == "group" then
        local groups = {}
        for _, g in ipairs(M.RFM_GROUPS) do groups[g] = true end
        for _, v in ipairs(n.op == "in" and n.value or { n.value }) do
          if not groups[v] then fail(where, "'" .. tostring(v) .. "' is not an RFM group (" .. table.concat(M.RFM_GROUPS, ", ") .. ")") end
        end
        if n.op ~= "=" and n.op ~= "!=" and n.op ~= "in" then fail(where, "rfm.group compares with =, != or in") end
      end
    elseif k == "lifecycle" or k == "tier" then
      check_cmp(n, where, { ["="] = true, ["!="] = true, ["in"] = true })
      if k == "lifecycle" then
        local stages = {}
        for _, s in ipairs(M.STAGES) do stages[s] = true end
        for _, v in ipairs(n.op == "in" and n.value or { n.value }) do
          if not stages[v] then fail(where, "'" .. tostring(v) .. "' is not a lifecycle stage (" .. table.concat(M.STAGES, ", ") .. ")") end
        end
      end
    else
      fail(where, "unknown condition '" .. tostring(k) .. "'")
    end
    -- JSON numbers arrive as floats: whole ones become integers.
    if type(n.value) == "number" then n.value = math.tointeger(n.value) or n.value end
    if type(n.value) == "table" and n.op == "in" then
      for i, v in ipairs(n.value) do if type(v) == "number" then n.value[i] = math.tointeger(v) or v end end
    end
  end
  walk(tree, path or "rule", 1)
  return tree
end

-- A rule given as text, as a table, or as canonical JSON text: its tree.
function M.read(rule)
  if type(rule) == "string" then
    if rule:match("^%s*{") then
      local t, err = crm.json.decode(rule)
      if t == nil then fail("rule", err) end
      return M.from_table(t)
    end
    return M.parse(rule)
  end
  return M.from_table(rule)
end

-- ---- tree -> text ------------------------------------------------------------------

local function quote(v)
  if type(v) == "string" then return '"' .. v:gsub('"', '""') .. '"' end
  if type(v) == "table" and v.ago then return duration_text(v.ago) .. " ago" end
  return tostring(v)
end

local function word(v)
  if v:match("^[%a_][%w_%.%-]*%*?$") and not KEYWORDS[v] then return v end
  return quote(v)
end

local function cmp_text(n)
  if n.op == "in" then
    local parts = {}
    for i, v in ipairs(n.value) do parts[i] = quote(v) end
    return " in (" .. table.concat(parts, ", ") .. ")"
  end
  return " " .. n.op .. " " .. quote(n.value)
end

function M.text(n, parent)
  local k = n.k
  if k == "and" or k == "or" then
    local parts = {}
    for i, a in ipairs(n.args) do parts[i] = M.text(a, k) end
    local s = table.concat(parts, " " .. k .. " ")
    if parent and parent ~= k then s = "(" .. s .. ")" end
    return s
  end
  if k == "not" then return "not " .. M.text(n.arg, "not") end
  if k == "attr" then
    local name = (n.name == "lifecycle" or n.name == "tier" or n.name:match("^rfm%.") or
                  n.name == "count" or n.name == "sum" or KEYWORDS[n.name] or n.name:find("[%.%-]"))
                 and ("attr." .. n.name) or n.name
    if n.op == "exists" then return "exists(" .. name .. ")" end
    return name .. cmp_text(n)
  end
  if k == "has" then return "has(" .. word(n.kind) .. ")" end
  if k == "consent" then return "consent(" .. n.channel .. ")" end
  if k == "segment" then return "segment(" .. word(n.name) .. ")" end
  if k == "count" or k == "sum" then
    local types = {}
    for i, t in ipairs(n.types) do types[i] = word(t) end
    local s = k .. "(" .. table.concat(types, "|") .. (n.property and (":" .. word(n.property)) or "")
    if n.within then s = s .. ", " .. duration_text(n.within) end
    for _, w in ipairs(n.where) do s = s .. ", " .. word(w[1]) .. " = " .. quote(w[2]) end
    return s .. ")" .. cmp_text(n)
  end
  if k == "rfm" then return "rfm." .. n.field .. cmp_text(n) end
  return k .. cmp_text(n) -- lifecycle, tier
end

-- ---- tree -> SQL -------------------------------------------------------------------
--
-- compile(tree, ctx) -> {sql, params, deps, windows, ago, lifecycle, segments}
--   sql: a 0/1 expression (never NULL) over the customer row `c`;
--   params: values for its `?`s in order; a {rel = ms} entry is bound to
--     now + ms when the rule runs (windows and "ago" move with time);
--   deps: set of what can change the answer for a customer: "event:TYPE"
--     (or "event:*"), "profile" (attributes, identities, consent), "facts"
--     (RFM, lifecycle, tier), "segment:NAME";
--   windows: {types, within, where_sql, where_params} of the time windows it
--     reads (a customer's answer can change when an event leaves one);
--   ago: {name, ms} of the attributes compared with "ago";
--   lifecycle: true when it reads the lifecycle stage;
--   segments: the names of the segments it reads.
-- ctx.segment_id(name) gives a segment's id (or raises); ctx.property is
-- the default property summed.

local SQL_OPS = { ["="] = "=", ["!="] = "!=", ["<"] = "<", ["<="] = "<=", [">"] = ">", [">="] = ">=" }

local function type_filter(types, params)
  local exact, prefix = {}, {}
  for _, t in ipairs(types) do
    if t == "*" then return "1" end
    if t:sub(-2) == ".*" then prefix[#prefix + 1] = t:sub(1, -2) else exact[#exact + 1] = t end
  end
  local parts = {}
  if #exact == 1 then
    parts[1] = "e.type = ?"
    params[#params + 1] = exact[1]
  elseif #exact > 1 then
    parts[1] = "e.type IN (" .. string.rep("?", #exact, ", ") .. ")"
    for _, t in ipairs(exact) do params[#params + 1] = t end
  end
  for _, p in ipairs(prefix) do
    -- A prefix as a range, so the comparison stays exact (no LIKE wildcards).
    parts[#parts + 1] = "(e.type >= ? AND e.type < ?)"
    params[#params + 1] = p
    params[#params + 1] = p:sub(1, -2) .. string.char(p:byte(-1) + 1)
  end
  return #parts == 1 and parts[1] or "(" .. table.concat(parts, " OR ") .. ")"
end

local function bind_value(v)
  if type(v) == "table" and v.ago then return { rel = -v.ago } end
  if type(v) == "boolean" then return v and 1 or 0 end
  return v
end

local function cmp_sql(lhs, n, params)
  if n.op == "in" then
    for _, v in ipairs(n.value) do params[#params + 1] = bind_value(v) end
    return lhs .. " IN (" .. string.rep("?", #n.value, ", ") .. ")"
  end
  params[#params + 1] = bind_value(n.value)
  return lhs .. " " .. SQL_OPS[n.op] .. " ?"
end

-- The event filter of a count or sum (shared with the edge finder): SQL
-- over `e` and its params, without the time window.
function M.event_filter(n)
  local params = {}
  local sql = "e.customer_id = c.id AND " .. type_filter(n.types, params)
  for _, w in ipairs(n.where) do
    sql = sql .. " AND json_extract(e.properties, ?) = ?"
    params[#params + 1] = "$." .. w[1]
    params[#params + 1] = bind_value(w[2])
  end
  return sql, params
end

function M.compile(tree, ctx)
  local out = { params = {}, deps = {}, windows = {}, ago = {}, segments = {} }
  local params = out.params
  local function add(list) for _, v in ipairs(list) do params[#params + 1] = v end end

  local function gen(n)
    local k = n.k
    if k == "and" or k == "or" then
      local parts = {}
      for i, a in ipairs(n.args) do parts[i] = gen(a) end
      return "(" .. table.concat(parts, k == "and" and " AND " or " OR ") .. ")"
    elseif k == "not" then
      return "(NOT " .. gen(n.arg) .. ")"
    elseif k == "attr" then
      out.deps.profile = true
      params[#params + 1] = n.name
      local base = "EXISTS (SELECT 1 FROM customer_attributes a WHERE a.customer_id = c.id AND a.name = ?"
      if n.op == "exists" then return base .. ")" end
      if type(n.value) == "table" and n.value.ago then out.ago[#out.ago + 1] = { n.name, n.value.ago } end
      -- Values compare within their kind: a number with integers (and
      -- timestamps, money, booleans), text with text; SQLite would order
      -- any text above any number ("34" > 1000).
      local first = n.op == "in" and n.value[1] or n.value
      local kind = type(first) == "string" and "text" or "integer"
      return base .. " AND typeof(a.value) = '" .. kind .. "' AND " .. cmp_sql("a.value", n, params) .. ")"
    elseif k == "has" then
      out.deps.profile = true
      params[#params + 1] = n.kind
      return "EXISTS (SELECT 1 FROM customer_identities i WHERE i.customer_id = c.id AND i.kind = ?)"
    elseif k == "consent" then
      out.deps.profile = true
      params[#params + 1] = n.channel
      return "EXISTS (SELECT 1 FROM customer_consent k WHERE k.customer_id = c.id AND k.channel = ? AND k.granted = 1)"
    elseif k == "count" or k == "sum" then
      for _, t in ipairs(n.types) do out.deps["event:" .. t] = true end
      local filter, fparams = M.event_filter(n)
      local agg = "count(*)"
      if k == "sum" then
        agg = "total(json_extract(e.properties, ?))" -- total(): no overflow error, 0.0 when none
        params[#params + 1] = "$." .. (n.property or ctx.property)
      end
      add(fparams)
      local sql = "(SELECT " .. agg .. " FROM events e WHERE " .. filter
      if n.within then
        sql = sql .. " AND e.occurred_at > ?"
        params[#params + 1] = { rel = -n.within }
      end
      sql = sql .. " AND e.occurred_at <= ?)"
      params[#params + 1] = { rel = 0 }
      out.windows[#out.windows + 1] = { filter = filter, params = fparams, within = n.within }
      return "(" .. cmp_sql(sql, n, params) .. ")"
    elseif k == "rfm" then
      out.deps.facts = true
      local col = n.field == "group" and "p.rfm_group" or ("p." .. n.field)
      return "EXISTS (SELECT 1 FROM segments_profile p WHERE p.customer_id = c.id AND " .. cmp_sql(col, n, params) .. ")"
    elseif k == "lifecycle" then
      out.deps.facts = true
      out.lifecycle = true
      -- Customers the plugin has no row for are prospects.
      return "(" .. cmp_sql("coalesce((SELECT p.stage FROM segments_profile p WHERE p.customer_id = c.id), 'prospect')",
                            n, params) .. ")"
    elseif k == "tier" then
      out.deps.facts = true
      return "EXISTS (SELECT 1 FROM segments_profile p WHERE p.customer_id = c.id AND " .. cmp_sql("p.tier", n, params) .. ")"
    elseif k == "segment" then
      out.deps["segment:" .. n.name] = true
      out.segments[#out.segments + 1] = n.name
      params[#params + 1] = ctx.segment_id(n.name)
      return "EXISTS (SELECT 1 FROM segments_members m WHERE m.segment_id = ? AND m.customer_id = c.id)"
    end
    error("unknown node " .. tostring(k))
  end

  out.sql = gen(tree)
  return out
end

-- Params with their {rel} entries bound to now.
function M.bind(params, now)
  local out = {}
  for i, v in ipairs(params) do
    out[i] = type(v) == "table" and (now + v.rel) or v
  end
  return out
end

-- Every leaf of a tree, depth first, with its path (for explain).
function M.each_node(tree, fn)
  local function walk(n, depth)
    fn(n, depth)
    if n.args then for _, a in ipairs(n.args) do walk(a, depth + 1) end end
    if n.arg then walk(n.arg, depth + 1) end
  end
  walk(tree, 0)
end

-- Errors raised by fail() become plain messages for callers.
function M.message(err)
  if type(err) == "table" and err.rule_error then return err.message end
  return nil
end

return M
