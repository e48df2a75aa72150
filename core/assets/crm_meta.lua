---@meta crm
-- LuaLS definitions of the Rapport host API, version 1.1.
-- `rapport plugin meta` prints this file; `rapport plugin new` copies it to
-- the plugin's types/ folder. The reference with examples is
-- docs/plugin-api.md.

---The host API. Every plugin and operator script sees it as the global `crm`.
---@class crm
---@field api_version string host API version, "1.2"
---@field plugin string the calling plugin's name ("operator" for scripts)
---@field config table the plugin's effective config: plugin.json defaults overlaid with the instance's overrides
crm = {}

---@alias crm.id integer a row id (customers, events, jobs)
---@alias crm.ms integer UTC epoch milliseconds
---@alias crm.value string|integer|number|boolean|nil

---An event as handlers receive it.
---@class crm.Event
---@field id integer position in the log
---@field event_id? string the client's id (idempotency key)
---@field customer_id integer
---@field type string e.g. "order.placed"
---@field occurred_at crm.ms
---@field received_at crm.ms
---@field source? string
---@field properties table

---A job run as job functions receive it.
---@class crm.Job
---@field id integer
---@field run_id integer
---@field name? string
---@field kind "cron"|"every"|"at"
---@field scheduled_for crm.ms the due time this run stands for
---@field payload table

---A request to one of the plugin's HTTP routes.
---@class crm.Request
---@field method string
---@field path string the route's path, without /v1/p/<plugin>
---@field query table<string, string>
---@field body? any decoded JSON, or the raw text
---@field token? any the payload of the token (public routes)
---@field key_id? integer the API key (private routes)
---@field role? "admin"|"operator"|"partner" the key's role (private routes)

---What a command receives: `rapport PLUGIN COMMAND ARGS... --NAME VALUE`.
---@class crm.CommandInput
---@field args string[] the positional arguments
---@field options table<string, string|boolean> `--NAME VALUE` (or `--NAME=VALUE`); `--NAME` alone is true

---The table init.lua returns.
---@class crm.Plugin
---@field handlers? table<string, fun(event: crm.Event)>
---@field jobs? table<string, fun(job: crm.Job)>
---@field profile? fun(customer_id: integer): table|nil what the plugin adds to `rapport customer show`
---@field routes? table<string, fun(req: crm.Request): integer?, table?> HTTP routes named in plugin.json
---@field commands? table<string, fun(input: crm.CommandInput): any, string?> CLI commands named in plugin.json: (value for --json, text for people)
---@field export? fun(customer_id: integer): table|nil everything the plugin keeps on the customer (required when a table has customer_id)
---@field erase? fun(customer_id: integer) forget the customer (required when a table has customer_id)

-- ---- crm.tokens ----------------------------------------------------------------

---@class crm.tokens
crm.tokens = {}
---A signed, expiring token for this plugin's public routes (signed, not encrypted).
---@param payload? table
---@param ttl string|integer "7d", "1h" or ms; 1 s to 1 year
---@return string token
function crm.tokens.issue(payload, ttl) end

-- ---- crm.random ----------------------------------------------------------------

---Randomness from OpenSSL's generator (unguessable; math.random is not).
---@class crm.random
crm.random = {}
---A code of length characters (1 to 128) drawn uniformly from alphabet.
---@param length integer
---@param alphabet? string 2 to 95 printable ASCII characters; default "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
---@return string
function crm.random.code(length, alphabet) end
---A uniform integer in [lo, hi].
---@param lo integer
---@param hi integer
---@return integer
function crm.random.int(lo, hi) end

-- ---- crm.audit -----------------------------------------------------------------

---@class crm.audit
crm.audit = {}
---Appends a record to the audit log: this plugin acted on a customer's data
---(its actor names the plugin, and the key or local user of the route or
---command call in progress).
---@param action string "<plugin>.<what>", e.g. "loyalty.adjust"
---@param customer_id integer? nil for an action on no one customer (a list exported)
---@param fields? string[] the names of the fields concerned, never their values
function crm.audit.record(action, customer_id, fields) end

-- ---- crm.csv -------------------------------------------------------------------

---@class crm.csv
crm.csv = {}
---CSV text (RFC 4180: CRLF line ends, a cell quoted only when it must be).
---With `columns`, `rows` are tables keyed by those names and a header line
---comes first; without, `rows` are arrays of cells. Cells: strings, numbers,
---booleans or nil (empty).
---@param rows table[]
---@param columns? string[]
---@return string
function crm.csv.encode(rows, columns) end
---Rows from CSV text (strict quoting; a UTF-8 byte order mark is skipped):
---arrays of strings, or with `{header = true}` tables keyed by the first
---line's names (empty cells absent). Raises naming the line on bad quoting.
---@param text string
---@param options? {header: boolean?}
---@return table[]
function crm.csv.decode(text, options) end

-- ---- crm.log -------------------------------------------------------------------

---@class crm.log
crm.log = {}
---@param ... any values, joined by spaces (tables as JSON)
function crm.log.debug(...) end
---@param ... any
function crm.log.info(...) end
---@param ... any
function crm.log.warn(...) end
---@param ... any
function crm.log.error(...) end

-- ---- crm.json ------------------------------------------------------------------

---@class crm.json
---@field null lightuserdata JSON null
crm.json = {}
---@param value any
---@param pretty? boolean indent the output
---@return string
function crm.json.encode(value, pretty) end
---@param text string
---@return any|nil value, string? error
function crm.json.decode(text) end
---Marks t (default: a new table) so that it encodes as an array even when empty.
---@param t? table
---@return table
function crm.json.array(t) end

-- ---- crm.time ------------------------------------------------------------------

---@class crm.time
---@field SECOND integer 1000
---@field MINUTE integer 60000
---@field HOUR integer 3600000
---@field DAY integer 86400000
---@field WEEK integer 604800000
crm.time = {}
---@return crm.ms now the instance clock (frozen and movable in specs)
function crm.time.now() end
---@param text string ISO 8601 ("2026-03-01T10:00:00Z", "2026-03-01") or epoch ms
---@return crm.ms|nil ms, string? error
function crm.time.parse(text) end
---@param ms crm.ms
---@return string iso "2026-03-01T10:00:00.000Z"
function crm.time.format(ms) end
---@param d string|integer "500ms", "30s", "15m", "2h", "3d", "1w" or ms
---@return integer ms
function crm.time.duration(d) end

-- ---- crm.db --------------------------------------------------------------------

---SQL on the plugin's own tables (named `<plugin>_...`) and reads of the core
---tables its permissions grant. Parameters bind to `?` in order: integers,
---numbers, strings, booleans (1/0), nil or crm.json.null (NULL), tables (JSON text).
---@class crm.db
crm.db = {}
---@param sql string
---@param ... crm.value
---@return table[] rows at most 10000; use crm.db.rows for more
function crm.db.query(sql, ...) end
---@param sql string
---@param ... crm.value
---@return table|nil row the first row
function crm.db.one(sql, ...) end
---@param sql string
---@param ... crm.value
---@return crm.value value the first column of the first row
function crm.db.value(sql, ...) end
---@param sql string
---@param ... crm.value
---@return integer changes, integer last_insert_id
function crm.db.exec(sql, ...) end
---Iterates over a result of any size, one row at a time: `for row in crm.db.rows(sql) do ... end`.
---@param sql string
---@param ... crm.value
---@return fun(): table|nil
function crm.db.rows(sql, ...) end
---Runs fn inside a savepoint: its writes commit together, or not at all when it raises.
---@generic R
---@param fn fun(...): R
---@param ... any
---@return R
function crm.db.atomic(fn, ...) end

-- ---- crm.customers -------------------------------------------------------------

---@class crm.customers
crm.customers = {}
---The unified view; identities need "pii:read", consent "consent:read". Permission: "customers:read".
---@param id integer
---@param opts? {events?: integer} recent events to include (needs "events:read")
---@return table|nil profile
function crm.customers.get(id, opts) end
---Resolves an identity to a customer (kinds other than external_id and anonymous_id need "pii:read"). Permission: "customers:read".
---@param kind "email"|"phone"|"external_id"|"anonymous_id"|string
---@param value string
---@return integer|nil id
function crm.customers.find(kind, value) end
---Creates or updates a customer from identities and attributes; identities of two customers merge them. Permission: "customers:write".
---@param profile {id?: integer, external_id?: string, email?: string, phone?: string, identities?: table, attributes?: table, consent?: table}
---@return integer id, boolean created
function crm.customers.upsert(profile) end
---Sets attributes (nil or crm.json.null deletes one). Permission: "customers:write".
---@param id integer
---@param attributes table<string, any>
function crm.customers.set(id, attributes) end
---Records consent for a channel. Permission: "customers:write".
---@param id integer
---@param channel "email"|"sms"|"push"|"phone"
---@param granted boolean
---@param source? string default "plugin:<name>"
function crm.customers.set_consent(id, channel, granted, source) end
---Iterates over customers in id order; no statement stays open between rows, so long jobs may be time-sliced. Permission: "customers:read".
---@param filter? {after_id?: integer, updated_since?: crm.ms|string, created_since?: crm.ms|string, has_attribute?: string, has_identity?: string}
---@return fun(): integer, table id and {id, external_id, created_at, updated_at}
function crm.customers.each(filter) end

-- ---- crm.events ----------------------------------------------------------------

---@class crm.events
crm.events = {}
---Appends an event to the log (durable with the caller's transaction; dispatched to subscribers like any other). Permission: "events:emit".
---@param event {type: string, id?: string, customer_id?: integer, external_id?: string, email?: string, phone?: string, anonymous_id?: string, customer?: table, occurred_at?: crm.ms|string, source?: string, properties?: table}
---@return integer id, boolean duplicate
function crm.events.emit(event) end
---A customer's events, newest first. Permission: "events:read".
---@param customer_id integer
---@param opts? {limit?: integer, before?: integer}
---@return crm.Event[]
function crm.events.timeline(customer_id, opts) end

-- ---- crm.schedule --------------------------------------------------------------

---The plugin's own jobs; `job` names a function of the plugin's `jobs` table. Permission: "schedule".
---@class crm.schedule
crm.schedule = {}
---@param name string unique per plugin; re-adding replaces
---@param every string|integer "15m", "1h", "1d" or ms
---@param job string
---@param payload? table
---@return integer job_id
function crm.schedule.every(name, every, job, payload) end
---@param name string
---@param expression string 5-field cron, in the instance's time zone
---@param job string
---@param payload? table
---@return integer job_id
function crm.schedule.cron(name, expression, job, payload) end
---A one-shot (e.g. a journey's "wait 3 days" for one customer).
---@param when crm.ms|string
---@param job string
---@param payload? table
---@param name? string naming it makes it replaceable and cancellable by name
---@return integer job_id
function crm.schedule.at(when, job, payload, name) end
---@param name_or_id string|integer
---@return boolean removed
function crm.schedule.cancel(name_or_id) end
---@return table[] jobs the plugin's jobs
function crm.schedule.list() end

-- ---- specs (only inside `rapport plugin test`) ----------------------------------

---@class test
---@field plugin string
---@field START crm.ms 2026-01-01T00:00:00Z, the frozen clock at the start of each test
test = {}
---@param event table as crm.events.emit takes
---@return integer id, boolean duplicate
function test.emit(event) end
function test.dispatch() end
---@param d string|integer
---@return integer fired jobs that became due and ran
function test.advance(d) end
---@param name string
---@return "ok"|"error" outcome, string? error
function test.run_job(name) end
---@return table[] dead letters of the plugin, oldest first
function test.dead_letters() end
---Calls the plugin's profile(customer_id) hook, as `rapport customer show` does.
---@param customer_id integer
---@return table|nil
function test.profile(customer_id) end
---A fresh database with the plugin enabled, the clock at test.START; with
---config, the plugin runs with these overrides of its config (checked as
---rapport.json's are) until the next reset (each `it` starts with one).
---@param opts? {config?: table}
function test.reset(opts) end
---Runs one of the plugin's commands as `rapport PLUGIN name` would (as the
---plugin, in a transaction), then dispatches what it emitted; raises its error.
---@param name string
---@param args? string[]
---@param options? table<string, string|boolean>
---@return any value, string? text
function test.command(name, args, options) end
---Calls one of the plugin's routes as the HTTP API would (without the HTTP:
---no key check), then dispatches what it emitted.
---@param method string
---@param path string
---@param request? {body?: any, query?: table<string, string>, key_id?: integer, role?: string, token?: table}
---@return integer status, any body, string? content_type the header value when the route answered text (text/csv, ...)
function test.route(method, path, request) end
