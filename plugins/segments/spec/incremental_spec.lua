-- Incremental membership against a full rebuild: a random stream of
-- 10,000 events (purchases, page views, attribute and consent changes,
-- time passing) over 300 customers, with segments of every kind of
-- condition, including one that reads another and a time window. After
-- the stream, a full rebuild must change nothing; every segment.entered /
-- segment.exited event must alternate per customer, and the last one must
-- agree with the membership.
local H = require("helpers")

local RULES = {
  buyers3 = "count(order.placed, 30d) >= 3",
  big = 'sum(order.placed, 60d, currency = "EUR") > 20000',
  quiet = "count(order.placed, 20d) = 0 and count(order.placed) >= 1",
  fr_opt = 'country = "FR" and consent(email)',
  vip = "segment(big) and not segment(quiet) and vip_flag = true",
  browsers = "count(page.*, 7d) >= 5 or (count(page.view, 3d) >= 2 and not consent(email))",
  staged = 'lifecycle in ("active", "new") and country != "DE"',
}

local function snapshot()
  local rows = crm.db.query([[SELECT d.name, m.customer_id FROM segments_members m
                              JOIN segments_defs d ON d.id = m.segment_id ORDER BY d.name, m.customer_id]])
  local out = {}
  for _, r in ipairs(rows) do out[#out + 1] = r.name .. ":" .. r.customer_id end
  return out
end

describe("incremental membership", function()
  it("matches a full rebuild after 10,000 random events, with enter/exit emitted once each", function()
    math.randomseed(20261123)
    local N = 300
    for i = 1, N do
      H.customer("C" .. i, { country = (i % 3 == 0) and "FR" or (i % 3 == 1 and "DE" or "ES"), vip_flag = i % 4 == 0 })
    end
    for name, r in pairs(RULES) do if name ~= "vip" then H.define(name, r) end end
    H.define("vip", RULES.vip)

    local countries = { "FR", "DE", "ES" }
    for step = 1, 10000 do
      local ext = "C" .. math.random(N)
      local roll = math.random(100)
      if roll <= 45 then
        H.buy(ext, math.random(1, 6000), nil, { currency = math.random(10) == 1 and "USD" or "EUR" })
      elseif roll <= 75 then
        test.emit { type = math.random(2) == 1 and "page.view" or "page.search", external_id = ext }
      elseif roll <= 85 then
        crm.customers.set(H.cid(ext), { country = countries[math.random(3)] })
      elseif roll <= 92 then
        crm.customers.set_consent(H.cid(ext), "email", math.random(2) == 1, "spec")
      elseif roll <= 97 then
        -- Events dated in the past and in the near future, too.
        H.buy(ext, math.random(1, 3000), crm.time.now() + math.random(-40, 2) * crm.time.DAY)
      else
        test.advance(math.random(1, 72) * crm.time.HOUR) -- the minute jobs run: profiles, edges
      end
      if step % 500 == 0 then test.advance("1m") end
    end
    test.advance("2m") -- the last profile changes
    assert.same({}, test.dead_letters())

    local incremental = snapshot()
    assert(#incremental > 50, "the stream should leave members: " .. #incremental)
    local before = crm.db.value("SELECT count(*) FROM events WHERE type LIKE 'segment.%'")
    test.command("rebuild", {})
    assert.same(incremental, snapshot())
    assert.equals(before, crm.db.value("SELECT count(*) FROM events WHERE type LIKE 'segment.%'"))

    -- Every customer's events per segment alternate in, out, in...; the
    -- last one says what the membership says.
    local last = {}
    for _, e in ipairs(crm.db.query([[SELECT type, customer_id, json_extract(properties, '$.segment') AS seg
                                      FROM events WHERE type IN ('segment.entered', 'segment.exited') ORDER BY id]])) do
      local key = e.seg .. ":" .. e.customer_id
      local inside = e.type == "segment.entered"
      assert(last[key] ~= inside, "two " .. e.type .. " in a row for " .. key)
      last[key] = inside
    end
    local members = {}
    for _, k in ipairs(incremental) do members[k] = true end
    for key, inside in pairs(last) do
      assert.equals(inside, members[key] == true, key)
    end
    for key in pairs(members) do assert.is_true(last[key], key .. " is a member without an entered event") end
  end)
end)
