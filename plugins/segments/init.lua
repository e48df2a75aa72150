-- Segments: customers grouped by rules (lib/rule.lua) kept current as
-- events arrive and as time passes, RFM scores and lifecycle stages, static
-- lists, previews and explanations. docs/segments.md is the guide.
--
-- How membership stays current:
--   an event        handlers.on_event: the customer, for the segments
--                   reading that event type (and facts it changed);
--   a profile edit  jobs.profiles (every minute): customers whose
--                   attributes, identities or consent changed, or merged;
--   time passing    jobs.edges (every minute): customers whose next time
--                   edge (lib/engine.lua) has come;
--   RFM             jobs.scores (nightly): the ranking, for customers whose
--                   scores changed;
--   a new rule      jobs.rebuild: every customer, in atomic steps.
local config = require("lib.config")
local engine = require("lib.engine")
local facts = require("lib.facts")
local ops = require("lib.ops")

local cfg = config.load(crm.config)
engine.init(cfg)
ops.init(cfg)

local M = { handlers = {}, jobs = {}, routes = {}, commands = {} }
local now = crm.time.now

local function state(key)
  return crm.db.value("SELECT value FROM segments_state WHERE key = ?", key)
end

local function set_state(key, value)
  crm.db.exec([[INSERT INTO segments_state(key, value) VALUES (?1, ?2)
                ON CONFLICT(key) DO UPDATE SET value = ?2]], key, value)
end

local function ids_json(ids) return crm.json.encode(crm.json.array(ids)) end

local function clear_changed(ids)
  crm.db.exec("UPDATE segments_profile SET changed = 0 WHERE changed = 1 AND customer_id IN (SELECT value FROM json_each(?))",
              ids_json(ids))
end

-- ---- events -----------------------------------------------------------------------

function M.handlers.on_event(event)
  local cid = event.customer_id
  -- Its own events: the segments reading a segment were evaluated with it.
  if not cid or event.type:sub(1, 8) == "segment." then return end
  local t = now()
  local why = { event = event.type }
  if cfg.purchase[event.type] and facts.purchase(cfg, cid, event.occurred_at, t) then why.facts = true end
  if event.type == cfg.tier_event and facts.tier(cid, (event.properties or {})[cfg.tier_property]) then
    why.facts = true
  end
  local S = engine.all()
  if #S.order == 0 then
    if why.facts then clear_changed({ cid }) end
    return
  end
  -- The customer's time edges move with events the windows read (first:
  -- a Lua predicate may then add its own).
  local timed = why.facts and S.lifecycle
  if not timed then
    for _, s in ipairs(S.order) do
      if s.timed and (s.all or s.reads_event(event.type)) then timed = true break end
    end
  end
  if timed then engine.reschedule({ ids = { cid } }, t) end
  engine.evaluate({ ids = { cid } }, why, t)
  if why.facts then clear_changed({ cid }) end
end

-- ---- jobs -------------------------------------------------------------------------

-- Customers whose time edge has come: their stage, then the segments whose
-- answer moves with time.
function M.jobs.edges()
  while true do
    local t = now()
    local rows = crm.db.query("SELECT customer_id FROM segments_due WHERE due_at <= ? ORDER BY due_at LIMIT ?", t, cfg.batch)
    if #rows == 0 then return end
    local ids = {}
    for i, r in ipairs(rows) do ids[i] = r.customer_id end
    crm.db.atomic(function()
      facts.restage_ids(cfg, ids, t)
      crm.db.exec("DELETE FROM segments_due WHERE due_at <= ? AND customer_id IN (SELECT value FROM json_each(?))",
                  t, ids_json(ids))
      engine.reschedule({ ids = ids }, t)
      engine.evaluate({ ids = ids }, { time = true }, t)
      -- (changed flags stay for the segments reading RFM and tier: the
      -- nightly job settles them)
    end)
  end
end

-- Customers whose profile changed since the last run (customers.updated_at
-- moves with every change of attributes, identities, consent and with
-- merges), read again from a little earlier (profile_lag_ms) so that a
-- change committed late by another process is not missed.
function M.jobs.profiles()
  local at = state("profiles_at")
  if at == nil and not crm.db.value("SELECT 1 FROM segments_defs LIMIT 1") then
    -- Nothing to keep current yet: segments defined later are built from
    -- every profile as it then is.
    set_state("profiles_at", crm.db.value("SELECT coalesce(max(updated_at), 0) FROM customers"))
    return
  end
  at = at or math.mininteger
  local from_at, from_id = at == math.mininteger and at or at - cfg.profile_lag_ms, 0
  while true do
    local t = now()
    local rows = crm.db.query([[SELECT id, merged_into, updated_at FROM customers
                                WHERE (updated_at, id) > (?, ?) ORDER BY updated_at, id LIMIT ?]],
                              from_at, from_id, cfg.batch)
    if #rows == 0 then return end
    local ids, merged = {}, {}
    for i, r in ipairs(rows) do
      ids[i] = r.id
      if r.merged_into then merged[#merged + 1] = r end
    end
    crm.db.atomic(function()
      local changed = {}
      for _, r in ipairs(merged) do
        -- The absorbed customer's events now belong to the survivor, and so
        -- do their places on static lists.
        crm.db.exec("DELETE FROM segments_profile WHERE customer_id = ?", r.id)
        facts.recompute_range(cfg, r.merged_into, r.merged_into, t)
        ids[#ids + 1] = r.merged_into
        for _, l in ipairs(crm.db.query([[SELECT d.name FROM segments_members m JOIN segments_defs d ON d.id = m.segment_id
                                          WHERE m.customer_id = ? AND d.kind = 'static']], r.id)) do
          local n = crm.db.exec([[INSERT INTO segments_members(segment_id, customer_id, entered_at)
                                  SELECT id, ?, ? FROM segments_defs WHERE name = ? ON CONFLICT DO NOTHING]],
                                r.merged_into, t, l.name)
          if n > 0 then
            crm.events.emit { type = "segment.entered", customer_id = r.merged_into, occurred_at = t, source = "segments",
                              properties = { segment = l.name,
                                             segment_id = crm.db.value("SELECT id FROM segments_defs WHERE name = ?", l.name) } }
            changed[l.name] = changed[l.name] or {}
            table.insert(changed[l.name], r.merged_into)
          end
        end
        crm.db.exec([[DELETE FROM segments_members WHERE customer_id = ?
                      AND segment_id IN (SELECT id FROM segments_defs WHERE kind = 'static')]], r.id)
      end
      -- Time edges move with attributes compared with "ago", and with merges.
      if #merged > 0 or #engine.all().ago > 0 then engine.reschedule({ ids = ids }, t) end
      engine.evaluate({ ids = ids }, { profile = true, all = #merged > 0, changed = changed }, t)
      set_state("profiles_at", math.max(at, rows[#rows].updated_at))
    end)
    from_at, from_id = rows[#rows].updated_at, rows[#rows].id
  end
end

local function max_customer() return crm.db.value("SELECT coalesce(max(id), 0) FROM customers") end

-- Evaluates the segments reading facts for the customers whose facts
-- changed, in batches.
local function settle_changed()
  while true do
    local t = now()
    local rows = crm.db.query("SELECT customer_id FROM segments_profile WHERE changed = 1 LIMIT ?", cfg.batch)
    if #rows == 0 then return end
    local ids = {}
    for i, r in ipairs(rows) do ids[i] = r.customer_id end
    crm.db.atomic(function()
      engine.reschedule({ ids = ids }, t)
      engine.evaluate({ ids = ids }, { facts = true }, t)
      clear_changed(ids)
    end)
  end
end

-- Purchase facts from the event log, RFM scores against this run's
-- thresholds, stages; then the segments reading them, for the customers
-- whose values changed. Every step is atomic; running it twice is harmless.
local function scores()
  local last = max_customer()
  for lo = 0, last, cfg.batch do
    crm.db.atomic(facts.recompute_range, cfg, lo, lo + cfg.batch - 1, now())
  end
  local th, scored = facts.thresholds()
  for lo = 0, last, cfg.batch do
    crm.db.atomic(facts.rfm_range, th, lo, lo + cfg.batch - 1)
  end
  settle_changed()
  set_state("scores_at", now())
  return { customers_scored = scored, at = now() }
end

function M.jobs.scores() scores() end

-- Each step as of its own now: a long rebuild must not undo, with an old
-- time, what the event handler and the edges job did meanwhile.
function M.jobs.rebuild()
  while ops.rebuild_step(now()) do end
end

function M.jobs.preview(job)
  local id = job.payload and math.tointeger(job.payload.id)
  if not id then return end
  while not ops.preview_step(id, now(), 20000) do end
end

-- ---- routes and commands ----------------------------------------------------------

local function require_staff(role)
  if role ~= nil and role ~= "admin" and role ~= "operator" then
    ops.refuse(403, "denied", "only admin and operator keys may change segments")
  end
end

local function route(fn, status)
  return function(req)
    local body = type(req.body) == "table" and req.body or {}
    local ok, res, extra = ops.attempt(fn, req, body, req.query or {})
    if ok then return status or 200, res, extra end
    return res.status, { error = { code = res.code, message = res.message } }
  end
end

local function command(fn, text)
  return function(input)
    local ok, res = ops.attempt(fn, input, input.args, input.options)
    if not ok then error(res.message, 0) end
    return res, text and text(res) or nil
  end
end

-- A rule given on the command line: the text, or @FILE's content.
local function rule_arg(a, o)
  local r = o.rule or a[2]
  if r == true then ops.refuse(422, "invalid", "--rule needs a value") end
  return r
end

-- Lists of references for static lists: the arguments, or a CSV file.
local function refs_arg(a, o)
  local refs = {}
  for i = 2, #a do refs[#refs + 1] = a[i] end
  if type(o.file) == "string" then
    for _, r in ipairs(ops.refs_from_csv(o.file)) do refs[#refs + 1] = r end
  end
  return refs
end

-- define
M.routes.define = route(function(req, b)
  require_staff(req.role)
  local d = ops.define(b.name, b, now())
  if d.status == "building" then crm.schedule.at(now(), "rebuild") end
  return d
end)
M.commands.define = command(function(_, a, o)
  local spec = { rule = rule_arg(a, o), lua = o.lua, static = o.static == true,
                 description = o.description }
  if spec.lua and o.where then spec.rule = o.where end
  local d = ops.define(a[1], spec, now())
  if d.status == "building" then
    if o.background then crm.schedule.at(now(), "rebuild")
    else
      local _, failed, first = ops.rebuild_now(now())
      d = ops.show(d.name)
      if failed > 0 then d.lua_errors, d.lua_error = failed, first end
    end
  end
  return d
end, function(d)
  local text = ("segment %s (%s): %s; %d member(s)%s"):format(d.name, d.kind, d.rule or (d.kind == "static" and "a list" or "Lua"),
    d.members, d.status == "building" and ", being built" or "")
  if d.lua_errors then
    text = text .. ("\nwarning: the Lua predicate failed for %d customer(s) (left as they were), first: %s"):format(
      d.lua_errors, d.lua_error)
  end
  return text
end)

local function list_text(list)
  local lines = {}
  for _, d in ipairs(list) do
    lines[#lines + 1] = ("%-24s %-8s %9d  %s%s"):format(d.name, d.kind, d.members,
      d.rule or (d.kind == "static" and "(list)" or "(Lua)"), d.status == "building" and "  [building]" or "")
  end
  return #lines > 0 and table.concat(lines, "\n") or "no segments"
end

M.routes.list = route(function(req, _, q)
  if q.name then return ops.show(q.name, req.role) end
  return ops.list(req.role)
end)
M.commands.list = command(function() return ops.list() end, list_text)
M.commands.show = command(function(_, a) return ops.show(a[1]) end)

M.routes.remove = route(function(req, _, q)
  require_staff(req.role)
  return ops.remove(q.name)
end)
M.commands.remove = command(function(_, a) return ops.remove(a[1]) end,
  function(r) return ("segment %s removed (%d member(s) dropped, no events)"):format(r.name, r.members) end)

M.routes.rebuild = route(function(req, b)
  require_staff(req.role)
  ops.mark_rebuild(b.name)
  crm.schedule.at(now(), "rebuild")
  return { rebuilding = b.name or "all" }
end, 202)
M.commands.rebuild = command(function(_, a, o)
  ops.mark_rebuild(a[1])
  if o.background then
    crm.schedule.at(now(), "rebuild")
    return { rebuilding = a[1] or "all", background = true }
  end
  return { rebuilt = ops.rebuild_now(now()) }
end, function(r)
  return r.background and ("rebuilding %s in the background"):format(r.rebuilding) or ("%d segment(s) rebuilt"):format(r.rebuilt)
end)

-- preview
-- (previews are jobs that count everybody, and hold draft rules: staff only)
M.routes.preview_start = route(function(req, b)
  require_staff(req.role)
  return ops.preview_start(b.rule, now())
end, 202)
M.routes.preview_status = route(function(req, _, q)
  require_staff(req.role)
  return ops.preview_status(q.id)
end)
M.routes.preview_cancel = route(function(req, _, q)
  require_staff(req.role)
  return ops.preview_cancel(q.id, now())
end)
M.commands.preview = command(function(_, a, o)
  return ops.preview(o.rule or table.concat(a, " "), now())
end, function(r) return ("%d of %d customer(s): %s (counted in %.1f ms of CPU)"):format(r.count, r.customers, r.rule, r.ms) end)

-- members, explain, export
M.routes.members = route(function(_, _, q) return ops.members(q.segment, q.after, q.limit) end)
M.commands.members = command(function(_, a, o) return ops.members(a[1], o.after, o.limit) end, function(r)
  local lines = {}
  for _, m in ipairs(r.members) do
    lines[#lines + 1] = ("%-10d %-24s since %s"):format(m.customer_id, m.external_id or "", crm.time.format(m.entered_at))
  end
  if r.next_after then lines[#lines + 1] = ("... more: --after %d"):format(r.next_after) end
  return #lines > 0 and table.concat(lines, "\n") or "no members"
end)

local function explain_text(r)
  local lines = { ("customer %d %s %s"):format(r.customer_id, r.matches and "matches" or "does not match",
                   r.segment and ("segment " .. r.segment .. (r.member and " (member)" or " (not a member)")) or "the rule") }
  for _, s in ipairs(r.steps) do
    lines[#lines + 1] = ("%s%s %s%s"):format(string.rep("  ", s.depth + 1), s.holds and "yes" or "no ", s.condition,
      s.found ~= nil and ("   [found: " .. tostring(s.found) .. "]") or "")
  end
  return table.concat(lines, "\n")
end
M.routes.explain = route(function(_, b, q)
  return ops.explain(q.segment or b.segment, b.rule, ops.customer(q.customer or b.customer), now())
end)
M.routes.explain_draft = M.routes.explain
M.commands.explain = command(function(_, a, o)
  if o.rule then return ops.explain(nil, o.rule, ops.customer(a[1]), now()) end
  return ops.explain(a[1], nil, ops.customer(a[2]), now())
end, explain_text)

M.routes.export = route(function(_, _, q)
  local text = ops.export(q.segment)
  return text, "text/csv"
end)
M.commands.export = command(function(_, a)
  local text, n = ops.export(a[1])
  return { segment = a[1], members = n, csv = text }
end, function(r) return (r.csv:gsub("\r\n$", "")) end)

-- static lists
M.routes.lists = route(function(req, b)
  require_staff(req.role)
  local out = {}
  if b.add ~= nil then out.add = ops.list_change(b.segment, b.add, true, now()) end
  if b.remove ~= nil then out.remove = ops.list_change(b.segment, b.remove, false, now()) end
  if not out.add and not out.remove then ops.refuse(422, "invalid", "add or remove: a list of customers") end
  return out
end)
local function list_change_text(r)
  return ("%s: %d %s, %d unchanged, %d unknown%s; %d member(s)"):format(r.segment, r.added or r.removed,
    r.added and "added" or "removed", r.unchanged, #r.unknown,
    #r.unknown > 0 and (" (" .. table.concat(r.unknown, ", ") .. ")") or "", r.members)
end
M.commands.add = command(function(_, a, o) return ops.list_change(a[1], refs_arg(a, o), true, now()) end, list_change_text)
M.commands.drop = command(function(_, a, o) return ops.list_change(a[1], refs_arg(a, o), false, now()) end, list_change_text)

M.commands.scores = command(function() return scores() end,
  function(r) return ("RFM: %d customer(s) scored"):format(r.customers_scored) end)

-- ---- the unified view and data-subject requests -----------------------------------

function M.profile(customer_id)
  return ops.of_customer(customer_id)
end

function M.export(customer_id)
  local out = ops.of_customer(customer_id)
  out.memberships = crm.db.query([[SELECT d.name AS segment, m.entered_at FROM segments_members m
                                   JOIN segments_defs d ON d.id = m.segment_id WHERE m.customer_id = ?]], customer_id)
  out.facts = crm.db.one("SELECT * FROM segments_profile WHERE customer_id = ?", customer_id)
  return out
end

-- Erasure removes the person from every segment without events (they
-- would name an erased customer), for good.
function M.erase(customer_id)
  -- The core keeps the customer's row and their events' types and times:
  -- remember the id so that no evaluation takes them in again.
  crm.db.exec("INSERT OR IGNORE INTO segments_erased(customer_id) VALUES (?)", customer_id)
  crm.db.exec("DELETE FROM segments_members WHERE customer_id = ?", customer_id)
  crm.db.exec("DELETE FROM segments_profile WHERE customer_id = ?", customer_id)
  crm.db.exec("DELETE FROM segments_due WHERE customer_id = ?", customer_id)
end

return M
