-- Membership: the segment definitions (compiled once per version), the
-- evaluation of segments for a set of customers, the changes of membership
-- with their segment.entered / segment.exited events, and the time edges.
--
-- Every evaluation is set-based: one SQL statement per segment for a whole
-- batch of customers (a list of ids, or a range of ids for rebuilds), that
-- returns only the customers whose membership changes. Segments run in
-- dependency order, so a segment that reads another is evaluated after it,
-- for the customers whose membership of it changed.
local rule = require("lib.rule")
local facts = require("lib.facts")

local M = {}

local cfg -- set by M.init

-- Lua predicates that failed since the counter was last reset (a command
-- reports them; jobs and handlers log each one).
M.lua_errors = { n = 0 }

function M.init(config) cfg = config end

-- ---- definitions ------------------------------------------------------------------

local cache = { version = nil }

function M.version()
  return crm.db.value("SELECT value FROM segments_state WHERE key = 'version'") or 0
end

function M.bump_version()
  crm.db.exec([[INSERT INTO segments_state(key, value) VALUES ('version', 1)
                ON CONFLICT(key) DO UPDATE SET value = value + 1]])
  cache.version = nil
end

-- A copy of a table of functions one level deep: a Lua segment may change
-- its copy, never the plugin's own.
local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = type(v) == "table" and copy(v) or v end
  return c
end

-- Compiles a Lua segment's source: the chunk must return a function of
-- (customer, now) returning true or false (and, optionally, when to look
-- again). It sees copies of the pure standard library, nothing of crm.
function M.compile_lua(name, source)
  local env = {
    math = copy(math), string = copy(string), table = copy(table), utf8 = copy(utf8),
    pairs = pairs, ipairs = ipairs, next = next, select = select, type = type,
    tostring = tostring, tonumber = tonumber, error = error, assert = assert, pcall = pcall,
    DAY = crm.time.DAY, HOUR = crm.time.HOUR, MINUTE = crm.time.MINUTE, WEEK = crm.time.WEEK,
  }
  local chunk, err = load(source, "=segment " .. name, "t", env)
  if not chunk then return nil, err end
  local ok, fn = pcall(chunk)
  if not ok then return nil, tostring(fn) end
  if type(fn) ~= "function" then
    return nil, ("segment %s: the Lua chunk must return a function, returned %s"):format(name, type(fn))
  end
  return fn
end

-- Prefix patterns (order.*) and exact types a segment reads.
local function event_reader(deps)
  local exact, prefixes, any = {}, {}, false
  for d in pairs(deps) do
    local t = d:match("^event:(.+)$")
    if t == "*" then any = true
    elseif t and t:sub(-2) == ".*" then prefixes[#prefixes + 1] = t:sub(1, -2)
    elseif t then exact[t] = true end
  end
  return function(ty)
    if any or exact[ty] then return true end
    for _, p in ipairs(prefixes) do if ty:sub(1, #p) == p then return true end end
    return false
  end
end

-- Builds one definition from its row; ids maps names to ids.
local function build(row, ids)
  local s = { id = row.id, name = row.name, kind = row.kind, status = row.status, deps = {}, segments = {} }
  local ctx = {
    property = cfg.property,
    segment_id = function(name)
      return ids[name] or rule.fail("rule", "segment '" .. name .. "' does not exist")
    end,
  }
  if row.rule then
    s.tree = rule.check(crm.json.decode(row.rule))
    s.c = rule.compile(s.tree, ctx)
    s.deps, s.segments = s.c.deps, s.c.segments
  end
  if row.kind == "lua" then
    local fn, err = M.compile_lua(row.name, row.source)
    if not fn then error(err, 0) end
    s.fn = fn
    s.all = true -- what a Lua predicate reads is unknown: any change of the customer
  end
  s.timed = s.kind == "lua" or (s.c and (#s.c.windows > 0 or #s.c.ago > 0 or s.c.lifecycle)) or false
  s.reads_event = event_reader(s.c and s.c.deps or {})
  return s
end

-- Orders definitions so that a segment comes after the segments it reads;
-- raises naming a cycle.
local function order_of(list, by_name)
  local out, mark = {}, {}
  local function visit(s, path)
    if mark[s.name] == "done" then return end
    if mark[s.name] == "active" then
      rule.fail("rule", "segments read each other in a cycle: " .. table.concat(path, " -> ") .. " -> " .. s.name)
    end
    mark[s.name] = "active"
    path[#path + 1] = s.name
    for _, dep in ipairs(s.segments) do
      local d = by_name[dep] or rule.fail("rule", "segment '" .. dep .. "' does not exist")
      visit(d, path)
    end
    path[#path] = nil
    mark[s.name] = "done"
    out[#out + 1] = s
  end
  for _, s in ipairs(list) do visit(s, {}) end
  return out
end

-- Builds every definition from rows (the table's, or a draft set); raises
-- on an invalid one or a cycle. Returns {order, by_name, by_id, timed}.
function M.build_all(rows)
  local ids = {}
  for _, r in ipairs(rows) do ids[r.name] = r.id end
  local list, by_name, by_id = {}, {}, {}
  for _, r in ipairs(rows) do
    local s = build(r, ids)
    list[#list + 1], by_name[s.name], by_id[s.id] = s, s, s
  end
  local S = { order = order_of(list, by_name), by_name = by_name, by_id = by_id }
  -- The time edges every customer may have: distinct windows, "ago"
  -- attributes, and the lifecycle stage when a segment reads it.
  S.windows, S.ago, S.lifecycle = {}, {}, false
  local seen = {}
  for _, s in ipairs(S.order) do
    if s.c then
      for _, w in ipairs(s.c.windows) do
        local key = w.filter .. crm.json.encode(w.params) .. tostring(w.within)
        if not seen[key] then seen[key] = true; S.windows[#S.windows + 1] = w end
      end
      for _, a in ipairs(s.c.ago) do
        local key = "ago:" .. a[1] .. ":" .. a[2]
        if not seen[key] then seen[key] = true; S.ago[#S.ago + 1] = a end
      end
      S.lifecycle = S.lifecycle or s.c.lifecycle or false
    end
    if s.fn then S.lifecycle = true end -- c.lifecycle is in a Lua predicate's view
  end
  return S
end

-- Every definition, rebuilt when another process changed them.
function M.all()
  local v = M.version()
  if cache.version ~= v then
    cache.S = M.build_all(crm.db.query("SELECT id, name, kind, rule, source, status FROM segments_defs ORDER BY id"))
    cache.version = v
  end
  return cache.S
end

-- ---- evaluating a batch -----------------------------------------------------------

-- The customers a statement covers: {ids = {...}} or {lo =, hi =}.
local function scope_sql(scope)
  if scope.ids then return "c.id IN (SELECT value FROM json_each(?))", { crm.json.encode(crm.json.array(scope.ids)) } end
  return "c.id BETWEEN ? AND ?", { scope.lo, scope.hi }
end

local function append(dst, src) for _, v in ipairs(src) do dst[#dst + 1] = v end return dst end

-- The customers of scope whose membership of s changes now: a list of
-- {cid, inside, gone} (gone: absorbed by a merge, leaves without an event).
-- Statement texts are built once per definition (or set of definitions)
-- and scope kind, then found again in crm.db's cache: formatting a long
-- statement per event costs more than running it.
local function text_of(holder, key, build)
  holder._sql = holder._sql or {}
  local t = holder._sql[key]
  if not t then t = build(); holder._sql[key] = t end
  return t
end

function M.changes(s, scope, now)
  local where, wparams = scope_sql(scope)
  local params = s.c and rule.bind(s.c.params, now) or {}
  local sql = text_of(s, scope.ids and "ids" or "range", function()
    return ([[SELECT c.id AS cid,
                     (c.merged_into IS NOT NULL OR c.id IN (SELECT customer_id FROM segments_erased)) AS gone,
                     %s AS pre,
                     EXISTS (SELECT 1 FROM segments_members m WHERE m.segment_id = ? AND m.customer_id = c.id) AS was
              FROM customers c WHERE %s]]):format(s.c and s.c.sql or "1", where)
  end)
  local args = append(append(params, { s.id }), wparams)
  local out = {}
  if s.fn then
    for _, r in ipairs(crm.db.query(sql, table.unpack(args))) do
      local inside = false
      if r.gone == 0 and r.pre == 1 then
        -- One customer's error must not stop the batch (a job would fail on
        -- it forever): logged, and the membership kept as it is.
        local ok, res = pcall(M.run_lua, s, r.cid, now)
        if ok then inside = res
        else
          crm.log.error(res)
          M.lua_errors.n = M.lua_errors.n + 1
          M.lua_errors.first = M.lua_errors.first or tostring(res)
          inside = r.was == 1
        end
      end
      if inside ~= (r.was == 1) then out[#out + 1] = { r.cid, inside, r.gone == 1 } end
    end
    return out
  end
  -- (query, not rows: a batch's changes are few, and its statement stays cached)
  local changed_sql = text_of(s, scope.ids and "ids_changed" or "range_changed", function()
    return "SELECT cid, gone, pre FROM (" .. sql .. ") WHERE (pre AND NOT gone) != was"
  end)
  for _, r in ipairs(crm.db.query(changed_sql, table.unpack(args))) do
    out[#out + 1] = { r.cid, r.pre == 1 and r.gone == 0, r.gone == 1 }
  end
  return out
end

-- Applies changes of s: the rows and, for people entering or leaving
-- (not merged away), the events, in the caller's transaction.
function M.apply(s, changes, now)
  local cids = {}
  for _, ch in ipairs(changes) do
    local cid, inside, gone = ch[1], ch[2], ch[3]
    if inside then
      crm.db.exec("INSERT INTO segments_members(segment_id, customer_id, entered_at) VALUES (?, ?, ?)", s.id, cid, now)
    else
      crm.db.exec("DELETE FROM segments_members WHERE segment_id = ? AND customer_id = ?", s.id, cid)
    end
    if not gone then
      crm.events.emit {
        type = inside and "segment.entered" or "segment.exited", customer_id = cid, occurred_at = now,
        source = "segments", properties = { segment = s.name, segment_id = s.id },
      }
    end
    cids[#cids + 1] = cid
  end
  return cids
end

-- Evaluates the segments concerned by a change, for the customers of
-- scope, in dependency order:
--   why.event = TYPE        segments reading events of that type
--   why.profile / why.facts segments reading attributes... / RFM, lifecycle, tier
--   why.time                segments whose answer moves with time
--   why.all                 every segment
--   why.segments = {name = true}   these segments (a rebuild)
--   why.changed = {name = {cid...}} memberships already changed (static lists)
-- Returns the number of membership changes.
function M.evaluate(scope, why, now)
  local S = M.all()
  local changed = why.changed or {}
  local total = 0
  for _, s in ipairs(S.order) do
    if s.kind ~= "static" then
      local all = why.all or (why.segments and why.segments[s.name])
        or (why.event and (s.all or s.reads_event(why.event)))
        or (why.profile and (s.all or s.deps.profile)) or (why.facts and (s.all or s.deps.facts))
        or (why.time and s.timed)
      local sc = all and scope or nil
      if not sc then
        local set, ids = {}, {}
        for _, dep in ipairs(s.segments) do
          for _, cid in ipairs(changed[dep] or {}) do
            if not set[cid] then set[cid] = true; ids[#ids + 1] = cid end
          end
        end
        if #ids > 0 then sc = { ids = ids } end
      end
      if sc then
        local ch = M.changes(s, sc, now)
        if #ch > 0 then
          changed[s.name] = M.apply(s, ch, now)
          total = total + #ch
        end
      end
    end
  end
  return total
end

-- ---- Lua segments -----------------------------------------------------------------

-- What a Lua segment's function receives for customer cid: the profile
-- from SQL (no audited read; PII attributes are sealed and left out) and
-- helpers over the customer's events.
function M.view(cid, now)
  local c = crm.db.one("SELECT id, external_id, created_at, updated_at FROM customers WHERE id = ?", cid)
  c.attributes, c.consent, c.identities = {}, {}, {}
  -- PII attributes are sealed (blobs): left out.
  for _, a in ipairs(crm.db.query([[SELECT name, type, value, currency FROM customer_attributes
                                    WHERE customer_id = ? AND typeof(value) != 'blob']], cid)) do
    if a.type == "boolean" then c.attributes[a.name] = a.value == 1
    elseif a.type == "money" then c.attributes[a.name] = { amount = a.value, currency = a.currency }
    else c.attributes[a.name] = a.value end
  end
  for _, k in ipairs(crm.db.query("SELECT channel, granted FROM customer_consent WHERE customer_id = ?", cid)) do
    c.consent[k.channel] = k.granted == 1
  end
  for _, i in ipairs(crm.db.query("SELECT DISTINCT kind FROM customer_identities WHERE customer_id = ?", cid)) do
    c.identities[i.kind] = true
  end
  local p = crm.db.one("SELECT * FROM segments_profile WHERE customer_id = ?", cid) or {}
  c.lifecycle = p.stage or "prospect"
  c.tier = p.tier
  c.rfm = p.r and { r = p.r, f = p.f, m = p.m, group = p.rfm_group } or nil
  c.orders, c.first_order_at, c.last_order_at = p.orders or 0, p.first_order_at, p.last_order_at
  -- count(type [, within]) and sum(type, property [, within]) over the events.
  function c.count(ty, within)
    return crm.db.value([[SELECT count(*) FROM events WHERE customer_id = ? AND type = ?
                          AND occurred_at > ? AND occurred_at <= ?]], cid, ty,
                        within and now - (rule.duration(within) or error("count: bad window", 2)) or math.mininteger, now)
  end
  function c.sum(ty, property, within)
    return crm.db.value([[SELECT total(json_extract(properties, ?)) FROM events WHERE customer_id = ?
                          AND type = ? AND occurred_at > ? AND occurred_at <= ?]], "$." .. property, cid, ty,
                        within and now - (rule.duration(within) or error("sum: bad window", 2)) or math.mininteger, now)
  end
  return c
end

-- Runs s's Lua function for cid; a second result (ms) asks to be run again
-- then. An error names the segment; the caller's transaction rolls back.
function M.run_lua(s, cid, now, no_recheck)
  local ok, inside, again = pcall(s.fn, M.view(cid, now), now)
  if not ok then error(("segment %s (customer %d): %s"):format(s.name, cid, tostring(inside)), 0) end
  if not no_recheck and math.type(again) == "integer" and again > now then
    crm.db.exec([[INSERT INTO segments_due(customer_id, due_at) VALUES (?1, ?2)
                  ON CONFLICT(customer_id) DO UPDATE SET due_at = min(due_at, ?2)]], cid, again)
  end
  return inside == true
end

-- ---- time edges -------------------------------------------------------------------
--
-- A customer's next edge is the earliest instant at which an answer can
-- change with no event: an event leaving (or, dated in the future,
-- entering) a window a rule reads, an attribute compared with "ago"
-- crossing it, the lifecycle stage moving on. segments_due keeps one row
-- per customer; the `edges` job evaluates the timed segments for those due.

local upserts = {} -- select text -> the INSERT around it
local function upsert_due(select_sql, ...)
  local sql = upserts[select_sql]
  if not sql then
    sql = "INSERT INTO segments_due(customer_id, due_at) " .. select_sql ..
          " ON CONFLICT(customer_id) DO UPDATE SET due_at = min(due_at, excluded.due_at)"
    upserts[select_sql] = sql
  end
  crm.db.exec(sql, ...)
end

-- Recomputes the next edges of the customers of scope. Call it before
-- evaluating them: a Lua predicate's own "look again at" goes in after.
function M.reschedule(scope, now)
  local S = M.all()
  local key = scope.ids and "ids" or "range"
  local where, wparams = scope_sql(scope)
  where = where .. " AND c.id NOT IN (SELECT customer_id FROM segments_erased)"
  -- An edge that has come stays until the edges job has dealt with it.
  crm.db.exec(text_of(S, "delete_" .. key, function()
    return "DELETE FROM segments_due WHERE due_at > ? AND customer_id IN (SELECT c.id FROM customers c WHERE " .. where .. ")"
  end), now, table.unpack(wparams))
  for _, w in ipairs(S.windows) do
    local args = append({ now }, w.params)
    upsert_due(text_of(w, key, function()
      return ([[SELECT c.id, min(CASE WHEN e.occurred_at > ?1 THEN e.occurred_at ELSE e.occurred_at + %d END)
                FROM customers c JOIN events e ON %s
                WHERE c.merged_into IS NULL AND e.occurred_at > ?1 - %d AND %s GROUP BY c.id]]):format(
                w.within or 0, w.filter, w.within or 0, where)
    end), table.unpack(append(args, wparams)))
  end
  for _, a in ipairs(S.ago) do
    upsert_due(text_of(S, "ago_" .. key, function()
      return ([[SELECT c.id, a.value + ?2 FROM customers c JOIN customer_attributes a ON a.customer_id = c.id
                WHERE a.name = ?3 AND typeof(a.value) = 'integer' AND a.value + ?2 > ?1 AND c.merged_into IS NULL
                  AND %s]]):format(where)
    end), now, a[2], a[1], table.unpack(wparams))
  end
  if S.lifecycle then
    upsert_due(text_of(S, "stage_" .. key, function()
      return ([[SELECT c.id, %s AS due FROM customers c JOIN segments_profile p ON p.customer_id = c.id
                WHERE c.merged_into IS NULL AND %s AND due IS NOT NULL]]):format(facts.stage_edge_sql(cfg), where)
    end), now, table.unpack(wparams))
  end
end

return M
