-- The crm API, function by function. Spec code runs with the operator's
-- permissions; the "permissions" block goes through the plugin's handlers,
-- which run with the plugin's own (no customers:write, no pii:read).
local DAY = crm.time.DAY

local function result(probe)
  return crm.db.one("SELECT ok, detail FROM api_check_results WHERE probe = ?", probe)
end

local function run(job)
  local outcome, err = test.run_job(job)
  assert.equals("ok", outcome, err)
end

describe("crm", function()
  it("names the API version, the plugin and its config", function()
    assert.equals("1.2", crm.api_version)
    run("config_checks")
  end)
end)

describe("crm.random", function()
  it("draws codes from the alphabet, never the same twice in practice", function()
    local seen = {}
    for _ = 1, 200 do
      local c = crm.random.code(10)
      assert.matches("^[A-HJ-NP-Z2-9]+$", c)
      assert.equals(10, #c)
      assert.is_nil(seen[c])
      seen[c] = true
    end
    assert.matches("^[ab]+$", crm.random.code(64, "ab"))
    assert.has_error(function() crm.random.code(0) end, "length must be 1 to 128")
    assert.has_error(function() crm.random.code(5, "a") end, "2 to 95 printable ASCII")
    assert.has_error(function() crm.random.code(5, "äö") end, "ASCII")
  end)

  it("draws integers in the closed range, each value reachable", function()
    local hits = {}
    for _ = 1, 600 do
      local v = crm.random.int(-2, 3)
      assert(v >= -2 and v <= 3, "out of range: " .. v)
      assert.equals("integer", math.type(v))
      hits[v] = (hits[v] or 0) + 1
    end
    for v = -2, 3 do assert(hits[v], "never drew " .. v) end
    assert.equals(7, crm.random.int(7, 7))
    assert.equals("integer", math.type(crm.random.int(math.mininteger, math.maxinteger)))
    assert.has_error(function() crm.random.int(2, 1) end, "must not be below")
  end)
end)

describe("crm.csv", function()
  it("encodes rows, quoting only the cells that need it, and decodes them back", function()
    local rows = { { 1, "plain", 'say "hi"', nil, true }, { -2, "a,b", "two\nlines", " padded ", false } }
    local text = crm.csv.encode(rows)
    assert.equals('1,plain,"say ""hi""",,true\r\n-2,"a,b","two\nlines"," padded ",false\r\n', text)
    assert.same({ { "1", "plain", 'say "hi"', "", "true" }, { "-2", "a,b", "two\nlines", " padded ", "false" } },
                crm.csv.decode(text))
    local named = crm.csv.encode({ { id = 7, name = "Ana" }, { id = 8 } }, { "id", "name" })
    assert.equals("id,name\r\n7,Ana\r\n8,\r\n", named)
    assert.same({ { id = "7", name = "Ana" }, { id = "8" } }, crm.csv.decode(named, { header = true }))
    assert.same({ { a = "1" } }, crm.csv.decode("\239\187\191a\n1\n", { header = true }))
    assert.same({}, crm.csv.decode(""))
  end)

  it("refuses what it cannot write and malformed text, naming the row or the line", function()
    assert.has_error(function() crm.csv.encode({ { {} } }) end, "row 1 column 1 is a table")
    assert.has_error(function() crm.csv.encode({ "x" }) end, "row 1 must be a table")
    assert.has_error(function() crm.csv.encode({ { "a\0b" } }) end, "NUL byte")
    assert.has_error(function() crm.csv.encode({}, {}) end, "at least one column")
    assert.has_error(function() crm.csv.decode('a,b\nc"d,e\n') end, "line 2: a quote inside an unquoted cell")
    assert.has_error(function() crm.csv.decode('a,b\n"c,d\ne,f\n') end, "line 2: a quoted cell is never closed")
  end)
end)

describe("crm.json", function()
  it("round-trips nested values, integers exact", function()
    -- JSON numbers are doubles: integers are exact up to 2^53.
    local v = { a = { 1, 2, { b = "c" } }, n = 9007199254740991, m = -42, f = 0.5, t = true }
    local back = crm.json.decode(crm.json.encode(v))
    assert.same(v, back)
    assert.equals(math.type(back.n), "integer")
    -- Encoding keeps any 64-bit integer exact.
    assert.equals('{"big":1152921504606846977}', crm.json.encode({ big = (1 << 60) + 1 }))
  end)
  it("keeps empty arrays with crm.json.array and null with crm.json.null", function()
    assert.equals('{"a":[]}', crm.json.encode({ a = crm.json.array() }))
    assert.equals('[null]', crm.json.encode({ crm.json.null }))
    assert.equals(crm.json.null, crm.json.decode('{"x": null}').x)
  end)
  it("refuses invalid text and trailing garbage, accepts trailing spaces", function()
    local v, e = crm.json.decode('{"a":1} x')
    assert.is_nil(v)
    assert.matches("invalid JSON at byte", e)
    assert.is_nil((crm.json.decode('{"a":')))
    assert.equals(1, crm.json.decode('{"a":1}  \n').a)
  end)
  it("refuses values JSON cannot hold", function()
    assert.has_error(function() crm.json.encode({ f = print }) end)
    local t = {}
    t.self = t
    assert.has_error(function() crm.json.encode(t) end)
  end)
end)

describe("crm.time", function()
  it("is frozen at test.START in specs and moved by test.advance", function()
    assert.equals(test.START, crm.time.now())
    test.advance("90m")
    assert.equals(test.START + 90 * crm.time.MINUTE, crm.time.now())
  end)
  it("parses ISO 8601 with offsets and formats UTC", function()
    assert.equals(test.START, crm.time.parse("2026-01-01T01:00:00+01:00"))
    assert.equals(test.START, crm.time.parse("2026-01-01"))
    assert.equals("2026-01-01T00:00:00.000Z", crm.time.format(test.START))
    local v, e = crm.time.parse("next tuesday")
    assert.is_nil(v)
    assert.is_not_nil(e)
  end)
  it("reads durations", function()
    assert.equals(3 * DAY, crm.time.duration("3d"))
    assert.equals(500, crm.time.duration("500ms"))
    assert.equals(crm.time.WEEK, crm.time.duration("1w"))
    assert.has_error(function() crm.time.duration("soon") end)
  end)
end)

describe("crm.db", function()
  it("binds, queries, iterates, rolls back atomic blocks and names errors", function()
    run("db_checks")
  end)
  it("writes only the plugin's own tables, even from spec code", function()
    assert.has_error(function() crm.db.exec("DELETE FROM events") end, "denied")
  end)
end)

describe("crm.customers", function()
  it("upserts with normalised identities, typed attributes and consent", function()
    local id, created = crm.customers.upsert {
      email = " Ana@Example.COM ", external_id = "A1",
      attributes = { tier = "gold", points = 1200, vip = true,
                     ltv = { type = "money", value = "12.50 EUR" } },
      consent = { email = { granted = true, source = "form" } },
    }
    assert.is_true(created)
    local again, created2 = crm.customers.upsert { email = "ana@example.com" }
    assert.equals(id, again)
    assert.is_false(created2)
    local v = crm.customers.get(id)
    assert.equals("ana@example.com", v.identities.email[1])
    assert.equals(1200, v.attributes.points)
    assert.equals(1250, v.attributes.ltv.amount)
    assert.equals("EUR", v.attributes.ltv.currency)
    assert.is_true(v.consent.email.granted)
    assert.equals("form", v.consent.email.source)
  end)
  it("finds by each identity kind and never by a placeholder", function()
    local id = crm.customers.upsert { email = "b@example.com", phone = "+33612345678",
                                      anonymous_id = "anon-1" }
    assert.equals(id, crm.customers.find("email", "B@EXAMPLE.com"))
    assert.equals(id, crm.customers.find("phone", "+33 6 12 34 56 78"))
    assert.equals(id, crm.customers.find("anonymous_id", "anon-1"))
    assert.is_nil(crm.customers.find("email", "nobody@example.com"))
    assert.is_nil(crm.customers.find("email", "test@test.com"))
  end)
  it("sets attributes all or nothing, naming the bad field", function()
    local id = crm.customers.upsert { external_id = "S1", attributes = { a = 1 } }
    crm.customers.set(id, { a = 2, b = "x" })
    assert.has_error(function() crm.customers.set(id, { a = 3, c = 1.5 }) end, "c")
    local v = crm.customers.get(id)
    assert.equals(2, v.attributes.a)
    assert.is_nil(v.attributes.c)
    crm.customers.set(id, { b = crm.json.null })
    assert.is_nil(crm.customers.get(id).attributes.b)
  end)
  it("records consent with its history", function()
    local id = crm.customers.upsert { external_id = "C1" }
    crm.customers.set_consent(id, "sms", true, "app")
    crm.customers.set_consent(id, "sms", false)
    assert.is_false(crm.customers.get(id).consent.sms.granted)
    assert.equals(2, crm.db.value("SELECT count(*) FROM customer_consent_history WHERE customer_id = ?", id))
    assert.has_error(function() crm.customers.set_consent(id, "pigeon", true) end)
  end)
  it("merges two customers named by one record", function()
    local a = crm.customers.upsert { email = "m@example.com" }
    local b = crm.customers.upsert { external_id = "M2" }
    local s = crm.customers.upsert { email = "m@example.com", external_id = "M2" }
    assert.equals(math.min(a, b), s)
    assert.equals(s, crm.customers.get(math.max(a, b)).id)
  end)
  it("iterates with filters", function()
    for i = 1, 5 do
      crm.customers.upsert { external_id = "E" .. i, attributes = (i % 2 == 0) and { even = true } or nil }
    end
    local ids = {}
    for id, c in crm.customers.each { has_attribute = "even" } do ids[#ids + 1] = c.external_id end
    assert.same({ "E2", "E4" }, ids)
    local first = crm.customers.find("external_id", "E3")
    local after = 0
    for _ in crm.customers.each { after_id = first } do after = after + 1 end
    assert.equals(2, after)
  end)
end)

describe("crm.events", function()
  it("emits once per client id and reads a timeline newest first", function()
    local id1, dup1 = crm.events.emit { type = "note", external_id = "T1", id = "n-1" }
    local id2, dup2 = crm.events.emit { type = "note", external_id = "T1", id = "n-1" }
    assert.is_false(dup1)
    assert.is_true(dup2)
    assert.equals(id1, id2)
    crm.events.emit { type = "note.2", external_id = "T1", properties = { k = 1 } }
    local cid = crm.customers.find("external_id", "T1")
    local tl = crm.events.timeline(cid, { limit = 10 })
    assert.equals(2, #tl)
    assert.equals("note.2", tl[1].type)
    assert.equals(1, tl[1].properties.k)
    assert.equals(1, #crm.events.timeline(cid, { limit = 1 }))
  end)
  it("refuses an event without a type or a customer", function()
    assert.has_error(function() crm.events.emit { external_id = "T1" } end, "type")
    assert.has_error(function() crm.events.emit { type = "x" } end, "customer")
  end)
end)

describe("crm.schedule", function()
  it("registers manifest jobs and fires them as time passes", function()
    for _ = 1, 3 do test.advance("1h") end
    assert.equals(3, crm.db.value("SELECT count(*) FROM api_check_ticks"))
    -- A jump over several periods runs a missed job once (its policy).
    test.advance("5h")
    assert.equals(4, crm.db.value("SELECT count(*) FROM api_check_ticks"))
  end)
  it("adds, lists, cancels and fires the plugin's jobs", function()
    run("schedule_checks")
    -- now: "once" at +30m and "often" every 10m, besides the hourly tick
    for _ = 1, 3 do test.advance("10m") end
    assert.equals(4, crm.db.value("SELECT count(*) FROM api_check_ticks"))
    assert.equals(1, crm.db.value([[SELECT count(*) FROM api_check_ticks
                                    WHERE json_extract(payload, '$.n') = 1]]))
    assert.equals(0, crm.db.value("SELECT count(*) FROM jobs WHERE name = 'once'"))
  end)
end)

describe("permissions and the sandbox, from the plugin's handlers", function()
  before_each(function()
    crm.customers.upsert { external_id = "P1", email = "a@example.com" }
  end)
  local function probe(name)
    test.emit { type = "probe." .. name, external_id = "P1" }
    return result(name)
  end
  it("denies writes to customers without customers:write", function()
    local r = probe("upsert")
    assert.equals(0, r.ok)
    assert.matches("customers:write", r.detail)
  end)
  it("denies PII without pii:read, through the API and through SQL", function()
    assert.matches("pii:read", probe("find_email").detail)
    assert.matches("pii:read", probe("identities").detail)
    assert.equals("no pii, no consent", probe("get_view").detail)
    assert.equals(1, probe("find_external").ok)
  end)
  it("keeps the host's tables and transactions to the host", function()
    assert.matches("not readable by plugins", probe("jobs_table").detail)
    assert.matches("denied", probe("write_core").detail)
    assert.matches("transaction control", probe("begin").detail)
    assert.equals(0, probe("attach").ok)
    assert.equals(1, crm.db.value("SELECT count(*) FROM customers"))
  end)
  it("requires modules from the plugin's folder only", function()
    assert.equals("42", probe("double").detail)
    assert.equals(0, probe("require_outside").ok)
  end)
  it("stops an endless handler and dead-letters its event", function()
    test.emit { type = "loop", external_id = "P1" }
    local dl = test.dead_letters()
    assert.equals(1, #dl)
    assert.matches("instruction budget", dl[1].error)
  end)
  it("adds what profile() returns to the customer view", function()
    test.advance("1h")
    assert.equals(1, test.profile(crm.customers.find("external_id", "P1")).ticks)
  end)
end)
