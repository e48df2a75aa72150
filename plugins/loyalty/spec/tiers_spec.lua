-- Tiers over a rolling window: upgrades at once, downgrades by the
-- program's policy, on dates around membership anniversaries.
local H = require("helpers")
local DAY = H.DAY

local function tier(ext) return H.member(ext).tier end

local function changes(ext)
  local out = {}
  for _, e in ipairs(crm.db.query("SELECT properties FROM events WHERE type = 'loyalty.tier_changed' AND customer_id = ? ORDER BY id", H.cid(ext))) do
    local p = crm.json.decode(e.properties)
    out[#out + 1] = p.from .. ">" .. p.to
  end
  return table.concat(out, ",")
end

describe("tiers", function()
  it("upgrade as soon as the threshold is crossed, with an event", function()
    H.buy("C1", "A1", 90000)                  -- 900
    assert.equals("member", tier("C1"))
    H.buy("C1", "A2", 20000)                  -- 1100: silver
    assert.equals("silver", tier("C1"))
    H.buy("C1", "A3", 400000)                 -- 5100: gold
    assert.equals("gold", tier("C1"))
    assert.equals("member>silver,silver>gold", changes("C1"))
  end)

  it("count spend instead of points when the program says so", function()
    test.reset { config = { tier_basis = "spend", tiers = { { name = "member", min = 0 }, { name = "vip", min = 50000 } } } }
    H.buy("C1", "A1", 49999)
    assert.equals("member", tier("C1"))
    H.buy("C1", "A2", 1)
    assert.equals("vip", tier("C1"))
  end)

  it("keep the rolling window: points older than the window stop counting", function()
    test.reset { config = { downgrade = "reevaluate", tier_window_days = 30 } }
    H.buy("C1", "A1", 120000)                 -- 1200: silver
    test.advance("10d")
    H.buy("C1", "A2", 30000)                  -- 1500
    test.advance("20d")                       -- day 30: A1's day leaves the window
    assert.equals(300, H.member("C1").qual_points)
    assert.equals("member", tier("C1"))
    assert.equals(0, crm.db.value("SELECT count(*) FROM loyalty_qual WHERE day = ?", test.START // DAY))
    test.advance("10d")
    assert.equals(0, H.member("C1").qual_points)
  end)

  it("with the anniversary policy, drop only on the membership anniversary, to the tier earned", function()
    test.reset { config = { tier_window_days = 90 } }
    H.buy("C1", "A1", 600000)                 -- 6000: gold, joined 1 January 2026
    test.advance("200d")                      -- window long gone: still gold until the anniversary
    assert.equals("gold", tier("C1"))
    assert.equals(0, H.member("C1").qual_points)
    test.advance("164d")                      -- 31 December 2026
    assert.equals("gold", tier("C1"))
    test.advance("1d")                        -- 1 January 2027: anniversary
    assert.equals("member", tier("C1"))
    test.run_job("tiers")                     -- again the same day: nothing more
    assert.equals("member>gold,gold>member", changes("C1"))
  end)

  it("with the one_level policy, drop one level a year", function()
    test.reset { config = { tier_window_days = 90, downgrade = "one_level" } }
    H.buy("C1", "A1", 600000)                 -- gold
    test.advance("365d")                      -- first anniversary
    assert.equals("silver", tier("C1"))
    test.run_job("tiers")                     -- the same day again: still one level only
    assert.equals("silver", tier("C1"))
    test.advance("365d")
    assert.equals("member", tier("C1"))
    assert.equals("member>gold,gold>silver,silver>member", changes("C1"))
  end)

  it("a member who joined on 29 February is reviewed on 28 February in other years", function()
    test.reset { config = { tier_window_days = 30 } }
    test.advance("789d")                      -- 29 February 2028
    assert.equals("2028-02-29T00:00:00.000Z", crm.time.format(crm.time.now()))
    H.buy("C1", "A1", 200000)                 -- silver, joined 29 February 2028
    test.advance("364d")                      -- 27 February 2029
    assert.equals("silver", tier("C1"))
    test.advance("1d")                        -- 28 February 2029
    assert.equals("member", tier("C1"))
  end)

  it("catches up anniversaries a stopped server missed", function()
    test.reset { config = { tier_window_days = 30 } }
    H.buy("C1", "A1", 200000)                 -- silver, joined 1 January 2026
    test.advance("363d")                      -- 30 December 2026
    assert.equals("silver", tier("C1"))
    -- Stopped over new year: the job's next run, on 3 January, is its first
    -- since the anniversary.
    test.advance("4d")
    assert.equals("member", tier("C1"))
  end)

  it("follow an operator's Lua policy", function()
    test.reset { config = { tier_window_days = 30, downgrade = "lua:gentle" } }
    H.cmd("rule-set", { "gentle" }, { source = [[
      -- never drop members with 10 or more purchases; otherwise to the tier earned
      return function(ctx)
        if ctx.member.purchases >= 10 then return ctx.member.tier end
        return ctx.computed
      end]] })
    for i = 1, 10 do H.buy("LOYAL", "L" .. i, 20000) end
    H.buy("ONCE", "O1", 200000)
    assert.equals("silver", tier("LOYAL"))
    assert.equals("silver", tier("ONCE"))
    test.advance("365d")
    assert.equals("silver", tier("LOYAL"))
    assert.equals("member", tier("ONCE"))
  end)
end)
