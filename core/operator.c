/* operator: scripts and printing for operator Lua. */
#include "operator.h"

#include <lauxlib.h>
#include <stdlib.h>

#include "luajson.h"
#include "sandbox.h"

void rp_operator_print(lua_State *L, int n, FILE *out) {
  int top = lua_gettop(L);
  for (int i = top - n + 1; i <= top; i++) {
    if (lua_type(L, i) == LUA_TTABLE) {
      rp_err err;
      rp_err_clear(&err);
      cJSON *j = rp_lua_to_json(L, i, &err);
      char *text = j ? cJSON_Print(j) : NULL;
      cJSON_Delete(j);
      if (text) fprintf(out, "%s\n", text);
      else fprintf(out, "<table: %s>\n", err.msg);
      free(text);
    } else if (lua_type(L, i) == LUA_TLIGHTUSERDATA && !lua_touserdata(L, i)) {
      fprintf(out, "null\n");
    } else if (lua_type(L, i) == LUA_TSTRING || lua_type(L, i) == LUA_TNUMBER ||
               lua_type(L, i) == LUA_TBOOLEAN || lua_type(L, i) == LUA_TNIL) {
      size_t len;
      const char *s;
      if (lua_type(L, i) == LUA_TBOOLEAN) s = lua_toboolean(L, i) ? "true" : "false";
      else if (lua_type(L, i) == LUA_TNIL) s = "nil";
      else s = lua_tolstring(L, i, &len);
      fprintf(out, "%s\n", s);
    } else {
      fprintf(out, "<%s>\n", luaL_typename(L, i));
    }
  }
}

typedef struct run_args {
  const char *path;
  int argc;
  char **argv;
} run_args;

/* Protected: sets `arg`, pushes the arguments below the chunk's call. */
static int push_args(lua_State *L) {
  run_args *a = lua_touserdata(L, 1);
  lua_createtable(L, a->argc, 1);
  lua_pushstring(L, a->path);
  lua_rawseti(L, -2, 0);
  for (int i = 0; i < a->argc; i++) {
    lua_pushstring(L, a->argv[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setglobal(L, "arg");
  for (int i = 0; i < a->argc; i++) lua_pushstring(L, a->argv[i]);
  return a->argc;
}

int rp_operator_run_file(rp_plugin *p, const char *path, int argc, char **argv, int print_result,
                         FILE *out, rp_err *err) {
  rp_sandbox *sb = rp_plugin_sandbox(p);
  lua_State *L = rp_sandbox_lua(sb);
  int base = lua_gettop(L);
  int rc = rp_sandbox_load_file(sb, path, path, err);
  if (rc) return rc;
  run_args a = {path, argc, argv};
  lua_pushcfunction(L, push_args);
  lua_pushlightuserdata(L, &a);
  if ((rc = rp_sandbox_call(sb, 1, argc, 0, "arguments", err))) {
    lua_settop(L, base);
    return rc;
  }
  rc = rp_sandbox_call(sb, argc, LUA_MULTRET, rp_host_config(rp_plugin_host(p))->job_instructions,
                       path, err);
  if (rc) return rc;
  if (print_result) rp_operator_print(L, lua_gettop(L) - base, out);
  lua_settop(L, base);
  return RP_OK;
}
