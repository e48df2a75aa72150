-- RFM scores against values computed here, independently of the SQL:
-- score = 1 + floor(5 * (customers with a lower value) / population).
-- And the lifecycle stages with their configured windows.
local H = require("helpers")
local DAY = crm.time.DAY

-- The named groups by R (rows, 5 first) and FM = ceil((F + M) / 2)
-- (columns 1..5), as docs/segments.md draws them.
local GRID = {
  [5] = { "new_customers", "potential_loyalists", "potential_loyalists", "champions", "champions" },
  [4] = { "promising", "potential_loyalists", "potential_loyalists", "loyal", "champions" },
  [3] = { "about_to_sleep", "need_attention", "need_attention", "loyal", "loyal" },
  [2] = { "hibernating", "hibernating", "at_risk", "at_risk", "cant_lose" },
  [1] = { "lost", "hibernating", "at_risk", "at_risk", "cant_lose" },
}
local function group_of(r, f, m) return GRID[r][(f + m + 1) // 2] end

local function expected_scores(values)
  local n, out = 0, {}
  for _ in pairs(values) do n = n + 1 end
  for id, v in pairs(values) do
    local lower = 0
    for _, w in pairs(values) do if w < v then lower = lower + 1 end end
    out[id] = 1 + (5 * lower) // n
  end
  return out
end

describe("RFM", function()
  it("scores recency, frequency and monetary in quintiles, ties sharing a score", function()
    math.randomseed(7)
    local last, freq, money = {}, {}, {}
    for i = 1, 137 do
      H.customer("R" .. i)
      local orders = math.random(1, 6)
      for _ = 1, orders do
        -- Coarse days and amounts: plenty of ties.
        local at = test.START - math.random(0, 30) * 10 * DAY
        local amount = math.random(1, 8) * 1000
        H.buy("R" .. i, amount, at)
      end
    end
    -- Someone whose purchases are all outside the window is not scored;
    -- purchases in another currency count for F but not for M.
    H.customer("OLD")
    H.buy("OLD", 5000, test.START - 400 * DAY)
    H.buy("R1", 99999, test.START - DAY, { currency = "USD" })
    test.command("scores")
    -- Independently: from the events, in Lua.
    for _, e in ipairs(crm.db.query([[SELECT customer_id, occurred_at, properties FROM events WHERE type = 'order.placed']])) do
      local p = crm.json.decode(e.properties)
      if e.occurred_at > test.START - 365 * DAY then
        local id = e.customer_id
        last[id] = math.max(last[id] or math.mininteger, e.occurred_at)
        freq[id] = (freq[id] or 0) + 1
        money[id] = (money[id] or 0) + (p.currency == "EUR" and p.amount or 0)
      end
    end
    local r, f, m = expected_scores(last), expected_scores(freq), expected_scores(money)
    local checked = 0
    for id in pairs(last) do
      local row = crm.db.one("SELECT r, f, m, rfm_group FROM segments_profile WHERE customer_id = ?", id)
      assert.same({ r[id], f[id], m[id] }, { row.r, row.f, row.m })
      assert.equals(group_of(r[id], f[id], m[id]), row.rfm_group)
      checked = checked + 1
    end
    assert.equals(137, checked)
    local cells = {}
    for id in pairs(last) do cells[r[id] .. ":" .. (f[id] + m[id] + 1) // 2] = true end
    local ncells = 0
    for _ in pairs(cells) do ncells = ncells + 1 end
    assert(ncells >= 15, "the data should cover most of the grid: " .. ncells .. " cells")
    assert.is_nil(crm.db.value("SELECT r FROM segments_profile WHERE customer_id = ?", H.cid("OLD")))
    -- Every score 1..5 is used.
    assert.equals(5, crm.db.value("SELECT count(DISTINCT r) FROM segments_profile WHERE r IS NOT NULL"))
  end)

  it("feeds rules: rfm.group and rfm.r, moved for the customers whose scores changed", function()
    for i = 1, 10 do
      H.customer("S" .. i)
      for _ = 1, i do H.buy("S" .. i, i * 1000, test.START - (11 - i) * DAY) end
    end
    H.define("best", 'rfm.group = "champions"')
    H.define("recent", "rfm.r >= 4")
    assert.same({}, H.members("best"))
    test.command("scores")
    assert.same({ "S10", "S9" }, H.members("best"))
    assert.same({ "S10", "S7", "S8", "S9" }, H.members("recent"))
    assert.same({ "in:S9", "in:S10" }, H.moves("best"))
  end)
end)

describe("lifecycle", function()
  it("moves new -> active -> at_risk -> lapsed -> churned on its own, at the configured days", function()
    test.reset { config = { lifecycle = { new_days = 10, active_days = 20, at_risk_days = 40, lapsed_days = 60 } } }
    H.customer("L1")
    H.customer("L2")
    for _, stage in ipairs({ "prospect", "new", "active", "at_risk", "lapsed", "churned" }) do
      H.define("stage_" .. stage, ('lifecycle = "%s"'):format(stage))
    end
    assert.same({ "L1", "L2" }, H.members("stage_prospect"))
    H.buy("L1", 100)
    assert.same({ "L1" }, H.members("stage_new"))
    local function stage_of(ext)
      for _, s in ipairs({ "prospect", "new", "active", "at_risk", "lapsed", "churned" }) do
        if H.is_member("stage_" .. s, ext) then return s end
      end
    end
    test.advance("9d"); assert.equals("new", stage_of("L1"))
    test.advance("2d"); assert.equals("active", stage_of("L1"))
    test.advance("10d"); assert.equals("at_risk", stage_of("L1"))
    test.advance("20d"); assert.equals("lapsed", stage_of("L1"))
    H.buy("L1", 100) -- back at once
    assert.equals("active", stage_of("L1"))
    test.advance("61d"); assert.equals("churned", stage_of("L1"))
    assert.equals("prospect", stage_of("L2"))
    assert.same({ "in:L1", "out:L1", "in:L1", "out:L1" }, H.moves("stage_active"))
  end)

  it("refuses windows out of order, naming the setting", function()
    assert.has_error(function()
      test.reset { config = { lifecycle = { active_days = 90, at_risk_days = 60 } } }
    end, "lifecycle")
  end)
end)
