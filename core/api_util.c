/* api_util: crm.log, crm.json, crm.time, crm.tokens and crm.random. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "api.h"
#include "clock.h"
#include "log.h"
#include "luajson.h"
#include "tokens.h"

/* ---- crm.log ---------------------------------------------------------------- */

static int log_at(lua_State *L, int level) {
  rp_plugin *p = rp_api_plugin(L);
  int n = lua_gettop(L);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (int i = 1; i <= n; i++) {
    if (i > 1) luaL_addchar(&b, ' ');
    if (lua_type(L, i) == LUA_TTABLE) {
      cJSON *j = rp_lua_to_json(L, i, NULL);
      char *text = j ? cJSON_PrintUnformatted(j) : NULL;
      cJSON_Delete(j);
      if (text) {
        lua_pushstring(L, text);
        free(text);
      } else {
        luaL_tolstring(L, i, NULL);
      }
    } else {
      luaL_tolstring(L, i, NULL);
    }
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
  rp_log(level, p->name, "%s", lua_tostring(L, -1));
  return 0;
}

static int log_debug(lua_State *L) { return log_at(L, RP_LOG_DEBUG); }
static int log_info(lua_State *L) { return log_at(L, RP_LOG_INFO); }
static int log_warn(lua_State *L) { return log_at(L, RP_LOG_WARN); }
static int log_error(lua_State *L) { return log_at(L, RP_LOG_ERROR); }

void rp_api_push_log(lua_State *L) {
  static const luaL_Reg fns[] = {{"debug", log_debug},
                                 {"info", log_info},
                                 {"warn", log_warn},
                                 {"error", log_error},
                                 {NULL, NULL}};
  luaL_newlib(L, fns);
}

/* ---- crm.json ----------------------------------------------------------------- */

static int json_encode(lua_State *L) {
  luaL_checkany(L, 1);
  cJSON *j = rp_api_to_json(L, 1, "crm.json.encode");
  char *text = lua_toboolean(L, 2) ? cJSON_Print(j) : cJSON_PrintUnformatted(j);
  cJSON_Delete(j);
  if (!text) return luaL_error(L, "crm.json.encode: out of memory");
  lua_pushstring(L, text);
  free(text);
  return 1;
}

static int json_decode(lua_State *L) {
  size_t len;
  const char *text = luaL_checklstring(L, 1, &len);
  const char *end = NULL;
  /* cJSON's own "null terminated" check looks one byte past the length it
   * is given, so parse the exact length and check what trails by hand. */
  cJSON *j = cJSON_ParseWithLengthOpts(text, len, &end, 0);
  if (j && end) {
    while (end < text + len && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
      end++;
    if (end != text + len) {
      cJSON_Delete(j);
      j = NULL;
    }
  }
  if (!j) {
    size_t at = end && end >= text ? (size_t)(end - text) : 0;
    luaL_pushfail(L);
    lua_pushfstring(L, "invalid JSON at byte %d", (int)at + 1);
    return 2;
  }
  rp_api_push_json_owned(L, j);
  return 1;
}

static int json_array(lua_State *L) {
  if (lua_isnoneornil(L, 1)) lua_newtable(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  rp_lua_push_array_mt(L);
  lua_setmetatable(L, 1);
  return 1;
}

void rp_api_push_json(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"encode", json_encode}, {"decode", json_decode}, {"array", json_array}, {NULL, NULL}};
  luaL_newlib(L, fns);
  lua_pushlightuserdata(L, NULL);
  lua_setfield(L, -2, "null");
}

/* ---- crm.time ------------------------------------------------------------------ */

static int time_now(lua_State *L) {
  lua_pushinteger(L, rp_clock_now_ms());
  return 1;
}

static int time_parse(lua_State *L) {
  const char *text = luaL_checkstring(L, 1);
  int64_t ms;
  if (rp_clock_parse(text, &ms) != 0) {
    luaL_pushfail(L);
    lua_pushfstring(L, "not a timestamp: '%s' (ISO 8601 or epoch milliseconds)", text);
    return 2;
  }
  lua_pushinteger(L, ms);
  return 1;
}

static int time_format(lua_State *L) {
  char buf[40];
  rp_clock_format_iso((int64_t)luaL_checkinteger(L, 1), buf, sizeof buf);
  lua_pushstring(L, buf);
  return 1;
}

static int time_duration(lua_State *L) {
  if (lua_isinteger(L, 1)) {
    lua_pushinteger(L, lua_tointeger(L, 1));
    return 1;
  }
  const char *text = luaL_checkstring(L, 1);
  int64_t ms;
  if (rp_clock_parse_duration(text, &ms) != 0)
    return luaL_error(L, "crm.time.duration: not a duration: '%s' (e.g. 500ms, 30s, 15m, 2h, "
                         "3d, 1w)", text);
  lua_pushinteger(L, ms);
  return 1;
}

void rp_api_push_time(lua_State *L) {
  static const luaL_Reg fns[] = {{"now", time_now},
                                 {"parse", time_parse},
                                 {"format", time_format},
                                 {"duration", time_duration},
                                 {NULL, NULL}};
  luaL_newlib(L, fns);
  static const struct {
    const char *name;
    lua_Integer ms;
  } units[] = {{"SECOND", 1000}, {"MINUTE", 60000}, {"HOUR", 3600000}, {"DAY", 86400000},
               {"WEEK", 604800000}, {NULL, 0}};
  for (int i = 0; units[i].name; i++) {
    lua_pushinteger(L, units[i].ms);
    lua_setfield(L, -2, units[i].name);
  }
}

/* ---- crm.tokens -------------------------------------------------------------- */

/* crm.tokens.issue(payload, ttl) -> token: for the plugin's public routes. */
static int tokens_issue(lua_State *L) {
  rp_plugin *p = rp_api_plugin(L);
  cJSON *payload = lua_isnoneornil(L, 1) ? NULL : rp_api_to_json(L, 1, "crm.tokens.issue");
  int64_t ttl;
  if (lua_isinteger(L, 2)) {
    ttl = lua_tointeger(L, 2);
  } else if (rp_clock_parse_duration(luaL_checkstring(L, 2), &ttl) != 0) {
    cJSON_Delete(payload);
    return luaL_error(L, "crm.tokens.issue: ttl: not a duration such as \"7d\"");
  }
  char *token = NULL;
  rp_err err;
  rp_err_clear(&err);
  int rc = rp_token_issue(p->host->store, p->name, payload, ttl, &token, &err);
  cJSON_Delete(payload);
  if (rc) {
    rp_err_prefix(&err, "crm.tokens.issue: ");
    return rp_api_raise(L, &err);
  }
  lua_pushstring(L, token);
  free(token);
  return 1;
}

void rp_api_push_tokens(lua_State *L) {
  static const luaL_Reg fns[] = {{"issue", tokens_issue}, {NULL, NULL}};
  luaL_newlib(L, fns);
}

/* ---- crm.random -------------------------------------------------------------
 * From OpenSSL's CSPRNG, not math.random: coupon codes and the like must not
 * be guessable from earlier ones. */

/* *out = a uniform integer in [0, n), n >= 1, by rejection (no modulo
 * bias). Returns 0, or -1 when the generator fails. */
static int random_below(uint64_t n, uint64_t *out) {
  uint64_t limit = UINT64_MAX - UINT64_MAX % n, v;
  do {
    if (RAND_bytes((unsigned char *)&v, sizeof v) != 1) return -1;
  } while (v >= limit);
  *out = v % n;
  return 0;
}

/* crm.random.code(length [, alphabet]): length (1..128) characters drawn
 * uniformly from alphabet (default: 32 letters and digits without 0, O, 1,
 * I: read aloud and typed without mistakes). */
static int random_code(lua_State *L) {
  lua_Integer len = luaL_checkinteger(L, 1);
  size_t an = 0;
  const char *alphabet = luaL_optlstring(L, 2, "ABCDEFGHJKLMNPQRSTUVWXYZ23456789", &an);
  if (len < 1 || len > 128) return luaL_error(L, "crm.random.code: length must be 1 to 128");
  int ascii = 1;
  for (size_t i = 0; i < an; i++) ascii = ascii && (unsigned char)alphabet[i] >= 0x20 && (unsigned char)alphabet[i] < 0x7f;
  if (an < 2 || an > 95 || !ascii)
    return luaL_error(L, "crm.random.code: the alphabet needs 2 to 95 printable ASCII characters");
  char out[128];
  for (lua_Integer i = 0; i < len; i++) {
    uint64_t k;
    if (random_below(an, &k)) return luaL_error(L, "crm.random.code: the random generator failed");
    out[i] = alphabet[k];
  }
  lua_pushlstring(L, out, (size_t)len);
  return 1;
}

/* crm.random.int(lo, hi): a uniform integer in [lo, hi]. */
static int random_int(lua_State *L) {
  lua_Integer lo = luaL_checkinteger(L, 1), hi = luaL_checkinteger(L, 2);
  if (hi < lo) return luaL_error(L, "crm.random.int: hi must not be below lo");
  uint64_t span = (uint64_t)hi - (uint64_t)lo, k;
  int failed = span == UINT64_MAX ? RAND_bytes((unsigned char *)&k, sizeof k) != 1
                                  : random_below(span + 1, &k) != 0;
  if (failed) return luaL_error(L, "crm.random.int: the random generator failed");
  lua_pushinteger(L, (lua_Integer)((uint64_t)lo + k));
  return 1;
}

void rp_api_push_random(lua_State *L) {
  static const luaL_Reg fns[] = {{"code", random_code}, {"int", random_int}, {NULL, NULL}};
  luaL_newlib(L, fns);
}
