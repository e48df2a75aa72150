-- UTC calendar arithmetic on epoch milliseconds, without os.time (which
-- reads the process's time zone). Days are counted from 1970-01-01.
local M = {}

local DAY = 86400000
M.DAY = DAY

-- The UTC day number of ms.
function M.day(ms) return ms // DAY end

-- Days from the civil date (proleptic Gregorian), after Howard Hinnant's
-- days_from_civil.
function M.days_from_civil(y, m, d)
  y = m <= 2 and y - 1 or y
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = (153 * mp + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end

-- The civil date of a day number: year, month, day.
function M.civil(days)
  local z = days + 719468
  local era = (z >= 0 and z or z - 146096) // 146097
  local doe = z - era * 146097
  local yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
  local doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
  local mp = (5 * doy + 2) // 153
  local d = doy - (153 * mp + 2) // 5 + 1
  local m = mp < 10 and mp + 3 or mp - 9
  return yoe + era * 400 + (m <= 2 and 1 or 0), m, d
end

function M.is_leap(y) return (y % 4 == 0 and y % 100 ~= 0) or y % 400 == 0 end

-- 'MM-DD' of ms (UTC).
function M.month_day(ms)
  local _, m, d = M.civil(M.day(ms))
  return ("%02d-%02d"):format(m, d)
end

-- The month-days whose anniversary (or birthday) falls on the UTC day of
-- ms: its own, and '02-29' on 28 February of a year without 29 February.
function M.anniversaries_on(ms)
  local y, m, d = M.civil(M.day(ms))
  local list = { ("%02d-%02d"):format(m, d) }
  if m == 2 and d == 28 and not M.is_leap(y) then list[2] = "02-29" end
  return list
end

-- 'MM-DD' from user input ('04-02', '1990-04-02', '--04-02'), or nil.
function M.parse_month_day(text)
  if type(text) ~= "string" then return nil end
  local m, d = text:match("^%-*%d*%-?(%d%d)%-(%d%d)$")
  m, d = tonumber(m), tonumber(d)
  if not m or m < 1 or m > 12 or d < 1 then return nil end
  local max = ({ 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 })[m]
  if d > max then return nil end
  return ("%02d-%02d"):format(m, d)
end

-- Period keys for rule limits: the UTC day, the ISO week (weeks start on
-- Monday; 1970-01-01 was a Thursday), the calendar month.
function M.period(kind, ms)
  local day = M.day(ms)
  if kind == "day" then return "d:" .. day end
  if kind == "week" then return "w:" .. (day + 3) // 7 end
  local y, m = M.civil(day)
  return ("m:%04d-%02d"):format(y, m)
end

return M
