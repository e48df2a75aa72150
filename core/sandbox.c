/* sandbox: a limited, stripped-down Lua state. */
#include "sandbox.h"

#include <ctype.h>
#include <errno.h>
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"

/* The count hook runs every HOOK_STEP VM instructions: often enough that a
 * budget overshoots by at most this much and a time slice by microseconds,
 * rarely enough to cost nothing measurable. */
#define HOOK_STEP 1000

/* One running call or task step: what it may still spend. */
typedef struct activation {
  int64_t budget;       /* instructions allowed, 0 = unlimited */
  int64_t used;
  int limit;            /* LIMIT_* once exceeded */
  lua_State *thread;    /* the task's coroutine, or NULL for plain calls */
  uint64_t deadline_ns; /* yield after this (tasks only), 0 = never */
  rp_task_can_yield_fn can_yield;
  void *can_yield_ctx;
} activation;

enum { LIMIT_NONE, LIMIT_INSTRUCTIONS, LIMIT_MEMORY };

struct rp_sandbox {
  lua_State *L;
  char name[64];
  char *root;
  int64_t mem_used;
  int64_t mem_cap;
  void *owner;
  activation *act;
  char traceback[8192];
  char warning[1024]; /* a warning being assembled from pieces */
};

struct rp_task {
  rp_sandbox *sb;
  lua_State *co;
  int ref;
  int nargs;   /* arguments for the first resume, -1 afterwards */
  int slices;
  activation act;
  char what[96];
};

static const char loaded_key[] = "rapport.sandbox.loaded";

/* ---- allocator ----------------------------------------------------------- */

/* Modelled on Lua's own test allocator (ltests.c): counts every byte, refuses
 * past the cap. A refusal makes Lua raise a memory error in the running code
 * and marks the activation so the hook keeps raising until the call ends. */
static void *sb_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  rp_sandbox *sb = ud;
  size_t old = ptr ? osize : 0;
  if (nsize == 0) {
    free(ptr);
    sb->mem_used -= (int64_t)old;
    return NULL;
  }
  if (nsize > old && sb->mem_cap > 0 && sb->mem_used + (int64_t)(nsize - old) > sb->mem_cap) {
    if (sb->act && !sb->act->limit) sb->act->limit = LIMIT_MEMORY;
    return NULL;
  }
  void *p = realloc(ptr, nsize);
  if (!p) return NULL;
  sb->mem_used += (int64_t)nsize - (int64_t)old;
  return p;
}

/* ---- hooks --------------------------------------------------------------- */

rp_sandbox *rp_sandbox_from_lua(lua_State *L) { return *(rp_sandbox **)lua_getextraspace(L); }

static void sb_hook(lua_State *L, lua_Debug *ar) {
  rp_sandbox *sb = rp_sandbox_from_lua(L);
  activation *act = sb->act;
  if (!act) return;
  if (act->limit) {
    /* Raise at every line from now on, so that the code's own pcall cannot
     * swallow the abort (the way Redis kills a script). */
    lua_sethook(L, sb_hook, LUA_MASKCOUNT | LUA_MASKLINE, 1);
    if (act->limit == LIMIT_MEMORY)
      luaL_error(L, "memory limit of %d MiB exceeded", (int)(sb->mem_cap >> 20));
    luaL_error(L, "instruction budget of %lld exceeded", (long long)act->budget);
  }
  if (ar->event != LUA_HOOKCOUNT) return;
  act->used += HOOK_STEP;
  if (act->budget > 0 && act->used > act->budget) {
    act->limit = LIMIT_INSTRUCTIONS;
    lua_sethook(L, sb_hook, LUA_MASKCOUNT | LUA_MASKLINE, 1);
    luaL_error(L, "instruction budget of %lld exceeded", (long long)act->budget);
  }
  if (act->deadline_ns && act->thread == L && rp_clock_mono_ns() >= act->deadline_ns &&
      lua_isyieldable(L) && (!act->can_yield || act->can_yield(act->can_yield_ctx))) {
    lua_yield(L, 0); /* a hook may yield only as its last act */
    return;
  }
}

static void hook_normal(lua_State *L) { lua_sethook(L, sb_hook, LUA_MASKCOUNT, HOOK_STEP); }

/* Resumed after rp_sandbox_return yielded: the results are still on the
 * stack (nothing was yielded with them, nothing is resumed with). */
static int return_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  lua_settop(L, (int)(ctx >> 32));
  return (int)(ctx & 0xffffffff);
}

int rp_sandbox_return(lua_State *L, int nres) {
  rp_sandbox *sb = rp_sandbox_from_lua(L);
  activation *act = sb->act;
  if (act && act->deadline_ns && act->thread == L && !act->limit && lua_isyieldable(L) &&
      rp_clock_mono_ns() >= act->deadline_ns &&
      (!act->can_yield || act->can_yield(act->can_yield_ctx))) {
    lua_KContext ctx = ((lua_KContext)lua_gettop(L) << 32) | (lua_KContext)nres;
    return lua_yieldk(L, 0, ctx, return_k);
  }
  return nres;
}

/* ---- safe library replacements ------------------------------------------ */

static int sb_print(lua_State *L) {
  rp_sandbox *sb = rp_sandbox_from_lua(L);
  int n = lua_gettop(L); /* before luaL_buffinit, which may push a placeholder */
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (int i = 1; i <= n; i++) {
    if (i > 1) luaL_addchar(&b, '\t');
    luaL_tolstring(L, i, NULL);
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
  char comp[80];
  snprintf(comp, sizeof comp, "plugin:%s", sb->name);
  rp_log(RP_LOG_INFO, comp, "%s", lua_tostring(L, -1));
  return 0;
}

/* load(chunk [, chunkname [, mode [, env]]]): text only, whatever mode says. */
static int sb_load(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  const char *name = luaL_optstring(L, 2, "=(load)");
  const char *mode = luaL_optstring(L, 3, "t");
  if (!strchr(mode, 't')) {
    luaL_pushfail(L);
    lua_pushstring(L, "attempt to load a binary chunk (only text chunks are allowed)");
    return 2;
  }
  if (len > 0 && s[0] == LUA_SIGNATURE[0]) {
    luaL_pushfail(L);
    lua_pushstring(L, "attempt to load a binary chunk (only text chunks are allowed)");
    return 2;
  }
  int env = !lua_isnone(L, 4) ? 4 : 0;
  if (luaL_loadbufferx(L, s, len, name, "t") != LUA_OK) {
    luaL_pushfail(L);
    lua_insert(L, -2);
    return 2;
  }
  if (env) {
    lua_pushvalue(L, env);
    if (!lua_setupvalue(L, -2, 1)) lua_pop(L, 1);
  }
  return 1;
}

static int sb_collectgarbage(lua_State *L) {
  static const char *const allowed[] = {"collect", "count", "step", "isrunning", NULL};
  int opt = luaL_checkoption(L, 1, "collect", allowed);
  switch (opt) {
  case 0:
    lua_gc(L, LUA_GCCOLLECT);
    lua_pushinteger(L, 0);
    return 1;
  case 1: {
    int kb = lua_gc(L, LUA_GCCOUNT), b = lua_gc(L, LUA_GCCOUNTB);
    lua_pushnumber(L, (lua_Number)kb + (lua_Number)b / 1024);
    return 1;
  }
  case 2:
    lua_pushboolean(L, lua_gc(L, LUA_GCSTEP, (int)luaL_optinteger(L, 2, 0)));
    return 1;
  default:
    lua_pushboolean(L, lua_gc(L, LUA_GCISRUNNING));
    return 1;
  }
}

static int valid_module_name(const char *s) {
  if (!*s || *s == '.') return 0;
  for (const char *p = s; *p; p++) {
    if (!(isalnum((unsigned char)*p) || *p == '_' || *p == '.')) return 0;
    if (*p == '.' && (p[1] == '.' || p[1] == '\0')) return 0;
  }
  return strlen(s) < 200;
}

/* require(name): modules of the plugin's own folder only, as text. */
static int sb_require(lua_State *L) {
  rp_sandbox *sb = rp_sandbox_from_lua(L);
  const char *name = luaL_checkstring(L, 1);
  lua_getfield(L, LUA_REGISTRYINDEX, loaded_key);
  if (lua_getfield(L, -1, name) != LUA_TNIL) return 1;
  lua_pop(L, 1);
  if (!sb->root) return luaL_error(L, "require is not available here");
  if (!valid_module_name(name))
    return luaL_error(L, "require: bad module name '%s' (letters, digits, _ and . only)", name);
  char rel[256], path[4096], chunk[400];
  snprintf(rel, sizeof rel, "%s", name);
  for (char *p = rel; *p; p++)
    if (*p == '.') *p = '/';
  snprintf(path, sizeof path, "%s/%s.lua", sb->root, rel);
  snprintf(chunk, sizeof chunk, "@%s/%s.lua", sb->name, rel);
  rp_err err;
  rp_err_clear(&err);
  if (rp_sandbox_load_file(sb, path, chunk, &err) != RP_OK)
    return luaL_error(L, "require '%s': %s", name, err.msg);
  lua_pushstring(L, name);
  lua_call(L, 1, 1);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_pushboolean(L, 1);
  }
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, name);
  return 1;
}

static void sb_warn(void *ud, const char *msg, int tocont) {
  rp_sandbox *sb = ud;
  if (!tocont && msg[0] == '@') return; /* control messages ("@on", "@off") */
  size_t have = strlen(sb->warning);
  snprintf(sb->warning + have, sizeof sb->warning - have, "%s", msg);
  if (tocont) return;
  char comp[80];
  snprintf(comp, sizeof comp, "plugin:%s", sb->name);
  rp_log(RP_LOG_WARN, comp, "Lua warning: %s", sb->warning);
  sb->warning[0] = '\0';
}

static void open_safe_libs(lua_State *L) {
  static const luaL_Reg libs[] = {{LUA_GNAME, luaopen_base},
                                  {LUA_TABLIBNAME, luaopen_table},
                                  {LUA_STRLIBNAME, luaopen_string},
                                  {LUA_MATHLIBNAME, luaopen_math},
                                  {LUA_UTF8LIBNAME, luaopen_utf8},
                                  {LUA_COLIBNAME, luaopen_coroutine},
                                  {LUA_OSLIBNAME, luaopen_os},
                                  {NULL, NULL}};
  for (const luaL_Reg *l = libs; l->func; l++) {
    luaL_requiref(L, l->name, l->func, 1);
    lua_pop(L, 1);
  }
  lua_pushglobaltable(L); /* stack: _G */
  static const char *const removed[] = {"dofile", "loadfile", NULL};
  for (int i = 0; removed[i]; i++) {
    lua_pushnil(L);
    lua_setfield(L, -2, removed[i]);
  }
  lua_pushcfunction(L, sb_load);
  lua_setfield(L, -2, "load");
  lua_pushcfunction(L, sb_print);
  lua_setfield(L, -2, "print");
  lua_pushcfunction(L, sb_collectgarbage);
  lua_setfield(L, -2, "collectgarbage");
  lua_pushcfunction(L, sb_require);
  lua_setfield(L, -2, "require");

  /* string.dump makes bytecode, which nothing here may load. */
  lua_getfield(L, -1, LUA_STRLIBNAME);
  lua_pushnil(L);
  lua_setfield(L, -2, "dump");
  lua_pop(L, 1);

  /* os: only the clock and calendar functions. */
  lua_getfield(L, -1, LUA_OSLIBNAME); /* stack: _G, os */
  lua_createtable(L, 0, 4);           /* stack: _G, os, safe_os */
  static const char *const os_kept[] = {"time", "clock", "date", "difftime", NULL};
  for (int i = 0; os_kept[i]; i++) {
    lua_getfield(L, -2, os_kept[i]);
    lua_setfield(L, -2, os_kept[i]);
  }
  lua_setfield(L, -3, LUA_OSLIBNAME);
  lua_pop(L, 2);

  /* package was never opened, so package.loadlib and C loaders do not exist;
   * drop the loaded table luaL_requiref filled so no module leaks through. */
  lua_pushnil(L);
  lua_setfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_newtable(L);
  lua_setfield(L, LUA_REGISTRYINDEX, loaded_key);
}

/* ---- lifecycle ----------------------------------------------------------- */

static int open_safe_libs_protected(lua_State *L) {
  open_safe_libs(L);
  return 0;
}

int rp_sandbox_new(const char *name, const char *root, int64_t memory_cap, rp_sandbox **out,
                   rp_err *err) {
  *out = NULL;
  rp_sandbox *sb = calloc(1, sizeof *sb);
  if (!sb) return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
  snprintf(sb->name, sizeof sb->name, "%s", name);
  sb->mem_cap = memory_cap;
  if (root && !(sb->root = strdup(root))) {
    free(sb);
    return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
  }
  sb->L = lua_newstate(sb_alloc, sb);
  if (!sb->L) {
    free(sb->root);
    free(sb);
    return rp_err_set(err, RP_ELIMIT, NULL,
                      "plugin '%s': cannot create a Lua state within %lld bytes", name,
                      (long long)memory_cap);
  }
  *(rp_sandbox **)lua_getextraspace(sb->L) = sb;
  lua_setwarnf(sb->L, sb_warn, sb);
  /* Opening the libraries may fail under a tiny cap: do it protected. */
  activation act = {0};
  sb->act = &act;
  lua_pushcfunction(sb->L, open_safe_libs_protected);
  int st = lua_pcall(sb->L, 0, 0, 0);
  sb->act = NULL;
  if (st != LUA_OK) {
    rp_err_set(err, RP_ELIMIT, NULL, "plugin '%s': cannot open the Lua libraries: %s", name,
               lua_tostring(sb->L, -1) ? lua_tostring(sb->L, -1) : "out of memory");
    rp_sandbox_free(sb);
    return err ? err->code : RP_ELIMIT;
  }
  hook_normal(sb->L);
  *out = sb;
  return RP_OK;
}

void rp_sandbox_free(rp_sandbox *sb) {
  if (!sb) return;
  if (sb->L) {
    /* Finalizers run during lua_close; a plugin's __gc that loops forever
     * must still end, so close under a budget. */
    activation act = {0};
    act.budget = 10000000;
    sb->act = &act;
    lua_close(sb->L);
    sb->act = NULL;
  }
  free(sb->root);
  free(sb);
}

lua_State *rp_sandbox_lua(rp_sandbox *sb) { return sb->L; }
const char *rp_sandbox_name(const rp_sandbox *sb) { return sb->name; }
void rp_sandbox_set_owner(rp_sandbox *sb, void *owner) { sb->owner = owner; }
void *rp_sandbox_owner(const rp_sandbox *sb) { return sb->owner; }
int64_t rp_sandbox_memory(const rp_sandbox *sb) { return sb->mem_used; }
void rp_sandbox_set_memory_cap(rp_sandbox *sb, int64_t cap) { sb->mem_cap = cap; }
const char *rp_sandbox_traceback(const rp_sandbox *sb) { return sb->traceback; }

int rp_sandbox_load(rp_sandbox *sb, const char *text, size_t len, const char *chunkname,
                    rp_err *err) {
  activation act = {0};
  activation *prev = sb->act;
  sb->act = &act;
  int st = luaL_loadbufferx(sb->L, text, len, chunkname, "t");
  sb->act = prev;
  if (st != LUA_OK) {
    const char *msg = lua_tostring(sb->L, -1);
    rp_err_set(err, st == LUA_ERRMEM ? RP_ELIMIT : RP_EINVAL, chunkname, "%s",
               msg ? msg : "cannot load chunk");
    lua_pop(sb->L, 1);
    return err ? err->code : RP_EINVAL;
  }
  return RP_OK;
}

int rp_sandbox_load_file(rp_sandbox *sb, const char *path, const char *chunkname, rp_err *err) {
  FILE *f = fopen(path, "rb");
  if (!f) return rp_err_set(err, RP_EIO, path, "%s: %s", path, strerror(errno));
  char *buf = NULL;
  size_t len = 0, cap = 0;
  int bad = 0;
  for (;;) {
    if (len + 8192 > cap) {
      cap = cap ? cap * 2 : 16384;
      if (cap > (64u << 20)) {
        bad = 1;
        break;
      }
      char *n = realloc(buf, cap);
      if (!n) {
        bad = 1;
        break;
      }
      buf = n;
    }
    size_t got = fread(buf + len, 1, 8192, f);
    len += got;
    if (got < 8192) break;
  }
  if (ferror(f)) bad = 1;
  fclose(f);
  if (bad) {
    free(buf);
    return rp_err_set(err, RP_EIO, path, "%s: cannot read (or larger than 64 MiB)", path);
  }
  int rc = rp_sandbox_load(sb, buf ? buf : "", len, chunkname, err);
  free(buf);
  return rc;
}

static int index_undeclared(lua_State *L) {
  return luaL_error(L, "undeclared global '%s'", luaL_tolstring(L, 2, NULL));
}

static int newindex_undeclared(lua_State *L) {
  return luaL_error(L, "assignment to undeclared global '%s' (declare it local, or in the "
                       "plugin's main chunk)", luaL_tolstring(L, 2, NULL));
}

void rp_sandbox_lock_globals(rp_sandbox *sb) {
  lua_State *L = sb->L;
  lua_pushglobaltable(L);
  lua_createtable(L, 0, 3);
  lua_pushcfunction(L, index_undeclared);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, newindex_undeclared);
  lua_setfield(L, -2, "__newindex");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable"); /* setmetatable(_G, ...) now fails */
  lua_setmetatable(L, -2);
  lua_pop(L, 1);
}

/* ---- calls --------------------------------------------------------------- */

/* Message handler: keeps the message as the error value and the traceback
 * aside, so callers get both. */
static int msgh(lua_State *L) {
  rp_sandbox *sb = rp_sandbox_from_lua(L);
  const char *msg = lua_tostring(L, 1);
  if (!msg) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) {
      msg = lua_tostring(L, -1);
    } else {
      msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    lua_replace(L, 1);
    lua_settop(L, 1);
  }
  luaL_traceback(L, L, NULL, 1);
  snprintf(sb->traceback, sizeof sb->traceback, "%s", lua_tostring(L, -1));
  lua_pop(L, 1);
  return 1;
}

static int finish_error(rp_sandbox *sb, lua_State *from, int st, const activation *act,
                        const char *what, rp_err *err) {
  const char *msg = lua_tostring(from, -1);
  int code = RP_EPLUGIN;
  char limit_msg[128];
  if (act->limit == LIMIT_MEMORY || st == LUA_ERRMEM) {
    code = RP_ELIMIT;
    snprintf(limit_msg, sizeof limit_msg, "memory limit of %lld MiB exceeded",
             (long long)(sb->mem_cap >> 20));
    msg = limit_msg;
  } else if (act->limit == LIMIT_INSTRUCTIONS) {
    code = RP_ELIMIT;
    snprintf(limit_msg, sizeof limit_msg, "instruction budget of %lld exceeded",
             (long long)act->budget);
    msg = limit_msg;
  }
  return rp_err_set(err, code, NULL, "plugin '%s' %s: %s", sb->name, what,
                    msg ? msg : "unknown error");
}

int rp_sandbox_call(rp_sandbox *sb, int nargs, int nresults, int64_t budget, const char *what,
                    rp_err *err) {
  lua_State *L = sb->L;
  int base = lua_gettop(L) - nargs; /* the function */
  lua_pushcfunction(L, msgh);
  lua_insert(L, base);
  activation act = {0};
  act.budget = budget;
  activation *prev = sb->act;
  sb->act = &act;
  sb->traceback[0] = '\0';
  int st = lua_pcall(L, nargs, nresults, base);
  sb->act = prev;
  if (act.limit) hook_normal(L);
  if (st == LUA_OK) {
    lua_remove(L, base);
    return RP_OK;
  }
  int rc = finish_error(sb, L, st, &act, what, err);
  lua_settop(L, base - 1);
  return rc;
}

/* ---- tasks --------------------------------------------------------------- */

/* Runs protected: makes the coroutine, moves the function and its arguments
 * into it and anchors it in the registry (each step may allocate). */
static int make_task(lua_State *L) {
  int n = lua_gettop(L);
  lua_State *co = lua_newthread(L);
  lua_insert(L, 1);
  lua_xmove(L, co, n);
  lua_pushinteger(L, luaL_ref(L, LUA_REGISTRYINDEX)); /* pops the thread */
  lua_pushlightuserdata(L, co);
  return 2;
}

int rp_task_new(rp_sandbox *sb, int nargs, int64_t budget, const char *what, rp_task **out,
                rp_err *err) {
  lua_State *L = sb->L;
  *out = NULL;
  rp_task *t = calloc(1, sizeof *t);
  if (!t) {
    lua_pop(L, nargs + 1);
    return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
  }
  lua_pushcfunction(L, make_task); /* never allocates: a light C function */
  lua_insert(L, -(nargs + 2));
  activation act = {0};
  activation *prev = sb->act;
  sb->act = &act;
  int st = lua_pcall(L, nargs + 1, 2, 0);
  sb->act = prev;
  if (st != LUA_OK) {
    lua_pop(L, 1);
    free(t);
    return rp_err_set(err, RP_ELIMIT, NULL, "plugin '%s' %s: out of memory starting the task",
                      sb->name, what);
  }
  t->ref = (int)lua_tointeger(L, -2);
  t->co = lua_touserdata(L, -1);
  lua_pop(L, 2);
  t->sb = sb;
  t->nargs = nargs;
  t->act.budget = budget;
  t->act.thread = t->co;
  snprintf(t->what, sizeof t->what, "%s", what);
  *out = t;
  return RP_OK;
}

int rp_task_resume(rp_task *t, int64_t slice_ms, rp_task_can_yield_fn can_yield, void *ctx,
                   rp_err *err) {
  rp_sandbox *sb = t->sb;
  t->act.deadline_ns = slice_ms > 0 ? rp_clock_mono_ns() + (uint64_t)slice_ms * 1000000u : 0;
  t->act.can_yield = can_yield;
  t->act.can_yield_ctx = ctx;
  activation *prev = sb->act;
  sb->act = &t->act;
  sb->traceback[0] = '\0';
  int nres = 0;
  int nargs = t->nargs < 0 ? 0 : t->nargs;
  t->nargs = -1;
  t->slices++;
  int st = lua_resume(t->co, sb->L, nargs, &nres);
  sb->act = prev;
  if (st == LUA_YIELD) {
    lua_pop(t->co, nres);
    return RP_TASK_YIELDED;
  }
  if (st == LUA_OK) {
    lua_pop(t->co, nres);
    return RP_OK;
  }
  const char *msg = lua_tostring(t->co, -1);
  /* Unprotected on the main thread: lift the cap for the few bytes of the
   * traceback, or a memory error would become a panic. */
  int64_t cap = sb->mem_cap;
  sb->mem_cap = 0;
  if (lua_checkstack(sb->L, 4)) {
    luaL_traceback(sb->L, t->co, msg, 0);
    snprintf(sb->traceback, sizeof sb->traceback, "%s", lua_tostring(sb->L, -1));
    lua_pop(sb->L, 1);
  }
  sb->mem_cap = cap;
  return finish_error(sb, t->co, st, &t->act, t->what, err);
}

int rp_task_slices(const rp_task *t) { return t->slices; }

void rp_task_free(rp_task *t) {
  if (!t) return;
  /* Dropping the reference lets the collector reclaim the coroutine (and
   * close its pending to-be-closed variables when it is collected). */
  luaL_unref(t->sb->L, LUA_REGISTRYINDEX, t->ref);
  free(t);
}
