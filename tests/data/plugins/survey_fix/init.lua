-- An NPS-like survey reduced to its HTTP contract: an operator asks for an
-- invitation (a signed link), the customer answers through the public route.
local M = { routes = {} }

function M.routes.invite(req)
  local cid = crm.customers.find("external_id", req.body.external_id)
  if not cid then return 404, { error = "no such customer" } end
  crm.audit.record("survey_fix.invite", cid)
  return 201, { token = crm.tokens.issue({ customer_id = cid }, req.body.ttl or "7d") }
end

function M.routes.answer(req)
  local score = math.tointeger(req.body and req.body.score)
  if not score or score < 0 or score > 10 then return 422, { error = "score is 0 to 10" } end
  local cid = req.token.customer_id
  crm.db.exec("INSERT INTO survey_fix_answers(customer_id, score, comment) VALUES (?, ?, ?)",
              cid, score, req.body.comment)
  crm.audit.record("survey_fix.answer", cid, { "score", "comment" })
  crm.events.emit { type = "survey.answered", customer_id = cid, properties = { score = score } }
  return 201, { thanks = true }
end

function M.routes.results(req)
  return 200, crm.db.one([[SELECT count(*) AS answers, coalesce(avg(score), 0) AS average
                           FROM survey_fix_answers]])
end

-- Text in a content type of the allowed list: sent as is.
function M.routes.results_csv(req)
  local rows = crm.db.query("SELECT customer_id, score, comment FROM survey_fix_answers ORDER BY rowid")
  return 200, crm.csv.encode(rows, { "customer_id", "score", "comment" }), "text/csv"
end

-- HTML is not on the list: a plugin may not serve pages from the API.
function M.routes.html(req)
  return 200, "<script>alert(1)</script>", "text/html"
end

function M.routes.boom(req)
  crm.db.exec("INSERT INTO survey_fix_answers(customer_id, score) VALUES (1, 5)")
  error("this route fails after a write")
end

function M.export(customer_id)
  return crm.db.query("SELECT score, comment FROM survey_fix_answers WHERE customer_id = ?", customer_id)
end

function M.erase(customer_id)
  crm.db.exec("DELETE FROM survey_fix_answers WHERE customer_id = ?", customer_id)
end

return M
