-- Shared by the segments specs (loaded with require("helpers")).
local H = {}

H.DAY = crm.time.DAY

function H.cid(ext) return crm.customers.find("external_id", ext) end

function H.customer(ext, attributes)
  return crm.customers.upsert { external_id = ext, attributes = attributes }
end

function H.buy(ext, amount, at, props)
  local p = props or {}
  p.amount, p.currency = amount, p.currency or "EUR"
  return test.emit { type = "order.placed", external_id = ext, occurred_at = at, properties = p }
end

-- A segment defined (and built) through the CLI command.
function H.define(name, rule, options)
  local o = options or {}
  return test.command("define", { name, rule }, o)
end

function H.members(name)
  local out = {}
  for _, r in ipairs(crm.db.query([[SELECT c.external_id FROM segments_members m JOIN segments_defs d ON d.id = m.segment_id
                                    JOIN customers c ON c.id = m.customer_id WHERE d.name = ? ORDER BY c.external_id]], name)) do
    out[#out + 1] = r.external_id
  end
  return out
end

function H.is_member(name, ext)
  return crm.db.value([[SELECT count(*) FROM segments_members m JOIN segments_defs d ON d.id = m.segment_id
                        WHERE d.name = ? AND m.customer_id = ?]], name, H.cid(ext)) == 1
end

-- segment.entered / segment.exited events of a segment, in log order:
-- {"in:C1", "out:C2", ...}
function H.moves(name)
  local out = {}
  for _, e in ipairs(crm.db.query([[SELECT e.type, c.external_id FROM events e JOIN customers c ON c.id = e.customer_id
                                    WHERE e.type IN ('segment.entered', 'segment.exited')
                                      AND json_extract(e.properties, '$.segment') = ? ORDER BY e.id]], name)) do
    out[#out + 1] = (e.type == "segment.entered" and "in:" or "out:") .. e.external_id
  end
  return out
end

-- Advances the clock by d and runs the minute jobs the way the server does.
function H.advance(d)
  test.advance(d)
end

return H
