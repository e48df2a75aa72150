-- What operators and partners do, shared by the HTTP routes and the CLI
-- commands: define, list, remove and rebuild segments, preview a draft
-- rule, page through members, explain a customer's membership, export
-- members as CSV, and manage static lists. Each operation runs under its
-- own savepoint: a refusal (M.refuse) leaves nothing.
local rule = require("lib.rule")
local engine = require("lib.engine")
local facts = require("lib.facts")

local M = {}
local cfg

function M.init(config) cfg = config end

function M.refuse(status, code, message)
  error({ status = status, code = code, message = message }, 0)
end
local refuse = M.refuse

-- Runs fn(...) under a savepoint; a refusal or a rule error comes back as
-- (false, {status, code, message}); any other error is raised again.
function M.attempt(fn, ...)
  local args = table.pack(...)
  local ok, res, extra = pcall(crm.db.atomic, function() return fn(table.unpack(args, 1, args.n)) end)
  if ok then return true, res, extra end
  if type(res) == "table" and res.status then return false, res end
  local msg = rule.message(res)
  if msg then return false, { status = 422, code = "invalid_rule", message = msg } end
  error(res, 0)
end

local function int_opt(v, field, default, min, max)
  if v == nil or v == crm.json.null then return default end
  local n = math.tointeger(tonumber(v))
  if not n or n < min or n > max then refuse(422, "invalid", ("%s: a whole number from %d to %d"):format(field, min, max)) end
  return n
end

local function def_of(name)
  if type(name) ~= "string" or name == "" then refuse(422, "invalid", "segment: a segment name is needed") end
  local d = crm.db.one("SELECT * FROM segments_defs WHERE name = ?", name)
  if not d then refuse(404, "not_found", ("no segment '%s'"):format(name)) end
  return d
end

-- The customer a reference names: a number, "id:N" or "#N" is an id; an
-- address with @ is an email; other text an external id (all-digit text
-- that is nobody's external id, an id). A merged-away id gives its
-- survivor. Returns nil for nobody when soft, else refuses.
function M.customer(ref, soft)
  if ref == crm.json.null then ref = nil end
  local id = math.type(ref) == "integer" and ref or nil
  if type(ref) == "string" then
    ref = ref:match("^%s*(.-)%s*$")
    local n = ref:match("^id:(%d+)$") or ref:match("^#(%d+)$")
    if n then
      id = math.tointeger(tonumber(n))
    elseif ref:find("@", 1, true) then
      local ok, found = pcall(crm.customers.find, "email", ref)
      if not ok then if soft then return nil end refuse(422, "invalid", tostring(found)) end
      id = found
      if not id then if soft then return nil end refuse(404, "not_found", ("no customer with email '%s'"):format(ref)) end
    elseif ref ~= "" then
      id = crm.customers.find("external_id", ref)
      if not id and ref:match("^%d+$") then id = math.tointeger(tonumber(ref)) end
      if not id then if soft then return nil end refuse(404, "not_found", ("no customer with external id '%s'"):format(ref)) end
    end
  end
  if not id then if soft then return nil end refuse(422, "invalid", "customer: an id, an external id or an email is needed") end
  local c = crm.db.one("SELECT id, merged_into FROM customers WHERE id = ?", id)
  if not c then if soft then return nil end refuse(404, "not_found", ("no customer %d"):format(id)) end
  return c.merged_into or c.id
end

local function summary(d, role)
  local out = { id = d.id, name = d.name, kind = d.kind, description = d.description, status = d.status,
                members = d.members, created_at = d.created_at, updated_at = d.updated_at, built_at = d.built_at }
  if d.rule then out.rule = rule.text(crm.json.decode(d.rule)) end
  -- A Lua predicate's source is the operators' code: not for partners.
  if d.kind == "lua" and role ~= "partner" then out.source = d.source end
  return out
end

-- ---- definitions ------------------------------------------------------------------

local NAME = "^[a-z][a-z0-9_%-]*$"

-- define(name, {rule?, lua?, static?, description?}): creates or replaces
-- a segment; a rule or a Lua predicate leaves it 'building' until a full
-- evaluation has run (M.rebuild, or the rebuild job).
function M.define(name, spec, now)
  if type(name) ~= "string" or not name:match(NAME) or #name > 64 then
    refuse(422, "invalid", "name: 1 to 64 of a-z, 0-9, _ and -, starting with a letter")
  end
  local static = spec.static == true
  local lua = spec.lua ~= nil and spec.lua ~= crm.json.null and spec.lua or nil
  local r = spec.rule ~= nil and spec.rule ~= crm.json.null and spec.rule or nil
  if static and (lua or r) then refuse(422, "invalid", "a static segment has no rule and no Lua") end
  if not static and not lua and not r then refuse(422, "invalid", "rule: a rule is needed (or lua, or static)") end
  if lua and (type(lua) ~= "string" or #lua > 65536) then refuse(422, "invalid", "lua: Lua source of at most 64 KiB") end
  local desc = spec.description
  if desc == crm.json.null then desc = nil end
  if desc ~= nil and (type(desc) ~= "string" or #desc > 1000) then refuse(422, "invalid", "description: text of at most 1000 characters") end
  local tree = r and rule.read(r) or nil
  local kind = static and "static" or lua and "lua" or "dynamic"
  local row = { name = name, kind = kind, rule = tree and crm.json.encode(tree) or nil, source = lua,
                status = kind == "static" and "ready" or "building" }
  -- Check the whole set as it would be: unknown segments, cycles, Lua
  -- that does not compile.
  local rows = crm.db.query("SELECT id, name, kind, rule, source, status FROM segments_defs WHERE name != ?", name)
  local old = crm.db.one("SELECT * FROM segments_defs WHERE name = ?", name)
  row.id = old and old.id or -1
  rows[#rows + 1] = row
  local ok, err = pcall(engine.build_all, rows)
  if not ok then
    refuse(422, "invalid_rule", rule.message(err) or tostring(err))
  end
  if old and old.kind ~= "static" and kind == "static" then
    -- A dynamic segment made static keeps its members as the list.
  end
  if old then
    crm.db.exec([[UPDATE segments_defs SET kind = ?, rule = ?, source = ?, description = ?, status = ?,
                  rebuild_next = 0, updated_at = ? WHERE id = ?]], kind, row.rule, lua, desc, row.status, now, old.id)
  else
    crm.db.exec([[INSERT INTO segments_defs(name, kind, rule, source, description, status, created_at, updated_at)
                  VALUES (?, ?, ?, ?, ?, ?, ?, ?)]], name, kind, row.rule, lua, desc, row.status, now, now)
  end
  engine.bump_version()
  crm.audit.record("segments.define", nil, { "segment" })
  return summary(def_of(name))
end

function M.remove(name)
  local d = def_of(name)
  local S = engine.all()
  local readers = {}
  for _, s in ipairs(S.order) do
    for _, dep in ipairs(s.segments) do if dep == name then readers[#readers + 1] = s.name end end
  end
  if #readers > 0 then
    refuse(409, "in_use", ("segment '%s' is read by %s: change them first"):format(name, table.concat(readers, ", ")))
  end
  crm.db.exec("DELETE FROM segments_members WHERE segment_id = ?", d.id)
  crm.db.exec("DELETE FROM segments_defs WHERE id = ?", d.id)
  engine.bump_version()
  return { name = name, removed = true, members = d.members }
end

function M.list(role)
  local out = {}
  for _, d in ipairs(crm.db.query("SELECT * FROM segments_defs ORDER BY name")) do out[#out + 1] = summary(d, role) end
  return crm.json.array(out)
end

function M.show(name, role) return summary(def_of(name), role) end

-- ---- full evaluation --------------------------------------------------------------

local function max_customer() return crm.db.value("SELECT coalesce(max(id), 0) FROM customers") end

-- One step of the rebuild of every segment being built: the customers
-- with ids in [lo, lo + batch), atomically. Returns false when none is
-- left to build.
function M.rebuild_step(now)
  return crm.db.atomic(function()
    -- Read inside the step: a redefinition committed between two steps
    -- restarts that segment from the first customer.
    local building = crm.db.query("SELECT id, name, rebuild_next FROM segments_defs WHERE status = 'building' ORDER BY id")
    if #building == 0 then return false end
    local lo = building[1].rebuild_next
    for _, b in ipairs(building) do lo = math.min(lo, b.rebuild_next) end
    local hi = lo + cfg.batch - 1
    local names = {}
    for _, b in ipairs(building) do if b.rebuild_next <= hi then names[b.name] = true end end
    -- Stages as of now (they are kept current only while a segment reads
    -- them), edges, then the evaluation.
    facts.restage_range(cfg, lo, hi, now)
    engine.reschedule({ lo = lo, hi = hi }, now)
    engine.evaluate({ lo = lo, hi = hi }, { segments = names }, now)
    local last = max_customer()
    for _, b in ipairs(building) do
      if names[b.name] then
        if hi >= last then
          crm.db.exec("UPDATE segments_defs SET status = 'ready', rebuild_next = 0, built_at = ? WHERE id = ?", now, b.id)
        else
          crm.db.exec("UPDATE segments_defs SET rebuild_next = ? WHERE id = ?", hi + 1, b.id)
        end
      end
    end
    return true
  end)
end

-- Marks a segment for a full evaluation (all of them with name nil).
function M.mark_rebuild(name)
  if name then
    local d = def_of(name)
    if d.kind == "static" then refuse(422, "invalid", ("segment '%s' is a static list"):format(name)) end
    crm.db.exec("UPDATE segments_defs SET status = 'building', rebuild_next = 0 WHERE id = ?", d.id)
  else
    crm.db.exec("UPDATE segments_defs SET status = 'building', rebuild_next = 0 WHERE kind != 'static'")
  end
end

-- A full evaluation now, to the end (the CLI; the server uses the job).
function M.rebuild_now(now)
  local before = crm.db.value("SELECT count(*) FROM segments_defs WHERE status = 'building'")
  engine.lua_errors.n, engine.lua_errors.first = 0, nil
  while M.rebuild_step(now) do end
  return before, engine.lua_errors.n, engine.lua_errors.first
end

-- ---- drafts: preview and explain --------------------------------------------------

local function compile_draft(r)
  local tree = rule.read(r)
  local S = engine.all()
  local c = rule.compile(tree, {
    property = cfg.property,
    segment_id = function(name)
      local s = S.by_name[name]
      return s and s.id or rule.fail("rule", "segment '" .. name .. "' does not exist")
    end,
  })
  return tree, c
end

local COUNT_SQL = "SELECT count(*) FROM customers c WHERE c.merged_into IS NULL AND c.id BETWEEN ? AND ? " ..
                  "AND c.id NOT IN (SELECT customer_id FROM segments_erased) AND "

-- The number of customers a draft rule selects now, counted at once.
function M.preview(r, now)
  if r == nil or r == crm.json.null then refuse(422, "invalid", "rule: a rule is needed") end
  local tree, c = compile_draft(r)
  local params = rule.bind(c.params, now)
  local started = os.clock()
  local n = crm.db.value(COUNT_SQL .. c.sql, math.mininteger, math.maxinteger, table.unpack(params))
  local ms = (os.clock() - started) * 1000
  local total = crm.db.value("SELECT count(*) FROM customers WHERE merged_into IS NULL")
  return { rule = rule.text(tree), count = n, customers = total, ms = math.floor(ms * 10 + 0.5) / 10,
           sql = "SELECT count(*) FROM customers c WHERE c.merged_into IS NULL AND " .. c.sql }
end

-- A preview counted by the preview job in steps, so that the server stays
-- responsive and the count can be cancelled: returns its id.
function M.preview_start(r, now)
  if r == nil or r == crm.json.null then refuse(422, "invalid", "rule: a rule is needed") end
  local tree = compile_draft(r)
  local _, id = crm.db.exec([[INSERT INTO segments_previews(rule, status, last_id, created_at)
                              VALUES (?, 'running', ?, ?)]], rule.text(tree), max_customer(), now)
  crm.schedule.at(now, "preview", { id = id })
  return M.preview_status(id)
end

function M.preview_status(id)
  id = int_opt(id, "id", nil, 1, math.maxinteger) or refuse(422, "invalid", "id: the preview's id is needed")
  local p = crm.db.one("SELECT * FROM segments_previews WHERE id = ?", id)
  if not p then refuse(404, "not_found", ("no preview %d"):format(id)) end
  local span = math.max(p.last_id, 1)
  return { id = p.id, rule = p.rule, status = p.status,
           count = p.status == "done" and p.matched or nil, counted_so_far = p.matched,
           progress = p.status == "done" and 1 or math.min(1, p.next_id / span),
           error = p.error, created_at = p.created_at, finished_at = p.finished_at }
end

function M.preview_cancel(id, now)
  local p = M.preview_status(id)
  if p.status == "running" then
    crm.db.exec("UPDATE segments_previews SET status = 'cancelled', finished_at = ? WHERE id = ?", now, p.id)
  end
  return M.preview_status(p.id)
end

-- One step of preview id (the job): returns true when it is over.
function M.preview_step(id, now, ids_per_step)
  local p = crm.db.one("SELECT * FROM segments_previews WHERE id = ?", id)
  if not p or p.status ~= "running" then return true end
  local ok, res = pcall(function()
    local _, c = compile_draft(p.rule)
    return crm.db.value(COUNT_SQL .. c.sql, p.next_id, p.next_id + ids_per_step - 1,
                        table.unpack(rule.bind(c.params, p.created_at)))
  end)
  if not ok then
    crm.db.exec("UPDATE segments_previews SET status = 'failed', error = ?, finished_at = ? WHERE id = ? AND status = 'running'",
                rule.message(res) or tostring(res), now, id)
    return true
  end
  local next_id = p.next_id + ids_per_step
  local done = next_id > p.last_id
  -- Unless it was cancelled meanwhile (the job yields between steps).
  local n = crm.db.exec([[UPDATE segments_previews SET matched = matched + ?, next_id = ?, status = ?, finished_at = ?
                          WHERE id = ? AND status = 'running']], res, next_id, done and "done" or "running",
                        done and now or nil, id)
  return done or n == 0
end

-- What one condition observed for customer cid (explain).
local function observed(n, cid, now)
  local k = n.k
  if k == "attr" then
    local a = crm.db.one([[SELECT type, value, currency, typeof(value) = 'blob' AS sealed FROM customer_attributes
                           WHERE customer_id = ? AND name = ?]], cid, n.name)
    if not a then return "absent" end
    if a.sealed == 1 then return "(sealed)" end
    if a.type == "timestamp" then return crm.time.format(a.value) end
    if a.type == "money" then return a.value .. " " .. (a.currency or "") end
    if a.type == "boolean" then return a.value == 1 end
    return a.value
  elseif k == "has" then
    return crm.db.value("SELECT count(*) FROM customer_identities WHERE customer_id = ? AND kind = ?", cid, n.kind) > 0
  elseif k == "consent" then
    local g = crm.db.value("SELECT granted FROM customer_consent WHERE customer_id = ? AND channel = ?", cid, n.channel)
    return g == nil and "not recorded" or (g == 1 and "granted" or "refused")
  elseif k == "count" or k == "sum" then
    local filter, params = rule.event_filter(n)
    local agg = k == "count" and "count(*)" or "total(json_extract(e.properties, ?))"
    local args = {}
    if k == "sum" then args[1] = "$." .. (n.property or cfg.property) end
    for _, v in ipairs(params) do args[#args + 1] = v end
    args[#args + 1] = cid
    args[#args + 1] = n.within and (now - n.within) or math.mininteger
    args[#args + 1] = now
    local v = crm.db.value(("SELECT %s FROM customers c JOIN events e ON %s WHERE c.id = ? AND e.occurred_at > ? AND e.occurred_at <= ?"):format(agg, filter),
                           table.unpack(args))
    return math.tointeger(v) or v -- total() is a float: whole amounts shown as such
  elseif k == "rfm" or k == "lifecycle" or k == "tier" then
    local p = crm.db.one("SELECT * FROM segments_profile WHERE customer_id = ?", cid) or {}
    if k == "lifecycle" then return p.stage or "prospect" end
    if k == "tier" then return p.tier or "none" end
    local v = p[n.field == "group" and "rfm_group" or n.field]
    return v == nil and "not scored" or v
  elseif k == "segment" then
    return crm.db.value([[SELECT count(*) FROM segments_members m JOIN segments_defs d ON d.id = m.segment_id
                          WHERE d.name = ? AND m.customer_id = ?]], n.name, cid) > 0 and "member" or "not a member"
  end
  return nil
end

-- explain(segment or rule, customer): each condition of the rule, with
-- what it found for the customer and whether it holds, now.
function M.explain(name, r, cid, now)
  local tree, c, d, seg
  if name and name ~= crm.json.null then
    d = def_of(name)
    seg = engine.all().by_name[name]
    tree = seg.tree
  end
  if r ~= nil and r ~= crm.json.null then
    if d then refuse(422, "invalid", "give a segment or a rule, not both") end
    tree = compile_draft(r)
  end
  if not d and not tree then refuse(422, "invalid", "segment or rule: what to explain") end
  local ctx = {
    property = cfg.property,
    segment_id = function(n) local s = engine.all().by_name[n]; return s and s.id or rule.fail("rule", "segment '" .. n .. "' does not exist") end,
  }
  local steps = {}
  if tree then
    rule.each_node(tree, function(n, depth)
      local cn = rule.compile(n, ctx)
      local args = rule.bind(cn.params, now)
      args[#args + 1] = cid
      local holds = crm.db.value("SELECT " .. cn.sql .. " FROM customers c WHERE c.id = ?", table.unpack(args))
      local step = { depth = depth, condition = rule.text(n), holds = holds == 1 }
      if not n.args and not n.arg then step.found = observed(n, cid, now) end
      steps[#steps + 1] = step
    end)
  end
  local out = { customer_id = cid, steps = steps }
  if tree then out.rule = rule.text(tree) end
  if d then
    out.segment = d.name
    out.kind = d.kind
    out.member = crm.db.value("SELECT count(*) FROM segments_members WHERE segment_id = ? AND customer_id = ?", d.id, cid) > 0
    if d.kind == "lua" then
      local merged = crm.db.value("SELECT merged_into FROM customers WHERE id = ?", cid)
      local pre = #steps == 0 or steps[1].holds
      local lua = not merged and pre and engine.run_lua(seg, cid, now, true) or false
      steps[#steps + 1] = { depth = 0, condition = "lua predicate", holds = lua }
      out.matches = pre and lua
    elseif d.kind == "static" then
      out.matches = out.member
      steps[#steps + 1] = { depth = 0, condition = "on the list", holds = out.member }
    else
      out.matches = steps[1].holds
    end
  else
    out.matches = steps[1].holds
  end
  return out
end

-- ---- members ----------------------------------------------------------------------

function M.members(name, after, limit)
  local d = def_of(name)
  after = int_opt(after, "after", 0, 0, math.maxinteger)
  limit = int_opt(limit, "limit", 100, 1, 1000)
  local rows = crm.db.query([[SELECT m.customer_id, c.external_id, m.entered_at FROM segments_members m
                              JOIN customers c ON c.id = m.customer_id
                              WHERE m.segment_id = ? AND m.customer_id > ? ORDER BY m.customer_id LIMIT ?]],
                            d.id, after, limit + 1)
  local more = #rows > limit
  if more then rows[#rows] = nil end
  return { segment = d.name, members = crm.json.array(rows), total = d.members,
           next_after = more and rows[#rows].customer_id or nil }
end

-- The members as CSV text (customer_id, external_id, entered_at in ISO 8601).
function M.export(name)
  local d = def_of(name)
  local parts, after = {}, 0
  local header = true
  while true do
    local rows = crm.db.query([[SELECT m.customer_id, c.external_id, m.entered_at FROM segments_members m
                                JOIN customers c ON c.id = m.customer_id
                                WHERE m.segment_id = ? AND m.customer_id > ? ORDER BY m.customer_id LIMIT 5000]],
                              d.id, after)
    if #rows == 0 then break end
    for _, r in ipairs(rows) do r.entered_at = crm.time.format(r.entered_at) end
    local text = crm.csv.encode(rows, { "customer_id", "external_id", "entered_at" })
    if not header then text = text:gsub("^[^\n]*\n", "", 1) end
    parts[#parts + 1] = text
    header = false
    after = rows[#rows].customer_id
  end
  if header then parts[1] = crm.csv.encode({}, { "customer_id", "external_id", "entered_at" }) end
  crm.audit.record("segments.export", nil, { "customer_id", "external_id" })
  return table.concat(parts), d.members
end

-- ---- static lists -----------------------------------------------------------------

-- References from a CSV text: the column customer_id, id, external_id or
-- email (the first of these the header has).
function M.refs_from_csv(text)
  local rows = crm.csv.decode(text, { header = true })
  local out = {}
  for i, r in ipairs(rows) do
    local ref = r.customer_id and ("id:" .. r.customer_id) or r.id and ("id:" .. r.id) or r.external_id or r.email
    if not ref then refuse(422, "invalid", ("line %d: no customer_id, id, external_id or email"):format(i + 1)) end
    out[#out + 1] = ref
  end
  return out
end

-- Adds (add = true) or removes customers of a static list: one
-- segment.entered / segment.exited per change, and the segments reading
-- the list evaluated for them. Unknown references are reported.
function M.list_change(name, refs, add, now)
  local d = def_of(name)
  if d.kind ~= "static" then refuse(422, "invalid", ("segment '%s' is not a static list"):format(name)) end
  if type(refs) ~= "table" or #refs == 0 then refuse(422, "invalid", "customers: a list of customers is needed") end
  if #refs > 100000 then refuse(413, "too_large", "at most 100,000 customers at a time") end
  local changes, unknown, seen, unchanged = {}, {}, {}, 0
  for _, ref in ipairs(refs) do
    local cid = M.customer(ref, true)
    if cid and crm.db.value("SELECT 1 FROM segments_erased WHERE customer_id = ?", cid) then cid = nil end
    if not cid then
      if #unknown < 100 then unknown[#unknown + 1] = tostring(ref) end
    elseif not seen[cid] then
      seen[cid] = true
      local member = crm.db.value("SELECT 1 FROM segments_members WHERE segment_id = ? AND customer_id = ?", d.id, cid)
      if (member ~= nil) ~= add then changes[#changes + 1] = { cid, add, false } else unchanged = unchanged + 1 end
    end
  end
  local s = engine.all().by_name[name]
  local cids = engine.apply(s, changes, now)
  if #cids > 0 then engine.evaluate({ ids = cids }, { changed = { [name] = cids } }, now) end
  return { segment = name, [add and "added" or "removed"] = #cids, unchanged = unchanged,
           unknown = crm.json.array(unknown), members = def_of(name).members }
end

-- ---- the customer's side ----------------------------------------------------------

function M.of_customer(cid)
  local p = crm.db.one("SELECT * FROM segments_profile WHERE customer_id = ?", cid) or {}
  local segs = {}
  for _, r in ipairs(crm.db.query([[SELECT d.name FROM segments_members m JOIN segments_defs d ON d.id = m.segment_id
                                    WHERE m.customer_id = ? ORDER BY d.name]], cid)) do
    segs[#segs + 1] = r.name
  end
  return {
    segments = crm.json.array(segs), lifecycle = p.stage or "prospect", tier = p.tier,
    rfm = p.r and { r = p.r, f = p.f, m = p.m, group = p.rfm_group } or nil,
  }
end

M.facts = facts
return M
